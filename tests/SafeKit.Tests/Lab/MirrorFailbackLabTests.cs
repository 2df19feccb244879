using SafeKit.Tests.Infrastructure;

namespace SafeKit.Tests.Lab;

/// <summary>
/// Resynchronisation in a real lab pair: after double failures (the node serving alone is itself
/// killed while writing; both come back) the resync looks only at the paths the change journals
/// list and the returning node's copy ends equal, with every acknowledged record; and
/// <c>resync --full</c> finds and repairs what no journal knows (a copy damaged behind the
/// mirror's back) while the application runs.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class MirrorFailbackLabTests
{
    private const string Data = "/var/lib/safekit/mirror/data/srv/www";
    private const string Journal = "/var/lib/safekit/mirror/journal/var_lib_safekit_mirror_data_srv_www";

    /// <summary>The tree as both copies must hold it: names, kinds, modes, owners, sizes, links, file times and contents.</summary>
    private const string Describe = "cd " + Data + " && find . -printf '%p %y %m %U %G %s %n %l\\n' | sort && find . -type f -printf '%p %T@\\n' | sort && find . -type f -print0 | sort -z | xargs -0 sha256sum";

    private const string Before = """
        set -e
        cd /srv/www
        mkdir -p work/dir1 work/tree/deep inplace
        head -c 2000000 /dev/urandom > inplace/big.bin
        echo log > inplace/log.txt
        for f in over-from over-to gone linked mode; do echo "$f as both copies had it" > work/$f.txt; done
        head -c 300000 /dev/zero > work/shrink.bin
        echo inner > work/dir1/inner.txt
        echo leaf > work/tree/deep/leaf.txt
        """;

    private const string WhileAlone = """
        set -e
        cd /srv/www
        dd if=/dev/urandom of=inplace/big.bin bs=4096 count=3 seek=100 conv=notrunc status=none
        echo appended >> inplace/log.txt
        truncate -s 1000 work/shrink.bin
        mv work/over-from.txt work/over-to.txt
        mv work/dir1 work/dir2
        rm work/gone.txt
        rm -r work/tree
        ln work/linked.txt work/linked-too.txt
        mkdir -p new/x/y && echo fresh > new/x/y/z.txt
        chmod 600 work/mode.txt
        ln -s ../inplace/log.txt new/log-link
        """;

    [Fact]
    public void SurvivorKilledWhileAlone_BothComeBack_TheJournalsDriveTheResync_AndNothingIsMissed()
    {
        using var lab = new MirrorLab();
        lab.Require();
        var before = lab.Exec("m1", "sh", "-c", Before);
        Assert.True(before.Succeeded, before.Error);

        // Until SECOND acknowledges them durable (two journal rotations, 10 s apart), the files
        // just written stay listed: changes a node alone did not see, with no ranges known for them.
        LabInstance.WaitUntil(() => lab.Exec("m1", "sh", "-c", $"cat {Journal}/*.journal | grep -ac inplace").Output.Trim() == "0", "inplace acknowledged by SECOND and out of the journal", 60);

        // SECOND crashes; PRIM goes on alone, changes everything, and is killed in the middle of a writer.
        lab.Lab("kill", "m2");
        lab.WaitForState(1, "ALONE");
        var alone = lab.Exec("m1", "sh", "-c", WhileAlone);
        Assert.True(alone.Succeeded, alone.Error);
        var acknowledged = new List<string>();
        using (var writer = MirrorLabTests.StartWriter(lab, "m1", "/srv/www/alone.log", acknowledged))
        {
            LabInstance.WaitUntil(() => MirrorLabTests.Count(acknowledged) >= 100, "100 fsync'd records acknowledged while alone", 60);
            lab.Lab("kill", "m1");
            writer.WaitForExit(10_000);
        }

        // Both come back: the newest copy serves alone again, then brings the other up to date.
        Assert.True(Tools.Run(Tools.Safekit, "lab", "start", "--prefix", lab.Prefix, "m1").Succeeded);
        lab.WaitForState(1, "ALONE", 30);
        Assert.True(Tools.Run(Tools.Safekit, "lab", "start", "--prefix", lab.Prefix, "m2").Succeeded);
        lab.WaitForState(2, "SECOND", 60);
        lab.WaitForState(1, "PRIM");

        var survivor = lab.Exec("m1", "sh", "-c", Describe);
        var returned = lab.Exec("m2", "sh", "-c", Describe);
        Assert.True(survivor.Succeeded && returned.Succeeded, survivor.Error + returned.Error);
        Assert.Equal(survivor.Output, returned.Output);
        Assert.Contains("./new/x/y/z.txt f 644", returned.Output, StringComparison.Ordinal);
        Assert.Contains("./work/mode.txt f 600", returned.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("./work/tree", returned.Output, StringComparison.Ordinal);

        string[] acked;
        lock (acknowledged)
        {
            acked = [.. acknowledged];
        }

        var log = lab.Exec("m2", "cat", Data + "/alone.log").Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(log.Length >= acked.Length, $"{acked.Length} records acknowledged, {log.Length} on the returned copy");
        Assert.Equal(acked, log[..acked.Length]);

        // The journal kept across the crash drove it: no walk of the tree.
        var events = string.Join('\n', lab.Exec("client", Tools.Safekit, "events").Output);
        Assert.Contains("journaled paths", events, StringComparison.Ordinal);

        // And the ranges it wrote alone before its crash: inplace/big.bin and inplace/log.txt
        // (their directory kept its names) sent as their changed bytes, not compared by hash.
        Assert.Contains("/srv/www: 2 files by changed ranges", events, StringComparison.Ordinal);

        // Where its time went, step by step, in the order the steps run.
        Assert.Matches(@"steps: connected \d+ ms, live passes \d+ ms, frozen pass \d+ ms, durable there \d+ ms, attached \d+ ms", events);
        Assert.Matches(@"/srv/www: \d+ files by changed ranges, \d+ bytes changed, \d+ bytes on the wire, first pass \d+ ms, ([2-9]|\d\d) connections", events);

        // Both daemons ran the resync warm-up when they started, before the failback, and left no scratch behind.
        for (var node = 1; node <= 2; node++)
        {
            var daemonLog = File.ReadAllText(Path.Combine(lab.StateDirectory, lab.M(node), "safekitd.log"));
            Assert.Contains("resync code warmed up in", daemonLog, StringComparison.Ordinal);
            Assert.DoesNotContain("resync warm-up failed", daemonLog, StringComparison.Ordinal);
            Assert.True(lab.Exec($"m{node}", "test", "!", "-e", "/var/lib/safekit/mirror/resync-warmup").Succeeded, $"m{node} kept its warm-up's scratch directory");
        }

        // Its figures stay in the status (API, metrics, console) and in 'safekit status'.
        var resync = lab.Module(1).GetProperty("mirror").GetProperty("resync");
        Assert.Equal("done", resync.GetProperty("phase").GetString());
        Assert.False(resync.GetProperty("active").GetBoolean());
        Assert.True(resync.GetProperty("files_compared").GetInt64() > 0);
        Assert.Contains("journaled paths", resync.GetProperty("first_pass").GetString(), StringComparison.Ordinal);
        Assert.Contains("last resync mirror", lab.Exec("client", Tools.Safekit, "status").Output, StringComparison.Ordinal);
    }

    [Fact]
    public void FullResync_RepairsADifferencePlantedOnSecondsCopy_WhileTheApplicationRuns()
    {
        using var lab = new MirrorLab();
        lab.Require();
        var write = lab.Exec("m1", "sh", "-c", "head -c 1000000 /dev/urandom > /srv/www/precious.bin && mkdir -p /srv/www/d && echo keep > /srv/www/d/k.txt");
        Assert.True(write.Succeeded, write.Error);
        Assert.Equal(lab.Exec("m1", "sh", "-c", Describe).Output, lab.Exec("m2", "sh", "-c", Describe).Output);

        // SECOND's real copy damaged behind the mirror's back (a bad disk, a hand in the data
        // directory): no journal knows about it.
        var damage = lab.Exec("m2", "sh", "-c", $"printf XXXX | dd of={Data}/precious.bin bs=1 seek=5000 conv=notrunc status=none && echo stray > {Data}/d/stray.txt");
        Assert.True(damage.Succeeded, damage.Error);
        Assert.NotEqual(lab.Exec("m1", "sh", "-c", Describe).Output, lab.Exec("m2", "sh", "-c", Describe).Output);

        // Asked of the node that does not serve: refused, naming the one that does.
        var refused = lab.Exec("client", Tools.Safekit, "resync", "--full", "mirror", "--on", lab.M(2));
        Assert.False(refused.Succeeded);
        Assert.Contains(lab.M(1), refused.Error, StringComparison.Ordinal);

        var nginxPid = Path.Combine(lab.StateDirectory, lab.M(1), "nginx.pid");
        var pid = File.ReadAllText(nginxPid);
        var full = lab.Exec("client", Tools.Safekit, "resync", "--full", "mirror");
        Assert.True(full.Succeeded, full.Output + full.Error);
        LabInstance.WaitUntil(
            () => lab.Exec("m1", "sh", "-c", Describe).Output == lab.Exec("m2", "sh", "-c", Describe).Output && lab.State(1) == "PRIM" && lab.State(2) == "SECOND",
            "m2's copy compared in full and equal to m1's, mirroring again",
            60);
        Assert.Equal(pid, File.ReadAllText(nginxPid));
        // Two full comparisons: the pair's first start, and this one.
        var events = lab.Exec("client", Tools.Safekit, "events").Output;
        Assert.True(System.Text.RegularExpressions.Regex.Count(events, "resynchronised .*the whole tree") >= 2, events);
    }
}
