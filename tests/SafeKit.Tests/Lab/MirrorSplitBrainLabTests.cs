using SafeKit.Tests.Infrastructure;

namespace SafeKit.Tests.Lab;

/// <summary>
/// A split brain made on purpose in a real lab pair (heartbeats partitioned and the replication
/// link cut, the witness answering both): both nodes go on alone and change their copies. Healed,
/// they say SPLIT BRAIN and overwrite nothing; <c>prim --force</c> on m1 resolves it: m2 stops
/// serving, keeps its own changes aside, is resynchronised from m1 and follows as SECOND.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class MirrorSplitBrainLabTests
{
    private const string Data = "/var/lib/safekit/mirror/data/srv/www";
    private const string Describe = "cd " + Data + " && find . -printf '%p %y %m %s\\n' | sort && find . -type f -print0 | sort -z | xargs -0 sha256sum";

    [Fact]
    public void SplitBrain_IsResolvedOnlyByPrimForce_AndTheDiscardedSideKeepsItsChangesAside()
    {
        using var lab = new MirrorLab();
        lab.Require();
        Assert.True(lab.Exec("m1", "sh", "-c", "echo before > /srv/www/shared.txt").Succeeded);

        lab.Lab("partition", "m1", "m2");
        MirrorLabTests.CutReplication(lab, cut: true);
        try
        {
            lab.WaitForState(1, "ALONE", 30);
            lab.WaitForState(2, "ALONE", 30);
            Assert.True(lab.Exec("m1", "sh", "-c", "echo m1 > /srv/www/from-m1.txt && echo m1 >> /srv/www/shared.txt").Succeeded);
            Assert.True(lab.Exec("m2", "sh", "-c", "echo m2 > /srv/www/from-m2.txt && echo m2 >> /srv/www/shared.txt").Succeeded);
        }
        finally
        {
            lab.Lab("heal");
            MirrorLabTests.CutReplication(lab, cut: false);
        }

        // Healed: both see the split brain and say how to resolve it; nothing is overwritten.
        LabInstance.WaitUntil(() => lab.Reason(1).Contains("SPLIT BRAIN", StringComparison.Ordinal) && lab.Reason(2).Contains("SPLIT BRAIN", StringComparison.Ordinal), "both nodes report the split brain", 20);
        Assert.Contains("prim --force", lab.Reason(2), StringComparison.Ordinal);
        Thread.Sleep(2000);
        Assert.Equal("m2\n", lab.Exec("m2", "cat", Data + "/from-m2.txt").Output);
        Assert.Equal("m1\n", lab.Exec("m1", "cat", Data + "/from-m1.txt").Output);
        Assert.Equal("diverged", lab.Module(1).GetProperty("mirror").GetProperty("data").GetString());

        var force = lab.Exec("client", Tools.Safekit, "prim", "--force", "mirror", "--on", lab.M(1));
        Assert.True(force.Succeeded, force.Output + force.Error);
        Assert.Contains("keeps its own changes aside", force.Output, StringComparison.Ordinal);

        lab.WaitForState(2, "SECOND", 90);
        lab.WaitForState(1, "PRIM", 30);
        Assert.Equal(lab.Exec("m1", "sh", "-c", Describe).Output, lab.Exec("m2", "sh", "-c", Describe).Output);
        Assert.Equal("before\nm1\n", lab.Exec("m2", "cat", Data + "/shared.txt").Output);
        Assert.False(lab.Exec("m2", "test", "-e", Data + "/from-m2.txt").Succeeded);

        // m2's own changes are kept, as it had them.
        var kept = lab.Exec("m2", "sh", "-c", "cd /var/lib/safekit/mirror/discarded/*/srv/www && cat from-m2.txt shared.txt && test -s ../../MANIFEST");
        Assert.True(kept.Succeeded, kept.Output + kept.Error);
        Assert.Equal("m2\nbefore\nm2\n", kept.Output);
        Assert.Contains("kept aside", lab.Exec("client", Tools.Safekit, "events").Output, StringComparison.Ordinal);

        // Mirroring again, the forced mark cleared: a new write reaches m2.
        Assert.True(lab.Exec("m1", "sh", "-c", "echo after > /srv/www/after.txt").Succeeded);
        LabInstance.WaitUntil(() => lab.Exec("m2", "cat", Data + "/after.txt").Output == "after\n", "m2 follows m1 again", 10);
    }
}
