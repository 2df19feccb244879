using System.Net;
using SafeKit.ControlPlane.Configuration;
using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Engine;
using SafeKit.Dataplane.Flows;

namespace SafeKit.Tests.Configuration;

public sealed class ConfigLoaderTests
{
    private const string Valid = """
        cluster:
          name: prod
          key_file: /etc/safekit/prod.key
          heartbeat: {port: 4900, interval_ms: 50, timeout_ms: 400}
          nodes:
            - name: web1
              addresses: [10.0.0.1, 10.1.0.1]
            - name: web2
              addresses: [10.0.0.2, 10.1.0.2]
              weight: 3
        modules:
          - name: web
            type: farm
            vips: [198.18.0.100, "2001:2::100"]
            interface: eth0
            l2_mode: multicast
            affinity: client-ip
            buckets: 1024
            hash_seed: 0x1234abcd
            dataplane: kernel
            capture: pcap
            workers: 2
        """;

    [Fact]
    public void Parse_ValidFile_ReadsEveryKey()
    {
        var (config, errors) = ConfigLoader.Parse(Valid, "c.yaml");

        Assert.Empty(errors);
        Assert.NotNull(config);
        Assert.Equal("prod", config.Name);
        Assert.Equal(["web1", "web2"], config.Nodes.Select(n => n.Name));
        Assert.Equal(3, config.Nodes[1].Weight);
        Assert.Equal([IPAddress.Parse("10.0.0.2"), IPAddress.Parse("10.1.0.2")], config.Nodes[1].Addresses);
        Assert.Equal(IPAddress.Parse("10.0.0.2"), config.Nodes[1].Address);
        Assert.Equal("/etc/safekit/prod.key", config.KeyFile);
        Assert.Equal(new HeartbeatConfig(4900, 50, 400), config.Heartbeat);
        var farm = Assert.Single(config.Farms);
        Assert.Equal([IPAddress.Parse("198.18.0.100"), IPAddress.Parse("2001:2::100")], farm.Vips);
        Assert.Equal(L2Mode.Multicast, farm.L2Mode);
        Assert.Equal(Affinity.ClientIp, farm.Affinity);
        Assert.Equal(1024, farm.Buckets);
        Assert.Equal(0x1234abcdu, farm.HashSeed);
        Assert.Equal(DataplaneMode.Kernel, farm.Dataplane);
        Assert.Equal("sk-web", farm.Tun);
        Assert.Equal(2, farm.Workers);
    }

    [Fact]
    public void Parse_Defaults_AreDocumentedOnes()
    {
        var (config, errors) = ConfigLoader.Parse("""
            cluster:
              name: c1
              nodes: [{name: a, address: 10.0.0.1}]
            modules:
              - {name: web, type: farm, vips: 198.18.0.100, interface: eth0}
            """, "c.yaml");

        Assert.Empty(errors);
        var farm = config!.Farms[0];
        Assert.Equal(L2Mode.Unicast, farm.L2Mode);
        Assert.Equal(Affinity.ClientIpPort, farm.Affinity);
        Assert.Equal(4096, farm.Buckets);
        Assert.Equal(ConfigLoader.DefaultHashSeed("c1"), farm.HashSeed);
        Assert.Equal(1, config.Nodes[0].Weight);
        Assert.Equal(new HeartbeatConfig(), config.Heartbeat);
        Assert.Null(config.KeyFile);
    }

