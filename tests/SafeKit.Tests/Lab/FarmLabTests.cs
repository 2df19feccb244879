using System.Net;
using System.Text.Json;
using PacketDotNet;
using SafeKit.Tests.Infrastructure;
using SharpPcap;
using SharpPcap.LibPcap;

namespace SafeKit.Tests.Lab;

/// <summary>The farm end to end: real NGINX on three nodes behind one VIP, traffic from the client.</summary>
[Collection(LabCollection.Name)]
public sealed class FarmLabTests : IClassFixture<DefaultLab>
{
    private static readonly byte[] Client = IPAddress.Parse("198.18.0.10").GetAddressBytes();
    private readonly DefaultLab _lab;

    public FarmLabTests(DefaultLab lab)
    {
        _lab = lab;
    }

    [Fact]
    public void Http_300NewConnections_AllSucceedSpreadAndFollowTheBucketTable()
    {
        _lab.Require();
        var report = _lab.ExecJson("client", Tools.Loadgen, "http", "--host", "198.18.0.100", "--count", "300", "--concurrency", "8");

        Assert.Equal(300, report.GetProperty("ok").GetInt32());
        var owner = _lab.OwnerFunction();
        var served = new Dictionary<string, int>();
        foreach (var connection in report.GetProperty("connections").EnumerateArray())
        {
            var node = Node(connection);
            served[node] = served.GetValueOrDefault(node) + 1;
            Assert.Equal(owner(Client, true, (ushort)connection.GetProperty("port").GetInt32()), node);
        }

        Assert.Equal(3, served.Count);
        Assert.All(served.Values, count => Assert.InRange(count, 60, 141));
    }

    [Fact]
    public void Capture_EveryConnection_GetsExactlyOneSynAckAndNoResetFromTheVip()
    {
        _lab.Require();
        var file = Path.Combine(_lab.StateDirectory, "client-http.pcap");
        var tcpdump = _lab.StartCapture("client", file, "tcp port 80");
        var report = _lab.ExecJson("client", Tools.Loadgen, "http", "--host", "198.18.0.100", "--count", "100", "--concurrency", "4");
        Thread.Sleep(300);
        LabInstance.StopCapture(tcpdump);

        Assert.Equal(100, report.GetProperty("ok").GetInt32());
        var synAcks = new Dictionary<ushort, int>();
        var resets = 0;
        using var reader = new CaptureFileReaderDevice(file);
        reader.Open();
        while (reader.GetNextPacket(out var capture) == GetPacketStatus.PacketRead)
        {
            var raw = capture.GetPacket();
            var tcp = Packet.ParsePacket(raw.LinkLayerType, raw.Data).Extract<TcpPacket>();
            var ip = (IPPacket)tcp.ParentPacket;
            if (!ip.SourceAddress.Equals(IPAddress.Parse("198.18.0.100")))
            {
                continue;
            }

            if (tcp.Synchronize && tcp.Acknowledgment)
            {
                synAcks[tcp.DestinationPort] = synAcks.GetValueOrDefault(tcp.DestinationPort) + 1;
            }

            if (tcp.Reset)
            {
                resets++;
            }
        }

        Assert.Equal(100, synAcks.Count);
        Assert.All(synAcks, pair => Assert.True(pair.Value == 1, $"port {pair.Key} got {pair.Value} SYN-ACKs"));
        Assert.Equal(0, resets);
    }

