using SafeKit.Native.Fuse;

namespace SafeKit.Tests.Resync;

/// <summary>
/// The changed byte ranges the journal keeps on disk while the node serves alone: after a crash
/// (the journal reopened without being closed) tracking resumes with every range written before
/// it, and nothing is answered for when the record is broken — a change lost, a torn record, a
/// run that did not track, or a restart after the copies became equal.
/// </summary>
public sealed class DurableRangesTests : IDisposable
{
    private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("sk-durable-ranges-");
    private readonly Guid _base = Guid.NewGuid();
    private readonly List<ChangeJournal> _open = [];

    private string Dir => Path.Join(_root.FullName, "journal");

    public void Dispose()
    {
        _open.ForEach(j => j.Dispose());
        _root.Delete(recursive: true);
    }

    /// <summary>A journal as the node opens it when it starts serving alone; the previous instance is left open, as a crash leaves it.</summary>
    private (ChangeJournal Journal, ChangedRanges Ranges) StartAlone()
    {
        var journal = ChangeJournal.Open(Dir, _base, completeIfNew: true);
        _open.Add(journal);
        var ranges = new ChangedRanges(_base);
        journal.BeginRanges(ranges);
        return (journal, ranges);
    }

    [Fact]
    public void RangesWrittenAlone_SurviveACrash_AndTrackingResumesWithThem()
    {
        var (journal, ranges) = StartAlone();
        journal.WaitDurable(journal.Note("early", ChangeScope.Entry)); // Noted while tracking: trusted.
        journal.WaitDurable(journal.NoteRange(1, 10, 100, 200));
        Assert.Equal(0, journal.NoteRange(1, 10, 150, 160)); // Covered: nothing written, nothing to wait for.
        journal.WaitDurable(journal.NoteRange(1, 11, 0, ByteRange.ToTheEnd));
        ranges.Add(1, 10, 100, 200);
        Assert.Equal([new(100, 200)], ranges.Of("a", 1, 10)!);

        // Crash, restart alone: resumed.
        (journal, ranges) = StartAlone();
        Assert.Equal([new(100, 200)], ranges.Of("a", 1, 10)!);
        Assert.Equal([new(0, ByteRange.ToTheEnd)], ranges.Of("b", 1, 11)!);
        Assert.Equal([new(100, 200)], ranges.Of("early", 1, 10)!);
        Assert.Null(ranges.Of("c", 1, 12));

        // And again, with what the second run added.
        journal.WaitDurable(journal.NoteRange(1, 10, 300, 400));
        (_, ranges) = StartAlone();
        Assert.Equal([new(100, 200), new(300, 400)], ranges.Of("a", 1, 10)!);
    }

    [Fact]
    public void AChangeInsideARangeNotYetOnDisk_WaitsForItsRecord_AndOnlyForIt()
    {
        // Two changes to the same bytes at once (a write and the writeback of a shared mapping,
        // which holds no inode lock): the second finds the range covered by the first's record,
        // still on its way to the disk, and must not be made before it.
        var (journal, _) = StartAlone();
        var record = journal.NoteRange(1, 10, 100, 200);
        Assert.NotEqual(0, record);
        Assert.Equal(record, journal.NoteRange(1, 10, 150, 160));
        Assert.False(journal.IsDurable(record));

        journal.WaitDurable(record);
        var other = journal.NoteRange(1, 11, 0, 10); // Another file's, not on disk yet.
        Assert.Equal(0, journal.NoteRange(1, 10, 150, 160));
        Assert.False(journal.IsDurable(other));
    }

    [Fact]
    public void PathsListedBeforeTrackingBegan_AreNotAnsweredFor_AfterACrashEither()
    {
        using (var mirroring = ChangeJournal.Open(Dir, _base, completeIfNew: true))
        {
            mirroring.WaitDurable(mirroring.Note("before", ChangeScope.Entry)); // While the peer was there, not yet acknowledged.
            var ranges = new ChangedRanges(_base);
            mirroring.BeginRanges(ranges); // The peer is lost now.
            mirroring.WaitDurable(mirroring.NoteRange(1, 5, 0, 10));
            Assert.Null(ranges.Of("before", 1, 5));
        }

        var (_, resumed) = StartAlone();
        Assert.Null(resumed.Of("before", 1, 5));
        Assert.Equal([new(0, 10)], resumed.Of("after", 1, 5)!);
    }

    [Fact]
    public void FilesCreatedAlone_WriteNoRanges_AndOneFileTooMany_LosesEverything_AlsoAfterACrash()
    {
        var (journal, _) = StartAlone();
        journal.WaitDurable(journal.NoteRange(3, 1, 0, 10));
        journal.NoteCreated(3, 2);
        Assert.Equal(0, journal.NoteRange(3, 2, 0, 4096)); // Its directory's listing covers it.

        // Up to the cap (created files count: in memory only, so a replay would see fewer).
        for (var inode = 3UL; inode <= ChangedRanges.MaxFiles; inode++)
        {
            journal.NoteCreated(3, inode);
        }

        Assert.NotEqual(0, journal.NoteRange(3, 1, 100, 110)); // A file already known: still recorded.
        journal.WaitDurable(journal.NoteRange(3, ChangedRanges.MaxFiles + 5, 0, 10));
        var (_, ranges) = StartAlone();
        Assert.Null(ranges.Of("a", 3, 1));
    }

    [Fact]
    public void ALostChange_ATornRecord_OrARunThatDidNotTrack_LeaveNothingWrong()
    {
        // A change that could not be tied to a file: nothing is known after the crash either.
        var (journal, _) = StartAlone();
        journal.WaitDurable(journal.NoteRange(1, 1, 0, 10));
        journal.WaitDurable(journal.LoseRanges());
        var (_, ranges) = StartAlone();
        Assert.Null(ranges.Of("a", 1, 1));

        // A torn last record (the crash cut it): the ones before it are kept.
        ChangeJournal.Delete(Dir);
        (journal, _) = StartAlone();
        journal.WaitDurable(journal.NoteRange(2, 1, 0, 10));
        journal.WaitDurable(journal.NoteRange(2, 2, 0, 10));
        var file = Directory.GetFiles(Dir, "*.ranges").Order(StringComparer.Ordinal).Last();
        var bytes = File.ReadAllBytes(file);
        bytes[64 + 48 + 40] ^= 0xFF; // The second record's checksum.
        File.WriteAllBytes(file, bytes);
        (journal, ranges) = StartAlone();
        Assert.Equal([new(0, 10)], ranges.Of("a", 2, 1)!);
        Assert.Null(ranges.Of("b", 2, 2));

        // A run in between that did not track (not alone): the chain is broken, so nothing is
        // answered for, and everything listed so far is untrusted.
        journal.WaitDurable(journal.NoteRange(2, 3, 0, 10));
        var notTracking = ChangeJournal.Open(Dir, _base, completeIfNew: true);
        _open.Add(notTracking);
        notTracking.WaitDurable(notTracking.Note("written", ChangeScope.Entry));
        (journal, ranges) = StartAlone();
        Assert.Null(ranges.Of("a", 2, 1));
        Assert.Null(ranges.Of("c", 2, 3));
        ranges.Add(2, 4, 0, 10);
        Assert.Null(ranges.Of("written", 2, 4));
        Assert.Equal([new(0, 10)], ranges.Of("new", 2, 4)!);

        // The copies equal again: tracking ends and its files go.
        journal.Restart(Guid.NewGuid());
        Assert.Empty(Directory.GetFiles(Dir, "*.ranges"));
        Assert.Equal(0, journal.NoteRange(2, 5, 0, 10));
    }
}
