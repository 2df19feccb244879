using System.Net.NetworkInformation;

namespace SafeKit.ControlPlane.Configuration;

/// <summary>Finds which node of the configuration this machine is.</summary>
public static class NodeIdentity
{
    /// <summary>
    /// The node named <paramref name="requested"/>, or else the one whose address is configured on
    /// a local interface.
    /// </summary>
    /// <exception cref="ConfigException">No node, or more than one, matches.</exception>
    public static NodeConfig Resolve(ClusterConfig config, string? requested)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (requested is not null)
        {
            return config.Nodes.FirstOrDefault(n => n.Name == requested)
                ?? throw Error(config, $"node '{requested}' is not in cluster.nodes (known: {string.Join(", ", config.Nodes.Select(n => n.Name))})");
        }

        var local = NetworkInterface.GetAllNetworkInterfaces()
            .SelectMany(i => i.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address)
            .ToHashSet();
        var matches = config.Nodes.Where(n => local.Contains(n.Address)).ToList();
        return matches.Count switch
        {
            1 => matches[0],
            0 => throw Error(config, "no node of cluster.nodes has its address on this machine; pass --node NAME"),
            _ => throw Error(config, $"several nodes have their address on this machine ({string.Join(", ", matches.Select(n => n.Name))}); pass --node NAME"),
        };
    }

    private static ConfigException Error(ClusterConfig config, string message) =>
        new([new ConfigError(config.SourceFile, 0, 0, "cluster.nodes", message)]);
}
