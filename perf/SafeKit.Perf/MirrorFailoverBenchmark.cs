using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace SafeKit.Perf;

/// <summary>
/// Mirror failover, measured over many crashes of PRIM in the lab (a fresh pair each round: a
/// returning node needs the resync of the next issue). While a file writer appends fsync'd records
/// on m1, a PostgreSQL client commits one insert after another through the VIP, and two probers
/// query NGINX and PostgreSQL on the VIP every 20 ms, m1 is killed (<c>safekit lab kill</c>: kill -9
/// of the whole node) at a random moment. RTO: from the kill to the first successful answer on the
/// VIP (HTTP request; PostgreSQL connection + query). RPO: acknowledged records and committed
/// transactions missing on m2 (must be 0).
/// </summary>
internal static class MirrorFailoverBenchmark
{
    private const string Vip = "198.18.0.200";
    private const double LoadSeconds = 10;

    /// <summary>Appends unique records, fsync after each, and prints each one once fsync returned.</summary>
    internal const string Appender = """
        import os, sys, time
        fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        i = 0
        deadline = time.time() + 60
        while time.time() < deadline:
            line = "record %08d %s\n" % (i, os.urandom(6).hex())
            os.write(fd, line.encode())
            os.fsync(fd)
            print(line, end="", flush=True)
            i += 1
        """;

    public static void Run(string results, int rounds, int seed)
    {
        var random = new Random(seed);
        var perRound = new List<Round>();
        for (var round = 1; round <= rounds; round++)
        {
            var delay = TimeSpan.FromMilliseconds(random.Next(2000, 4000));
            var measured = RunRound(delay);
            perRound.Add(measured);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"mirror-failover round {round}/{rounds}: kill after {delay.TotalMilliseconds} ms; RTO NGINX {measured.HttpRtoMs} ms, PostgreSQL {measured.SqlRtoMs} ms; "
                + $"records {measured.RecordsAcknowledged} acknowledged, {measured.RecordsLost} lost; transactions {measured.Committed} committed, {measured.CommittedLost} lost"));
        }

        var http = perRound.Select(r => r.HttpRtoMs).Order().ToArray();
        var sql = perRound.Select(r => r.SqlRtoMs).Order().ToArray();
        Results.Report(results, "mirror-failover", [
            ("kills", rounds),
            ("nginx_rto_p50_ms", Results.Percentile(http, 0.50)),
            ("nginx_rto_p99_ms", Results.Percentile(http, 0.99)),
            ("nginx_rto_max_ms", http[^1]),
            ("pg_rto_p50_ms", Results.Percentile(sql, 0.50)),
            ("pg_rto_p99_ms", Results.Percentile(sql, 0.99)),
            ("pg_rto_max_ms", sql[^1]),
            ("records_acknowledged", perRound.Sum(r => r.RecordsAcknowledged)),
            ("records_lost", perRound.Sum(r => r.RecordsLost)),
            ("transactions_committed", perRound.Sum(r => r.Committed)),
            ("transactions_lost", perRound.Sum(r => r.CommittedLost)),
        ], new { seed, rounds = perRound });
    }

    private static Round RunRound(TimeSpan delay)
    {
        using var lab = BenchLab.Up("mirror", "--mirror");
        var created = lab.Exec("client", "env", "PGPASSWORD=lab", "psql", "-h", Vip, "-U", "lab", "-d", "lab", "-qc", "CREATE TABLE rpo (id bigint PRIMARY KEY)");
        if (!created.Succeeded)
        {
            throw new InvalidOperationException("CREATE TABLE: " + created.Error);
        }

        var records = new List<string>();
        using var appender = lab.Collect("m1", records, "python3", "-u", "-c", Appender, "/srv/www/journal.log");
        var sqlOutput = new List<string>();
        using var sql = lab.Collect("client", sqlOutput, BenchLab.Loadgen, "pg", "--host", Vip, "--seconds", LoadSeconds.ToString(CultureInfo.InvariantCulture), "--interval-ms", "20", "--timeout-ms", "1000");
        var httpOutput = new List<string>();
        using var http = lab.Collect("client", httpOutput, BenchLab.Loadgen, "probe", "--host", Vip, "--seconds", LoadSeconds.ToString(CultureInfo.InvariantCulture), "--path", "/served-by", "--new", "2", "--keepalive", "0", "--interval-ms", "20", "--timeout-ms", "500");
        Thread.Sleep(delay);
        var killed = lab.Kill("m1");
        appender.WaitForExit(10_000);
        if (!sql.WaitForExit(60_000) || !http.WaitForExit(60_000))
        {
            throw new TimeoutException("the probes did not finish");
        }

        sql.WaitForExit();
        http.WaitForExit();
        using var sqlResult = JsonDocument.Parse(BenchLab.Joined(sqlOutput));
        using var httpResult = JsonDocument.Parse(BenchLab.Joined(httpOutput));
        var survivor = $"{lab.Prefix}-m2";
        var sqlRto = FirstAnswerFrom(survivor, sqlResult.RootElement.GetProperty("samples"), killed, endAt: 1, okAt: 2, nodeAt: 3);
        var httpRto = FirstAnswerFrom(survivor, httpResult.RootElement.GetProperty("samples"), killed, endAt: 3, okAt: 4, nodeAt: 5);

        // RPO of the files: every record whose fsync returned on m1 is in m2's copy, in order.
        var journal = lab.Exec("m2", "cat", "/srv/www/journal.log").Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        string[] acknowledged;
        lock (records)
        {
            acknowledged = [.. records];
        }

        var recordsLost = acknowledged.Where((line, i) => i >= journal.Length || journal[i] != line).Count();

        // RPO of the database: ids 1..committed all there (queried on m2, which now holds the VIP).
        var committed = sqlResult.RootElement.GetProperty("committed").GetInt64();
        var counted = lab.Exec("client", "env", "PGPASSWORD=lab", "psql", "-h", Vip, "-U", "lab", "-d", "lab", "-tAc", $"SELECT count(*) FROM rpo WHERE id <= {committed}");
        if (!counted.Succeeded)
        {
            throw new InvalidOperationException("counting the surviving transactions: " + counted.Error);
        }

        var survived = long.Parse(counted.Output.Trim(), CultureInfo.InvariantCulture);
        return new Round(delay.TotalMilliseconds, httpRto, sqlRto, acknowledged.Length, recordsLost, committed, committed - survived);
    }

    /// <summary>Milliseconds from the kill to the end of the first successful answer from <paramref name="survivor"/>.</summary>
    private static double FirstAnswerFrom(string survivor, JsonElement samples, long killed, int endAt, int okAt, int nodeAt)
    {
        foreach (var sample in samples.EnumerateArray().OrderBy(s => s[endAt].GetInt64()))
        {
            if (sample[okAt].GetInt32() == 1 && sample[nodeAt].GetString() == survivor)
            {
                return sample[endAt].GetInt64() - killed;
            }
        }

        throw new InvalidOperationException($"{survivor} did not answer within {LoadSeconds} s of load");
    }

    private sealed record Round(double KillAfterMs, double HttpRtoMs, double SqlRtoMs, int RecordsAcknowledged, int RecordsLost, long Committed, long CommittedLost);
}
