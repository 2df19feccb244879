using System.Net;
using PacketDotNet;
using SafeKit.Dataplane.Parsing;
using SafeKit.Tests.Infrastructure;
using static SafeKit.Tests.Infrastructure.TestFrames;

namespace SafeKit.Tests.Dataplane;

public sealed class PacketParserTests
{
    [Fact]
    public void Parse_Ipv4Tcp_ReadsAddressesPortsAndLengths()
    {
        var frame = Tcp(Client, 40000, Vip, 80, payload: 10);

        Assert.Equal(ParseStatus.Ok, PacketParser.Parse(frame, out var p));

        Assert.Equal(NetworkLayer.IPv4, p.Network);
        Assert.Equal(14, p.L3Offset);
        Assert.Equal(frame.Length - 14, p.L3Length);
        Assert.Equal(IpProtocol.Tcp, p.Protocol);
        Assert.True(p.HasPorts);
        Assert.Equal(40000, p.SourcePort);
        Assert.Equal(80, p.DestinationPort);
        Assert.Equal(Client, new IPAddress(frame.AsSpan(p.SourceOffset, 4)));
        Assert.Equal(Vip, new IPAddress(frame.AsSpan(p.DestinationOffset, 4)));
        Assert.False(p.IsFragment);
    }

    [Fact]
    public void Parse_Ipv6Udp_ReadsAddressesAndPorts()
    {
        var frame = Udp(Client6, 5353, Vip6, 53);

        Assert.Equal(ParseStatus.Ok, PacketParser.Parse(frame, out var p));

        Assert.Equal(NetworkLayer.IPv6, p.Network);
        Assert.Equal(16, p.AddressLength);
        Assert.Equal(IpProtocol.Udp, p.Protocol);
        Assert.Equal(5353, p.SourcePort);
        Assert.Equal(Client6, new IPAddress(frame.AsSpan(p.SourceOffset, 16)));
        Assert.Equal(Vip6, new IPAddress(frame.AsSpan(p.DestinationOffset, 16)));
    }

    [Fact]
    public void Parse_EthernetPadding_IsNotPartOfTheDatagram()
    {
        var frame = Udp(Client, 1000, Vip, 53, payload: 0).Concat(new byte[20]).ToArray();

        Assert.Equal(ParseStatus.Ok, PacketParser.Parse(frame, out var p));

        Assert.Equal(28, p.L3Length);
    }

    [Fact]
    public void Parse_TwoVlanTags_FindsIpBehindThem()
    {
        var frame = Ethernet(VipMac, EtherTypes.IPv4, IPv4(Client, Vip, IpProtocol.Udp, Ports(7, 53)), 0x0064, 0x00c8);

        Assert.Equal(ParseStatus.Ok, PacketParser.Parse(frame, out var p));

        Assert.Equal(2, p.VlanCount);
        Assert.Equal(100, p.VlanId);
        Assert.Equal(22, p.L3Offset);
        Assert.Equal(7, p.SourcePort);
    }

    [Fact]
    public void Parse_Ipv4Options_AreSkipped()
    {
        byte[] options = [1, 1, 0x94, 4, 0, 0, 7, 3, 4, 0, 0, 0];
        var frame = Ethernet(VipMac, EtherTypes.IPv4, IPv4(Client, Vip, IpProtocol.Udp, Ports(1234, 53), options: options));

        Assert.Equal(ParseStatus.Ok, PacketParser.Parse(frame, out var p));

        Assert.Equal(14 + 32, p.L4Offset);
        Assert.Equal(1234, p.SourcePort);
    }

    [Fact]
    public void Parse_Ipv4OptionOverrunningHeader_IsMalformed()
    {
        byte[] options = [7, 40, 0, 0];
        var frame = Ethernet(VipMac, EtherTypes.IPv4, IPv4(Client, Vip, IpProtocol.Udp, Ports(1234, 53), options: options));

        Assert.Equal(ParseStatus.Malformed, PacketParser.Parse(frame, out _));
    }

