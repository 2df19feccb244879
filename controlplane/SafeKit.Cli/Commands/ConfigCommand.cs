using System.Text.Json;
using SafeKit.Cli.Remote;
using SafeKit.ControlPlane.Configuration;
using SafeKit.ControlPlane.Firewall;

namespace SafeKit.Cli.Commands;

/// <summary>
/// <c>safekit config check FILE</c> validates a file here (every problem with file:line:column);
/// <c>config diff FILE</c> asks a node what a reload of that file would change;
/// <c>config reload [--on NODE | --all]</c> makes node(s) re-read their file.
/// </summary>
internal static class ConfigCommand
{
    public const string Usage = """
          safekit config check FILE                       validate a configuration file here
          safekit config diff FILE [API OPTIONS]          what a reload of FILE would change on the node
          safekit config reload [--on NODE | --all] [API OPTIONS]
          safekit config firewall [FILE] [--allow tcp/22,...]
                                                          the node's inbound nftables ruleset for FILE (none: not
                                                          configured yet); apply with: ... | nft -f -
        """;

    public static async Task<int> RunAsync(IReadOnlyList<string> args)
    {
        switch (args.Count > 0 ? args[0] : "")
        {
            case "check":
                return args.Count == 2 ? Check(args[1]) : throw new CliException("usage: safekit config check FILE");
            case "diff":
                return await DiffAsync(args.Skip(1).ToList());
            case "reload":
                return await ReloadAsync(args.Skip(1).ToList());
            case "firewall":
                return Firewall(args.Skip(1).ToList());
            default:
                throw new CliException("usage: safekit config check FILE | config diff FILE | config reload [--on NODE | --all] | config firewall [FILE]");
        }
    }

    private static int Check(string file)
    {
        try
        {
            var config = ConfigLoader.Load(file);
            Console.WriteLine($"{file}: ok (cluster {config.Name}, {config.Nodes.Count} nodes, {config.Farms.Count} farm module(s))");
            return 0;
        }
        catch (ConfigException e)
        {
            foreach (var error in e.Errors)
            {
                Console.Error.WriteLine(error);
            }

            return 1;
        }
    }

    private static int Firewall(IReadOnlyList<string> args)
    {
        var a = CliArguments.Parse(args, ["--allow"], []);
        if (a.Positionals.Count > 1)
        {
            throw new CliException("usage: safekit config firewall [FILE] [--allow tcp/PORT,udp/PORT,...]");
        }

        List<FirewallOpening> openings;
        try
        {
            openings = (a.Value("--allow") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(FirewallOpening.Parse).ToList();
        }
        catch (FormatException e)
        {
            throw new CliException($"--allow: {e.Message}");
        }

        ClusterConfig? config = null;
        if (a.Positionals.Count == 1)
        {
            try
            {
                config = ConfigLoader.Load(a.Positionals[0]);
            }
            catch (ConfigException e)
            {
                foreach (var error in e.Errors)
                {
                    Console.Error.WriteLine(error);
                }

                return 1;
            }
        }

        Console.Write(HostFirewall.Ruleset(config, openings));
        return 0;
    }

    private static async Task<int> DiffAsync(IReadOnlyList<string> args)
    {
        var a = CliArguments.Parse(args, ApiConnection.ValuedOptions, ApiConnection.FlagOptions);
        if (a.Positionals.Count != 1)
        {
            throw new CliException("usage: safekit config diff FILE");
        }

        string text;
        try
        {
            text = await File.ReadAllTextAsync(a.Positionals[0]);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"{a.Positionals[0]}: {e.Message}");
        }

        using var api = ApiConnection.Open(a);
        try
        {
            var result = await api.SendAsync(HttpMethod.Post, "/api/v1/config/validate", text, contentType: "application/yaml");
            if (a.Has("--json"))
            {
                Console.WriteLine(result.ToString());
                return 0;
            }

            Console.WriteLine(result.GetProperty("reloadable").GetBoolean() ? "valid; a reload applies it:" : "valid, but a reload would be refused:");
            Lines(result, "changes", "  change: ");
            Lines(result, "restart_required", "  needs a restart of safekitd: ");
            Lines(result, "notes", "  note: ");
            return result.GetProperty("reloadable").GetBoolean() ? 0 : 1;
        }
        catch (ApiCallException e) when (e.Problem.ValueKind == JsonValueKind.Object && e.Problem.TryGetProperty("errors", out var errors))
        {
            foreach (var error in errors.EnumerateArray())
            {
                Console.Error.WriteLine(error.GetString()!.Replace("(request)", a.Positionals[0], StringComparison.Ordinal));
            }

            return 1;
        }
    }

    private static async Task<int> ReloadAsync(IReadOnlyList<string> args)
    {
        var a = CliArguments.Parse(args, [.. ApiConnection.ValuedOptions, "--on"], [.. ApiConnection.FlagOptions, "--all"]);
        if (a.Positionals.Count > 0 || (a.Has("--all") && a.Value("--on") is not null))
        {
            throw new CliException("usage: safekit config reload [--on NODE | --all]");
        }

        using var api = ApiConnection.Open(a, defaultTimeoutSeconds: 120);
        IEnumerable<string?> nodes = [a.Value("--on")];
        if (a.Has("--all"))
        {
            var cluster = await api.SendAsync(HttpMethod.Get, "/api/v1/cluster");
            nodes = cluster.GetProperty("nodes").EnumerateArray().Select(n => n.GetProperty("name").GetString()).ToList();
        }

        var failed = 0;
        foreach (var node in nodes)
        {
            var path = node is null ? "/api/v1/config/reload" : $"/api/v1/cluster/nodes/{Uri.EscapeDataString(node)}/config/reload";
            try
            {
                var outcome = await api.SendAsync(HttpMethod.Post, path);
                var changes = outcome.GetProperty("changes").EnumerateArray().Select(c => c.GetString()).ToList();
                Console.WriteLine($"{node ?? "node"}: reloaded ({(changes.Count == 0 ? "nothing changed" : string.Join("; ", changes))})");
            }
            catch (ApiCallException e) when (nodes.Count() > 1 || e.ExitCode == ExitCodes.Failed)
            {
                Console.Error.WriteLine($"safekit: {node ?? "node"}: {e.Message}");
                failed++;
            }
        }

        return failed == 0 ? 0 : ExitCodes.Failed;
    }

    private static void Lines(JsonElement result, string property, string prefix)
    {
        foreach (var line in result.GetProperty(property).EnumerateArray())
        {
            Console.WriteLine(prefix + line.GetString());
        }
    }
}
