using System.Globalization;
using System.Text.Json;

namespace SafeKit.Perf;

/// <summary>
/// Clients keep sending requests through the VIP (streams of new connections and keep-alive
/// connections, each a request every 20 ms) while nodes are killed with SIGKILL one after the
/// other and started again. For every kill the client-visible gap is the longest time any stream
/// went without a successful answer around it (think time included). Reports p50/p99/max.
/// </summary>
internal static class FailoverBenchmark
{
    private const int Settle = 2000;
    private const int Outage = 3000;
    private const int Window = 1500;

    public static void Run(string results, int kills)
    {
        using var lab = BenchLab.Up("failover", "--dataplane", "userspace");
        var cycle = Settle + Outage + 2500 + Settle;
        var seconds = ((kills * cycle) + 4000) / 1000.0;
        var probe = Task.Run(() => lab.Exec(TimeSpan.FromSeconds(seconds + 120), "client", BenchLab.Loadgen, "probe", "--host", "198.18.0.100", "--seconds", seconds.ToString(CultureInfo.InvariantCulture), "--new", "4", "--keepalive", "4", "--interval-ms", "20", "--timeout-ms", "3000").Output);
        var events = new List<(long At, string Node)>();
        Thread.Sleep(Settle);
        for (var k = 0; k < kills; k++)
        {
            var node = $"n{(k % 3) + 1}";
            Thread.Sleep(Settle);
            var at = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            lab.Lab("kill", node);
            events.Add((at, node));
            Thread.Sleep(Outage);
            lab.Lab("start", node);
            Thread.Sleep(Settle);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"kill {k + 1}/{kills}: {node}"));
        }

        var samples = JsonDocument.Parse(probe.Result).RootElement.GetProperty("samples").EnumerateArray()
            .Select(s => new Sample(s[0].GetInt32(), s[1].GetInt32(), s[2].GetInt64(), s[3].GetInt64(), s[4].GetInt32() == 1, s[5].GetString(), s[7].GetInt32(), s[8].GetString()))
            .ToList();
        var gaps = new List<double>();
        var perKill = new List<object>();
        foreach (var (at, node) in events)
        {
            var gap = 0.0;
            Sample? from = null;
            Sample? to = null;
            foreach (var group in samples.GroupBy(s => s.Stream))
            {
                var successes = group.Where(s => s.Ok).OrderBy(s => s.End).ToList();
                for (var i = 1; i < successes.Count; i++)
                {
                    // Stalls that begin around the kill; the restart 3 s later is the rejoin benchmark's business.
                    var stall = successes[i].End - successes[i - 1].End;
                    if (successes[i].End > at && successes[i - 1].End < at + Window && stall > gap)
                    {
                        gap = stall;
                        (from, to) = (successes[i - 1], successes[i]);
                    }
                }
            }

            gaps.Add(gap);
            // What the stalled stream went through: served by, failures (local port, error, duration), then served by.
            var failures = from is null ? [] : samples
                .Where(s => s.Stream == from.Stream && !s.Ok && s.Start >= from.End && s.End <= to!.End)
                .Select(s => $"{s.Port}:{s.Error}:{s.End - s.Start}ms")
                .ToList();
            perKill.Add(new { at, node, gap_ms = gap, stream = from?.Stream ?? -1, keepalive = from?.Kind == 1, before = from?.Node, after = to?.Node, failures });
        }

        var failed = samples.Count(s => !s.Ok);
        var sorted = gaps.Order().ToArray();
        Results.Report(results, "failover",
        [
            ("gap_p50_ms", Results.Percentile(sorted, 0.50)),
            ("gap_p99_ms", Results.Percentile(sorted, 0.99)),
            ("gap_max_ms", sorted[^1]),
            ("kills", kills),
            ("requests", samples.Count),
            ("failed_requests", failed),
        ], perKill);
    }

    private sealed record Sample(int Stream, int Kind, long Start, long End, bool Ok, string? Node, int Port, string? Error);
}