    [Fact]
    public void Parse_Ipv4FirstFragment_HasPortsAndFlags()
    {
        var frame = Ethernet(VipMac, EtherTypes.IPv4, IPv4(Client, Vip, IpProtocol.Udp, Ports(999, 53, 1480), id: 77, moreFragments: true));

        Assert.Equal(ParseStatus.Ok, PacketParser.Parse(frame, out var p));

        Assert.True(p.IsFragment);
        Assert.True(p.MoreFragments);
        Assert.Equal(0, p.FragmentOffset);
        Assert.Equal(77u, p.FragmentId);
        Assert.True(p.HasPorts);
    }

    [Fact]
    public void Parse_Ipv4LaterFragment_HasNoTransport()
    {
        var frame = Ethernet(VipMac, EtherTypes.IPv4, IPv4(Client, Vip, IpProtocol.Udp, new byte[100], id: 77, fragmentOffset: 1480));

        Assert.Equal(ParseStatus.Ok, PacketParser.Parse(frame, out var p));

        Assert.True(p.IsFragment);
        Assert.False(p.MoreFragments);
        Assert.Equal(1480, p.FragmentOffset);
        Assert.Equal(-1, p.L4Offset);
        Assert.False(p.HasPorts);
    }

    [Fact]
    public void Parse_Ipv6ExtensionChain_ReachesTransport()
    {
        var payload = Concat(Extension(IpProtocol.IPv6Routing), Extension(IpProtocol.IPv6DestinationOptions, 1), Extension(IpProtocol.Tcp), TcpHeader(4321, 443));
        var frame = Ethernet(VipMac, EtherTypes.IPv6, IPv6(Client6, Vip6, IpProtocol.HopByHop, payload));

        Assert.Equal(ParseStatus.Ok, PacketParser.Parse(frame, out var p));

        Assert.Equal(IpProtocol.Tcp, p.Protocol);
        Assert.Equal(14 + 40 + 8 + 16 + 8, p.L4Offset);
        Assert.Equal(4321, p.SourcePort);
    }

    [Fact]
    public void Parse_Ipv6Fragments_FirstHasPortsLaterDoesNot()
    {
        var first = Ethernet(VipMac, EtherTypes.IPv6, IPv6(Client6, Vip6, IpProtocol.IPv6Fragment, Concat(FragmentHeader(IpProtocol.Udp, 0, true, 0xabcdef), Ports(5000, 53, 1232))));
        var later = Ethernet(VipMac, EtherTypes.IPv6, IPv6(Client6, Vip6, IpProtocol.IPv6Fragment, Concat(FragmentHeader(IpProtocol.Udp, 1232, false, 0xabcdef), new byte[50])));

        Assert.Equal(ParseStatus.Ok, PacketParser.Parse(first, out var a));
        Assert.Equal(ParseStatus.Ok, PacketParser.Parse(later, out var b));

        Assert.True(a.IsFragment && a.HasPorts && a.MoreFragments);
        Assert.Equal(0xabcdefu, a.FragmentId);
        Assert.True(b.IsFragment && !b.HasPorts);
        Assert.Equal(1232, b.FragmentOffset);
        Assert.Equal(IpProtocol.Udp, b.Protocol);
    }

    [Fact]
    public void Parse_Ipv6TwoFragmentHeaders_IsMalformed()
    {
        var payload = Concat(FragmentHeader(IpProtocol.IPv6Fragment, 0, true, 1), FragmentHeader(IpProtocol.Udp, 0, true, 2), Ports(1, 2));
        var frame = Ethernet(VipMac, EtherTypes.IPv6, IPv6(Client6, Vip6, IpProtocol.IPv6Fragment, payload));

        Assert.Equal(ParseStatus.Malformed, PacketParser.Parse(frame, out _));
    }

