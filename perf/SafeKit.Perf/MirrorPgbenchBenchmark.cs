using System.Globalization;

namespace SafeKit.Perf;

/// <summary>
/// PostgreSQL on the mirror against the alternatives a PostgreSQL user has, in the same run, on the
/// same two lab nodes and the same disk: PostgreSQL on a plain directory of m1 (no replication),
/// PostgreSQL's own synchronous streaming replication (primary on m1, standby on m2,
/// synchronous_commit = on), and the lab's PostgreSQL on the replicated /srv/pgdata in <c>sync</c>
/// and in <c>fsync</c> mode. pgbench (TPC-B like, scale 10, <c>-c 4 -j 2</c>) runs from the client
/// through TCP, as role <c>lab</c>; each variant starts from a fresh <c>pgbench -i</c>.
/// <para>
/// In rounds, as <see cref="MirrorBenchmark"/>: streaming replication's TPS moved by a fifth between
/// runs of one build (848 to 1,067) while the mirror's hardly did, so one pass could put the same
/// build on either side of a target. Each round brings up a lab per mode and measures streaming
/// replication in it too, minutes from the mirror (before it in even rounds, after it in odd
/// ones); each ratio is taken within its lab, and the medians over the rounds are reported.
/// </para>
/// </summary>
internal static class MirrorPgbenchBenchmark
{
    private const string Bin = "/usr/lib/postgresql/15/bin";
    private const string Benches = "/var/lib/safekit/bench";
    private const string Vip = "198.18.0.200";
    private const string M1 = "198.18.0.21";
    private const int PlainPort = 5433;

