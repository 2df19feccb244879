using System.Globalization;
using System.Text.Json;

namespace SafeKit.Perf;

/// <summary>
/// Connections broken by planned membership changes: while clients keep requesting (keep-alive
/// and new connections) and downloading (2 MiB slowly), a node is drained (SIGTERM: it leaves the
/// view and finishes its connections) and joins again, node after node. Every failed request or
/// incomplete download counts as a broken connection. Target: 0. A reused keep-alive connection
/// the server closed (or reset, the request having arrived as it closed the idle connection) before
/// a byte of the answer is retried once on a new connection, as curl, browsers and Go's client do
/// for idempotent requests (RFC 9112 §9.3.1): such retries are counted apart, not as broken.
/// </summary>
internal static class RejoinBenchmark
{
    public static void Run(string results, int cycles)
    {
        using var lab = BenchLab.Up("rejoin", "--dataplane", "userspace");
        var seconds = (cycles * 9.0) + 10;
        var probe = Task.Run(() => lab.Exec(TimeSpan.FromSeconds(seconds + 120), "client", BenchLab.Loadgen, "probe", "--host", "198.18.0.100", "--seconds", seconds.ToString(CultureInfo.InvariantCulture), "--new", "4", "--keepalive", "6", "--interval-ms", "20", "--timeout-ms", "5000").Output);
        var downloads = new List<Task<string>>();
        var started = DateTime.UtcNow;
        var events = new List<string>();
        long Now() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        for (var c = 0; c < cycles; c++)
        {
            var node = $"n{(c % 3) + 1}";
            for (var d = 0; d < 3; d++)
            {
                downloads.Add(Task.Run(() => lab.Exec("client", "curl", "-s", "-m", "60", "-r", "0-2097151", "-o", "/dev/null", "-w", "%{http_code} %{size_download} port=%{local_port} exit=%{exitcode} %{errormsg}", "http://198.18.0.100/download").Output.Trim() + $" ended={Now()}"));
            }

            Thread.Sleep(700);
            events.Add($"{Now()} stop {node}");
            lab.Lab("stop", node);
            WaitUntilStopped(lab, node);
            events.Add($"{Now()} stopped {node}");
            lab.Lab("start", node);
            events.Add($"{Now()} up {node}");
            Thread.Sleep(1500);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"cycle {c + 1}/{cycles}: {node} drained and joined ({(DateTime.UtcNow - started).TotalSeconds:F0} s)"));
        }

        var finished = Task.WhenAll(downloads).Result;
        var samples = JsonDocument.Parse(probe.Result).RootElement.GetProperty("samples").EnumerateArray().ToList();
        var failedRequests = samples.Count(s => s[4].GetInt32() == 0);
        var reusedRetries = samples.Count(s => s[6].GetInt32() == 1);
        var failedDownloads = finished.Count(r => !r.StartsWith("206 2097152 ", StringComparison.Ordinal));
        var stalls = samples.Where(s => s[4].GetInt32() == 1).Select(s => (double)(s[3].GetInt64() - s[2].GetInt64())).Order().ToArray();
        Results.Report(results, "rejoin",
        [
            ("broken_connections", failedRequests + failedDownloads),
            ("cycles", cycles),
            ("requests", samples.Count),
            ("failed_requests", failedRequests),
            ("reused_connection_retries", reusedRetries),
            ("downloads", finished.Length),
            ("failed_downloads", failedDownloads),
            ("request_p99_ms", stalls[Math.Clamp((int)Math.Ceiling(0.99 * stalls.Length) - 1, 0, stalls.Length - 1)]),
            ("request_max_ms", stalls[^1]),
        ], new
        {
            failed_downloads = finished.Where(r => !r.StartsWith("206 2097152 ", StringComparison.Ordinal)).ToList(),
            // Every failed request: stream, kind (0 new, 1 keep-alive), start, end, node, local port, error.
            failures = samples.Where(s => s[4].GetInt32() == 0).Select(s => $"{s[0]} {s[1]} {s[2]} {s[3]} {s[5]} {s[7]} {s[8]}").ToList(),
            events,
        });
    }

    private static void WaitUntilStopped(BenchLab lab, string node)
    {
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (DateTime.UtcNow < deadline)
        {
            var status = lab.Status();
            if (status.GetProperty("processes").EnumerateArray().Any(p => p.GetProperty("role").GetString() == "safekitd" && p.GetProperty("namespace").GetString()!.EndsWith("-" + node, StringComparison.Ordinal) && !p.GetProperty("running").GetBoolean()))
            {
                return;
            }

            Thread.Sleep(200);
        }

        throw new TimeoutException($"{node} did not finish draining");
    }
}
