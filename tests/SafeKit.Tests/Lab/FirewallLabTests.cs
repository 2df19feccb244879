using System.Text.RegularExpressions;
using SafeKit.ControlPlane.Firewall;
using SafeKit.Tests.Infrastructure;

namespace SafeKit.Tests.Lab;

/// <summary>
/// <c>safekit config firewall</c>'s ruleset applied for real (nftables, default drop) in the nodes of
/// a running farm: the farm keeps serving through its VIPs, heartbeats keep the view, the API still
/// answers — and a port nobody configured, or a forged heartbeat from a non-member, never arrives.
/// </summary>
[Collection(LabCollection.Name)]
public sealed partial class FirewallLabTests : IClassFixture<FirewallLab>
{
    private const string Node1 = "198.18.0.11";
    private readonly FirewallLab _lab;

    public FirewallLabTests(FirewallLab lab)
    {
        _lab = lab;
    }

    [Fact]
    public void Firewall_OnEveryNode_FarmServesAndEverythingElseIsDropped()
    {
        _lab.Require();
        // A listener that no configuration mentions, on n1's own address.
        var listener = _lab.Exec("n1", "sh", "-c", $"python3 -m http.server 7777 --bind {Node1} >/dev/null 2>&1 & echo $!");
        Assert.True(listener.Succeeded, listener.Error);
        var pid = int.Parse(listener.Output.Trim(), System.Globalization.CultureInfo.InvariantCulture);
        try
        {
            LabInstance.WaitUntil(() => Curl($"http://{Node1}:7777/") == 0, "the stray listener answers before the firewall");
            var malformed = Malformed();
            ForgeHeartbeat();
            LabInstance.WaitUntil(() => Malformed() > malformed, "the forged datagram reaches safekitd before the firewall");

            var ruleset = Path.Combine(_lab.StateDirectory, "firewall.nft");
            var generated = Tools.Run(Tools.Safekit, "config", "firewall", Path.Combine(_lab.StateDirectory, "cluster.yaml"), "--allow", "tcp/22");
            Assert.True(generated.Succeeded, generated.Error);
            File.WriteAllText(ruleset, generated.Output);
            foreach (var node in new[] { "n1", "n2" })
            {
                var applied = _lab.Exec(node, "nft", "-f", ruleset);
                Assert.True(applied.Succeeded, applied.Error);
            }

            // Dropped, not refused: curl times out (28) rather than being reset (7).
            var dropped = Dropped();
            Assert.Equal(28, Curl($"http://{Node1}:7777/"));
            malformed = Malformed();
            ForgeHeartbeat();
            LabInstance.WaitUntil(() => Dropped() >= dropped + 2, "the firewall counts the stray connection and the forged datagram");
            Assert.Equal(malformed, Malformed());

            // What the cluster serves still arrives: the VIP's services (IPv4 and IPv6, TCP and
            // UDP) on both nodes, heartbeats (the view stays whole, new ones accepted), the API.
            var served = _lab.HttpFollowingTheTable("198.18.0.100", 40);
            Assert.Equal(2, served.Count);
            Assert.Equal(2, _lab.HttpFollowingTheTable("2001:2::100", 40).Count);
            Assert.Equal(2, _lab.UdpFollowingTheTable("198.18.0.100", 20, 64).Count);
            var accepted = Accepted();
            LabInstance.WaitUntil(() => Accepted() > accepted + 10, "heartbeats keep arriving through the firewall");
            Assert.Equal(2, _lab.Members(1).Count);
            Assert.Equal(2, _lab.Members(2).Count);
            var api = _lab.Exec("client", "curl", "-sk", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}", $"https://{Node1}:9453/api/v1/cluster");
            Assert.Equal("401", api.Output);
        }
        finally
        {
            if (SafeKit.Native.Host.ProcessControl.StartTime(pid) is { } start)
            {
                SafeKit.Native.Host.ProcessControl.Stop(pid, start, TimeSpan.FromSeconds(2));
            }

            foreach (var node in new[] { "n1", "n2" })
            {
                _lab.Exec(node, "nft", "delete", "table", "inet", HostFirewall.TableName);
            }
        }
    }

    /// <summary>n1's count of malformed heartbeats, from a status written after this call.</summary>
    private long Malformed() => FreshMembershipCounter("heartbeats_malformed");

    private long Accepted() => FreshMembershipCounter("heartbeats_accepted");

    private long FreshMembershipCounter(string name)
    {
        var asked = DateTimeOffset.UtcNow;
        LabInstance.WaitUntil(() => _lab.NodeStatus(1).GetProperty("updated").GetDateTimeOffset() > asked, "n1 writes its status");
        return _lab.MembershipCounter(1, name);
    }

    private int Curl(string url) => _lab.Exec("client", "curl", "-s", "-o", "/dev/null", "--max-time", "2", url).ExitCode;

    /// <summary>A datagram to n1's heartbeat port from the client, which is no cluster member.</summary>
    private void ForgeHeartbeat() =>
        Assert.True(_lab.Exec("client", "bash", "-c", $"printf 'not a heartbeat' > /dev/udp/{Node1}/4800").Succeeded);

    private long Dropped()
    {
        var table = _lab.Exec("n1", "nft", "list", "table", "inet", HostFirewall.TableName);
        return long.Parse(DropCounter().Match(table.Output).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    [GeneratedRegex(@"counter packets (\d+) bytes \d+ drop")]
    private static partial Regex DropCounter();
}
