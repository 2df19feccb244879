using System.Buffers.Binary;
using System.Net;
using System.Net.NetworkInformation;
using PacketDotNet;
using SafeKit.Dataplane.Parsing;

namespace SafeKit.Tests.Infrastructure;

/// <summary>
/// Frames for unit tests. Plain packets are crafted with PacketDotNet; the shapes it does not
/// build (IPv6 extension chains, fragments, quoted headers in ICMP errors) are assembled here byte
/// by byte with the same checksum code the dataplane uses.
/// </summary>
internal static class TestFrames
{
    public static readonly byte[] VipMac = [0x02, 0x53, 0x4b, 0x12, 0x00, 0x64];
    public static readonly byte[] ClientMac = [0x02, 0xc1, 0x00, 0x00, 0x00, 0x10];
    public static readonly byte[] NodeMac = [0x02, 0xaa, 0x00, 0x00, 0x00, 0x11];
    public static readonly IPAddress Vip = IPAddress.Parse("198.18.0.100");
    public static readonly IPAddress Vip6 = IPAddress.Parse("2001:2::100");
    public static readonly IPAddress Client = IPAddress.Parse("198.18.0.10");
    public static readonly IPAddress Client6 = IPAddress.Parse("2001:2::10");

    public static byte[] Tcp(IPAddress source, ushort sourcePort, IPAddress destination, ushort destinationPort, byte[]? destinationMac = null, int payload = 0)
    {
        var tcp = new TcpPacket(sourcePort, destinationPort) { Synchronize = true, WindowSize = 64240, PayloadData = new byte[payload] };
        return Wrap(source, destination, tcp, destinationMac);
    }

    public static byte[] Udp(IPAddress source, ushort sourcePort, IPAddress destination, ushort destinationPort, byte[]? destinationMac = null, int payload = 8)
    {
        var udp = new UdpPacket(sourcePort, destinationPort) { PayloadData = new byte[payload] };
        return Wrap(source, destination, udp, destinationMac);
    }

    public static byte[] Wrap(IPAddress source, IPAddress destination, Packet transport, byte[]? destinationMac = null)
    {
        IPPacket ip = source.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork
            ? new IPv4Packet(source, destination)
            : new IPv6Packet(source, destination);
        ip.PayloadPacket = transport;
        var ethernet = new EthernetPacket(new PhysicalAddress(ClientMac), new PhysicalAddress(destinationMac ?? VipMac), ip is IPv4Packet ? EthernetType.IPv4 : EthernetType.IPv6)
        {
            PayloadPacket = ip,
        };
        ethernet.UpdateCalculatedValues();
        if (ip is IPv4Packet v4)
        {
            v4.UpdateIPChecksum();
        }

        if (transport is TcpPacket tcp)
        {
            tcp.UpdateTcpChecksum();
        }
        else if (transport is UdpPacket udp)
        {
            udp.UpdateUdpChecksum();
        }

        return ethernet.Bytes;
    }

    public static byte[] ArpRequest(IPAddress sender, IPAddress target)
    {
        var arp = new ArpPacket(ArpOperation.Request, new PhysicalAddress(new byte[6]), target, new PhysicalAddress(ClientMac), sender);
        var ethernet = new EthernetPacket(new PhysicalAddress(ClientMac), PhysicalAddress.Parse("FF-FF-FF-FF-FF-FF"), EthernetType.Arp) { PayloadPacket = arp };
        return ethernet.Bytes;
    }

    /// <summary>An NDP neighbour solicitation from <paramref name="source"/> for <paramref name="target"/>, with a source link-layer option.</summary>
    public static byte[] NeighborSolicitation(IPAddress source, IPAddress target)
    {
        var message = new byte[32];
        message[0] = 135;
        target.GetAddressBytes().CopyTo(message, 8);
        message[24] = 1;
        message[25] = 1;
        ClientMac.CopyTo(message, 26);
        var group = target.GetAddressBytes();
        var solicitedNode = IPAddress.Parse($"ff02::1:ff{group[13]:x2}:{group[14]:x2}{group[15]:x2}");
        return Ethernet([0x33, 0x33, 0xff, group[13], group[14], group[15]], EtherTypes.IPv6, IPv6(source, solicitedNode, IpProtocol.IcmpV6, message));
    }

