using System.Net;
using SafeKit.ControlPlane.Membership;

namespace SafeKit.Tests.Management;

/// <summary>Heartbeats lost per peer and network are counted from gaps in the sender's sequence.</summary>
public sealed class HeartbeatLinksTests
{
    [Fact]
    public void Gaps_CountAsLost_PerNetwork_AndARestartStartsAfresh()
    {
        var links = new HeartbeatLinks([IPAddress.Parse("198.18.0.11"), IPAddress.Parse("198.18.1.11")], 3);
        foreach (var sequence in new uint[] { 10, 11, 12, 15, 16 })
        {
            links.Received(0, 1, incarnation: 7, sequence, now: 1000 + sequence);
        }

        foreach (var sequence in new uint[] { 10, 11, 12, 13, 14, 15, 16 })
        {
            links.Received(1, 1, incarnation: 7, sequence, now: 1000 + sequence);
        }

        // A duplicate and a late one are not losses.
        links.Received(0, 1, 7, 16, 1020);
        links.Received(0, 1, 7, 14, 1021);
        var seen = links.Of(1, now: 1030);
        Assert.Equal("198.18.0.11", seen[0].Network);
        Assert.Equal(2, seen[0].Lost);
        Assert.Equal(7, seen[0].Received);
        Assert.Equal(9, seen[0].LastHeardMilliseconds);
        Assert.Equal(0, seen[1].Lost);

        // The peer restarted (new incarnation, sequence from 1): no loss invented.
        links.Received(0, 1, 8, 1, 1040);
        links.Received(0, 1, 8, 3, 1041);
        Assert.Equal(3, links.Of(1, 1050)[0].Lost);
        Assert.Null(links.Of(2, 1050)[0].LastHeardMilliseconds);
    }
}
