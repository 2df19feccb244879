using System.Text.Json;
using SafeKit.Cli.Commands;

namespace SafeKit.Cli.Remote;

/// <summary>
/// <c>safekit start|stop|restart|stopstart|forcestop MODULE [--on NODE]</c>, <c>safekit prim --force MODULE</c> and
/// <c>safekit resync --full MODULE</c>: acts on a module of
/// the node talked to, or of <c>--on NODE</c> (forwarded by the node talked to).
/// </summary>
internal static class ModuleCommand
{
    public static readonly string[] Verbs = ["start", "stop", "restart", "stopstart", "forcestop", "prim", "resync"];

    public static async Task<int> RunAsync(string verb, IReadOnlyList<string> args)
    {
        var a = CliArguments.Parse(args, [.. ApiConnection.ValuedOptions, "--on"], [.. ApiConnection.FlagOptions, "--force", "--full"]);
        if (a.Positionals.Count != 1)
        {
            var flag = verb switch { "prim" => " --force", "resync" => " --full", _ => string.Empty };
            throw new CliException($"usage: safekit {verb}{flag} MODULE [--on NODE] {ApiConnection.OptionsUsage}");
        }

        if (verb == "resync" && !a.Has("--full"))
        {
            throw new CliException("resync needs --full: the serving node compares every file with the peer's copy (a failback after a failure already resynchronises by itself)");
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
