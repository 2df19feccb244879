using SafeKit.Native.Fuse;

namespace SafeKit.Tests.Resync;

/// <summary>The byte ranges an alone node records per file, and when a path still names the file it named.</summary>
public sealed class ChangedRangesTests
{
    private static readonly Dictionary<string, ChangeScope> NothingEarlier = new(StringComparer.Ordinal);

    private static ChangedRanges Tracking(IReadOnlyDictionary<string, ChangeScope>? earlier = null)
    {
        var ranges = new ChangedRanges(Guid.NewGuid());
        ranges.Distrust(earlier ?? NothingEarlier);
        return ranges;
    }

    [Fact]
    public void OverlappingAndTouchingWrites_MergeIntoSortedDisjointRanges()
    {
        var ranges = Tracking();
        ranges.Add(1, 7, 100, 200);
        ranges.Add(1, 7, 500, 600);
        ranges.Add(1, 7, 200, 250); // Touches the first.
        ranges.Add(1, 7, 0, 10);
        ranges.Add(1, 7, 550, 700); // Overlaps the third.
        ranges.Add(1, 7, 300, 300); // Empty: nothing.
        Assert.Equal([new(0, 10), new(100, 250), new(500, 700)], ranges.Of("f", 1, 7)!);

        ranges.Add(1, 7, 5, 520); // Swallows all but the edges.
        Assert.Equal([new(0, 700)], ranges.Of("f", 1, 7)!);

        ranges.Add(1, 7, 650, ByteRange.ToTheEnd); // A truncation.
        Assert.Equal([new(0, ByteRange.ToTheEnd)], ranges.Of("f", 1, 7)!);
    }

    [Fact]
    public void ManyScatteredWrites_KeepAtMostTheCap_AndStillCoverEveryByte()
    {
        var ranges = Tracking();
        var random = new Random(7);
        var written = new List<(long Start, long End)>();
        for (var i = 0; i < 500; i++)
        {
            var start = random.NextInt64(0, 10_000_000);
            var end = start + random.Next(1, 5000);
            written.Add((start, end));
            ranges.Add(3, 9, start, end);
        }

        var kept = ranges.Of("f", 3, 9)!;
        Assert.InRange(kept.Length, 1, ChangedRanges.MaxRangesPerFile);
        for (var i = 1; i < kept.Length; i++)
        {
            Assert.True(kept[i - 1].End < kept[i].Start, $"ranges {i - 1} and {i} overlap or touch");
        }

        foreach (var (start, end) in written)
        {
            Assert.Contains(kept, r => r.Start <= start && end <= r.End);
        }
    }

    [Fact]
    public void WritesToAFileAlreadyRecorded_AllocateNothing()
    {
        var ranges = Tracking();
        for (var i = 0; i < ChangedRanges.MaxRangesPerFile * 2; i++)
        {
            ranges.Add(5, 5, i * 10_000L, (i * 10_000L) + 100); // Grown to its largest.
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 10_000; i++)
        {
            ranges.Add(5, 5, 1_000_000 + (i * 4096L), 1_000_000 + ((i + 1) * 4096L)); // Appends.
            ranges.Add(5, 5, (i % 97) * 7_919L, ((i % 97) * 7_919L) + 512); // Scattered overwrites.
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void AddUncovered_WritesNothingCovered_AndWidensASequentialRun_SoFewRecordsCoverAStream()
    {
        var noted = Tracking();
        long start = 0, end = 4096;
        Assert.Equal(RangeNote.Added, noted.AddUncovered(1, 1, ref start, ref end));
        Assert.Equal((0, 4096), (start, end));

        (start, end) = (100, 200);
        Assert.Equal(RangeNote.Covered, noted.AddUncovered(1, 1, ref start, ref end)); // Inside: nothing to note.

        // A file rewritten 4 KiB at a time: each record at least doubles the run, so 1 GiB costs about 18.
        var records = 1;
        for (long at = 4096; at < 1L << 30; at += 4096)
        {
            (start, end) = (at, at + 4096);
            if (noted.AddUncovered(1, 1, ref start, ref end) == RangeNote.Added)
            {
                records++;
                Assert.Equal(at, start);
                Assert.True(end >= at + 4096);
            }
        }

        Assert.InRange(records, 18, 20);
        Assert.Equal(0, noted.Of("f", 1, 1)![0].Start);

        // A write elsewhere is noted as it is.
        (start, end) = (5L << 30, (5L << 30) + 10);
        Assert.Equal(RangeNote.Added, noted.AddUncovered(1, 1, ref start, ref end));
        Assert.Equal(((5L << 30), (5L << 30) + 10), (start, end));

        noted.Lose();
        Assert.Equal(RangeNote.Unrecorded, noted.AddUncovered(1, 1, ref start, ref end));
    }

    [Fact]
    public void UnknownFiles_EarlierPaths_AndALostChange_AnswerNothing()
    {
        var ranges = new ChangedRanges(Guid.NewGuid());
        ranges.Add(1, 1, 0, 10);
        Assert.Null(ranges.Of("a", 1, 1)); // Before the journal's earlier paths are known.

        ranges.Distrust(new Dictionary<string, ChangeScope>(StringComparer.Ordinal) { ["early"] = ChangeScope.Entry });
        ranges.Add(1, 2, 0, 10);
        Assert.Equal([new(0, 10)], ranges.Of("a", 1, 1)!);
        Assert.Null(ranges.Of("early", 1, 2)); // Changed before tracking began.
        Assert.Null(ranges.Of("b", 1, 3)); // Never recorded.
        Assert.Null(ranges.Of("a", 2, 1)); // Another device.

        ranges.Lose();
        ranges.Add(1, 1, 20, 30);
        Assert.Null(ranges.Of("a", 1, 1));
    }

    [Theory]
    [InlineData("d/e/f.bin", true)]
    [InlineData("d/moved/f.bin", false)] // Its directory arrived by rename.
    [InlineData("d/new/f.bin", false)] // A name was added in its directory.
    [InlineData("d/renamed-onto.bin", false)] // Something arrived at its name.
    [InlineData("top.bin", true)]
    [InlineData("d/e", true)] // Its directory (d) only had a file written in it.
    public void KeepsName_FalseWhenARenameCreateOrLinkMayHavePutAnotherFileThere(string path, bool keeps)
    {
        var changes = ChangeSet.Of(new Dictionary<string, ChangeScope>(StringComparer.Ordinal)
        {
            ["d/e/f.bin"] = ChangeScope.Entry,
            ["d/moved"] = ChangeScope.Tree,
            ["d/new"] = ChangeScope.Directory,
            ["d/renamed-onto.bin"] = ChangeScope.Tree,
            ["d/other.bin"] = ChangeScope.Entry,
        });
        Assert.Equal(keeps, changes.KeepsName(path));
    }
}
