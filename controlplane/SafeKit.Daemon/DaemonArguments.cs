namespace SafeKit.Daemon;

/// <summary>Command line of safekitd.</summary>
internal sealed record DaemonArguments(string ConfigPath, string? Node, string StateDirectory, bool WaitForConfig = false)
{
    public const string Usage = """
        usage: safekitd --config FILE [--node NAME] [--state-dir DIR] [--wait-for-config]

          --config FILE     cluster configuration (YAML); see README "Configuration"
          --node NAME       which node of cluster.nodes this is (default: the one whose
                            address is on a local interface)
          --state-dir DIR   where status.json is written (default /run/safekit/<node>)
          --wait-for-config while FILE does not exist, answer every API request (port 9453,
                            every address) "not configured" (503) instead of exiting; SIGHUP
                            or a restart once FILE is there starts the node
        """;

    /// <summary>Parses arguments; returns null and an error for bad ones.</summary>
    public static DaemonArguments? Parse(string[] args, out string? error)
    {
        string? config = null;
        string? node = null;
        string? state = null;
        var wait = false;
        for (var i = 0; i < args.Length; i++)
        {
            var value = i + 1 < args.Length ? args[i + 1] : null;
            switch (args[i])
            {
                case "--config" when value is not null:
                    config = value;
                    i++;
                    break;
                case "--node" when value is not null:
                    node = value;
                    i++;
                    break;
                case "--wait-for-config":
                    wait = true;
                    break;
                case "--state-dir" when value is not null:
                    state = value;
                    i++;
                    break;
                default:
                    error = $"unknown or incomplete argument '{args[i]}'";
                    return null;
            }
        }

        if (config is null)
        {
            error = "--config is required";
            return null;
        }

        error = null;
        return new DaemonArguments(config, node, state ?? string.Empty, wait);
    }
}
