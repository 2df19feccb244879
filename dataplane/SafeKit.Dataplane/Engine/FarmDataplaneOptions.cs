using System.Net;
using SafeKit.Dataplane.Capture;
using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Flows;
using SafeKit.Dataplane.Fragments;
using SafeKit.Native.PacketSockets;

namespace SafeKit.Dataplane.Engine;

/// <summary>Everything the farm dataplane of one node needs, already validated by the control plane.</summary>
public sealed record FarmDataplaneOptions
{
    /// <summary>Module name (names the nftables table).</summary>
    public required string Module { get; init; }

    /// <summary>Interface on the VIP network.</summary>
    public required string Interface { get; init; }

    public required IReadOnlyList<IPAddress> Vips { get; init; }

    public L2Mode L2Mode { get; init; } = L2Mode.Unicast;

    /// <summary>Explicit cluster MAC; null derives it from the VIP.</summary>
    public byte[]? ClusterMacOverride { get; init; }

    public Affinity Affinity { get; init; } = Affinity.ClientIpPort;

    public int BucketCount { get; init; } = 4096;

    /// <summary>Cluster-wide jhash seed.</summary>
    public uint HashSeed { get; init; }

    /// <summary>Name of this node in the views.</summary>
    public required string LocalNode { get; init; }

    /// <summary>Flows remembered per worker for connection pinning.</summary>
    public int FlowTableSize { get; init; } = 131_072;

    public FlowTimeouts FlowTimeouts { get; init; } = new();

    public DataplaneMode Mode { get; init; } = DataplaneMode.Userspace;

    public CaptureKind Capture { get; init; } = CaptureKind.Ring;

    /// <summary>TUN device that carries the VIPs.</summary>
    public string TunName { get; init; } = "sk-vip";

    /// <summary>Capture threads sharing the interface through PACKET_FANOUT.</summary>
    public int Workers { get; init; } = 1;

    public RingGeometry Ring { get; init; } = new(BlockSize: 1 << 18, BlockCount: 64, RetireTimeoutMilliseconds: 1);

    public FragmentTrackerOptions Fragments { get; init; } = new();

    /// <summary>Gratuitous ARP / unsolicited NA sent at start.</summary>
    public int AnnounceCount { get; init; } = 3;
}
