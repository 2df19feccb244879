using System.Net;
using System.Net.NetworkInformation;
using PacketDotNet;
using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Neighbors;
using SafeKit.Dataplane.Parsing;
using static SafeKit.Tests.Infrastructure.TestFrames;

namespace SafeKit.Tests.Dataplane;

public sealed class NeighborRepliesTests
{
    private static readonly ClusterMac Mac = ClusterMac.Derive(L2Mode.Unicast, [Vip, Vip6]);
    private readonly NeighborReplies _replies = new(NodeMac, Mac);

    [Fact]
    public void ArpReply_ResolvesVipToClusterMac_FromTheNodeMac()
    {
        var request = ArpRequest(Client, Vip);
        PacketParser.Parse(request, out var p);
        var output = new byte[NeighborReplies.MaxFrameLength];

        var length = _replies.BuildArpReply(request, p, output);

        var ethernet = (EthernetPacket)Packet.ParsePacket(LinkLayers.Ethernet, output[..length]);
        var arp = ethernet.Extract<ArpPacket>();
        Assert.Equal(new PhysicalAddress(NodeMac), ethernet.SourceHardwareAddress);
        Assert.Equal(new PhysicalAddress(ClientMac), ethernet.DestinationHardwareAddress);
        Assert.Equal(ArpOperation.Response, arp.Operation);
        Assert.Equal(new PhysicalAddress(Mac.IPv4Mac), arp.SenderHardwareAddress);
        Assert.Equal(Vip, arp.SenderProtocolAddress);
        Assert.Equal(Client, arp.TargetProtocolAddress);
        Assert.Equal(new PhysicalAddress(ClientMac), arp.TargetHardwareAddress);
    }

    [Fact]
    public void GratuitousArp_AnnouncesVipAtClusterMac_Broadcast()
    {
        var output = new byte[NeighborReplies.MaxFrameLength];
        var length = _replies.BuildGratuitousArp(Vip.GetAddressBytes(), output);

        var ethernet = (EthernetPacket)Packet.ParsePacket(LinkLayers.Ethernet, output[..length]);
        var arp = ethernet.Extract<ArpPacket>();
        Assert.Equal(PhysicalAddress.Parse("FF-FF-FF-FF-FF-FF"), ethernet.DestinationHardwareAddress);
        Assert.Equal(new PhysicalAddress(NodeMac), ethernet.SourceHardwareAddress);
        Assert.Equal(Vip, arp.SenderProtocolAddress);
        Assert.Equal(Vip, arp.TargetProtocolAddress);
        Assert.Equal(new PhysicalAddress(Mac.IPv4Mac), arp.SenderHardwareAddress);
    }

    [Fact]
    public void NeighborAdvertisement_HasValidChecksumAndClusterMacOption()
    {
        var request = NeighborSolicitation(Client6, Vip6);
        PacketParser.Parse(request, out var p);
        var output = new byte[NeighborReplies.MaxFrameLength];

        var length = _replies.BuildNeighborAdvertisement(request, p, output);

        Assert.Equal(ParseStatus.Ok, PacketParser.Parse(output.AsSpan(0, length), out var reply));
        var icmp = output.AsSpan(reply.L4Offset, reply.L3End - reply.L4Offset);
        var source = output.AsSpan(reply.SourceOffset, 16);
        var destination = output.AsSpan(reply.DestinationOffset, 16);
        Assert.Equal(0xffff, InternetChecksum.Fold(InternetChecksum.Add(InternetChecksum.PseudoHeader(source, destination, IpProtocol.IcmpV6, icmp.Length), icmp)));
        Assert.Equal(136, icmp[0]);
        Assert.Equal(0x60, icmp[4]);
        Assert.Equal(Vip6, new IPAddress(source));
        Assert.Equal(Client6, new IPAddress(destination));
        Assert.Equal(Vip6, new IPAddress(icmp.Slice(8, 16)));
        Assert.Equal(Mac.IPv6Mac, icmp.Slice(26, 6).ToArray());
        Assert.Equal(255, output[14 + 7]);
    }
}
