using System.Runtime.InteropServices;

namespace SafeKit.Dataplane.Parsing;

/// <summary>
/// Offsets and fields of one frame, filled by <see cref="PacketParser"/>. It holds no reference to
/// the frame: addresses are offsets into it, so the struct is copied and reused without allocation.
/// </summary>
[StructLayout(LayoutKind.Auto)]
public struct ParsedPacket
{
    /// <summary>EtherType after any VLAN tags.</summary>
    public ushort EtherType;

    /// <summary>Number of 802.1Q/802.1ad tags in the frame.</summary>
    public byte VlanCount;

    /// <summary>VLAN id of the outermost tag (0 when untagged).</summary>
    public ushort VlanId;

    public NetworkLayer Network;

    /// <summary>Offset of the network header (also the Ethernet header length).</summary>
    public int L3Offset;

    /// <summary>Length of the IP datagram as its header states it (Ethernet padding excluded).</summary>
    public int L3Length;

    /// <summary>Offset of the source IP address (ARP: sender protocol address).</summary>
    public int SourceOffset;

    /// <summary>Offset of the destination IP address (ARP: target protocol address).</summary>
    public int DestinationOffset;

    /// <summary>4 or 16.</summary>
    public byte AddressLength;

    /// <summary>Upper-layer protocol after IPv6 extension headers.</summary>
    public byte Protocol;

    /// <summary>Offset of the transport header; -1 when absent (a non-first fragment, ESP, no next header).</summary>
    public int L4Offset;

    /// <summary>True for any fragment of a fragmented datagram, the first one included.</summary>
    public bool IsFragment;

    /// <summary>More fragments follow this one.</summary>
    public bool MoreFragments;

    /// <summary>Offset of this fragment's data in the datagram, in bytes.</summary>
    public int FragmentOffset;

    /// <summary>Identification (16 bits for IPv4, 32 for IPv6).</summary>
    public uint FragmentId;

    /// <summary>True when <see cref="SourcePort"/> and <see cref="DestinationPort"/> were read.</summary>
    public bool HasPorts;

    public ushort SourcePort;

    public ushort DestinationPort;

    /// <summary>ICMP/ICMPv6 type (valid when <see cref="Protocol"/> is ICMP and L4 is present).</summary>
    public byte IcmpType;

    public byte IcmpCode;

    /// <summary>The flow an ICMP error message is about.</summary>
    public EmbeddedFlow Embedded;

    /// <summary>ARP operation (1 request, 2 reply).</summary>
    public ushort ArpOperation;

    /// <summary>Offset of the ARP sender hardware address.</summary>
    public int ArpSenderHardwareOffset;

    /// <summary>Offset of the target address of an NDP neighbour solicitation; -1 otherwise.</summary>
    public int NdpTargetOffset;

    /// <summary>Offset of the source link-layer address option of a solicitation; -1 when absent.</summary>
    public int NdpSourceLinkLayerOffset;

    /// <summary>Offset one past the last byte of the IP datagram.</summary>
    public readonly int L3End => L3Offset + L3Length;
}