    [Theory]
    [InlineData("198.18.0.100")]
    [InlineData("2001:2::100")]
    public void Ping_Vip_GetsExactlyOneReplyPerRequest(string vip)
    {
        _lab.Require();
        var ping = _lab.Exec("client", "ping", "-c", "5", "-i", "0.2", "-W", "2", vip);

        Assert.True(ping.Succeeded, ping.Output + ping.Error);
        Assert.Contains("5 packets transmitted, 5 received", ping.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("DUP", ping.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void Udp_ServiceBehindTheVip_AnswersEveryDatagramFromTheOwningNode()
    {
        _lab.Require();
        var report = _lab.ExecJson("client", Tools.Loadgen, "udp", "--host", "198.18.0.100", "--port", "5300", "--count", "60");

        Assert.Equal(60, report.GetProperty("ok").GetInt32());
        var owner = _lab.OwnerFunction();
        foreach (var datagram in report.GetProperty("datagrams").EnumerateArray())
        {
            Assert.Equal(owner(Client, true, (ushort)datagram.GetProperty("port").GetInt32()), Node(datagram));
        }
    }

    [Fact]
    public void Udp_FragmentedDatagrams_AreDecidedWholeByTheOwningNode()
    {
        _lab.Require();
        var before = _lab.Counter("fragments").Values.Sum();
        var report = _lab.ExecJson("client", Tools.Loadgen, "udp", "--host", "198.18.0.100", "--port", "5300", "--count", "30", "--size", "4000");

        Assert.Equal(30, report.GetProperty("ok").GetInt32());
        var owner = _lab.OwnerFunction();
        foreach (var datagram in report.GetProperty("datagrams").EnumerateArray())
        {
            Assert.Equal(owner(Client, true, (ushort)datagram.GetProperty("port").GetInt32()), Node(datagram));
        }

        // Each 4000-byte datagram is 3 fragments, seen by all 3 nodes.
        Assert.True(_lab.Counter("fragments").Values.Sum() - before >= 30 * 3 * 3);
    }

    [Fact]
    public void Http_OverIpv6Vip_SpreadsAndFollowsTheBucketTable()
    {
        _lab.Require();
        var report = _lab.ExecJson("client", Tools.Loadgen, "http", "--host", "2001:2::100", "--count", "90", "--concurrency", "4");

        Assert.Equal(90, report.GetProperty("ok").GetInt32());
        var owner = _lab.OwnerFunction();
        var client6 = IPAddress.Parse("2001:2::10").GetAddressBytes();
        var nodes = report.GetProperty("connections").EnumerateArray().Select(c =>
        {
            Assert.Equal(owner(client6, true, (ushort)c.GetProperty("port").GetInt32()), Node(c));
            return Node(c);
        }).Distinct().Count();
        Assert.Equal(3, nodes);
    }

    [Fact]
    public void MalformedFrames_AreCountedDroppedAndHarmless()
    {
        _lab.Require();
        var before = _lab.Counter("malformed");
        var clusterMac = ClusterMacOf(_lab);
        _lab.ExecJson("client", Tools.Loadgen, "frames", "--interface", "eth0", "--dst-mac", clusterMac, "--dst-ip", "198.18.0.100", "--count", "2000", "--malformed", "100", "--rate", "20000");
        Thread.Sleep(1500);
        var after = _lab.Counter("malformed");

        Assert.All(after, pair => Assert.True(pair.Value - before[pair.Key] >= 1000, $"{pair.Key} counted {pair.Value - before[pair.Key]} malformed frames"));
        var report = _lab.ExecJson("client", Tools.Loadgen, "http", "--host", "198.18.0.100", "--count", "30");
        Assert.Equal(30, report.GetProperty("ok").GetInt32());
        Assert.All(_lab.Status().GetProperty("nodes").EnumerateArray(), n => Assert.True(n.GetProperty("safekitd_running").GetBoolean()));
    }

    [Fact]
    public void Post_LargeBodies_PassAsGsoSuperPacketsWithoutChecksumErrors()
    {
        _lab.Require();
        var body = Path.Combine(_lab.StateDirectory, "body.bin");
        File.WriteAllBytes(body, new byte[4 << 20]);
        var acceptedBefore = _lab.Counter("accepted");
        var bytesBefore = _lab.Counter("accepted_bytes");
        for (var i = 0; i < 6; i++)
        {
            var post = _lab.Exec("client", "curl", "-s", "-m", "20", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Expect:", "--data-binary", "@" + body, "http://198.18.0.100/");
            Assert.Equal("200", post.Output);
        }

        var packets = _lab.Counter("accepted").Sum(p => p.Value - acceptedBefore[p.Key]);
        var bytes = _lab.Counter("accepted_bytes").Sum(p => p.Value - bytesBefore[p.Key]);
        Assert.True(bytes >= 6 * (4 << 20), $"only {bytes} bytes were delivered");
        // Far fewer packets than MTU-sized segments: the TUN took GSO super-packets whole.
        Assert.True(bytes / packets > 3000, $"{packets} packets for {bytes} bytes: super-packets were split or dropped");
        Assert.All(TcpChecksumErrors(_lab), errors => Assert.Equal(0, errors));
    }

    [Fact]
    public void DataplaneThreads_UnderTraffic_AllocateNothing()
    {
        _lab.Require();
        var mac = ClusterMacOf(_lab);
        // Warm-up: every path once (first calls may allocate: type initialisers, comparers).
        _lab.ExecJson("client", Tools.Loadgen, "frames", "--interface", "eth0", "--dst-mac", mac, "--dst-ip", "198.18.0.100", "--count", "20000", "--rate", "50000");
        _lab.ExecJson("client", Tools.Loadgen, "http", "--host", "198.18.0.100", "--count", "30");
        _lab.ExecJson("client", Tools.Loadgen, "udp", "--host", "198.18.0.100", "--count", "10", "--size", "3000");
        var before = _lab.Counter("worker_allocated_bytes");
        var framesBefore = _lab.Counter("frames");

        _lab.ExecJson("client", Tools.Loadgen, "frames", "--interface", "eth0", "--dst-mac", mac, "--dst-ip", "198.18.0.100", "--count", "100000", "--rate", "50000");
        _lab.ExecJson("client", Tools.Loadgen, "udp", "--host", "198.18.0.100", "--count", "20", "--size", "3000");
        _lab.ExecJson("client", Tools.Loadgen, "http", "--host", "198.18.0.100", "--count", "100");

        var after = _lab.Counter("worker_allocated_bytes");
        var frames = _lab.Counter("frames");
        Assert.All(after, pair =>
        {
            Assert.True(frames[pair.Key] - framesBefore[pair.Key] >= 100_000, $"{pair.Key} saw too few frames");
            Assert.Equal(before[pair.Key], pair.Value);
        });
    }

    internal static IEnumerable<long> TcpChecksumErrors(LabInstance lab) =>
        Directory.GetDirectories(lab.StateDirectory).Select(d =>
        {
            // InCsumErrors is the last Tcp: field of /proc/PID/net/snmp, seen from the node's namespace.
            var pid = JsonDocument.Parse(File.ReadAllText(Path.Combine(d, "status.json"))).RootElement.GetProperty("pid").GetInt32();
            var values = File.ReadAllLines($"/proc/{pid}/net/snmp").Where(l => l.StartsWith("Tcp:", StringComparison.Ordinal)).Last().Split(' ');
            return long.Parse(values[^1], System.Globalization.CultureInfo.InvariantCulture);
        });

    internal static string Node(JsonElement result)
    {
        var body = result.GetProperty("body").GetString();
        Assert.NotNull(body);
        Assert.StartsWith("node ", body, StringComparison.Ordinal);
        return body["node ".Length..];
    }

    internal static string ClusterMacOf(LabInstance lab)
    {
        var status = JsonDocument.Parse(File.ReadAllText(Path.Combine(lab.StateDirectory, lab.Prefix + "-n1", "status.json"))).RootElement;
        return status.GetProperty("modules")[0].GetProperty("farm").GetProperty("cluster_mac").GetString()!;
    }
}
