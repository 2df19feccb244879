using SafeKit.Replication.Mirror;

namespace SafeKit.Tests.Mirror;

/// <summary>Data generations: which copy is newer after any sequence of going alone, and what heartbeats carry.</summary>
public sealed class MirrorRecordTests
{
    [Fact]
    public void FreshPair_HoldsTheSameData()
    {
        var a = MirrorRecord.Fresh;
        var b = MirrorRecord.Fresh;
        Assert.Equal(DataRelation.Same, a.CompareWith(b.Current, b.Parent));
    }

    [Fact]
    public void NodeThatWentAlone_IsNewer_AndThePeerOlder()
    {
        var shared = MirrorRecord.Fresh;
        var alone = shared.GoneAlone();

        Assert.NotEqual(Guid.Empty, alone.Current);
        Assert.Equal(shared.Current, alone.Parent);
        Assert.True(alone.Diverging);
        Assert.Equal(DataRelation.Newer, alone.CompareWith(shared.Current, shared.Parent));
        Assert.Equal(DataRelation.Older, shared.CompareWith(alone.Current, alone.Parent));
    }

    [Fact]
    public void GoingAloneAgain_KeepsTheGeneration_SoThePeerStaysOlderNotDiverged()
    {
        var shared = MirrorRecord.Fresh with { Current = Guid.NewGuid(), LastRole = "PRIM" };
        var once = shared.GoneAlone();
        var twice = once.GoneAlone(); // e.g. it crashed while alone and started alone again

        Assert.Equal(once.Current, twice.Current);
        Assert.Equal(DataRelation.Older, shared.CompareWith(twice.Current, twice.Parent));
    }

    [Fact]
    public void BothWentAlone_Diverged_OnBothSides()
    {
        var shared = MirrorRecord.Fresh with { Current = Guid.NewGuid() };
        var a = shared.GoneAlone();
        var b = shared.GoneAlone();

        Assert.Equal(DataRelation.Diverged, a.CompareWith(b.Current, b.Parent));
        Assert.Equal(DataRelation.Diverged, b.CompareWith(a.Current, a.Parent));
    }

    [Fact]
    public void UnrelatedData_IsDiverged()
    {
        var a = new MirrorRecord(Guid.NewGuid(), Guid.NewGuid(), false, "PRIM");
        var b = new MirrorRecord(Guid.NewGuid(), Guid.NewGuid(), false, "PRIM");
        Assert.Equal(DataRelation.Diverged, a.CompareWith(b.Current, b.Parent));
    }

    [Fact]
    public void SaveAndLoad_RoundTrip_AndAMissingFileIsFresh_AndADamagedOneRefused()
    {
        var directory = Directory.CreateTempSubdirectory("sk-record-").FullName;
        try
        {
            Assert.Equal(MirrorRecord.Fresh, MirrorRecord.Load(directory));
            var record = MirrorRecord.Fresh.GoneAlone();
            record.Save(directory);
            Assert.Equal(record, MirrorRecord.Load(directory));
            Assert.False(File.Exists(Path.Combine(directory, MirrorRecord.FileName + ".tmp")));

            File.WriteAllText(Path.Combine(directory, MirrorRecord.FileName), "{ not json");
            var error = Assert.Throws<InvalidDataException>(() => MirrorRecord.Load(directory));
            Assert.Contains("cannot tell how new its data is", error.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void Beacon_RoundTrips_AndZerosCarryNone()
    {
        var beacon = new MirrorBeacon(MirrorRole.Second, true, Guid.NewGuid(), Guid.NewGuid());
        var bytes = new byte[MirrorBeacon.Length];
        beacon.Write(bytes);

        Assert.Equal(beacon, MirrorBeacon.Read(bytes));
        Assert.Null(MirrorBeacon.Read(new byte[MirrorBeacon.Length]));
        bytes[1] = 99;
        Assert.Null(MirrorBeacon.Read(bytes));
    }

    [Fact]
    public void ForcedBeacon_RoundTrips_WithTheOtherFlags()
    {
        var beacon = new MirrorBeacon(MirrorRole.Wait, false, Guid.NewGuid(), Guid.NewGuid(), ResyncReady: true, Forced: true);
        var bytes = new byte[MirrorBeacon.Length];
        beacon.Write(bytes);
        Assert.Equal(beacon, MirrorBeacon.Read(bytes));
    }

    [Fact]
    public void AForcedCopy_StaysForcedWhenItGoesAlone_AndAnOlderRecordReadsAsNotForced()
    {
        var forced = (MirrorRecord.Fresh with { Current = Guid.NewGuid(), KeptAside = "/somewhere" }) with { Forced = true };
        var alone = forced.GoneAlone();
        Assert.True(alone.Forced);
        Assert.Null(alone.KeptAside); // what was kept aside belongs to the history left
        Assert.Equal(forced.Current, alone.Parent);
        Assert.True(forced.Branched().Forced);

        var directory = Directory.CreateTempSubdirectory("sk-record-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(directory, MirrorRecord.FileName), $$"""{"current": "{{Guid.NewGuid()}}", "parent": "{{Guid.Empty}}", "diverging": false, "last_role": "PRIM"}""");
            var old = MirrorRecord.Load(directory);
            Assert.False(old.Forced);
            Assert.Null(old.KeptAside);
            alone.Save(directory);
            Assert.Equal(alone, MirrorRecord.Load(directory));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