    public static void Run(string results, int seconds, int scale, int rounds)
    {
        var tps = new Dictionary<string, List<double>>(StringComparer.Ordinal);
        var ratios = new Dictionary<string, List<double>>(StringComparer.Ordinal);
        void Add(Dictionary<string, List<double>> into, string key, double value) =>
            (into.TryGetValue(key, out var list) ? list : into[key] = []).Add(value);

        for (var round = 0; round < rounds; round++)
        {
            string[] modes = round % 2 == 0 ? ["sync", "fsync"] : ["fsync", "sync"];
            foreach (var mode in modes)
            {
                using var lab = BenchLab.Up($"mirror-pgbench-{mode}", "--mirror", "--mode", mode);
                double mirror = 0, streaming = 0, plain = 0;
                void Mirror() => mirror = Pgbench(lab, Vip, 5432, seconds, scale);
                void Peers()
                {
                    StartPlainPrimary(lab);
                    if (mode == "sync")
                    {
                        plain = Pgbench(lab, M1, PlainPort, seconds, scale); // Once a round is enough.
                    }

                    StartStandby(lab, M1);
                    streaming = Pgbench(lab, M1, PlainPort, seconds, scale);
                    StopPlain(lab);
                }

                if (round % 2 == 0)
                {
                    Peers();
                    Mirror();
                }
                else
                {
                    Mirror();
                    Peers();
                }

                Add(tps, $"mirror_{mode}", mirror);
                Add(tps, $"streaming_sync_in_{mode}_lab", streaming);
                Add(ratios, $"{mode}_vs_streaming", mirror / streaming);
                if (mode == "sync")
                {
                    Add(tps, "plain", plain);
                    Add(ratios, "sync_vs_plain", mirror / plain);
                }

                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"sk-bench mirror-pgbench round {round + 1} {mode} lab: mirror {mirror:F0} TPS, streaming replication {streaming:F0} TPS ({mirror / streaming:F3}x){(mode == "sync" ? $", plain {plain:F0} TPS" : string.Empty)}"));
            }
        }

        Results.Report(results, "mirror-pgbench", [
            .. tps.Select(t => ($"{t.Key}_tps", Math.Round(Results.Median(t.Value)))),
            .. ratios.Select(r => (r.Key, Math.Round(Results.Median(r.Value), 3))),
            ("rounds", rounds),
        ], new { seconds, scale, clients = 4, threads = 2, rounds, tps, ratios });
    }

    /// <summary>A second PostgreSQL on m1, on a plain directory of the same disk, port 5433: the baseline and the streaming primary.</summary>
    private static void StartPlainPrimary(BenchLab lab)
    {
        var data = $"{Benches}/primary";
        Shell(lab, "m1", $"""
            rm -rf {Benches} && mkdir -p {Benches} && chown postgres:postgres {Benches}
            runuser -u postgres -- {Bin}/initdb -D {data} --no-sync -U postgres -E UTF8 --no-locale --auth-local=peer --auth-host=scram-sha-256 >/dev/null
            printf "listen_addresses = '*'\nport = {PlainPort}\ncluster_name = 'plain'\n" >> {data}/postgresql.conf
            printf 'host all all 198.18.0.0/15 scram-sha-256\nhost replication all 198.18.0.0/15 scram-sha-256\n' >> {data}/pg_hba.conf
            runuser -u postgres -- {Bin}/pg_ctl -D {data} -l {Benches}/primary.log -w start >/dev/null
            runuser -u postgres -- {Bin}/psql -p {PlainPort} -q -c "CREATE ROLE lab LOGIN REPLICATION PASSWORD 'lab'" -c "CREATE DATABASE lab OWNER lab"
            """);
    }

    /// <summary>A standby of m1's plain PostgreSQL on m2 (pg_basebackup), then synchronous commit waits for it.</summary>
    private static void StartStandby(BenchLab lab, string primary)
    {
        var data = $"{Benches}/standby";
        Shell(lab, "m2", $"""
            rm -rf {Benches} && mkdir -p {Benches} && chown postgres:postgres {Benches}
            runuser -u postgres -- env PGPASSWORD=lab {Bin}/pg_basebackup -h {primary} -p {PlainPort} -U lab -D {data} -R -X stream -c fast --no-sync
            printf "cluster_name = 'standby'\n" >> {data}/postgresql.conf
            runuser -u postgres -- {Bin}/pg_ctl -D {data} -l {Benches}/standby.log -w start >/dev/null
            """);
        Shell(lab, "m1", $"""
            runuser -u postgres -- {Bin}/psql -p {PlainPort} -q -c "ALTER SYSTEM SET synchronous_standby_names = '*'" -c "SELECT pg_reload_conf()" >/dev/null
            for i in $(seq 1 100); do
              test "$(runuser -u postgres -- {Bin}/psql -p {PlainPort} -tAc "SELECT sync_state FROM pg_stat_replication")" = sync && exit 0
              sleep 0.1
            done
            echo "the standby did not become synchronous" >&2; exit 1
            """);
    }

    private static void StopPlain(BenchLab lab)
    {
        Shell(lab, "m1", $"runuser -u postgres -- {Bin}/pg_ctl -D {Benches}/primary -m fast -w stop >/dev/null; rm -rf {Benches}");
        Shell(lab, "m2", $"runuser -u postgres -- {Bin}/pg_ctl -D {Benches}/standby -m fast -w stop >/dev/null; rm -rf {Benches}");
    }

    /// <summary>pgbench -i, then a timed run from the client: transactions per second.</summary>
    private static double Pgbench(BenchLab lab, string host, int port, int seconds, int scale)
    {
        var target = $"-h {host} -p {port} -U lab";
        var output = Shell(lab, "client", $"""
            export PGPASSWORD=lab
            {Bin}/pgbench {target} -i -q -s {scale} lab >/dev/null 2>&1 || {Bin}/pgbench {target} -i -q -s {scale} lab
            {Bin}/pgbench {target} -c 4 -j 2 -T {seconds} lab
            """);
        foreach (var line in output.Split('\n'))
        {
            if (line.StartsWith("tps = ", StringComparison.Ordinal))
            {
                var value = line["tps = ".Length..];
                return double.Parse(value[..value.IndexOf(' ', StringComparison.Ordinal)], CultureInfo.InvariantCulture);
            }
        }

        throw new InvalidOperationException("pgbench printed no tps: " + output);
    }

    private static string Shell(BenchLab lab, string node, string script)
    {
        var result = lab.Exec(TimeSpan.FromMinutes(10), node, "sh", "-ec", script);
        return result.Succeeded ? result.Output : throw new InvalidOperationException($"{node}: {script}{Environment.NewLine}{result.Output}{result.Error}");
    }
}
