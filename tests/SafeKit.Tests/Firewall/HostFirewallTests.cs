using SafeKit.ControlPlane.Configuration;
using SafeKit.ControlPlane.Firewall;
using SafeKit.Tests.Infrastructure;

namespace SafeKit.Tests.Firewall;

/// <summary>
/// The node's inbound ruleset as generated from a configuration: what it opens, to whom, and that
/// the real nft accepts every variant (checked with <c>nft -c</c> inside a namespace of the test).
/// </summary>
public sealed class HostFirewallTests
{
    private const string Mirror = """
        cluster:
          name: db
          key_file: /etc/safekit/db.key
          api: {port: 9500}
          heartbeat: {port: 4811}
          nodes:
            - name: m1
              addresses: [198.18.0.21, "2001:2::21"]
            - name: m2
              addresses: [198.18.0.22, "2001:2::22"]
        modules:
          - name: pg
            type: mirror
            vips: [198.18.0.200, "2001:2::200"]
            interface: eth0
            directories:
              - path: /srv/pgdata
              - path: /srv/www
            replication: {port: 5000}
        """;

    private const string Farm = """
        cluster:
          name: web
          key_file: /etc/safekit/web.key
          nodes:
            - {name: n1, address: 198.18.0.11}
            - {name: n2, address: 198.18.0.12}
        modules:
          - name: web
            type: farm
            vips: [198.18.0.100]
            interface: eth0
        """;

    private static ClusterConfig Parse(string yaml)
    {
        var (config, errors) = ConfigLoader.Parse(yaml, "c.yaml");
        Assert.Empty(errors);
        return config!;
    }

    private static List<string> Rules(string ruleset) =>
        ruleset.Split('\n').Select(l => l.Trim()).Where(l => l.Contains("accept", StringComparison.Ordinal) || l.Contains("drop", StringComparison.Ordinal)).ToList();

    [Fact]
    public void Ruleset_Mirror_OpensItsPortsToTheClusterOnly()
    {
        var rules = Rules(HostFirewall.Ruleset(Parse(Mirror), [new FirewallOpening("tcp", 22)]));

        Assert.Contains("tcp dport 9500 accept comment \"API and console\"", rules);
        Assert.Contains("ip saddr @cluster_nodes4 udp dport 4811 accept comment \"heartbeats\"", rules);
        Assert.Contains("ip6 saddr @cluster_nodes6 udp dport 4811 accept comment \"heartbeats\"", rules);
        // Two directories: replication/resync on 5000-5001, verify on 5002-5003.
        Assert.Contains("ip saddr @cluster_nodes4 tcp dport 5000-5003 accept comment \"mirror pg: replication, resync, verify\"", rules);
        Assert.Contains("ip6 daddr @vips6 accept comment \"the application on the VIPs\"", rules);
        Assert.Contains("tcp dport 22 accept comment \"administrator\"", rules);
        Assert.Equal("counter drop comment \"not served by this node\"", rules[^1]);
        Assert.DoesNotContain(rules, r => r.Contains("4800", StringComparison.Ordinal) || r.Contains("9453", StringComparison.Ordinal));
    }

    [Fact]
    public void Ruleset_NotConfigured_OpensOnlyTheApiAndTheAdministratorsPorts()
    {
        var rules = Rules(HostFirewall.Ruleset(null, [new FirewallOpening("tcp", 22)]));

        var openings = rules.Where(r => r.Contains("dport", StringComparison.Ordinal) || r.Contains("saddr", StringComparison.Ordinal) || r.Contains("daddr", StringComparison.Ordinal)).ToList();
        Assert.Equal(["tcp dport 9453 accept comment \"API and console\"", "tcp dport 22 accept comment \"administrator\""], openings);
    }

    [Fact]
    public void Ruleset_FarmWithoutIpv6_HasNoIpv6Sets()
    {
        var ruleset = HostFirewall.Ruleset(Parse(Farm), []);

        Assert.Contains("elements = { 198.18.0.11, 198.18.0.12 }", ruleset, StringComparison.Ordinal);
        Assert.Contains("ip daddr @vips4 accept", ruleset, StringComparison.Ordinal);
        Assert.DoesNotContain("@cluster_nodes6", ruleset, StringComparison.Ordinal);
        Assert.DoesNotContain("@vips6", ruleset, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("tcp/22", "tcp", 22)]
    [InlineData("udp/65535", "udp", 65535)]
    public void Opening_Parse_Valid(string text, string protocol, int port) =>
        Assert.Equal(new FirewallOpening(protocol, port), FirewallOpening.Parse(text));

    [Theory]
    [InlineData("22")]
    [InlineData("sctp/22")]
    [InlineData("tcp/0")]
    [InlineData("tcp/65536")]
    [InlineData("tcp/+22")]
    [InlineData("tcp/22/1")]
    public void Opening_Parse_Invalid(string text) =>
        Assert.Throws<FormatException>(() => FirewallOpening.Parse(text));

    [Fact]
    public void Ruleset_EveryVariant_IsAcceptedByNft()
    {
        Tools.RequireLab();
        using var ns = new TestNamespace(Tools.RunTag());
        foreach (var ruleset in new[] { HostFirewall.Ruleset(Parse(Mirror), [new FirewallOpening("tcp", 22), new FirewallOpening("udp", 53)]), HostFirewall.Ruleset(Parse(Farm), []), HostFirewall.Ruleset(null, []) })
        {
            // Applied for real (not only checked), twice: the second replaces the first in one transaction.
            ns.ExecWithInput(ruleset, "nft", "-f", "-");
            ns.ExecWithInput(ruleset, "nft", "-f", "-");
            Assert.Contains("policy drop", ns.ExecChecked("nft", "list", "table", "inet", HostFirewall.TableName), StringComparison.Ordinal);
        }
    }
}
