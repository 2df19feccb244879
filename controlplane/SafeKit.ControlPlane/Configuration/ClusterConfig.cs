using System.Net;
using SafeKit.Dataplane.Capture;
using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Engine;
using SafeKit.Dataplane.Flows;

namespace SafeKit.ControlPlane.Configuration;

/// <summary>A whole cluster as one validated configuration file describes it.</summary>
/// <param name="Name">Cluster name.</param>
/// <param name="Nodes">Members, in file order (the order ranks them: the first alive one leads).</param>
/// <param name="Farms">Farm modules.</param>
/// <param name="SourceFile">File it was read from.</param>
/// <param name="KeyFile">File holding the cluster key that authenticates heartbeats (null: single node).</param>
/// <param name="Heartbeat">Heartbeat timings and port.</param>
/// <param name="Api">The HTTP control API of every node.</param>
public sealed record ClusterConfig(string Name, IReadOnlyList<NodeConfig> Nodes, IReadOnlyList<FarmModuleConfig> Farms, string SourceFile, string? KeyFile, HeartbeatConfig Heartbeat, ApiConfig Api)
{
    /// <summary>Mirror modules (a cluster runs one module: a farm or a mirror).</summary>
    public IReadOnlyList<MirrorModuleConfig> Mirrors { get; init; } = [];
}

/// <summary>The HTTP control API and web console each node serves on its address (and on loopback).</summary>
/// <param name="Enabled">Whether safekitd serves it.</param>
/// <param name="Port">TCP port (default 9453 for HTTPS, 9010 for plain HTTP: SafeKit's console ports).</param>
/// <param name="PlainHttp">Serve plain HTTP instead of HTTPS (only when the config says so).</param>
/// <param name="Certificate">PKCS#12 file (certificate and key), <c>{node}</c> replaced by the node's name; null: a self-signed one generated on first start.</param>
/// <param name="TokensFile">API tokens, one "ROLE TOKEN" per line (roles: admin, read); null: generated on first start.</param>
/// <param name="CaFile">PEM certificate of the authority that signed the nodes' certificates: nodes then verify each other's (and the CLI may use it).</param>
public sealed record ApiConfig(bool Enabled = true, int Port = ApiConfig.DefaultHttpsPort, bool PlainHttp = false, string? Certificate = null, string? TokensFile = null, string? CaFile = null)
{
    public const int DefaultHttpsPort = 9453;
    public const int DefaultHttpPort = 9010;
}

/// <summary>A cluster member.</summary>
/// <param name="Name">Unique node name.</param>
/// <param name="Addresses">
/// The node's address on each heartbeat network, in the same order on every node; the first is on
/// the VIP network (how a node recognises itself).
/// </param>
/// <param name="Weight">Relative share of the farm's buckets (1..100).</param>
public sealed record NodeConfig(string Name, IReadOnlyList<IPAddress> Addresses, int Weight)
{
    /// <summary>The node's address on the VIP network.</summary>
    public IPAddress Address => Addresses[0];
}

/// <summary>How nodes watch each other.</summary>
/// <param name="Port">UDP port of heartbeats on every network.</param>
/// <param name="IntervalMilliseconds">A heartbeat is sent on every network this often.</param>
/// <param name="TimeoutMilliseconds">A node silent on all networks for this long is dead.</param>
public sealed record HeartbeatConfig(int Port = 4800, int IntervalMilliseconds = 100, int TimeoutMilliseconds = 600);

/// <summary>A farm module: a VIP load-balanced over every node.</summary>
public sealed record FarmModuleConfig(
    string Name,
    IReadOnlyList<IPAddress> Vips,
    string Interface,
    L2Mode L2Mode,
    byte[]? ClusterMac,
    Affinity Affinity,
    int Buckets,
    uint HashSeed,
    DataplaneMode Dataplane,
    CaptureKind Capture,
    string Tun,
    int Workers,
    int DrainTimeoutMilliseconds,
    ScriptsConfig Scripts,
    IReadOnlyList<CheckerConfig> Checkers,
    RestartConfig Restart) : IApplicationModule;
