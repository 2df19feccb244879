using System.Net;
using SafeKit.Tests.Infrastructure;

namespace SafeKit.Tests.Lab;

[Collection(LabCollection.Name)]
public sealed class ClientIpAffinityLabTests(ClientIpAffinityLab lab) : IClassFixture<ClientIpAffinityLab>
{
    [Fact]
    public void Http_ClientIpAffinity_SendsEveryConnectionOfAClientToOneNode()
    {
        lab.Require();
        var served = lab.HttpFollowingTheTable("198.18.0.100", 60);

        var node = Assert.Single(served.Keys);
        Assert.Equal(lab.OwnerFunction()(IPAddress.Parse("198.18.0.10").GetAddressBytes(), false, 0), node);
    }
}

[Collection(LabCollection.Name)]
public sealed class MulticastLabTests(MulticastLab lab) : IClassFixture<MulticastLab>
{
    [Fact]
    public void Http_MulticastMac_SpreadsOverAllNodes()
    {
        lab.Require();
        Assert.Equal(3, lab.HttpFollowingTheTable("198.18.0.100", 90).Count);
        Assert.Equal("01:00:5e:7f:00:64", lab.ClusterMac());
    }

    [Theory]
    [InlineData("198.18.0.100")]
    [InlineData("2001:2::100")]
    public void Ping_MulticastMac_ExactlyOneReplyPerRequest(string vip)
    {
        lab.Require();
        lab.AssertOneReplyPerPing(vip);
    }
}

[Collection(LabCollection.Name)]
public sealed class PcapLabTests(PcapLab lab) : IClassFixture<PcapLab>
{
    [Fact]
    public void Http_PcapBackend_ServesAndFollowsTheBucketTable()
    {
        lab.Require();
        Assert.Equal(3, lab.HttpFollowingTheTable("198.18.0.100", 90).Count);
        Assert.All(Directory.GetDirectories(lab.StateDirectory), d =>
            Assert.Contains("\"capture\": \"pcap\"", File.ReadAllText(Path.Combine(d, "status.json")), StringComparison.Ordinal));
    }

    [Fact]
    public void Post_LargeBodiesThroughLibpcap_ChecksumsAreCompletedInUserSpace()
    {
        lab.Require();
        lab.PostBodies(4, 2 << 20);
        Assert.All(lab.TcpChecksumErrors(), errors => Assert.Equal(0, errors));
    }
}

[Collection(LabCollection.Name)]
public sealed class FanoutLabTests(FanoutLab lab) : IClassFixture<FanoutLab>
{
    [Fact]
    public void Http_TwoWorkersPerNodeWithFanout_ServeAndFollowTheBucketTable()
    {
        lab.Require();
        Assert.Equal(3, lab.HttpFollowingTheTable("198.18.0.100", 90).Count);
        lab.UdpFollowingTheTable("198.18.0.100", 20, 3000);
    }
}

[Collection(LabCollection.Name)]
public sealed class KernelLabTests(KernelLab lab) : IClassFixture<KernelLab>
{
    [Fact]
    public void Http_KernelFastPath_ChoosesTheSameNodesAsTheUserspaceRule()
    {
        lab.Require();
        Assert.Equal(3, lab.HttpFollowingTheTable("198.18.0.100", 90).Count);
        var rules = lab.Exec("n1", "nft", "list", "table", "netdev", "safekit_web");
        Assert.Contains("jhash ip saddr . th sport mod 4096 seed", rules.Output, StringComparison.Ordinal);
    }
}
