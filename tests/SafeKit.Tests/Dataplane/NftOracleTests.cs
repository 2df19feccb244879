using System.Net;
using System.Text.Json;
using SafeKit.Dataplane.Flows;
using SafeKit.Tests.Infrastructure;

namespace SafeKit.Tests.Dataplane;

/// <summary>
/// The kernel is the oracle for the hash: random-source UDP frames are sent into a namespace where
/// nftables computes <c>jhash ... mod N seed S</c> and records (source, port, hash) in dynamic
/// sets; every recorded value must equal what the dataplane computes.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class NftOracleTests
{
    [Fact]
    public void JHash_EqualsNftablesJhash_ForIpv4AndIpv6KeysSeedsAndModuli()
    {
        Tools.RequireLab();
        using var ns = new TestNamespace(Tools.RunTag() + "-oracle");
        ns.Ip("link", "add", "name", "va", "type", "veth", "peer", "name", "vb");
        ns.Ip("link", "set", "va", "up");
        ns.Ip("link", "set", "vb", "up");
        ns.Ip("addr", "add", "198.18.99.1/24", "dev", "vb");
        ns.Ip("-6", "addr", "add", "2001:2:99::1/64", "dev", "vb", "nodad");
        ns.ExecWithInput("""
            table inet oracle {
              set v4port { type ipv4_addr . inet_service . mark; flags dynamic; size 65536; }
              set v4ip { type ipv4_addr . mark; flags dynamic; size 65536; }
              set v6port { type ipv6_addr . inet_service . mark; flags dynamic; size 65536; }
              set v6ip { type ipv6_addr . mark; flags dynamic; size 65536; }
              chain pre {
                type filter hook prerouting priority -300; policy accept;
                iifname "vb" ip daddr 198.18.99.1 udp dport 9 meta mark set jhash ip saddr . th sport mod 4096 seed 0x5afe0001 update @v4port { ip saddr . udp sport . meta mark }
                iifname "vb" ip daddr 198.18.99.1 udp dport 9 meta mark set jhash ip saddr mod 1000 seed 0xdeadbeef update @v4ip { ip saddr . meta mark }
                iifname "vb" ip6 daddr 2001:2:99::1 udp dport 9 meta mark set jhash ip6 saddr . th sport mod 65536 seed 0x7 update @v6port { ip6 saddr . udp sport . meta mark }
                iifname "vb" ip6 daddr 2001:2:99::1 udp dport 9 meta mark set jhash ip6 saddr mod 4096 seed 0x0 update @v6ip { ip6 saddr . meta mark }
              }
            }
            """, "nft", "-f", "-");
        var mac = ns.ExecChecked("cat", "/sys/class/net/vb/address").Trim();
        ns.ExecChecked(Tools.Loadgen, "frames", "--interface", "va", "--dst-mac", mac, "--dst-ip", "198.18.99.1", "--count", "3000", "--seed", "21", "--rate", "50000");
        ns.ExecChecked(Tools.Loadgen, "frames", "--interface", "va", "--dst-mac", mac, "--dst-ip", "2001:2:99::1", "--count", "2000", "--seed", "22", "--rate", "50000");

        var checkedCount = 0;
        checkedCount += Compare(ns, "v4port", Affinity.ClientIpPort, 0x5afe0001, 4096);
        checkedCount += Compare(ns, "v4ip", Affinity.ClientIp, 0xdeadbeef, 1000);
        checkedCount += Compare(ns, "v6port", Affinity.ClientIpPort, 0x7, 65536);
        checkedCount += Compare(ns, "v6ip", Affinity.ClientIp, 0x0, 4096);
        Assert.True(checkedCount > 9000, $"only {checkedCount} kernel hashes were compared");
    }

    private static int Compare(TestNamespace ns, string set, Affinity affinity, uint seed, uint modulus)
    {
        var json = ns.ExecChecked("nft", "-j", "list", "set", "inet", "oracle", set);
        var elements = JsonDocument.Parse(json).RootElement.GetProperty("nftables").EnumerateArray()
            .Where(e => e.TryGetProperty("set", out _))
            .SelectMany(e => e.GetProperty("set").GetProperty("elem").EnumerateArray())
            .ToList();
        var hasher = new FlowHasher(affinity, seed);
        foreach (var element in elements)
        {
            var parts = element.GetProperty("concat").EnumerateArray().ToList();
            var address = IPAddress.Parse(parts[0].GetString()!).GetAddressBytes();
            var withPort = parts.Count == 3;
            var port = withPort ? (ushort)parts[1].GetInt32() : (ushort)0;
            var kernel = parts[^1].GetUInt32();
            var ours = JHash.Scale(hasher.Hash(address, withPort, port), modulus);
            Assert.True(kernel == ours, $"{set}: {parts[0]} port {port}: kernel {kernel}, dataplane {ours}");
        }

        Assert.True(elements.Count > 500, $"{set} recorded only {elements.Count} flows");
        return elements.Count;
    }
}
