using System.Globalization;

namespace SafeKit.Perf;

/// <summary>
/// wrk through the VIP, keep-alive and one connection per request, for the userspace dataplane
/// (ring and libpcap capture) and for the peer, the in-kernel nftables jhash filter, in the same
/// run; rounds alternate the order so drift hits every variant alike. Reports medians and ratios.
/// </summary>
internal static class HttpBenchmark
{
    private static readonly (string Name, string[] Options)[] Variants =
    [
        ("kernel", ["--dataplane", "kernel"]),
        ("ring", ["--dataplane", "userspace", "--capture", "ring"]),
        ("pcap", ["--dataplane", "userspace", "--capture", "pcap"]),
    ];

    public static void Run(string results, int rounds, int seconds, int connections)
    {
        var keepalive = Variants.ToDictionary(v => v.Name, _ => new List<double>());
        var close = Variants.ToDictionary(v => v.Name, _ => new List<double>());
        var drops = Variants.ToDictionary(v => v.Name, _ => 0L);
        for (var round = 0; round < rounds; round++)
        {
            var order = round % 2 == 0 ? Variants : Variants.Reverse().ToArray();
            foreach (var (name, options) in order)
            {
                using var lab = BenchLab.Up(name, options);
                var url = "http://198.18.0.100/";
                var duration = seconds.ToString(CultureInfo.InvariantCulture) + "s";
                var c = connections.ToString(CultureInfo.InvariantCulture);
                lab.Exec("client", "wrk", "-t2", "-c" + c, "-d2s", url);
                var ka = BenchLab.ParseWrk(lab.Exec("client", "wrk", "-t2", "-c" + c, "-d" + duration, url).Output);
                var nc = BenchLab.ParseWrk(lab.Exec("client", "wrk", "-t2", "-c" + c, "-d" + duration, "-H", "Connection: close", url).Output);
                keepalive[name].Add(ka);
                close[name].Add(nc);
                drops[name] += lab.Counters().Sum(n => n.Dropped);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"round {round + 1} {name,-7} keep-alive {ka,9:F0} req/s   new connections {nc,8:F0} conn/s"));
            }
        }

        var kernelKa = Results.Median(keepalive["kernel"]);
        var kernelNc = Results.Median(close["kernel"]);
        var metrics = new List<(string, double)>
        {
            ("userspace_keepalive_rps", Math.Round(Results.Median(keepalive["ring"]))),
            ("kernel_keepalive_rps", Math.Round(kernelKa)),
            ("keepalive_ratio", Math.Round(Results.Median(keepalive["ring"]) / kernelKa, 3)),
            ("userspace_conn_per_s", Math.Round(Results.Median(close["ring"]))),
            ("kernel_conn_per_s", Math.Round(kernelNc)),
            ("conn_ratio", Math.Round(Results.Median(close["ring"]) / kernelNc, 3)),
            ("pcap_keepalive_rps", Math.Round(Results.Median(keepalive["pcap"]))),
            ("pcap_conn_per_s", Math.Round(Results.Median(close["pcap"]))),
            ("capture_drops", drops["ring"] + drops["pcap"]),
            ("rounds", rounds),
        };
        Results.Report(results, "e2e-http", metrics, new { keepalive, close, seconds, connections, drops });
    }
}
