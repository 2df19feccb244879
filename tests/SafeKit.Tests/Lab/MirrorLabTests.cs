using System.Diagnostics;
using System.Globalization;
using SafeKit.Tests.Infrastructure;

namespace SafeKit.Tests.Lab;

/// <summary>
/// The mirror module end to end, in a real lab: safekitd on two nodes with their own mount
/// namespaces, FUSE mounts on /srv/www, replication over TCP, NGINX on the VIP, crashes made with
/// <c>safekit lab kill</c> (kill -9 of everything on the node). Each test builds its own pair: after
/// a failover the pair needs a resync (the next issue) before it mirrors again.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class MirrorLabTests
{
    /// <summary>Appends unique records, fsync after each, and prints each one once fsync returned.</summary>
    private const string Writer = """
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

    [Fact]
    public void Prim_ServesTheReplicatedDirectory_SecondHoldsAReadOnlyCopy_AndAGuardWhenStopped()
    {
        using var lab = new MirrorLab();
        lab.Require();
        Assert.Equal("PRIM", lab.State(1));
        Assert.Equal("SECOND", lab.State(2));

        var (code, servedBy, body) = lab.Get("/index.html");
        Assert.Equal("200", code);
        Assert.Equal(lab.M(1), servedBy);
        Assert.Contains("mirror lab", body, StringComparison.Ordinal);

        // Changes through PRIM's mount land on SECOND: contents, modes, renames, links.
        var write = lab.Exec("m1", "sh", "-c",
            "mkdir -p /srv/www/a/b && head -c 300000 /dev/urandom > /srv/www/a/b/data.bin && chmod 640 /srv/www/a/b/data.bin "
            + "&& echo hello > /srv/www/tmp && mv /srv/www/tmp /srv/www/hello.txt && ln -s hello.txt /srv/www/link && ln /srv/www/hello.txt /srv/www/hard");
        Assert.True(write.Succeeded, write.Error);
        const string Describe = "cd /srv/www && find . -printf '%p %y %m %s %l\\n' | sort && sha256sum a/b/data.bin hello.txt";
        var onPrim = lab.Exec("m1", "sh", "-c", Describe);
        var onSecond = lab.Exec("m2", "sh", "-c", Describe);
        Assert.True(onPrim.Succeeded && onSecond.Succeeded, onPrim.Error + onSecond.Error);
        Assert.Equal(onPrim.Output, onSecond.Output);
        Assert.Contains("./link l 777", onSecond.Output, StringComparison.Ordinal);

        // SECOND's copy is read-only at the application's path.
        var refused = lab.Exec("m2", "sh", "-c", "echo x > /srv/www/refused");
        Assert.False(refused.Succeeded);
        Assert.Contains("Read-only file system", refused.Error, StringComparison.Ordinal);

        // Stopped, SECOND unmounts its view: the guard underneath refuses writes too (nothing lands
        // unreplicated in the plain directory), and PRIM goes on alone.
        var stop = lab.Exec("client", Tools.Safekit, "stop", "mirror", "--on", lab.M(2));
        Assert.True(stop.Succeeded, stop.Error);
        lab.WaitForState(2, "STOP");
        var mounted = lab.Exec("m2", "findmnt", "-n", "-o", "SOURCE", "--mountpoint", "/srv/www");
        Assert.Equal("safekit-guard", mounted.Output.Trim());
        var guarded = lab.Exec("m2", "sh", "-c", "echo x > /srv/www/refused");
        Assert.False(guarded.Succeeded);
        Assert.Contains("Read-only file system", guarded.Error, StringComparison.Ordinal);
        lab.WaitForState(1, "ALONE");
        Assert.Equal("200", lab.Get("/hello.txt").Code);
    }

    [Fact]
    public void PrimCrash_SecondTakesOverWithEveryAcknowledgedRecord_AndTheCrashedNodeIsResynchronisedAsSecond()
    {
        using var lab = new MirrorLab();
        lab.Require();
        var acknowledged = new List<string>();
        using (var writer = StartWriter(lab, "m1", "/srv/www/journal.log", acknowledged))
        {
            LabInstance.WaitUntil(() => Count(acknowledged) >= 300, "300 fsync'd records acknowledged on PRIM", 60);
            lab.Lab("kill", "m1");
            writer.WaitForExit(10_000);
        }

        lab.WaitForState(2, "ALONE");
        var (code, servedBy, journal) = lab.Get("/journal.log");
        Assert.Equal("200", code);
        Assert.Equal(lab.M(2), servedBy);
        var kept = journal.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        string[] acked;
        lock (acknowledged)
        {
            acked = [.. acknowledged];
        }

        Assert.True(acked.Length >= 300);
        // RPO = 0: every record whose fsync returned on PRIM is on SECOND, in order (a prefix of
        // what PRIM wrote: at most the one in flight may follow).
        Assert.True(kept.Length >= acked.Length, $"{acked.Length} records acknowledged, {kept.Length} survived");
        for (var i = 0; i < acked.Length; i++)
        {
            Assert.Equal(acked[i], kept[i]);
        }

        for (var i = 0; i < kept.Length; i++)
        {
            Assert.StartsWith(string.Create(CultureInfo.InvariantCulture, $"record {i:00000000} "), kept[i], StringComparison.Ordinal);
        }

        // The crashed node comes back with older data: m2, serving alone, brings it up to date
        // while it keeps serving (its in-flight record, if any, is replaced by m2's history), and
        // it follows as SECOND; m2 is PRIM without restarting anything.
        var nginxPid = Path.Combine(lab.StateDirectory, lab.M(2), "nginx.pid");
        var pid = File.ReadAllText(nginxPid);
        var start = Tools.Run(Tools.Safekit, "lab", "start", "--prefix", lab.Prefix, "m1");
        Assert.True(start.Succeeded, start.Output + start.Error);
        lab.WaitForState(1, "SECOND", 60);
        lab.WaitForState(2, "PRIM");
        Assert.Equal(pid, File.ReadAllText(nginxPid));
        Assert.Equal(journal, lab.Exec("m1", "cat", "/var/lib/safekit/mirror/data/srv/www/journal.log").Output);
        // Only the journals' paths were looked at: m2's since it took over, m1's in flight at its crash.
        var events = string.Join('\n', lab.Exec("client", Tools.Safekit, "events", "--node", "https://198.18.0.22:9453").Output);
        Assert.Contains("resynchronised", events, StringComparison.Ordinal);
        Assert.Contains("journaled paths", events, StringComparison.Ordinal);

        // Mirroring again: a write on m2 is on m1's copy when it returns.
        var after = lab.Exec("m2", "sh", "-c", "echo after-failback >> /srv/www/journal.log");
        Assert.True(after.Succeeded, after.Error);
        Assert.EndsWith("after-failback\n", lab.Exec("m1", "cat", "/var/lib/safekit/mirror/data/srv/www/journal.log").Output, StringComparison.Ordinal);
    }

    [Fact]
    public void CrashedPrimReturningWhileTheSurvivorIsStopped_KnowsItIsStale_AndNeverServesWithoutIt()
    {
        using var lab = new MirrorLab();
        lab.Require();
        lab.Lab("kill", "m1");
        lab.WaitForState(2, "ALONE");
        Assert.True(lab.Exec("m2", "sh", "-c", "echo only-on-m2 > /srv/www/later.txt").Succeeded);
        var stop = lab.Exec("client", Tools.Safekit, "stop", "mirror", "--on", lab.M(2), "--node", "https://198.18.0.22:9453");
        Assert.True(stop.Succeeded, stop.Output + stop.Error);
        lab.WaitForState(2, "STOP");

        // m1 was PRIM when it crashed; it hears that m2 went on alone from its copy: it is stale.
        Assert.True(Tools.Run(Tools.Safekit, "lab", "start", "--prefix", lab.Prefix, "m1").Succeeded);
        Assert.Equal("WAIT", lab.State(1));
        Assert.Contains("newer data", lab.Reason(1), StringComparison.Ordinal);

        // m2 crashes: m1 must not take over (the witness answers, its last role was PRIM — but it
        // knows its copy lacks m2's changes).
        lab.Lab("kill", "m2");
        LabInstance.WaitUntil(() => lab.Reason(1).Contains("not heard", StringComparison.Ordinal), "m1 sees m2 gone", 20);
        Thread.Sleep(3000);
        Assert.Equal("WAIT", lab.State(1));
        Assert.Contains("older", lab.Reason(1), StringComparison.Ordinal);
        Assert.NotEqual("200", lab.Get("/later.txt").Code);

        // m2 back: it holds the newest copy, serves, and brings m1 up to date.
        Assert.True(Tools.Run(Tools.Safekit, "lab", "start", "--prefix", lab.Prefix, "m2").Succeeded);
        lab.WaitForState(1, "SECOND", 60);
        lab.WaitForState(2, "PRIM");
        Assert.Equal("only-on-m2\n", lab.Exec("m1", "cat", "/var/lib/safekit/mirror/data/srv/www/later.txt").Output);
    }

    [Fact]
    public void PostgreSql_EveryCommittedTransactionSurvivesACrashOfPrim()
    {
        using var lab = new MirrorLab();
        lab.Require();
        var created = lab.Sql("CREATE TABLE rpo (id integer PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())");
        Assert.True(created.Succeeded, created.Error);

        // One session, autocommit: each id is printed once its INSERT committed on PRIM.
        var committed = new List<string>();
        const string Inserts = "seq 1 1000000 | sed 's/.*/INSERT INTO rpo (id) VALUES (&) RETURNING id;/' "
            + "| PGPASSWORD=lab stdbuf -oL psql -h 198.18.0.200 -U lab -d lab -Atq -v ON_ERROR_STOP=1 | grep --line-buffered -E '^[0-9]+$'";
        using (var writer = StartCollector(lab, "client", committed, "sh", "-c", Inserts))
        {
            LabInstance.WaitUntil(() => Count(committed) >= 200, "200 transactions committed on PRIM", 60);
            lab.Lab("kill", "m1");
            writer.WaitForExit(30_000);
        }

        lab.WaitForState(2, "ALONE");
        LabInstance.WaitUntil(() => lab.Sql("SELECT 1").Succeeded, "PostgreSQL answers on the VIP after the failover", 60);
        var survived = lab.Sql("SELECT count(*), min(id), max(id), inet_server_addr() FROM rpo");
        Assert.True(survived.Succeeded, survived.Error);
        var fields = survived.Output.Trim().Split('|');
        var count = int.Parse(fields[0], CultureInfo.InvariantCulture);
        var max = int.Parse(fields[2], CultureInfo.InvariantCulture);
        int last;
        lock (committed)
        {
            last = int.Parse(committed[^1], CultureInfo.InvariantCulture);
            Assert.Equal(Enumerable.Range(1, committed.Count).Select(i => i.ToString(CultureInfo.InvariantCulture)), committed);
        }

        // RPO = 0: every committed id is there, and nothing else but at most the one in flight.
        Assert.Equal("1", fields[1]);
        Assert.Equal(max, count);
        Assert.True(max >= last, $"{last} transactions committed on PRIM, {max} survived");
        Assert.True(max <= last + 1, $"{last} committed, {max} found");
        Assert.Equal("198.18.0.200", fields[3]);
        Assert.Equal("ALONE", lab.State(2));
    }

    [Fact]
    public void PrimStoppedInOrder_SecondTakesOverAtOnceWithEveryChange()
    {
        using var lab = new MirrorLab("--mode", "fsync");
        lab.Require();

        // fsync mode: writes return before SECOND applied them; the orderly stop waits for them.
        var write = lab.Exec("m1", "sh", "-c", "for i in $(seq 1 200); do echo line $i >> /srv/www/lines.txt; done");
        Assert.True(write.Succeeded, write.Error);
        var stop = lab.Exec("client", Tools.Safekit, "stop", "mirror", "--on", lab.M(1));
        Assert.True(stop.Succeeded, stop.Error);
        lab.WaitForState(2, "ALONE");
        lab.WaitForState(1, "STOP");
        var (code, servedBy, body) = lab.Get("/lines.txt");
        Assert.Equal("200", code);
        Assert.Equal(lab.M(2), servedBy);
        Assert.Equal(string.Concat(Enumerable.Range(1, 200).Select(i => $"line {i}\n")), body);
        Assert.Contains("stopped its module", lab.Exec("client", Tools.Safekit, "events", "--node", "https://198.18.0.22:9453").Output, StringComparison.Ordinal);
    }

    [Fact]
    public void ApplicationFailingOnPrim_AfterItsRestarts_MovesTheModuleToSecond()
    {
        using var lab = new MirrorLab();
        lab.Require();
        Assert.True(lab.Exec("m1", "sh", "-c", "echo before > /srv/www/before.txt").Succeeded);

        // NGINX on m1 stopped and unable to start again (its configuration broken).
        lab.Lab("app", "m1", "break");
        lab.WaitForState(2, "ALONE", 60);
        lab.WaitForState(1, "STOP");
        Assert.Contains("moved to", lab.Reason(1), StringComparison.Ordinal);
        var (code, servedBy, body) = lab.Get("/before.txt");
        Assert.Equal("200", code);
        Assert.Equal(lab.M(2), servedBy);
        Assert.Equal("before\n", body);
        LabInstance.WaitUntil(() => lab.Sql("SELECT 1").Succeeded, "PostgreSQL answers on m2", 60);
        var events = lab.Exec("client", Tools.Safekit, "events", "--node", "https://198.18.0.21:9453").Output;
        Assert.Contains("moved", events, StringComparison.Ordinal);
        Assert.Contains("check tcp:198.18.0.200:80 failing", events, StringComparison.Ordinal);
    }

    [Fact]
    public void SecondCrash_PrimGoesAlone_TheStaleNodeNeverServes_ThenFollowsOnceTheNewestServes()
    {
        using var lab = new MirrorLab();
        lab.Require();
        lab.Lab("kill", "m2");
        lab.WaitForState(1, "ALONE");
        Assert.Contains("behind", lab.Reason(1), StringComparison.Ordinal);
        var write = lab.Exec("m1", "sh", "-c", "echo after > /srv/www/after.txt && sync");
        Assert.True(write.Succeeded, write.Error);
        var (code, servedBy, body) = lab.Get("/after.txt");
        Assert.Equal("200", code);
        Assert.Equal(lab.M(1), servedBy);
        Assert.Equal("after\n", body);
        LabInstance.WaitUntil(
            () => lab.Module(1).GetProperty("mirror").GetProperty("directories")[0].GetProperty("changes_since_alone").GetInt64() > 0,
            "PRIM counts the changes SECOND misses");

        // While the node with the newest data does not serve, the stale one waits, says why, and
        // refuses to start — also when asked to.
        Assert.True(lab.Exec("client", Tools.Safekit, "stop", "mirror", "--on", lab.M(1)).Succeeded);
        lab.WaitForState(1, "STOP");
        Assert.True(Tools.Run(Tools.Safekit, "lab", "start", "--prefix", lab.Prefix, "m2").Succeeded);
        Assert.Equal("WAIT", lab.State(2));
        Assert.Contains("newer data", lab.Reason(2), StringComparison.Ordinal);
        var refused = lab.Exec("client", Tools.Safekit, "start", "mirror", "--on", lab.M(2));
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("newer data", refused.Error, StringComparison.Ordinal);
        Thread.Sleep(1500);
        Assert.Equal("WAIT", lab.State(2));

        // The newest node crashes: the stale one knows its copy is older and does not take over,
        // although the witness answers (it would serve data without m1's changes).
        lab.Lab("kill", "m1");
        LabInstance.WaitUntil(() => lab.Reason(2).Contains("older", StringComparison.Ordinal) && lab.Reason(2).Contains("not heard", StringComparison.Ordinal), "m2 sees m1 gone and still waits", 20);
        Thread.Sleep(2000);
        Assert.Equal("WAIT", lab.State(2));

        // The newest copy serves again: it resynchronises m2, which follows as SECOND.
        Assert.True(Tools.Run(Tools.Safekit, "lab", "start", "--prefix", lab.Prefix, "m1").Succeeded);
        lab.WaitForState(2, "SECOND", 60);
        lab.WaitForState(1, "PRIM");
        Assert.Equal("after\n", lab.Exec("m2", "cat", "/var/lib/safekit/mirror/data/srv/www/after.txt").Output);
    }
    [Fact]
    public void HeartbeatsLost_NoTakeoverWhileTheReplicationLinkLives_NorWithoutTheWitness()
    {
        using var lab = new MirrorLab();
        lab.Require();

        // Only the heartbeats are cut: the replication connection proves PRIM alive.
        lab.Lab("partition", "m1", "m2");
        LabInstance.WaitUntil(() => lab.Reason(2).Contains("replication connection is alive", StringComparison.Ordinal), "SECOND notices the heartbeats are gone", 15);
        Thread.Sleep(2000);
        Assert.Equal("PRIM", lab.State(1));
        Assert.Equal("WAIT", lab.State(2));
        var write = lab.Exec("m1", "sh", "-c", "echo during > /srv/www/during.txt");
        Assert.True(write.Succeeded, write.Error);
        Assert.Equal("during\n", lab.Exec("m2", "cat", "/srv/www/during.txt").Output);
        lab.Lab("heal");
        lab.WaitForState(2, "SECOND");

        // The witness (the client) stops answering SECOND; then PRIM crashes: SECOND waits.
        var block = lab.Exec("m2", "nft", "add table inet witness_test; add chain inet witness_test out { type filter hook output priority 0; }; add rule inet witness_test out ip daddr 198.18.0.10 icmp type echo-request drop");
        Assert.True(block.Succeeded, block.Error);
        lab.Lab("kill", "m1");
        LabInstance.WaitUntil(() => lab.Reason(2).Contains("does not answer", StringComparison.Ordinal), "SECOND waits for the witness", 20);
        Assert.Equal("WAIT", lab.State(2));
        Assert.NotEqual("200", lab.Get("/index.html").Code);

        // The witness answers again: SECOND takes over.
        Assert.True(lab.Exec("m2", "nft", "delete", "table", "inet", "witness_test").Succeeded);
        lab.WaitForState(2, "ALONE");
        Assert.Equal(lab.M(2), lab.Get("/during.txt").ServedBy);
    }

    [Fact]
    public void ReplicationLinkCut_ShortCutsAreRidden_ALongCutLeavesPrimAloneLosingNothing_TheHealedLinkCatchesUp()
    {
        using var lab = new MirrorLab();
        lab.Require();
        var acknowledged = new List<string>();
        using var writer = StartWriter(lab, "m1", "/srv/www/journal.log", acknowledged);
        LabInstance.WaitUntil(() => Count(acknowledged) >= 50, "50 fsync'd records acknowledged on PRIM", 60);

        // Cuts well under the stall timeout (2 s): writes wait, TCP retransmits, mirroring goes on.
        // (Cuts that follow each other closely add up: TCP doubles its retransmission timeout
        // each time, and a link silent for the stall timeout is given up — by design.)
        for (var i = 0; i < 3; i++)
        {
            CutReplication(lab, cut: true);
            Thread.Sleep(300);
            CutReplication(lab, cut: false);
            Thread.Sleep(1500);
        }

        var before = Count(acknowledged);
        LabInstance.WaitUntil(() => Count(acknowledged) >= before + 50, "the writer goes on after the flaps", 30);
        Assert.Equal("PRIM", lab.State(1));
        Assert.Equal("SECOND", lab.State(2));

        // A cut that lasts: PRIM stalls at most the stall timeout, then goes on ALONE; the writer
        // never sees an error. Heartbeats still flow, so SECOND knows it is now behind and waits.
        CutReplication(lab, cut: true);
        lab.WaitForState(1, "ALONE");
        before = Count(acknowledged);
        LabInstance.WaitUntil(() => Count(acknowledged) >= before + 50, "the writer goes on ALONE", 30);
        LabInstance.WaitUntil(() => lab.State(2) == "WAIT" && lab.Reason(2).Contains("newer data", StringComparison.Ordinal), "SECOND waits: its peer holds newer data", 20);
        Assert.False(writer.HasExited);

        // PRIM holds every acknowledged record; SECOND's copy is a prefix of PRIM's history.
        string[] acked;
        lock (acknowledged)
        {
            acked = [.. acknowledged];
        }

        var prim = lab.Exec("m1", "cat", "/srv/www/journal.log").Output;

        Assert.StartsWith(string.Concat(acked.Select(a => a + "\n")), prim, StringComparison.Ordinal);
        var second = lab.Exec("m2", "cat", "/var/lib/safekit/mirror/data/srv/www/journal.log");
        Assert.True(second.Succeeded, second.Error);
        Assert.True(second.Output.Length > 0 && prim.StartsWith(second.Output, StringComparison.Ordinal), "SECOND's copy is not a prefix of PRIM's");
        // The link heals: m1 brings m2 up to date under the running writer and mirrors again.
        CutReplication(lab, cut: false);
        lab.WaitForState(2, "SECOND", 60);
        lab.WaitForState(1, "PRIM");
        before = Count(acknowledged);
        LabInstance.WaitUntil(() => Count(acknowledged) >= before + 50, "the writer goes on, mirrored", 30);
        writer.Kill(entireProcessTree: true);
        writer.WaitForExit(5000);
        LabInstance.WaitUntil(
            () => lab.Exec("m1", "cat", "/srv/www/journal.log").Output == lab.Exec("m2", "cat", "/var/lib/safekit/mirror/data/srv/www/journal.log").Output,
            "SECOND's copy equals PRIM's once the writer stopped",
            10);
    }

    [Fact]
    public void SecondDiskFull_PrimGoesAloneLosingNothing_AndSecondSaysWhy()
    {
        using var lab = new MirrorLab("--data-mib", "160");
        lab.Require();

        // m2's disk: all but 1 MiB taken by a file outside the replicated directories.
        var fill = lab.Exec("m2", "sh", "-c", "fallocate -l $(( $(df --output=avail -B1 /var/lib/safekit | tail -n 1) - 1048576 )) /var/lib/safekit/filler && df -h /var/lib/safekit");
        Assert.True(fill.Succeeded, fill.Error);

        // 8 MiB written and fsync'd on PRIM: SECOND cannot apply it; the writer sees no error.
        var write = lab.Exec("m1", "sh", "-c", "head -c 8388608 /dev/urandom > /tmp/big && dd if=/tmp/big of=/srv/www/big.bin bs=1M conv=fsync status=none && sha256sum /tmp/big /srv/www/big.bin");
        Assert.True(write.Succeeded, write.Error);
        var sums = write.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')[0]).ToArray();
        Assert.Equal(sums[0], sums[1]);
        lab.WaitForState(1, "ALONE");
        Assert.Contains("space", lab.Reason(1), StringComparison.OrdinalIgnoreCase);
        LabInstance.WaitUntil(() => lab.State(2) == "WAIT", $"{lab.M(2)} waits (it is {lab.State(2)}: {lab.Reason(2)})", 20);
        Assert.Contains("space", File.ReadAllText(Path.Combine(lab.StateDirectory, lab.M(2), "safekitd.log")), StringComparison.OrdinalIgnoreCase);

        // PRIM keeps serving the file, whole.
        var (code, servedBy, _) = lab.Get("/big.bin");
        Assert.Equal("200", code);
        Assert.Equal(lab.M(1), servedBy);
        var again = lab.Exec("m1", "sha256sum", "/srv/www/big.bin");
        Assert.StartsWith(sums[0], again.Output, StringComparison.Ordinal);
    }

    /// <summary>Drops (or lets through again) every replication packet of m1, heartbeats untouched.</summary>
    internal static void CutReplication(MirrorLab lab, bool cut)
    {
        var rule = cut
            ? "add table inet repl_cut; add chain inet repl_cut in { type filter hook input priority 0; }; add chain inet repl_cut out { type filter hook output priority 0; }; "
              + "add rule inet repl_cut in tcp sport 4900-4901 drop; add rule inet repl_cut in tcp dport 4900-4901 drop; "
              + "add rule inet repl_cut out tcp sport 4900-4901 drop; add rule inet repl_cut out tcp dport 4900-4901 drop"
            : "delete table inet repl_cut";
        var result = lab.Exec("m1", "nft", rule);
        Assert.True(result.Succeeded, result.Error);
    }

    internal static int Count(List<string> lines)
    {
        lock (lines)
        {
            return lines.Count;
        }
    }

    /// <summary>Runs the fsync'd appender on a node; every line it prints (an acknowledged record) goes to <paramref name="acknowledged"/>.</summary>
    internal static Process StartWriter(MirrorLab lab, string node, string file, List<string> acknowledged) =>
        StartCollector(lab, node, acknowledged, "python3", "-u", "-c", Writer, file);

    /// <summary>Runs <paramref name="command"/> on a lab node; every line it prints goes to <paramref name="lines"/>.</summary>
    private static Process StartCollector(MirrorLab lab, string node, List<string> lines, params string[] command)
    {
        var acknowledged = lines;
        var start = new ProcessStartInfo(Tools.Safekit) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[] { "lab", "exec", "--prefix", lab.Prefix, node, "--" }.Concat(command))
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is { Length: > 0 } line)
            {
                lock (acknowledged)
                {
                    acknowledged.Add(line);
                }
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }
}
