using System.Net;
using SafeKit.ControlPlane.Configuration;

namespace SafeKit.Tests.Configuration;

/// <summary><c>type: mirror</c> modules: defaults, every key, and errors that name the file, line and key.</summary>
public sealed class MirrorConfigTests
{
    private const string Cluster = """
        cluster:
          name: db
          key_file: /etc/safekit/db.key
          nodes:
            - name: m1
              addresses: [10.0.0.1, 10.1.0.1]
            - name: m2
              addresses: [10.0.0.2, 10.1.0.2]
        """;

    private static (ClusterConfig? Config, IReadOnlyList<ConfigError> Errors) Parse(string modules, string cluster = Cluster) =>
        ConfigLoader.Parse(cluster + "\nmodules:\n" + modules, "m.yaml");

    [Fact]
    public void Parse_Minimal_AppliesTheDefaults()
    {
        var (config, errors) = Parse("""
              - name: pg
                type: mirror
                vips: [198.18.0.200]
                interface: eth0
                directories:
                  - path: /srv/pgdata/
            """);

        Assert.Empty(errors);
        Assert.Empty(config!.Farms);
        var mirror = Assert.Single(config.Mirrors);
        var directory = Assert.Single(mirror.Directories);
        Assert.Equal("/srv/pgdata", directory.Path);
        Assert.Equal("/var/lib/safekit/pg/data/srv/pgdata", directory.Data);
        Assert.Equal(ReplicationMode.Sync, directory.Mode);
        Assert.Equal(MirrorModuleConfig.DefaultReplicationPort, mirror.ReplicationPort);
        Assert.Equal(0, mirror.ReplicationNetwork);
        Assert.Equal(MirrorModuleConfig.DefaultStallTimeoutMilliseconds, mirror.StallTimeoutMilliseconds);
        Assert.Equal((0, 0), (mirror.ResyncMegabitsPerSecond, mirror.ResyncStreams));
        Assert.Empty(mirror.Witnesses);
        Assert.Equal("/var/lib/safekit/pg", mirror.StateDirectory);
    }

    [Fact]
    public void Parse_EveryKey()
    {
        var (config, errors) = Parse("""
              - name: pg
                type: mirror
                vips: [198.18.0.200, "2001:2::200"]
                interface: eth1
                directories:
                  - {path: /srv/pgdata, data: /data/pg, mode: fsync}
                  - {path: /srv/www, data: /data/www}
                replication: {port: 5000, network: 1, stall_timeout_ms: 900, resync_mbps: 800, resync_streams: 8}
                witness: [198.18.0.1, 198.18.0.2]
                startup_wait_ms: 1000
                state_dir: /data/state
                scripts: {start: /bin/true, stop: /bin/true}
                checkers:
                  - tcp: 5432
            """);

        Assert.Empty(errors);
        var mirror = Assert.Single(config!.Mirrors);
        Assert.Equal([IPAddress.Parse("198.18.0.200"), IPAddress.Parse("2001:2::200")], mirror.Vips);
        Assert.Equal(new MirrorDirectoryConfig("/srv/pgdata", "/data/pg", ReplicationMode.Fsync), mirror.Directories[0]);
        Assert.Equal(new MirrorDirectoryConfig("/srv/www", "/data/www", ReplicationMode.Sync), mirror.Directories[1]);
        Assert.Equal((5000, 1, 900), (mirror.ReplicationPort, mirror.ReplicationNetwork, mirror.StallTimeoutMilliseconds));
        Assert.Equal((800, 8), (mirror.ResyncMegabitsPerSecond, mirror.ResyncStreams));
        Assert.Equal(2, mirror.Witnesses.Count);
        Assert.Equal(1000, mirror.StartupWaitMilliseconds);
        Assert.Equal("/data/state", mirror.StateDirectory);
        Assert.Single(mirror.Checkers);
    }

    [Fact]
    public void Parse_ThreeNodes_IsAnErrorOnTheType()
    {
        const string three = """
            cluster:
              name: db
              key_file: /etc/safekit/db.key
              nodes:
                - {name: m1, address: 10.0.0.1}
                - {name: m2, address: 10.0.0.2}
                - {name: m3, address: 10.0.0.3}
            """;
        var (config, errors) = Parse("""
              - name: pg
                type: mirror
                vips: [198.18.0.200]
                interface: eth0
                directories: [{path: /srv/pg}]
            """, three);

        Assert.Null(config);
        Assert.Contains(errors, e => e.Key == "modules[0].type" && e.Message.Contains("exactly two nodes", StringComparison.Ordinal) && e.Line > 0);
    }

    [Theory]
    [InlineData("directories: [{path: /srv/a}, {path: /srv/a/b}]", "modules[0].directories[0].path", "overlaps")]
    [InlineData("directories: [{path: /srv/a, data: /srv/a/data}]", "modules[0].directories[0].data", "overlaps its own path")]
    [InlineData("directories: [{path: /srv/a, mode: async}]", "modules[0].directories[0].mode", "")]
    [InlineData("directories: [{path: srv/a}]", "modules[0].directories[0].path", "not an absolute path")]
    [InlineData("directories: [{path: /}]", "modules[0].directories[0].path", "cannot be replicated")]
    [InlineData("directories: []", "modules[0].directories", "at least one directory")]
    [InlineData("directories: [{path: /srv/a}]\n    replication: {network: 2}", "modules[0].replication.network", "does not exist")]
    [InlineData("directories: [{path: /srv/a}]\n    witness: [not-an-address]", "modules[0].witness[0]", "")]
    [InlineData("directories: [{path: /srv/a}]\n    replication: {resync_streams: -1}", "modules[0].replication.resync_streams", "")]
    [InlineData("directories: [{path: /srv/a}]\n    replication: {resync_streams: 17}", "modules[0].replication.resync_streams", "")]
    [InlineData("directories: [{path: /srv/a}]\n    buckets: 4", "modules[0].buckets", "unknown key")]
    public void Parse_BadMirror_NamesTheKey(string extra, string key, string message)
    {
        var (config, errors) = Parse($"""
              - name: pg
                type: mirror
                vips: [198.18.0.200]
                interface: eth0
                {extra}
            """);

        Assert.Null(config);
        Assert.Contains(errors, e => e.Key == key && e.Message.Contains(message, StringComparison.Ordinal) && e.File == "m.yaml");
    }

    [Fact]
    public void Parse_AFarmAndAMirror_IsRefused()
    {
        var (config, errors) = Parse("""
              - name: web
                type: farm
                vips: [198.18.0.100]
                interface: eth0
              - name: pg
                type: mirror
                vips: [198.18.0.200]
                interface: eth0
                directories: [{path: /srv/pg}]
            """);

        Assert.Null(config);
        Assert.Contains(errors, e => e.Key == "modules[1]" && e.Message.Contains("one module", StringComparison.Ordinal));
    }

    [Fact]
    public void ReloadPlan_AnyMirrorChange_NeedsARestart()
    {
        const string Module = """
              - name: pg
                type: mirror
                vips: [198.18.0.200]
                interface: eth0
                directories: [{path: /srv/pg}]
            """;
        var running = Parse(Module).Config!;
        var next = Parse(Module.Replace("/srv/pg", "/srv/pg2", StringComparison.Ordinal)).Config!;

        Assert.True(ReloadPlan.Compare(running, Parse(Module).Config!, "m1").Applicable);
        var plan = ReloadPlan.Compare(running, next, "m1");
        Assert.False(plan.Applicable);
        Assert.Contains(plan.RestartRequired, r => r.Contains("/srv/pg2", StringComparison.Ordinal));
    }
}
