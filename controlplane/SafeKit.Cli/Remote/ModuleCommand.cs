using System.Text.Json;
using SafeKit.Cli.Commands;

namespace SafeKit.Cli.Remote;

/// <summary>
/// <c>safekit start|stop|restart|stopstart|forcestop MODULE [--on NODE]</c>: acts on a module of
/// the node talked to, or of <c>--on NODE</c> (forwarded by the node talked to).
/// </summary>
internal static class ModuleCommand
{
    public static readonly string[] Verbs = ["start", "stop", "restart", "stopstart", "forcestop"];

    public static async Task<int> RunAsync(string verb, IReadOnlyList<string> args)
    {
        var a = CliArguments.Parse(args, [.. ApiConnection.ValuedOptions, "--on"], ApiConnection.FlagOptions);
        if (a.Positionals.Count != 1)
        {
            throw new CliException($"usage: safekit {verb} MODULE [--on NODE] {ApiConnection.OptionsUsage}");
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
