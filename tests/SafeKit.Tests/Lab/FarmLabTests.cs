using System.Net;
using PacketDotNet;
using SafeKit.Tests.Infrastructure;
using SharpPcap;
using SharpPcap.LibPcap;

namespace SafeKit.Tests.Lab;

/// <summary>The farm end to end: real NGINX on three nodes behind one VIP, traffic from the client.</summary>
[Collection(LabCollection.Name)]
public sealed class FarmLabTests : IClassFixture<DefaultLab>
{
    private readonly DefaultLab _lab;

    public FarmLabTests(DefaultLab lab)
    {
        _lab = lab;
    }

    [Fact]
    public void Http_300NewConnections_AllSucceedSpreadAndFollowTheBucketTable()
    {
        _lab.Require();
        var served = _lab.HttpFollowingTheTable("198.18.0.100", 300, concurrency: 8);

        Assert.Equal(3, served.Count);
        Assert.All(served.Values, count => Assert.InRange(count, 60, 141));
    }

    [Fact]
    public void Capture_EveryConnection_GetsExactlyOneSynAckAndNoResetFromTheVip()
    {
        _lab.Require();
        _lab.AssertOneSynAckPerConnection(100);
    }

    [Fact]
    public void Arp_VipResolvesToTheClusterMac_WhichNeverAppearsAsASource()
    {
        _lab.Require();
        var clusterMac = _lab.ClusterMac();
        var file = Path.Combine(_lab.StateDirectory, "client-arp.pcap");
        var tcpdump = _lab.StartCapture("client", file, "arp or tcp port 80");
        _lab.Exec("client", "ip", "neigh", "flush", "dev", "eth0");
        _lab.HttpFollowingTheTable("198.18.0.100", 20);
        Thread.Sleep(300);
        LabInstance.StopCapture(tcpdump);

        var replies = new List<ArpPacket>();
        var frames = 0;
        using var reader = new CaptureFileReaderDevice(file);
        reader.Open();
        while (reader.GetNextPacket(out var capture) == GetPacketStatus.PacketRead)
        {
            var raw = capture.GetPacket();
            var ethernet = (EthernetPacket)Packet.ParsePacket(raw.LinkLayerType, raw.Data);
            frames++;
            Assert.NotEqual(clusterMac, Mac(ethernet.SourceHardwareAddress));
            if (ethernet.Extract<ArpPacket>() is { Operation: ArpOperation.Response } arp && arp.SenderProtocolAddress.Equals(IPAddress.Parse("198.18.0.100")))
            {
                replies.Add(arp);
            }
        }

        Assert.True(frames > 100);
        var reply = Assert.Single(replies);
        Assert.Equal(clusterMac, Mac(reply.SenderHardwareAddress));
    }

    [Theory]
    [InlineData("198.18.0.100")]
    [InlineData("2001:2::100")]
    public void Ping_Vip_GetsExactlyOneReplyPerRequest(string vip)
    {
        _lab.Require();
        _lab.AssertOneReplyPerPing(vip);
    }

    private static string Mac(System.Net.NetworkInformation.PhysicalAddress address) =>
        string.Join(':', address.GetAddressBytes().Select(b => b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture)));

    [Fact]
    public void Udp_ServiceBehindTheVip_AnswersEveryDatagramFromTheOwningNode()
    {
        _lab.Require();
        Assert.True(_lab.UdpFollowingTheTable("198.18.0.100", 60, 32).Count > 1);
    }

    [Fact]
    public void Udp_FragmentedDatagrams_AreDecidedWholeByTheOwningNode()
    {
        _lab.Require();
        var before = _lab.Counter("fragments").Values.Sum();

        _lab.UdpFollowingTheTable("198.18.0.100", 30, 4000);

        // Each 4000-byte datagram is 3 fragments, seen by all 3 nodes.
        Assert.True(_lab.Counter("fragments").Values.Sum() - before >= 30 * 3 * 3);
    }

    [Fact]
    public void Http_OverIpv6Vip_SpreadsAndFollowsTheBucketTable()
    {
        _lab.Require();
        Assert.Equal(3, _lab.HttpFollowingTheTable("2001:2::100", 90).Count);
    }

    [Fact]
    public void MalformedFrames_AreCountedDroppedAndHarmless()
    {
        _lab.Require();
        var before = _lab.Counter("malformed");
        _lab.ExecJson("client", Tools.Loadgen, "frames", "--interface", "eth0", "--dst-mac", _lab.ClusterMac(), "--dst-ip", "198.18.0.100", "--count", "2000", "--malformed", "100", "--rate", "20000");
        var after = _lab.Counter("malformed");

        Assert.All(after, pair => Assert.True(pair.Value - before[pair.Key] >= 1000, $"{pair.Key} counted {pair.Value - before[pair.Key]} malformed frames"));
        _lab.HttpFollowingTheTable("198.18.0.100", 30);
        Assert.All(_lab.Status().GetProperty("nodes").EnumerateArray(), n => Assert.True(n.GetProperty("safekitd_running").GetBoolean()));
    }

    [Fact]
    public void Post_LargeBodies_PassAsGsoSuperPacketsWithoutChecksumErrors()
    {
        _lab.Require();
        var acceptedBefore = _lab.Counter("accepted");
        var bytesBefore = _lab.Counter("accepted_bytes");

        _lab.PostBodies(6, 4 << 20);

        var packets = _lab.Counter("accepted").Sum(p => p.Value - acceptedBefore[p.Key]);
        var bytes = _lab.Counter("accepted_bytes").Sum(p => p.Value - bytesBefore[p.Key]);
        Assert.True(bytes >= 6 * (4 << 20), $"only {bytes} bytes were delivered");
        // Far fewer packets than MTU-sized segments: the TUN took GSO super-packets whole.
        Assert.True(bytes / packets > 3000, $"{packets} packets for {bytes} bytes: super-packets were split or dropped");
        Assert.All(_lab.TcpChecksumErrors(), errors => Assert.Equal(0, errors));
    }

    [Fact]
    public void DataplaneThreads_UnderTraffic_AllocateNothing()
    {
        _lab.Require();
        var mac = _lab.ClusterMac();
        // Warm-up: every path once (first calls may allocate: type initialisers, comparers).
        _lab.ExecJson("client", Tools.Loadgen, "frames", "--interface", "eth0", "--dst-mac", mac, "--dst-ip", "198.18.0.100", "--count", "20000", "--rate", "50000");
        _lab.HttpFollowingTheTable("198.18.0.100", 30);
        _lab.UdpFollowingTheTable("198.18.0.100", 10, 3000);
        var before = _lab.Counter("worker_allocated_bytes");
        var framesBefore = _lab.Counter("frames");

        _lab.ExecJson("client", Tools.Loadgen, "frames", "--interface", "eth0", "--dst-mac", mac, "--dst-ip", "198.18.0.100", "--count", "100000", "--rate", "50000");
        _lab.UdpFollowingTheTable("198.18.0.100", 20, 3000);
        _lab.HttpFollowingTheTable("198.18.0.100", 100);

        var after = _lab.Counter("worker_allocated_bytes");
        var frames = _lab.Counter("frames");
        Assert.All(after, pair =>
        {
            Assert.True(frames[pair.Key] - framesBefore[pair.Key] >= 100_000, $"{pair.Key} saw too few frames");
            Assert.Equal(before[pair.Key], pair.Value);
        });
    }
}