    /// <summary>Ethernet header + payload.</summary>
    public static byte[] Ethernet(byte[] destination, ushort etherType, byte[] payload, params ushort[] vlans)
    {
        var frame = new byte[14 + (4 * vlans.Length) + payload.Length];
        destination.CopyTo(frame, 0);
        ClientMac.CopyTo(frame, 6);
        var at = 12;
        foreach (var vlan in vlans)
        {
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(at), EtherTypes.Vlan);
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(at + 2), vlan);
            at += 4;
        }

        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(at), etherType);
        payload.CopyTo(frame, at + 2);
        return frame;
    }

    /// <summary>An IPv4 datagram (header checksum filled in).</summary>
    public static byte[] IPv4(IPAddress source, IPAddress destination, byte protocol, byte[] payload, ushort id = 1, bool moreFragments = false, int fragmentOffset = 0, byte[]? options = null)
    {
        var headerLength = 20 + (options?.Length ?? 0);
        var datagram = new byte[headerLength + payload.Length];
        datagram[0] = (byte)(0x40 | (headerLength / 4));
        BinaryPrimitives.WriteUInt16BigEndian(datagram.AsSpan(2), (ushort)datagram.Length);
        BinaryPrimitives.WriteUInt16BigEndian(datagram.AsSpan(4), id);
        BinaryPrimitives.WriteUInt16BigEndian(datagram.AsSpan(6), (ushort)((moreFragments ? 0x2000 : 0) | (fragmentOffset / 8)));
        datagram[8] = 64;
        datagram[9] = protocol;
        source.GetAddressBytes().CopyTo(datagram, 12);
        destination.GetAddressBytes().CopyTo(datagram, 16);
        options?.CopyTo(datagram, 20);
        BinaryPrimitives.WriteUInt16BigEndian(datagram.AsSpan(10), InternetChecksum.Compute(datagram.AsSpan(0, headerLength)));
        payload.CopyTo(datagram, headerLength);
        return datagram;
    }

    /// <summary>An IPv6 packet whose payload starts with <paramref name="next"/> (extension headers included in <paramref name="payload"/>).</summary>
    public static byte[] IPv6(IPAddress source, IPAddress destination, byte next, byte[] payload)
    {
        var packet = new byte[40 + payload.Length];
        BinaryPrimitives.WriteUInt32BigEndian(packet, 0x60000000);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), (ushort)payload.Length);
        packet[6] = next;
        packet[7] = 64;
        source.GetAddressBytes().CopyTo(packet, 8);
        destination.GetAddressBytes().CopyTo(packet, 24);
        payload.CopyTo(packet, 40);
        return packet;
    }

    /// <summary>Eight bytes of ports and lengths: enough of a TCP/UDP header for the flow key.</summary>
    public static byte[] Ports(ushort source, ushort destination, int total = 8)
    {
        var header = new byte[total];
        BinaryPrimitives.WriteUInt16BigEndian(header, source);
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(2), destination);
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(4), (ushort)total);
        return header;
    }

    /// <summary>A TCP header of 20 bytes with the data offset set.</summary>
    public static byte[] TcpHeader(ushort source, ushort destination)
    {
        var header = new byte[20];
        BinaryPrimitives.WriteUInt16BigEndian(header, source);
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(2), destination);
        header[12] = 0x50;
        header[13] = 0x02;
        return header;
    }

    /// <summary>IPv6 extension header (hop-by-hop, routing, destination options): next, length, padding.</summary>
    public static byte[] Extension(byte next, int units = 0)
    {
        var header = new byte[(units + 1) * 8];
        header[0] = next;
        header[1] = (byte)units;
        return header;
    }

    /// <summary>IPv6 fragment header.</summary>
    public static byte[] FragmentHeader(byte next, int offset, bool more, uint id)
    {
        var header = new byte[8];
        header[0] = next;
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(2), (ushort)(offset | (more ? 1 : 0)));
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(4), id);
        return header;
    }

    /// <summary>ICMP(v4) message: type, code, checksum, 4 bytes, then <paramref name="body"/>.</summary>
    public static byte[] Icmp(byte type, byte code, byte[] body)
    {
        var message = new byte[8 + body.Length];
        message[0] = type;
        message[1] = code;
        body.CopyTo(message, 8);
        BinaryPrimitives.WriteUInt16BigEndian(message.AsSpan(2), InternetChecksum.Compute(message));
        return message;
    }

    public static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();
}