    [Fact]
    public void Parse_IcmpFragmentationNeeded_QuotesOurFlow()
    {
        // The quoted packet is a reply we sent: VIP:80 -> client:40000.
        var quoted = IPv4(Vip, Client, IpProtocol.Tcp, TcpHeader(80, 40000));
        var router = IPAddress.Parse("198.18.0.1");
        var frame = Ethernet(VipMac, EtherTypes.IPv4, IPv4(router, Vip, IpProtocol.Icmp, Icmp(3, 4, quoted[..28])));

        Assert.Equal(ParseStatus.Ok, PacketParser.Parse(frame, out var p));

        Assert.Equal(3, p.IcmpType);
        Assert.True(p.Embedded.Present);
        Assert.True(p.Embedded.HasPorts);
        Assert.Equal(40000, p.Embedded.DestinationPort);
        Assert.Equal(Client, new IPAddress(frame.AsSpan(p.Embedded.DestinationOffset, 4)));
    }

    [Fact]
    public void Parse_Icmpv6PacketTooBig_QuotesOurFlow()
    {
        var quoted = IPv6(Vip6, Client6, IpProtocol.Tcp, TcpHeader(80, 41000));
        var message = new byte[8 + quoted.Length];
        message[0] = 2;
        quoted.CopyTo(message, 8);
        var frame = Ethernet(VipMac, EtherTypes.IPv6, IPv6(IPAddress.Parse("2001:2::1"), Vip6, IpProtocol.IcmpV6, message));

        Assert.Equal(ParseStatus.Ok, PacketParser.Parse(frame, out var p));

        Assert.True(p.Embedded.Present);
        Assert.Equal(41000, p.Embedded.DestinationPort);
        Assert.Equal(Client6, new IPAddress(frame.AsSpan(p.Embedded.DestinationOffset, 16)));
    }

    [Fact]
    public void Parse_IcmpEcho_HasNoEmbeddedFlow()
    {
        var frame = Ethernet(VipMac, EtherTypes.IPv4, IPv4(Client, Vip, IpProtocol.Icmp, Icmp(8, 0, new byte[16])));

        Assert.Equal(ParseStatus.Ok, PacketParser.Parse(frame, out var p));

        Assert.Equal(8, p.IcmpType);
        Assert.False(p.Embedded.Present);
        Assert.False(p.HasPorts);
    }

    [Fact]
    public void Parse_ArpRequest_ReadsSenderAndTarget()
    {
        var frame = ArpRequest(Client, Vip);

        Assert.Equal(ParseStatus.Ok, PacketParser.Parse(frame, out var p));

        Assert.Equal(NetworkLayer.Arp, p.Network);
        Assert.Equal(1, p.ArpOperation);
        Assert.Equal(Client, new IPAddress(frame.AsSpan(p.SourceOffset, 4)));
        Assert.Equal(Vip, new IPAddress(frame.AsSpan(p.DestinationOffset, 4)));
        Assert.Equal(ClientMac, frame.AsSpan(p.ArpSenderHardwareOffset, 6).ToArray());
    }

    [Fact]
    public void Parse_NeighborSolicitation_FindsTargetAndSourceLinkLayer()
    {
        var frame = NeighborSolicitation(Client6, Vip6);

        Assert.Equal(ParseStatus.Ok, PacketParser.Parse(frame, out var p));

        Assert.Equal(Vip6, new IPAddress(frame.AsSpan(p.NdpTargetOffset, 16)));
        Assert.Equal(ClientMac, frame.AsSpan(p.NdpSourceLinkLayerOffset, 6).ToArray());
    }

    [Fact]
    public void Parse_TcpDataOffsetTooSmall_IsMalformed()
    {
        var tcp = TcpHeader(1, 2);
        tcp[12] = 0x40;
        var frame = Ethernet(VipMac, EtherTypes.IPv4, IPv4(Client, Vip, IpProtocol.Tcp, tcp));

        Assert.Equal(ParseStatus.Malformed, PacketParser.Parse(frame, out _));
    }

    [Fact]
    public void Parse_OtherEtherType_IsUnsupported() =>
        Assert.Equal(ParseStatus.Unsupported, PacketParser.Parse(Ethernet(VipMac, 0x88cc, new byte[46]), out _));

