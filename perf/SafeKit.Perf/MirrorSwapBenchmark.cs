using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace SafeKit.Perf;

/// <summary>
/// <c>safekit swap</c> measured over many swaps back and forth in one lab pair. Around each swap a
/// file writer appends fsync'd records on PRIM, a PostgreSQL client commits one insert after
/// another through the VIP, and two probers ask NGINX and PostgreSQL on the VIP every 20 ms.
/// Downtime as a client sees it: from the last answer of the old PRIM to the first answer of the
/// new one (HTTP request; PostgreSQL connection + query). Lost: acknowledged records and committed
/// transactions missing on the new PRIM (must be 0). The command's own figures (application
/// stopped, handed over, new PRIM serving) are kept per swap.
/// </summary>
internal static class MirrorSwapBenchmark
{
    private const string Vip = "198.18.0.200";
    private const double LoadSeconds = 20;

    public static void Run(string results, int swaps)
    {
        using var lab = BenchLab.Up("mirror", "--mirror");
        var perSwap = new List<Swap>();
        var (from, to) = (1, 2);
        for (var swap = 1; swap <= swaps; swap++)
        {
            var measured = RunSwap(lab, swap, from, to);
            perSwap.Add(measured);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"mirror-swap {swap}/{swaps} m{from}->m{to}: downtime NGINX {measured.HttpDowntimeMs} ms, PostgreSQL {measured.SqlDowntimeMs} ms; command {measured.CommandMs} ms ({measured.Message}); "
                + $"records {measured.RecordsAcknowledged} acknowledged, {measured.RecordsLost} lost; transactions {measured.Committed} committed, {measured.CommittedLost} lost"));
            (from, to) = (to, from);
        }

        var http = perSwap.Select(r => r.HttpDowntimeMs).Order().ToArray();
        var sql = perSwap.Select(r => r.SqlDowntimeMs).Order().ToArray();
        var command = perSwap.Select(r => r.CommandMs).Order().ToArray();
        Results.Report(results, "mirror-swap", [
            ("swaps", swaps),
            ("nginx_downtime_p50_ms", Results.Percentile(http, 0.50)),
            ("nginx_downtime_p99_ms", Results.Percentile(http, 0.99)),
            ("pg_downtime_p50_ms", Results.Percentile(sql, 0.50)),
            ("pg_downtime_p99_ms", Results.Percentile(sql, 0.99)),
            ("command_p50_ms", Results.Percentile(command, 0.50)),
            ("records_acknowledged", perSwap.Sum(r => r.RecordsAcknowledged)),
            ("records_lost", perSwap.Sum(r => r.RecordsLost)),
            ("transactions_committed", perSwap.Sum(r => r.Committed)),
            ("transactions_lost", perSwap.Sum(r => r.CommittedLost)),
        ], new { swaps = perSwap });
    }

    private static Swap RunSwap(BenchLab lab, int swap, int from, int to)
    {
        var table = $"swap{swap}";
        Psql(lab, $"CREATE TABLE {table} (id bigint PRIMARY KEY)");
        var records = new List<string>();
        var log = $"/srv/www/swap-{swap}.log";
        using var appender = lab.Collect($"m{from}", records, "python3", "-u", "-c", MirrorFailoverBenchmark.Appender, log);
        var sqlOutput = new List<string>();
        using var sql = lab.Collect("client", sqlOutput, BenchLab.Loadgen, "pg", "--host", Vip, "--seconds", LoadSeconds.ToString(CultureInfo.InvariantCulture), "--interval-ms", "20", "--timeout-ms", "1000", "--table", table);
        var httpOutput = new List<string>();
        using var http = lab.Collect("client", httpOutput, BenchLab.Loadgen, "probe", "--host", Vip, "--seconds", LoadSeconds.ToString(CultureInfo.InvariantCulture), "--path", "/served-by", "--new", "2", "--keepalive", "0", "--interval-ms", "20", "--timeout-ms", "500");
        Thread.Sleep(2000);
        var started = Stopwatch.GetTimestamp();
        var result = lab.Exec("client", Path.Combine(AppContext.BaseDirectory, "safekit"), "swap", "mirror");
        var commandMs = Math.Round(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        if (!result.Succeeded)
        {
            throw new InvalidOperationException($"swap {swap}: {result.Output}{result.Error}");
        }

        appender.WaitForExit(20_000);
        if (!sql.WaitForExit(60_000) || !http.WaitForExit(60_000))
        {
            throw new TimeoutException("the probes did not finish");
        }

        sql.WaitForExit();
        http.WaitForExit();
        using var sqlResult = JsonDocument.Parse(BenchLab.Joined(sqlOutput));
        using var httpResult = JsonDocument.Parse(BenchLab.Joined(httpOutput));
        var (oldNode, newNode) = ($"{lab.Prefix}-m{from}", $"{lab.Prefix}-m{to}");
        var sqlDown = Gap(sqlResult.RootElement.GetProperty("samples"), oldNode, newNode, endAt: 1, okAt: 2, nodeAt: 3);
        var httpDown = Gap(httpResult.RootElement.GetProperty("samples"), oldNode, newNode, endAt: 3, okAt: 4, nodeAt: 5);

        var copy = lab.Exec($"m{to}", "cat", log).Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        string[] acknowledged;
        lock (records)
        {
            acknowledged = [.. records];
        }

        var recordsLost = acknowledged.Where((line, i) => i >= copy.Length || copy[i] != line).Count();
        var committed = sqlResult.RootElement.GetProperty("committed").GetInt64();
        var survived = long.Parse(Psql(lab, $"SELECT count(*) FROM {table} WHERE id <= {committed}").Trim(), CultureInfo.InvariantCulture);
        return new Swap(from, to, httpDown, sqlDown, commandMs, result.Output.Trim(), acknowledged.Length, recordsLost, committed, committed - survived);
    }

    /// <summary>Milliseconds between the last successful answer of <paramref name="oldNode"/> and the first of <paramref name="newNode"/> after it.</summary>
    private static double Gap(JsonElement samples, string oldNode, string newNode, int endAt, int okAt, int nodeAt)
    {
        var ok = samples.EnumerateArray().Where(s => s[okAt].GetInt32() == 1).OrderBy(s => s[endAt].GetInt64()).ToList();
        var lastOld = ok.LastOrDefault(s => s[nodeAt].GetString() == oldNode);
        if (lastOld.ValueKind == JsonValueKind.Undefined)
        {
            throw new InvalidOperationException($"{oldNode} never answered before the swap");
        }

        var firstNew = ok.FirstOrDefault(s => s[nodeAt].GetString() == newNode && s[endAt].GetInt64() >= lastOld[endAt].GetInt64());
        return firstNew.ValueKind == JsonValueKind.Undefined
            ? throw new InvalidOperationException($"{newNode} did not answer within {LoadSeconds} s of load")
            : firstNew[endAt].GetInt64() - lastOld[endAt].GetInt64();
    }

    private static string Psql(BenchLab lab, string sql)
    {
        var result = lab.Exec("client", "env", "PGPASSWORD=lab", "psql", "-h", Vip, "-U", "lab", "-d", "lab", "-tAqc", sql);
        return result.Succeeded ? result.Output : throw new InvalidOperationException($"{sql}: {result.Error}");
    }

    private sealed record Swap(int From, int To, double HttpDowntimeMs, double SqlDowntimeMs, double CommandMs, string Message, int RecordsAcknowledged, int RecordsLost, long Committed, long CommittedLost);
}
