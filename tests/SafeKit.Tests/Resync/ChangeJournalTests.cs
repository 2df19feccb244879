using SafeKit.Native.Fuse;

namespace SafeKit.Tests.Resync;

/// <summary>
/// The change journal on a real disk: what is noted is on disk before the caller is told it is
/// durable (read back without closing, as after a crash), a torn last record is ignored, epochs
/// are trimmed only when asked, and a journal of another history or one that failed is not trusted.
/// </summary>
public sealed class ChangeJournalTests : IDisposable
{
    private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("sk-journal-");
    private readonly Guid _base = Guid.NewGuid();

    private string Dir => Path.Join(_root.FullName, "journal");

    public void Dispose() => _root.Delete(recursive: true);

    [Fact]
    public void NotedPaths_AreOnDiskWhenDurable_WithTheirWidestScope_AndSurviveAReopen()
    {
        var journal = ChangeJournal.Open(Dir, _base, completeIfNew: true);
        journal.WaitDurable(journal.Note("a/file", ChangeScope.Entry, node: 7));
        var sequence = journal.Note("a", ChangeScope.Directory);
        Assert.Equal(0, journal.Note("a/file", ChangeScope.Entry)); // Already in this epoch and on disk: nothing to write or wait for ("a"'s record is another path's).
        journal.WaitDurable(Math.Max(sequence, journal.Note("a/file", ChangeScope.Tree)));
        Assert.True(journal.IsNoted(7, ChangeScope.Entry));
        Assert.False(journal.IsNoted(8, ChangeScope.Entry));

        // Read as a crashed process leaves it (no close).
        var found = ChangeJournal.Read(Dir);
        Assert.NotNull(found);
        Assert.Equal(_base, found.Base);
        Assert.True(found.Complete);
        Assert.Equal(new Dictionary<string, ChangeScope> { ["a/file"] = ChangeScope.Tree, ["a"] = ChangeScope.Directory }, found.Paths().Paths);

        // Reopened for the same history: kept, and a new epoch starts (the node fast path is new).
        journal.Dispose();
        using var reopened = ChangeJournal.Open(Dir, _base, completeIfNew: false);
        Assert.True(reopened.Complete);
        Assert.Equal(2, reopened.Count);
        Assert.False(reopened.IsNoted(7, ChangeScope.Entry));
    }

    [Fact]
    public void ANodeOrPathAlreadyNoted_StillWaitsForItsRecord_WhileThatRecordIsNotOnDisk()
    {
        // A second change racing the first (which wrote the record and waits for its fdatasync)
        // must not go ahead of that record: it is told to wait for it too, and only for it.
        using var journal = ChangeJournal.Open(Dir, _base, completeIfNew: true);
        var record = journal.Note("a/file", ChangeScope.Entry, node: 7);
        Assert.NotEqual(0, record);
        Assert.True(journal.IsNoted(7, ChangeScope.Entry, out var pending));
        Assert.Equal(record, pending);
        Assert.Equal(record, journal.Note("a/file", ChangeScope.Entry));

        journal.WaitDurable(record);
        var later = journal.Note("b", ChangeScope.Entry); // Not on disk yet, and unrelated to node 7.
        Assert.True(journal.IsNoted(7, ChangeScope.Entry, out pending));
        Assert.Equal(0, pending);
        Assert.False(journal.IsDurable(later));
        Assert.False(journal.IsNoted(8, ChangeScope.Entry, out pending));
        Assert.Equal(0, pending);
    }

    [Fact]
    public void ATornLastRecord_IsIgnored_TheRecordsBeforeItKept()
    {
        using (var journal = ChangeJournal.Open(Dir, _base, completeIfNew: true))
        {
            journal.WaitDurable(journal.Note("kept", ChangeScope.Entry));
            journal.WaitDurable(journal.Note("torn", ChangeScope.Entry));
        }

        // The crash cut the second record in the middle of its checksum.
        var file = Directory.GetFiles(Dir, "*.journal").Order(StringComparer.Ordinal).Last();
        var bytes = File.ReadAllBytes(file);
        var torn = bytes.AsSpan().IndexOf("torn"u8);
        bytes[torn + 6] ^= 0xFF;
        File.WriteAllBytes(file, bytes);

        Assert.Equal(["kept"], ChangeJournal.Read(Dir)!.Paths().Paths.Keys);
    }

    [Fact]
    public void Epochs_AreDroppedOnlyWhenAsked_AndARestartForgetsEverything()
    {
        using var journal = ChangeJournal.Open(Dir, _base, completeIfNew: true);
        journal.WaitDurable(journal.Note("old", ChangeScope.Entry, node: 3));
        var first = journal.BeginEpoch();
        Assert.False(journal.IsNoted(3, ChangeScope.Entry)); // Noted again in the new epoch when touched.
        journal.WaitDurable(journal.Note("new", ChangeScope.Entry));
        Assert.Equal(2, ChangeJournal.Read(Dir)!.Paths().Count);

        journal.DropThrough(first);
        Assert.Equal(["new"], journal.Snapshot().Paths.Keys);
        Assert.Equal(["new"], ChangeJournal.Read(Dir)!.Paths().Paths.Keys);

        var next = Guid.NewGuid();
        journal.Restart(next);
        Assert.Equal(0, journal.Snapshot().Count);
        var found = ChangeJournal.Read(Dir)!;
        Assert.Equal(next, found.Base);
        Assert.Equal(0, found.Paths().Count);
    }

    [Fact]
    public void AJournalOfAnotherHistory_IsDiscarded_AndANewOneIsTrustedOnlyWhenTheCallerSaysSo()
    {
        using (var journal = ChangeJournal.Open(Dir, _base, completeIfNew: true))
        {
            journal.WaitDurable(journal.Note("x", ChangeScope.Entry));
        }

        // Another base: the old record says nothing about it.
        var other = Guid.NewGuid();
        using (var journal = ChangeJournal.Open(Dir, other, completeIfNew: false))
        {
            Assert.Equal(0, journal.Count);
            Assert.False(journal.Complete);
        }

        // Not trusted stays not trusted across a reopen (the marker is on disk), until a restart.
        using (var journal = ChangeJournal.Open(Dir, other, completeIfNew: true))
        {
            Assert.False(journal.Complete);
            Assert.False(ChangeJournal.Read(Dir)!.Complete);
            journal.Restart(other);
            Assert.True(journal.Complete);
        }

        Assert.True(ChangeJournal.Read(Dir)!.Complete);
        ChangeJournal.Delete(Dir);
        Assert.Null(ChangeJournal.Read(Dir));
    }

    [Fact]
    public void ConcurrentWriters_ShareFdatasyncs_AndEveryPathIsDurableWhenItsWaitReturns()
    {
        using var journal = ChangeJournal.Open(Dir, _base, completeIfNew: true);
        Parallel.For(0, 2000, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i => journal.WaitDurable(journal.Note($"d{i % 10}/f{i}", ChangeScope.Entry)));
        var found = ChangeJournal.Read(Dir)!.Paths();
        Assert.Equal(2000, found.Count);
        Assert.All(Enumerable.Range(0, 2000), i => Assert.True(found.Paths.ContainsKey($"d{i % 10}/f{i}")));
    }
}