    [Fact]
    public void Parse_EveryTruncation_NeverThrowsAndNeverReportsOkWithMissingBytes()
    {
        var frames = SampleFrames();
        foreach (var frame in frames)
        {
            for (var length = 0; length < frame.Length; length++)
            {
                var status = PacketParser.Parse(frame.AsSpan(0, length), out var p);
                if (status == ParseStatus.Ok)
                {
                    Assert.True(p.L3End <= length, $"parse reported a datagram past the end at length {length}");
                }
            }
        }
    }

    [Fact]
    public void Parse_RandomBytes_NeverThrows()
    {
        var random = new Random(42);
        var buffer = new byte[1600];
        var seeds = SampleFrames();
        for (var i = 0; i < 200_000; i++)
        {
            var length = random.Next(buffer.Length);
            if (i % 2 == 0)
            {
                random.NextBytes(buffer.AsSpan(0, length));
            }
            else
            {
                // Mutate a real frame: the interesting paths are behind valid outer headers.
                var seed = seeds[random.Next(seeds.Count)];
                length = Math.Min(seed.Length, buffer.Length);
                seed.AsSpan(0, length).CopyTo(buffer);
                for (var flips = random.Next(1, 4); flips > 0; flips--)
                {
                    buffer[random.Next(length)] = (byte)random.Next(256);
                }
            }

            var status = PacketParser.Parse(buffer.AsSpan(0, length), out var p);
            if (status == ParseStatus.Ok && p.Network != NetworkLayer.Arp)
            {
                Assert.InRange(p.L3End, 0, length);
            }
        }
    }

    [Fact]
    public void Parse_AgreesWithPacketDotNet_OnRandomTcpAndUdp()
    {
        var random = new Random(7);
        for (var i = 0; i < 2000; i++)
        {
            var v6 = random.Next(2) == 0;
            var source = v6 ? new IPAddress(RandomBytes(random, 16)) : new IPAddress(RandomBytes(random, 4));
            var destination = v6 ? Vip6 : Vip;
            var sourcePort = (ushort)random.Next(65536);
            var frame = random.Next(2) == 0
                ? Tcp(source, sourcePort, destination, 80, payload: random.Next(100))
                : Udp(source, sourcePort, destination, 53, payload: random.Next(100));

            Assert.Equal(ParseStatus.Ok, PacketParser.Parse(frame, out var p));

            var reference = Packet.ParsePacket(LinkLayers.Ethernet, frame).Extract<TransportPacket>();
            var ip = (IPPacket)reference.ParentPacket;
            Assert.Equal(ip.SourceAddress, new IPAddress(frame.AsSpan(p.SourceOffset, p.AddressLength)));
            Assert.Equal(reference.SourcePort, p.SourcePort);
            Assert.Equal(reference.DestinationPort, p.DestinationPort);
            Assert.Equal(ip.TotalLength, p.L3Length);
        }
    }

    internal static List<byte[]> SampleFrames()
    {
        var quoted = IPv4(Vip, Client, IpProtocol.Tcp, TcpHeader(80, 40000));
        return
        [
            Tcp(Client, 40000, Vip, 80, payload: 20),
            Udp(Client6, 5353, Vip6, 53),
            ArpRequest(Client, Vip),
            Ethernet(VipMac, EtherTypes.IPv4, IPv4(Client, Vip, IpProtocol.Udp, Ports(1234, 53), options: [1, 1, 0x94, 4, 0, 0, 0, 0])),
            Ethernet(VipMac, EtherTypes.IPv6, IPv6(Client6, Vip6, IpProtocol.HopByHop, Concat(Extension(IpProtocol.IPv6Fragment), FragmentHeader(IpProtocol.Udp, 0, true, 9), Ports(1, 2)))),
            Ethernet(VipMac, EtherTypes.IPv4, IPv4(IPAddress.Parse("198.18.0.1"), Vip, IpProtocol.Icmp, Icmp(3, 4, quoted[..28]))),
            Ethernet(VipMac, EtherTypes.IPv4, IPv4(Client, Vip, IpProtocol.Udp, Ports(9, 9), id: 3, moreFragments: true), 0x0005),
        ];
    }

    private static byte[] RandomBytes(Random random, int count)
    {
        var bytes = new byte[count];
        random.NextBytes(bytes);
        return bytes;
    }
}
