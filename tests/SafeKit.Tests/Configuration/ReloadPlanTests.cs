using SafeKit.ControlPlane.Configuration;

namespace SafeKit.Tests.Configuration;

public sealed class ReloadPlanTests
{
    private const string Base = """
        cluster:
          name: prod
          key_file: /etc/safekit/prod.key
          heartbeat: {interval_ms: 100, timeout_ms: 600}
          nodes:
            - {name: web1, address: 10.0.0.1}
            - {name: web2, address: 10.0.0.2}
        modules:
          - name: web
            type: farm
            vips: [198.18.0.100]
            interface: eth0
            drain_timeout_ms: 60000
            scripts: {start: "nginx", stop: "nginx -s quit"}
            checkers:
              - {tcp: 80}
        """;

    private static ClusterConfig Parse(string text)
    {
        var (config, errors) = ConfigLoader.Parse(text, "c.yaml");
        Assert.Empty(errors);
        return config!;
    }

    [Fact]
    public void SameFile_ChangesNothing()
    {
        var plan = ReloadPlan.Compare(Parse(Base), Parse(Base), "web1");

        Assert.True(plan.Applicable);
        Assert.Empty(plan.Changes);
        Assert.Empty(plan.Notes);
    }

    [Fact]
    public void RuntimeSettings_AreApplicable_AndListed()
    {
        var next = Base
            .Replace("timeout_ms: 600}", "timeout_ms: 900}", StringComparison.Ordinal)
            .Replace("{name: web1, address: 10.0.0.1}", "{name: web1, address: 10.0.0.1, weight: 4}", StringComparison.Ordinal)
            .Replace("drain_timeout_ms: 60000", "drain_timeout_ms: 5000", StringComparison.Ordinal)
            .Replace("- {tcp: 80}", "- {tcp: 80}\n      - {http: \"http://127.0.0.1/\", status: 200}", StringComparison.Ordinal)
            .Replace("nginx -s quit", "nginx -s stop", StringComparison.Ordinal);

        var plan = ReloadPlan.Compare(Parse(Base), Parse(next), "web1");

        Assert.True(plan.Applicable);
        Assert.Contains("cluster.heartbeat.timeout_ms: 600 → 900", plan.Changes);
        Assert.Contains("cluster.nodes.web1.weight: 1 → 4", plan.Changes);
        Assert.Contains("modules.web.drain_timeout_ms: 60000 → 5000", plan.Changes);
        Assert.Contains(plan.Changes, c => c.StartsWith("modules.web.checkers: 1 → 2", StringComparison.Ordinal));
        Assert.Contains(plan.Changes, c => c.StartsWith("modules.web.scripts:", StringComparison.Ordinal) && c.Contains("nginx -s stop", StringComparison.Ordinal));
    }

    [Fact]
    public void AnotherNodesWeight_IsANote_NotAChangeHere()
    {
        var next = Base.Replace("{name: web2, address: 10.0.0.2}", "{name: web2, address: 10.0.0.2, weight: 2}", StringComparison.Ordinal);

        var plan = ReloadPlan.Compare(Parse(Base), Parse(next), "web1");

        Assert.True(plan.Applicable);
        Assert.Empty(plan.Changes);
        Assert.Contains(plan.Notes, n => n.Contains("web2 reloads", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("vips: [198.18.0.100]", "vips: [198.18.0.101]", "modules.web.vips")]
    [InlineData("interface: eth0", "interface: eth1", "modules.web.interface")]
    [InlineData("type: farm", "type: farm\n    affinity: client-ip", "modules.web.affinity")]
    [InlineData("name: prod", "name: staging", "cluster.name")]
    [InlineData("address: 10.0.0.2}", "address: 10.0.0.3}", "cluster.nodes.web2.addresses")]
    [InlineData("- {name: web2, address: 10.0.0.2}", "- {name: web2, address: 10.0.0.2}\n    - {name: web3, address: 10.0.0.3}", "cluster.nodes")]
    public void RestartOnlySettings_MakeTheWholeReloadRefused(string from, string to, string key)
    {
        var next = Base.Replace(from, to, StringComparison.Ordinal);
        Assert.NotEqual(Base, next);

        var plan = ReloadPlan.Compare(Parse(Base), Parse(next + "\n"), "web1");

        Assert.False(plan.Applicable);
        Assert.Contains(plan.RestartRequired, r => r.StartsWith(key + ":", StringComparison.Ordinal));
    }
}
