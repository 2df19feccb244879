using System.Net;
using SafeKit.Dataplane.Capture;
using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Engine;
using SafeKit.Dataplane.Flows;

namespace SafeKit.ControlPlane.Configuration;

/// <summary>A whole cluster as one validated configuration file describes it.</summary>
/// <param name="Name">Cluster name.</param>
/// <param name="Nodes">Members, in file order.</param>
/// <param name="Farms">Farm modules.</param>
/// <param name="SourceFile">File it was read from.</param>
public sealed record ClusterConfig(string Name, IReadOnlyList<NodeConfig> Nodes, IReadOnlyList<FarmModuleConfig> Farms, string SourceFile);

/// <summary>A cluster member.</summary>
/// <param name="Name">Unique node name.</param>
/// <param name="Address">The node's own address on the VIP network (how a node recognises itself).</param>
/// <param name="Weight">Relative share of the farm's buckets.</param>
public sealed record NodeConfig(string Name, IPAddress Address, int Weight);

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
    int Workers);
