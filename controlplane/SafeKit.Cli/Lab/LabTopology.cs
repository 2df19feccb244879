using System.Globalization;
using System.Net;

namespace SafeKit.Cli.Lab;

/// <summary>
/// Names and addresses of a lab: a bridge namespace without uplink, a client and N nodes, all in
/// 198.18.0.0/24 and 2001:2::/64 (benchmarking ranges that never leave the machine). A farm lab's
/// nodes are nX (198.18.0.1X, VIP .100); a mirror lab's are m1 and m2 (198.18.0.21/.22, VIP .200).
/// </summary>
internal sealed record LabTopology(string Prefix, int NodeCount, bool Mirror = false)
{
    public const int MaxNodes = 32;
    public const string Bridge = "br0";
    public const string NodeInterface = "eth0";
    public const int HttpPort = 80;
    public const int UdpPort = 5300;
    public const int HeartbeatPort = 4800;

    public static readonly IPAddress VipV4 = IPAddress.Parse("198.18.0.100");
    public static readonly IPAddress VipV6 = IPAddress.Parse("2001:2::100");
    public static readonly IPAddress MirrorVipV4 = IPAddress.Parse("198.18.0.200");
    public static readonly IPAddress MirrorVipV6 = IPAddress.Parse("2001:2::200");
    public const int ReplicationPort = 4900;
    public const int PostgresPort = 5432;
    public const string PostgresBin = "/usr/lib/postgresql/15/bin";

    /// <summary>The mirror module's start/stop script (NGINX and PostgreSQL).</summary>
    public string MirrorAppScriptPath => Path.Combine(StateDirectory, "app.sh");

    /// <summary>The replicated directories of a mirror lab (the same paths in both nodes' mount namespaces).</summary>
    public static readonly string[] MirrorDirectories = ["/srv/www", "/srv/pgdata"];

    /// <summary>Where each mirror node's real files and records live (in its own mount namespace).</summary>
    public const string MirrorVarDirectory = "/var/lib/safekit";

    public IPAddress Vip4 => Mirror ? MirrorVipV4 : VipV4;

    public IPAddress Vip6 => Mirror ? MirrorVipV6 : VipV6;

    /// <summary>The file that holds node <paramref name="index"/>'s mount namespace open (mirror labs).</summary>
    public string MountNamespace(int index) => Path.Combine(MountNamespaceDirectory, NodeName(index));

    /// <summary>A private bind mount of its own, as persistent namespace files need.</summary>
    public string MountNamespaceDirectory => Path.Combine(StateDirectory, "mnt");
    public static readonly IPAddress ClientV4 = IPAddress.Parse("198.18.0.10");
    public static readonly IPAddress ClientV6 = IPAddress.Parse("2001:2::10");

    public string BridgeNamespace => $"{Prefix}-br";

    public string ClientNamespace => $"{Prefix}-client";

    public string StateDirectory => Path.Combine("/run/safekit-lab", Prefix);

    public string ConfigPath => Path.Combine(StateDirectory, "cluster.yaml");

    public string KeyPath => Path.Combine(StateDirectory, "cluster.key");

    /// <summary>The API tokens every lab node accepts (one admin, one read).</summary>
    public string TokensPath => Path.Combine(StateDirectory, "api-tokens");

    /// <summary>The lab's certificate authority (PEM): it signed every node's API certificate.</summary>
    public string CaPath => Path.Combine(StateDirectory, "api-ca.pem");

    /// <summary>The HTTPS API of node <paramref name="index"/> (reachable from the client namespace).</summary>
    public string ApiUrl(int index) => $"https://{NodeV4(index)}:9453";

    /// <summary>The file NGINX serves (slowly) at /download.</summary>
    public string DownloadPath => Path.Combine(StateDirectory, "download.bin");

    public const int DownloadBytes = 8 << 20;

    public string ClusterName => $"{Prefix}-lab";

    /// <summary>Namespace (and cluster node name) of node <paramref name="index"/> (1-based).</summary>
    public string NodeName(int index) => $"{Prefix}-{ShortName(index)}";

    /// <summary>n2 (farm) or m2 (mirror).</summary>
    public string ShortName(int index) => $"{(Mirror ? 'm' : 'n')}{index}";

    public string NodeDirectory(int index) => Path.Combine(StateDirectory, NodeName(index));

    /// <summary>Bridge port of node <paramref name="index"/> (inside the bridge namespace).</summary>
    public string NodePort(int index) => ShortName(index);

    public IPAddress NodeV4(int index) => IPAddress.Parse($"198.18.0.{(Mirror ? 20 : 10) + index}");

    public IPAddress NodeV6(int index) => IPAddress.Parse($"2001:2::{((Mirror ? 20 : 10) + index).ToString(CultureInfo.InvariantCulture)}");

    public IEnumerable<int> NodeIndexes => Enumerable.Range(1, NodeCount);

    /// <summary>Index (1-based) of a node given as n2 or P-n2; 0 when it is not a node of this lab.</summary>
    public int NodeIndex(string name)
    {
        foreach (var i in NodeIndexes)
        {
            if (name == ShortName(i) || name == NodeName(i))
            {
                return i;
            }
        }

        return 0;
    }

    /// <summary>Maps a short name (client, br, n2) or a full namespace name to the namespace.</summary>
    public string? ResolveNamespace(string name)
    {
        if (name == "client" || name == ClientNamespace)
        {
            return ClientNamespace;
        }

        if (name is "br" or "bridge" || name == BridgeNamespace)
        {
            return BridgeNamespace;
        }

        foreach (var i in NodeIndexes)
        {
            if (name == ShortName(i) || name == NodeName(i))
            {
                return NodeName(i);
            }
        }

        return null;
    }
}