    [Fact]
    public void Parse_SeveralNodesWithoutKey_SaysHowToMakeOne()
    {
        var (_, errors) = ConfigLoader.Parse(Valid.Replace("  key_file: /etc/safekit/prod.key\n", "", StringComparison.Ordinal), "c.yaml");

        var error = Assert.Single(errors);
        Assert.Equal("cluster.key_file", error.Key);
        Assert.Contains("head -c 32 /dev/urandom", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_HeartbeatTimeoutUnderThreeIntervals_IsRejected()
    {
        var (_, errors) = ConfigLoader.Parse(Valid.Replace("timeout_ms: 400", "timeout_ms: 120", StringComparison.Ordinal), "c.yaml");

        Assert.Contains(errors, e => e.Key == "cluster.heartbeat.timeout_ms" && e.Line == 4);
    }

    [Fact]
    public void Parse_NodesOnDifferentNumbersOfNetworks_IsRejected()
    {
        var (_, errors) = ConfigLoader.Parse(Valid.Replace("[10.0.0.2, 10.1.0.2]", "[10.0.0.2]", StringComparison.Ordinal), "c.yaml");

        Assert.Contains(errors, e => e.Key == "cluster.nodes[1]" && e.Message.Contains("one address on each heartbeat network", StringComparison.Ordinal));
    }

    [Fact]
    public void Parse_AddressAndAddresses_IsRejected()
    {
        var (_, errors) = ConfigLoader.Parse(Valid.Replace("      addresses: [10.0.0.1, 10.1.0.1]", "      address: 10.0.0.1\n      addresses: [10.0.0.1, 10.1.0.1]", StringComparison.Ordinal), "c.yaml");

        Assert.Contains(errors, e => e.Key == "cluster.nodes[0].address" && e.Message.Contains("not both", StringComparison.Ordinal));
    }

    [Fact]
    public void Parse_UnknownKey_IsAnErrorWithLineAndKey()
    {
        var (config, errors) = ConfigLoader.Parse(Valid.Replace("    workers: 2", "    workers: 2\n    wokers: 3", StringComparison.Ordinal), "c.yaml");

        Assert.Null(config);
        var error = Assert.Single(errors);
        Assert.Equal("c.yaml", error.File);
        Assert.Equal(23, error.Line);
        Assert.Equal("modules[0].wokers", error.Key);
        Assert.Contains("unknown key", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_ManyProblems_AreAllReported()
    {
        var text = """
            cluster:
              name: "bad name"
              nodes:
                - name: a
                  address: 10.0.0.300
                - name: a
                  address: 10.0.0.2
                  weight: 0
            modules:
              - name: web
                type: farm
                vips: [not-an-ip]
                interface: eth0
                l2_mode: broadcast
                buckets: 1000
            """;
        var (_, errors) = ConfigLoader.Parse(text, "c.yaml");

        var keys = errors.Select(e => e.Key).ToList();
        Assert.Contains("cluster.name", keys);
        Assert.Contains("cluster.nodes[0].address", keys);
        Assert.Contains("cluster.nodes[1].name", keys);
        Assert.Contains("cluster.nodes[1].weight", keys);
        Assert.Contains("modules[0].vips[0]", keys);
        Assert.Contains("modules[0].l2_mode", keys);
        Assert.Contains("modules[0].buckets", keys);
        Assert.All(errors, e => Assert.True(e.Line > 0, $"{e} has no line"));
        Assert.Contains(errors, e => e.Key == "cluster.nodes[0].address" && e.Line == 5);
    }

    [Fact]
    public void Parse_MissingRequired_NamesTheKey()
    {
        var (_, errors) = ConfigLoader.Parse("cluster:\n  name: x\nmodules:\n  - name: web\n    type: farm\n", "c.yaml");

        var keys = errors.Select(e => e.Key).ToList();
        Assert.Contains("cluster.nodes", keys);
        Assert.Contains("modules[0].vips", keys);
        Assert.Contains("modules[0].interface", keys);
        Assert.Equal(keys.Count, keys.Distinct().Count());
    }

    [Fact]
    public void Parse_SyntaxError_GivesTheLine()
    {
        var (_, errors) = ConfigLoader.Parse("cluster:\n  name: x\n  nodes: [a\n", "c.yaml");

        var error = Assert.Single(errors);
        Assert.Equal("(syntax)", error.Key);
        Assert.True(error.Line >= 3);
    }

    [Fact]
    public void Parse_MacOfTheWrongKind_IsRejected()
    {
        var (_, errors) = ConfigLoader.Parse(Valid.Replace("    workers: 2", "    workers: 2\n    cluster_mac: 02:00:00:00:00:01", StringComparison.Ordinal), "c.yaml");

        Assert.Contains(errors, e => e.Key == "modules[0].cluster_mac" && e.Message.Contains("multicast", StringComparison.Ordinal));
    }

    [Fact]
    public void Load_MissingFile_SaysSo()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load("/nonexistent/cluster.yaml"));
        Assert.Contains("file not found", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Resolve_NamedNode_IsFound_UnknownNodeIsAnError()
    {
        var (config, _) = ConfigLoader.Parse(Valid, "c.yaml");

        Assert.Equal("web2", NodeIdentity.Resolve(config!, "web2").Name);
        var e = Assert.Throws<ConfigException>(() => NodeIdentity.Resolve(config!, "web9"));
        Assert.Contains("web9", e.Message, StringComparison.Ordinal);
    }
}
