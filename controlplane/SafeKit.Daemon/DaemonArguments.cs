namespace SafeKit.Daemon;

/// <summary>Command line of safekitd.</summary>
internal sealed record DaemonArguments(string ConfigPath, string? Node, string StateDirectory)
{
    public const string Usage = """
        usage: safekitd --config FILE [--node NAME] [--state-dir DIR]

          --config FILE     cluster configuration (YAML); see README "Configuration"
          --node NAME       which node of cluster.nodes this is (default: the one whose
                            address is on a local interface)
          --state-dir DIR   where status.json is written (default /run/safekit/<node>)
        """;

    /// <summary>Parses arguments; returns null and an error for bad ones.</summary>
    public static DaemonArguments? Parse(string[] args, out string? error)
    {
        string? config = null;
        string? node = null;
        string? state = null;
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
        return new DaemonArguments(config, node, state ?? string.Empty);
    }
}
