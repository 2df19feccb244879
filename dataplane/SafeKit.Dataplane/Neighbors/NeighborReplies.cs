using System.Buffers.Binary;
using System.Net;
using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Parsing;

namespace SafeKit.Dataplane.Neighbors;

/// <summary>
/// Builds ARP replies and NDP neighbour advertisements that resolve a VIP to the cluster MAC.
/// The Ethernet source is always the node's own MAC: a frame sent from the cluster MAC would make
/// switches learn it on one port and stop flooding it.
/// </summary>
public sealed class NeighborReplies
{
    private static readonly byte[] Broadcast = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    private static readonly byte[] AllNodesMac = [0x33, 0x33, 0x00, 0x00, 0x00, 0x01];
    private static readonly byte[] AllNodes = IPAddress.Parse("ff02::1").GetAddressBytes();

    private readonly byte[] _nodeMac;
    private readonly ClusterMac _clusterMac;

    public NeighborReplies(byte[] nodeMac, ClusterMac clusterMac)
    {
        _nodeMac = nodeMac;
        _clusterMac = clusterMac;
    }

    /// <summary>Largest frame these builders write.</summary>
    public const int MaxFrameLength = 128;

    /// <summary>ARP reply to a request for a VIP. Returns the frame length.</summary>
    public int BuildArpReply(ReadOnlySpan<byte> request, in ParsedPacket packet, Span<byte> output)
    {
        var at = WriteEthernet(output, request.Slice(6, 6), request[12..(packet.L3Offset - 2)], EtherTypes.Arp);
        var arp = output[at..];
        WriteArpHeader(arp, operation: 2);
        _clusterMac.IPv4Mac.CopyTo(arp[8..]);
        request.Slice(packet.DestinationOffset, 4).CopyTo(arp[14..]);
        request.Slice(packet.ArpSenderHardwareOffset, 6).CopyTo(arp[18..]);
        request.Slice(packet.SourceOffset, 4).CopyTo(arp[24..]);
        return at + 28;
    }

    /// <summary>Gratuitous ARP announcing <paramref name="vip"/> at the cluster MAC. Returns the frame length.</summary>
    public int BuildGratuitousArp(ReadOnlySpan<byte> vip, Span<byte> output)
    {
        var at = WriteEthernet(output, Broadcast, default, EtherTypes.Arp);
        var arp = output[at..];
        WriteArpHeader(arp, operation: 1);
        _clusterMac.IPv4Mac.CopyTo(arp[8..]);
        vip.CopyTo(arp[14..]);
        arp.Slice(18, 6).Clear();
        vip.CopyTo(arp[24..]);
        return at + 28;
    }

    /// <summary>Solicited neighbour advertisement for the VIP a solicitation asks for.</summary>
    public int BuildNeighborAdvertisement(ReadOnlySpan<byte> request, in ParsedPacket packet, Span<byte> output)
    {
        var source = request.Slice(packet.SourceOffset, 16);
        var target = request.Slice(packet.NdpTargetOffset, 16);
        var unspecified = source.IndexOfAnyExcept((byte)0) < 0;
        var destination = unspecified ? AllNodes : source;
        var destinationMac = unspecified ? AllNodesMac : request.Slice(6, 6);
        return WriteAdvertisement(output, destinationMac, request[12..(packet.L3Offset - 2)], destination, target, solicited: !unspecified);
    }

    /// <summary>Unsolicited advertisement of <paramref name="vip"/> to all nodes.</summary>
    public int BuildUnsolicitedAdvertisement(ReadOnlySpan<byte> vip, Span<byte> output) =>
        WriteAdvertisement(output, AllNodesMac, default, AllNodes, vip, solicited: false);

    private int WriteAdvertisement(Span<byte> output, ReadOnlySpan<byte> destinationMac, ReadOnlySpan<byte> tags, ReadOnlySpan<byte> destination, ReadOnlySpan<byte> target, bool solicited)
    {
        var at = WriteEthernet(output, destinationMac, tags, EtherTypes.IPv6);
        var ip = output[at..];
        const int payloadLength = 32;
        BinaryPrimitives.WriteUInt32BigEndian(ip, 0x60000000);
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], payloadLength);
        ip[6] = IpProtocol.IcmpV6;
        ip[7] = 255;
        target.CopyTo(ip[8..]);
        destination.CopyTo(ip[24..]);
        var icmp = ip.Slice(40, payloadLength);
        icmp[0] = 136;
        icmp[1] = 0;
        icmp[2] = 0;
        icmp[3] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(icmp[4..], solicited ? 0x60000000u : 0x20000000u);
        target.CopyTo(icmp[8..]);
        icmp[24] = 2;
        icmp[25] = 1;
        _clusterMac.IPv6Mac.CopyTo(icmp[26..]);
        var checksum = InternetChecksum.Compute(target, destination, IpProtocol.IcmpV6, icmp);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], checksum);
        return at + 40 + payloadLength;
    }

    private int WriteEthernet(Span<byte> output, ReadOnlySpan<byte> destination, ReadOnlySpan<byte> tags, ushort etherType)
    {
        destination.CopyTo(output);
        _nodeMac.CopyTo(output[6..]);
        tags.CopyTo(output[12..]);
        var at = 12 + tags.Length;
        BinaryPrimitives.WriteUInt16BigEndian(output[at..], etherType);
        return at + 2;
    }

    private static void WriteArpHeader(Span<byte> arp, ushort operation)
    {
        BinaryPrimitives.WriteUInt16BigEndian(arp, 1);
        BinaryPrimitives.WriteUInt16BigEndian(arp[2..], EtherTypes.IPv4);
        arp[4] = 6;
        arp[5] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(arp[6..], operation);
    }
}
