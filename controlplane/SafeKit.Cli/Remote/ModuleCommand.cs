using System.Text.Json;
using SafeKit.Cli.Commands;

namespace SafeKit.Cli.Remote;

/// <summary>
/// <c>safekit start|stop|restart|stopstart|forcestop MODULE [--on NODE]</c> and <c>safekit prim --force MODULE</c>: acts on a module of
/// the node talked to, or of <c>--on NODE</c> (forwarded by the node talked to).
/// </summary>
internal static class ModuleCommand
{
    public static readonly string[] Verbs = ["start", "stop", "restart", "stopstart", "forcestop", "prim"];

    public static async Task<int> RunAsync(string verb, IReadOnlyList<string> args)
    {
        var a = CliArguments.Parse(args, [.. ApiConnection.ValuedOptions, "--on"], [.. ApiConnection.FlagOptions, "--force"]);
        if (a.Positionals.Count != 1)
        {
            throw new CliException($"usage: safekit {verb}{(verb == "prim" ? " --force" : string.Empty)} MODULE [--on NODE] {ApiConnection.OptionsUsage}");
        }

        if (verb == "prim" && !a.Has("--force"))
        {
            throw new CliException("prim needs --force: the node's copy becomes the reference and the peer's changes it lacks are not taken");
        }

        var module = Uri.EscapeDataString(a.Positionals[0]);
        // A stop waits for the node's connections to finish (drain timeout): allow for it.
        using var api = ApiConnection.Open(a, defaultTimeoutSeconds: 600);
        var path = a.Value("--on") is { } node
            ? $"/api/v1/cluster/nodes/{Uri.EscapeDataString(node)}/modules/{module}/actions"
            : $"/api/v1/modules/{module}/actions";
        var result = await api.SendAsync(HttpMethod.Post, path, JsonSerializer.Serialize(new Dictionary<string, string> { ["action"] = verb }));
        Console.WriteLine(a.Has("--json") ? result.ToString() : $"{result.GetProperty("message").GetString()} (state {result.GetProperty("state").GetString()})");
        return ExitCodes.Ok;
    }
}
