using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using SafeKit.Dataplane.Buckets;
using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Engine;
using SafeKit.Dataplane.Flows;
using SafeKit.Native.Host;

namespace SafeKit.Dataplane.Kernel;

/// <summary>
/// The accept rule compiled to nftables: a netdev ingress chain on the farm interface computes
/// the same jhash as <see cref="FlowHasher"/> (same key layout, same seed, same scaling) and lets
/// a frame sent to the cluster MAC reach the stack (<c>meta pkttype set host</c>) only when its
/// bucket is in the set of owned buckets. A new table replaces the old one in one transaction.
/// </summary>
public sealed class NftFastPath : IDisposable
{
    private readonly FarmDataplaneOptions _options;
    private readonly ClusterMac _mac;
    private bool _applied;
    private (long Accepted, long Rejected) _carried;

    public NftFastPath(FarmDataplaneOptions options, ClusterMac mac)
    {
        _options = options;
        _mac = mac;
        TableName = TableNameOf(options.Module);
    }

    /// <summary>Name of the netdev table.</summary>
    public string TableName { get; }

    /// <summary>Table name for a module: <c>safekit_</c> + its name with anything but [a-z0-9_] replaced.</summary>
    public static string TableNameOf(string module)
    {
        ArgumentNullException.ThrowIfNull(module);
        var name = new StringBuilder("safekit_");
        foreach (var c in module)
        {
            name.Append(char.IsAsciiLetterOrDigit(c) ? char.ToLowerInvariant(c) : '_');
        }

        return name.ToString();
    }

    /// <summary>
    /// Installs or replaces the rules for <paramref name="state"/>: the kernel accepts the buckets
    /// this node owns or shares (it keeps no flow table: no pinning on the kernel path).
    /// </summary>
    public void Apply(ForwardingState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (_applied)
        {
            // Replacing the table resets its counters: carry them over.
            var (accepted, rejected) = ReadCounters();
            _carried = (accepted, rejected);
        }

        var script = new StringBuilder();
        script.Append("table netdev ").Append(TableName).AppendLine();
        script.Append("delete table netdev ").Append(TableName).AppendLine();
        script.Append(BuildRuleset(state));
        CommandRunner.RunChecked("nft", ["-f", "-"], script.ToString());
        _applied = true;
    }

    /// <summary>The ruleset text (exposed for tests and for operators who want to read it).</summary>
    public string BuildRuleset(ForwardingState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var o = _options;
        var seed = "0x" + o.HashSeed.ToString("x8", CultureInfo.InvariantCulture);
        var mod = o.BucketCount.ToString(CultureInfo.InvariantCulture);
        var text = new StringBuilder();
        text.Append("table netdev ").Append(TableName).AppendLine(" {");
        text.AppendLine("  set owned {");
        text.AppendLine("    type mark; flags interval;");
        var ranges = AcceptedRanges(state.Modes);
        if (ranges.Count > 0)
        {
            text.Append("    elements = { ")
                .AppendJoin(", ", ranges.Select(r => r.First == r.Last ? $"{r.First}" : $"{r.First}-{r.Last}"))
                .AppendLine(" }");
        }

        text.AppendLine("  }");
        text.AppendLine("  chain ingress {");
        text.Append("    type filter hook ingress device \"").Append(o.Interface).AppendLine("\" priority -100; policy accept;");
        var macs = new HashSet<string>(StringComparer.Ordinal) { ClusterMac.Format(_mac.IPv4Mac), ClusterMac.Format(_mac.IPv6Mac) };
        text.Append("    ether daddr != { ").AppendJoin(", ", macs).AppendLine(" } accept");
        AppendFamily(text, "ip", o.Vips.Where(v => v.AddressFamily == AddressFamily.InterNetwork).Select(v => v.ToString()).ToList(), mod, seed);
        AppendFamily(text, "ip6", o.Vips.Where(v => v.AddressFamily == AddressFamily.InterNetworkV6).Select(v => v.ToString()).ToList(), mod, seed);
        text.AppendLine("  }");
        text.AppendLine("  chain decide {");
        text.AppendLine("    meta mark @owned meta mark set 0 meta pkttype set host counter accept");
        text.AppendLine("    counter drop");
        text.AppendLine("  }");
        text.AppendLine("}");
        return text.ToString();
    }

    /// <summary>Packets the kernel accepted and rejected since the rules were first applied.</summary>
    public (long Accepted, long Rejected) ReadCounters()
    {
        var result = CommandRunner.Run("nft", ["-j", "list", "chain", "netdev", TableName, "decide"]);
        if (!result.Succeeded)
        {
            return _carried;
        }

        var counters = new List<long>();
        using var document = JsonDocument.Parse(result.Output);
        foreach (var item in document.RootElement.GetProperty("nftables").EnumerateArray())
        {
            if (!item.TryGetProperty("rule", out var rule))
            {
                continue;
            }

            foreach (var expression in rule.GetProperty("expr").EnumerateArray())
            {
                if (expression.TryGetProperty("counter", out var counter))
                {
                    counters.Add(counter.GetProperty("packets").GetInt64());
                }
            }
        }

        return counters.Count == 2 ? (_carried.Accepted + counters[0], _carried.Rejected + counters[1]) : _carried;
    }

    public void Dispose()
    {
        if (_applied)
        {
            _ = CommandRunner.Run("nft", ["delete", "table", "netdev", TableName]);
            _applied = false;
        }
    }

    private static List<(int First, int Last)> AcceptedRanges(BucketMode[] modes)
    {
        var ranges = new List<(int, int)>();
        var start = -1;
        for (var i = 0; i <= modes.Length; i++)
        {
            var accepted = i < modes.Length && modes[i] is BucketMode.Owned or BucketMode.Shared;
            if (accepted && start < 0)
            {
                start = i;
            }
            else if (!accepted && start >= 0)
            {
                ranges.Add((start, i - 1));
                start = -1;
            }
        }

        return ranges;
    }

    private void AppendFamily(StringBuilder text, string family, List<string> vips, string mod, string seed)
    {
        if (vips.Count == 0)
        {
            return;
        }

        var set = "{ " + string.Join(", ", vips) + " }";
        var saddr = family == "ip" ? "ip saddr" : "ip6 saddr";
        if (_options.Affinity == Affinity.ClientIpPort)
        {
            text.Append("    ").Append(family).Append(" daddr ").Append(set)
                .Append(" meta l4proto { tcp, udp, sctp, dccp, udplite } meta mark set jhash ").Append(saddr)
                .Append(" . th sport mod ").Append(mod).Append(" seed ").Append(seed).AppendLine(" goto decide");
        }

        text.Append("    ").Append(family).Append(" daddr ").Append(set)
            .Append(" meta mark set jhash ").Append(saddr).Append(" mod ").Append(mod).Append(" seed ").Append(seed).AppendLine(" goto decide");
    }
}
