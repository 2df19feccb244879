using System.Net;
using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Flows;
using SafeKit.Dataplane.Parsing;
using SafeKit.Tests.Infrastructure;
using static SafeKit.Tests.Infrastructure.TestFrames;

namespace SafeKit.Tests.Dataplane;

public sealed class PacketDeciderTests
{
    [Fact]
    public void Decide_RandomFlows_ExactlyOneNodeAcceptsEach()
    {
        var farm = new Farm(3);
        var random = new Random(1);
        var accepted = new int[3];
        for (var i = 0; i < 3000; i++)
        {
            var v6 = i % 3 == 0;
            var client = Farm.RandomClient(random, v6);
            var port = (ushort)random.Next(1024, 65536);
            var frame = i % 2 == 0 ? Tcp(client, port, v6 ? Vip6 : Vip, 80) : Udp(client, port, v6 ? Vip6 : Vip, 53);
            accepted[farm.SingleAcceptor(frame)]++;
        }

        Assert.All(accepted, count => Assert.InRange(count, 800, 1200));
    }

    [Fact]
    public void Decide_ClientIpAffinity_AllPortsOfAClientOnOneNode()
    {
        var farm = new Farm(3, Affinity.ClientIp);
        var random = new Random(2);
        for (var c = 0; c < 50; c++)
        {
            var client = Farm.RandomClient(random, c % 2 == 0);
            var vip = c % 2 == 0 ? Vip6 : Vip;
            var owners = Enumerable.Range(0, 20).Select(_ => farm.SingleAcceptor(Tcp(client, (ushort)random.Next(1024, 65536), vip, 80))).Distinct();
            Assert.Single(owners);
        }
    }

    [Fact]
    public void Decide_IcmpError_GoesToTheNodeOwningTheQuotedConnection()
    {
        var farm = new Farm(4);
        var random = new Random(3);
        for (var i = 0; i < 200; i++)
        {
            var client = Farm.RandomClient(random, false);
            var port = (ushort)random.Next(1024, 65536);
            var owner = farm.SingleAcceptor(Tcp(client, port, Vip, 80));
            var quoted = IPv4(Vip, client, IpProtocol.Tcp, TcpHeader(80, port));
            var error = Ethernet(VipMac, EtherTypes.IPv4, IPv4(IPAddress.Parse("198.19.255.1"), Vip, IpProtocol.Icmp, Icmp(3, 4, quoted[..28])));

            Assert.Equal(owner, farm.SingleAcceptor(error));
        }
    }

    [Fact]
    public void Decide_Icmpv6Error_GoesToTheNodeOwningTheQuotedConnection()
    {
        var farm = new Farm(3);
        var random = new Random(4);
        for (var i = 0; i < 100; i++)
        {
            var client = Farm.RandomClient(random, true);
            var port = (ushort)random.Next(1024, 65536);
            var owner = farm.SingleAcceptor(Tcp(client, port, Vip6, 443));
            var quoted = IPv6(Vip6, client, IpProtocol.Tcp, TcpHeader(443, port));
            var message = new byte[8 + quoted.Length];
            message[0] = 2;
            quoted.CopyTo(message, 8);
            var error = Ethernet(VipMac, EtherTypes.IPv6, IPv6(IPAddress.Parse("2001:2::1"), Vip6, IpProtocol.IcmpV6, message));

            Assert.Equal(owner, farm.SingleAcceptor(error));
        }
    }

    [Fact]
    public void Decide_PingFromOneClient_AlwaysTheSameSingleNode()
    {
        var farm = new Farm(3);
        var echo = Ethernet(VipMac, EtherTypes.IPv4, IPv4(Client, Vip, IpProtocol.Icmp, Icmp(8, 0, new byte[56])));
        var owner = farm.SingleAcceptor(echo);
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(owner, farm.SingleAcceptor(echo));
        }
    }

    [Fact]
    public void Decide_ArpForVip_ExactlyOneNodeAnswers()
    {
        var farm = new Farm(3);
        var random = new Random(5);
        for (var i = 0; i < 200; i++)
        {
            farm.SingleAcceptor(ArpRequest(Farm.RandomClient(random, false), Vip), Verdict.AnswerArp, Verdict.NeighborOther);
        }
    }

    [Fact]
    public void Decide_NeighborSolicitationForVip_ExactlyOneNodeAnswers()
    {
        var farm = new Farm(3);
        var random = new Random(8);
        for (var i = 0; i < 200; i++)
        {
            farm.SingleAcceptor(NeighborSolicitation(Farm.RandomClient(random, true), Vip6), Verdict.AnswerNdp, Verdict.NeighborOther);
        }

        Assert.All(farm.Decide(NeighborSolicitation(Client6, IPAddress.Parse("2001:2::11"))), v => Assert.Equal(Verdict.NotForUs, v));
    }

    [Fact]
    public void Decide_ArpForAnotherAddress_IsNotForUs()
    {
        var farm = new Farm(3);
        Assert.All(farm.Decide(ArpRequest(Client, IPAddress.Parse("198.18.0.11"))), v => Assert.Equal(Verdict.NotForUs, v));
    }

    [Fact]
    public void Decide_VipTrafficToANodeMac_IsLeftToTheKernel()
    {
        var farm = new Farm(3);
        Assert.All(farm.Decide(Tcp(Client, 1000, Vip, 80, NodeMac)), v => Assert.Equal(Verdict.NotForUs, v));
    }

    [Fact]
    public void Decide_OtherDestination_IsNotForUs()
    {
        var farm = new Farm(3);
        Assert.All(farm.Decide(Tcp(Client, 1000, IPAddress.Parse("198.18.0.12"), 80)), v => Assert.Equal(Verdict.NotForUs, v));
    }

    [Fact]
    public void Decide_Truncated_IsMalformedEverywhere()
    {
        var farm = new Farm(3);
        var frame = Tcp(Client, 1000, Vip, 80);
        Assert.All(farm.Decide(frame[..30]), v => Assert.Equal(Verdict.Malformed, v));
    }

    [Fact]
    public void Decide_MulticastMode_AcceptsFramesToTheMulticastMac()
    {
        var farm = new Farm(3, mode: L2Mode.Multicast);
        Assert.Equal([0x01, 0x00, 0x5e, 0x7f, 0x00, 0x64], farm.Mac.IPv4Mac);
        farm.SingleAcceptor(Tcp(Client, 1000, Vip, 80, farm.Mac.IPv4Mac));
        farm.SingleAcceptor(Tcp(Client6, 1000, Vip6, 80, farm.Mac.IPv6Mac));
    }

    [Fact]
    public void Decide_MatchesTheBucketOfTheFlowHasher()
    {
        var farm = new Farm(3, seed: 0x12345678);
        var hasher = new FlowHasher(Affinity.ClientIpPort, 0x12345678);
        var random = new Random(6);
        for (var i = 0; i < 500; i++)
        {
            var client = Farm.RandomClient(random, false);
            var port = (ushort)random.Next(65536);
            var frame = Udp(client, port, Vip, 53);
            var bucket = (int)JHash.Scale(hasher.Hash(client.GetAddressBytes(), true, port), 4096);
            farm.Deciders[0].Decide(frame, 0, out _, out var decided);
            Assert.Equal(bucket, decided);
        }
    }
}
