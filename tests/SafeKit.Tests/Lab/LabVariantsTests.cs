using System.Net;
using SafeKit.Tests.Infrastructure;

namespace SafeKit.Tests.Lab;

[Collection(LabCollection.Name)]
public sealed class ClientIpAffinityLabTests : IClassFixture<ClientIpAffinityLab>
{
    private readonly ClientIpAffinityLab _lab;

    public ClientIpAffinityLabTests(ClientIpAffinityLab lab)
    {
        _lab = lab;
    }

    [Fact]
    public void Http_ClientIpAffinity_SendsEveryConnectionOfAClientToOneNode()
    {
        _lab.Require();
        var report = _lab.ExecJson("client", Tools.Loadgen, "http", "--host", "198.18.0.100", "--count", "60", "--concurrency", "4");

        Assert.Equal(60, report.GetProperty("ok").GetInt32());
        var nodes = report.GetProperty("connections").EnumerateArray().Select(FarmLabTests.Node).Distinct().ToList();
        var node = Assert.Single(nodes);
        Assert.Equal(_lab.OwnerFunction()(IPAddress.Parse("198.18.0.10").GetAddressBytes(), false, 0), node);
    }
}

[Collection(LabCollection.Name)]
public sealed class MulticastLabTests : IClassFixture<MulticastLab>
{
    private readonly MulticastLab _lab;

    public MulticastLabTests(MulticastLab lab)
    {
        _lab = lab;
    }

    [Fact]
    public void Http_MulticastMac_SpreadsOverAllNodes()
    {
        _lab.Require();
        var report = _lab.ExecJson("client", Tools.Loadgen, "http", "--host", "198.18.0.100", "--count", "90", "--concurrency", "4");

        Assert.Equal(90, report.GetProperty("ok").GetInt32());
        Assert.Equal(3, report.GetProperty("connections").EnumerateArray().Select(FarmLabTests.Node).Distinct().Count());
        Assert.Equal("01:00:5e:7f:00:64", FarmLabTests.ClusterMacOf(_lab));
    }

    [Theory]
    [InlineData("198.18.0.100")]
    [InlineData("2001:2::100")]
    public void Ping_MulticastMac_ExactlyOneReplyPerRequest(string vip)
    {
        _lab.Require();
        var ping = _lab.Exec("client", "ping", "-c", "5", "-i", "0.2", "-W", "2", vip);

        Assert.True(ping.Succeeded, ping.Output + ping.Error);
        Assert.Contains("5 packets transmitted, 5 received", ping.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("DUP", ping.Output, StringComparison.Ordinal);
    }
}

[Collection(LabCollection.Name)]
public sealed class PcapLabTests : IClassFixture<PcapLab>
{
    private readonly PcapLab _lab;

    public PcapLabTests(PcapLab lab)
    {
        _lab = lab;
    }

    [Fact]
    public void Http_PcapBackend_ServesAndFollowsTheBucketTable()
    {
        _lab.Require();
        var report = _lab.ExecJson("client", Tools.Loadgen, "http", "--host", "198.18.0.100", "--count", "90", "--concurrency", "4");

        Assert.Equal(90, report.GetProperty("ok").GetInt32());
        var owner = _lab.OwnerFunction();
        var client = IPAddress.Parse("198.18.0.10").GetAddressBytes();
        foreach (var connection in report.GetProperty("connections").EnumerateArray())
        {
            Assert.Equal(owner(client, true, (ushort)connection.GetProperty("port").GetInt32()), FarmLabTests.Node(connection));
        }

        Assert.All(Directory.GetDirectories(_lab.StateDirectory), d =>
            Assert.Contains("\"capture\": \"pcap\"", File.ReadAllText(Path.Combine(d, "status.json")), StringComparison.Ordinal));
    }
}

[Collection(LabCollection.Name)]
public sealed class PcapLabLargeBodyTests : IClassFixture<PcapLab>
{
    private readonly PcapLab _lab;

    public PcapLabLargeBodyTests(PcapLab lab)
    {
        _lab = lab;
    }

    [Fact]
    public void Post_LargeBodiesThroughLibpcap_ChecksumsAreCompletedInUserSpace()
    {
        _lab.Require();
        var body = Path.Combine(_lab.StateDirectory, "body.bin");
        File.WriteAllBytes(body, new byte[2 << 20]);
        for (var i = 0; i < 4; i++)
        {
            var post = _lab.Exec("client", "curl", "-s", "-m", "20", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Expect:", "--data-binary", "@" + body, "http://198.18.0.100/");
            Assert.Equal("200", post.Output);
        }

        Assert.All(FarmLabTests.TcpChecksumErrors(_lab), errors => Assert.Equal(0, errors));
    }
}

[Collection(LabCollection.Name)]
public sealed class FanoutLabTests : IClassFixture<FanoutLab>
{
    private readonly FanoutLab _lab;

    public FanoutLabTests(FanoutLab lab)
    {
        _lab = lab;
    }

    [Fact]
    public void Http_TwoWorkersPerNodeWithFanout_ServeAndFollowTheBucketTable()
    {
        _lab.Require();
        var report = _lab.ExecJson("client", Tools.Loadgen, "http", "--host", "198.18.0.100", "--count", "90", "--concurrency", "4");
        var udp = _lab.ExecJson("client", Tools.Loadgen, "udp", "--host", "198.18.0.100", "--count", "20", "--size", "3000");

        Assert.Equal(90, report.GetProperty("ok").GetInt32());
        Assert.Equal(20, udp.GetProperty("ok").GetInt32());
        var owner = _lab.OwnerFunction();
        var client = IPAddress.Parse("198.18.0.10").GetAddressBytes();
        foreach (var connection in report.GetProperty("connections").EnumerateArray())
        {
            Assert.Equal(owner(client, true, (ushort)connection.GetProperty("port").GetInt32()), FarmLabTests.Node(connection));
        }
    }
}

[Collection(LabCollection.Name)]
public sealed class KernelLabTests : IClassFixture<KernelLab>
{
    private readonly KernelLab _lab;

    public KernelLabTests(KernelLab lab)
    {
        _lab = lab;
    }

    [Fact]
    public void Http_KernelFastPath_ChoosesTheSameNodesAsTheUserspaceRule()
    {
        _lab.Require();
        var report = _lab.ExecJson("client", Tools.Loadgen, "http", "--host", "198.18.0.100", "--count", "90", "--concurrency", "4");

        Assert.Equal(90, report.GetProperty("ok").GetInt32());
        var owner = _lab.OwnerFunction();
        var client = IPAddress.Parse("198.18.0.10").GetAddressBytes();
        foreach (var connection in report.GetProperty("connections").EnumerateArray())
        {
            Assert.Equal(owner(client, true, (ushort)connection.GetProperty("port").GetInt32()), FarmLabTests.Node(connection));
        }

        var rules = _lab.Exec("n1", "nft", "list", "table", "netdev", "safekit_web");
        Assert.Contains("jhash ip saddr . th sport mod 4096 seed", rules.Output, StringComparison.Ordinal);
    }
}
