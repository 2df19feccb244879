using System.Globalization;
using System.Text.Json;

namespace SafeKit.Perf;

/// <summary>
/// An AF_PACKET sender in the client floods UDP to the VIP from random sources at stepped rates;
/// every node must decide every frame. For each dataplane (userspace ring, kernel nftables) the
/// result is the highest offered rate at which every node decided at least 99.9% of the frames,
/// and the rate every node kept up with when the sender runs flat out.
/// </summary>
internal static class PacketRateBenchmark
{
    private static readonly int[] Rates = [25_000, 50_000, 100_000, 200_000, 300_000, 0];

    public static void Run(string results, int seconds)
    {
        var lossless = new Dictionary<string, double>();
        var flatOut = new Dictionary<string, double>();
        var sender = new List<double>();
        var steps = new List<object>();
        foreach (var (name, options) in new[] { ("userspace", new[] { "--dataplane", "userspace" }), ("kernel", new[] { "--dataplane", "kernel" }) })
        {
            using var lab = BenchLab.Up(name, options);
            var mac = lab.ClusterMac();
            lossless[name] = 0;
            foreach (var rate in Rates)
            {
                var before = lab.Counters();
                var output = lab.Exec("client", BenchLab.Loadgen, "frames", "--interface", "eth0", "--dst-mac", mac, "--dst-ip", "198.18.0.100",
                    "--seconds", seconds.ToString(CultureInfo.InvariantCulture), "--rate", rate.ToString(CultureInfo.InvariantCulture), "--dport", "9").Output;
                var report = JsonDocument.Parse(output).RootElement;
                var sent = report.GetProperty("sent").GetInt64();
                var elapsed = report.GetProperty("seconds").GetDouble();
                Thread.Sleep(500);
                var after = lab.Counters();
                // VIP frames decided by each node (accepted here or rejected as another node's).
                var decided = after.Select((n, i) => Decided(n.Counters) - Decided(before[i].Counters)).ToList();
                var dropped = after.Select((n, i) => n.Dropped - before[i].Dropped).Sum();
                var worst = decided.Min() / (double)sent;
                var offered = sent / elapsed;
                if (rate == 0)
                {
                    flatOut[name] = decided.Min() / elapsed;
                    sender.Add(offered);
                }
                else if (worst >= 0.999)
                {
                    lossless[name] = Math.Max(lossless[name], offered);
                }

                steps.Add(new { dataplane = name, target = rate, offered = Math.Round(offered), sent, decided, dropped, worst_share = Math.Round(worst, 4) });
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name,-9} offered {offered,9:F0} pps  worst node decided {worst * 100,6:F2}%  ring drops {dropped}"));
            }
        }

        Report(results, lossless, flatOut, sender, steps);
    }

    private static long Decided(IReadOnlyDictionary<string, long> counters) => counters["accepted"] + counters["rejected"];

    private static void Report(string results, Dictionary<string, double> lossless, Dictionary<string, double> flatOut, List<double> sender, List<object> steps)
    {
        Results.Report(results, "e2e-pps",
        [
            ("userspace_lossless_pps", Math.Round(lossless["userspace"])),
            ("kernel_lossless_pps", Math.Round(lossless["kernel"])),
            ("userspace_flatout_decided_pps", Math.Round(flatOut["userspace"])),
            ("kernel_flatout_decided_pps", Math.Round(flatOut["kernel"])),
            ("flatout_ratio", Math.Round(flatOut["userspace"] / Math.Max(1, flatOut["kernel"]), 3)),
            ("sender_max_pps", Math.Round(sender.Max())),
        ], steps);
    }
}
