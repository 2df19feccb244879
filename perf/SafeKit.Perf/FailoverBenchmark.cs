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
        var probe = Task.Run(() => lab.Exec("client", BenchLab.Loadgen, "probe", "--host", "198.18.0.100", "--seconds", seconds.ToString(CultureInfo.InvariantCulture), "--new", "4", "--keepalive", "4", "--interval-ms", "20", "--timeout-ms", "3000").Output);
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
            .Select(s => new Sample(s[0].GetInt32(), s[1].GetInt32(), s[2].GetInt64(), s[3].GetInt64(), s[4].GetInt32() == 1))
            .ToList();
        var gaps = new List<double>();
        var perKill = new List<object>();
        foreach (var (at, node) in events)
        {
            var gap = 0.0;
            var stream = -1;
            foreach (var group in samples.GroupBy(s => s.Stream))
            {
                var successes = group.Where(s => s.Ok).Select(s => s.End).Order().ToList();
                for (var i = 1; i < successes.Count; i++)
                {
                    // Stalls that begin around the kill; the restart 3 s later is the rejoin benchmark's business.
                    if (successes[i] > at && successes[i - 1] < at + Window && successes[i] - successes[i - 1] > gap)
                    {
                        gap = successes[i] - successes[i - 1];
                        stream = group.Key;
                    }
                }
            }

            gaps.Add(gap);
            perKill.Add(new { at, node, gap_ms = gap, stream, keepalive = stream >= 4 });
        }

        var failed = samples.Count(s => !s.Ok);
        var sorted = gaps.Order().ToArray();
        Results.Report(results, "failover",
        [
            ("gap_p50_ms", Percentile(sorted, 0.50)),
            ("gap_p99_ms", Percentile(sorted, 0.99)),
            ("gap_max_ms", sorted[^1]),
            ("kills", kills),
            ("requests", samples.Count),
            ("failed_requests", failed),
        ], perKill);
    }

    private static double Percentile(double[] sorted, double p) =>
        sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];

    private sealed record Sample(int Stream, int Kind, long Start, long End, bool Ok);
}
