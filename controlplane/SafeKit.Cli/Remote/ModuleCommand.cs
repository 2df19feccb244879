using System.Text.Json;
using SafeKit.Cli.Commands;

namespace SafeKit.Cli.Remote;

/// <summary>
/// <c>safekit start|stop|restart|stopstart|forcestop MODULE [--on NODE]</c>, <c>safekit prim --force MODULE</c> and
/// <c>safekit resync --full MODULE</c>: acts on a module of
/// the node talked to, or of <c>--on NODE</c> (forwarded by the node talked to). <c>safekit swap
/// MODULE</c> and <c>safekit verify MODULE</c> go to the node where the mirror is PRIM unless <c>--on</c> names one.
/// </summary>
internal static class ModuleCommand
{
    public static readonly string[] Verbs = ["start", "stop", "restart", "stopstart", "forcestop", "prim", "resync", "swap", "verify"];

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
        var on = a.Value("--on") ?? (verb is "swap" or "verify" ? await PrimOfAsync(api, a.Positionals[0]) : null);
        var path = on is { } node
            ? $"/api/v1/cluster/nodes/{Uri.EscapeDataString(node)}/modules/{module}/actions"
            : $"/api/v1/modules/{module}/actions";
        var result = await api.SendAsync(HttpMethod.Post, path, JsonSerializer.Serialize(new Dictionary<string, string> { ["action"] = verb }));
        Console.WriteLine(a.Has("--json") ? result.ToString() : $"{result.GetProperty("message").GetString()} (state {result.GetProperty("state").GetString()})");
        return ExitCodes.Ok;
    }

    /// <summary>The node where <paramref name="module"/> is PRIM, as the cluster status says.</summary>
    private static async Task<string> PrimOfAsync(ApiConnection api, string module)
    {
        var cluster = await api.SendAsync(HttpMethod.Get, "/api/v1/cluster", null);
        foreach (var node in cluster.GetProperty("nodes").EnumerateArray())
        {
            if (node.TryGetProperty("status", out var status) && status.ValueKind == JsonValueKind.Object
                && status.GetProperty("modules").EnumerateArray().Any(m => m.GetProperty("name").GetString() == module && m.GetProperty("state").GetString() == "PRIM"))
            {
                return node.GetProperty("name").GetString()!;
            }
        }

        throw new CliException($"no node is PRIM for module {module} (see 'safekit status'): swap and verify need a PRIM and a SECOND");
    }
}
