namespace SafeKit.Native.PacketSockets;

/// <summary>How to open an AF_PACKET socket on one interface.</summary>
public sealed record PacketSocketOptions
{
    /// <summary>Interface to bind to (e.g. eth0).</summary>
    public required string Interface { get; init; }

    /// <summary>
    /// Ask the kernel for a virtio_net_hdr in front of every frame: it carries the GSO and partial
    /// checksum state of super-packets (GRO on receive, TSO from a local veth peer), which a TUN
    /// opened with IFF_VNET_HDR accepts as is.
    /// </summary>
    public bool VnetHeader { get; init; }

    /// <summary>Skip frames this host sends (our own replies leave through the same interface).</summary>
    public bool IgnoreOutgoing { get; init; } = true;

    /// <summary>Classic BPF program run by the kernel before a frame reaches the ring.</summary>
    public IReadOnlyList<BpfInstruction>? Filter { get; init; }

    /// <summary>TPACKET_V3 receive ring; null for a send-only socket.</summary>
    public RingGeometry? Ring { get; init; }

    /// <summary>PACKET_FANOUT group (0 = none): several sockets, threads or processes share the load.</summary>
    public ushort FanoutGroup { get; init; }

    /// <summary>PACKET_FANOUT mode when <see cref="FanoutGroup"/> is set (0 = flow hash).</summary>
    public ushort FanoutMode { get; init; }

    /// <summary>Link-layer addresses the interface must accept (the cluster MAC, NDP groups).</summary>
    public IReadOnlyList<LinkMembership> Memberships { get; init; } = [];

    /// <summary>Bypass the qdisc on send (load generators).</summary>
    public bool QdiscBypass { get; init; }

    /// <summary>Receive buffer size for a socket without a ring (bytes, 0 = kernel default).</summary>
    public int ReceiveBufferBytes { get; init; }

    /// <summary>Send buffer size (bytes, 0 = kernel default).</summary>
    public int SendBufferBytes { get; init; }
}

/// <summary>Shape of a TPACKET_V3 ring: blocks are handed to user space whole.</summary>
/// <param name="BlockSize">Bytes per block; a multiple of the page size and larger than any frame.</param>
/// <param name="BlockCount">Number of blocks.</param>
/// <param name="RetireTimeoutMilliseconds">
/// A block that is not full is handed over after this long: the latency cap under light load.
/// </param>
public sealed record RingGeometry(int BlockSize, int BlockCount, int RetireTimeoutMilliseconds);

/// <summary>A link-layer address the interface should receive (PACKET_ADD_MEMBERSHIP).</summary>
/// <param name="Kind">Unicast (PACKET_MR_UNICAST) or multicast (PACKET_MR_MULTICAST).</param>
/// <param name="Address">Six-byte MAC address.</param>
public sealed record LinkMembership(LinkMembershipKind Kind, byte[] Address);

/// <summary>Kind of link-layer membership.</summary>
public enum LinkMembershipKind
{
    Multicast = 0,
    Promiscuous = 1,
    Unicast = 3,
}
