using System.Runtime.InteropServices;

namespace SafeKit.Native.Fuse;

/// <summary>Bytes [<see cref="Start"/>, <see cref="End"/>) of a file; <see cref="End"/> <see cref="long.MaxValue"/>: to its end, whatever its size.</summary>
public readonly record struct ByteRange(long Start, long End)
{
    public const long ToTheEnd = long.MaxValue;
}

/// <summary>
/// Where each file's content changed while the peer was away, exactly, by byte range — so a
/// failback sends a few changed bytes of a file instead of its whole 64 KiB blocks, and asks no
/// hashes for it. Kept from the moment the node went alone (<see cref="Base"/> is the generation
/// its journal starts from), exactly in memory and, widened, in the journal
/// (<see cref="ChangeJournal.BeginRanges"/>): after a crash tracking resumes from there. Files are
/// keyed by (device, inode), not path or node id: the kernel forgets node ids, and a rename moves
/// the file, not its changes.
/// <para>
/// Never too small, possibly too large: a range recorded is a superset of what a change touched
/// (a truncation marks everything from its new size on; a file created marks all of it), and
/// beyond <see cref="MaxRangesPerFile"/> the closest ranges merge. A file whose changes began
/// before tracking (listed in <see cref="Distrust"/>'s paths) or that is not recorded (beyond
/// <see cref="MaxFiles"/>) is not known.
/// </para>
/// </summary>
public sealed class ChangedRanges
{
    /// <summary>Files recorded at most (about 60 MB): the others are compared by hash.</summary>
    public const int MaxFiles = 1 << 20;

    /// <summary>Ranges kept per file: a file written all over costs little more than one written once.</summary>
    public const int MaxRangesPerFile = 32;

    private readonly Lock _gate = new();
    private readonly Dictionary<(ulong Device, ulong Inode), Ranges> _files = [];
    private IReadOnlyDictionary<string, ChangeScope>? _untrusted;
    private bool _lost;

    public ChangedRanges(Guid @base)
    {
        Base = @base;
    }

    /// <summary>The generation the journal lists changes from when tracking began: ranges answer only for that journal.</summary>
    public Guid Base { get; }

    /// <summary>Whether nothing is answered for any more (<see cref="Lose"/>).</summary>
    public bool Lost
    {
        get
        {
            lock (_gate)
            {
                return _lost;
            }
        }
    }

    /// <summary>Files recorded so far.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _files.Count;
            }
        }
    }

    /// <summary>
    /// The paths the journal already held when tracking began: their earlier changes were not
    /// seen here, so none of them is answered for. Until this is called nothing is.
    /// </summary>
    public void Distrust(IReadOnlyDictionary<string, ChangeScope> paths)
    {
        lock (_gate)
        {
            _untrusted = paths;
        }
    }

    /// <summary>A change could not be attributed to a file: from now on nothing is answered for.</summary>
    public void Lose()
    {
        lock (_gate)
        {
            _lost = true;
            _files.Clear();
        }
    }

    /// <summary>Bytes [<paramref name="start"/>, <paramref name="end"/>) of the file may have changed.</summary>
    public void Add(ulong device, ulong inode, long start, long end)
    {
        if (end <= start || start < 0)
        {
            return;
        }

        lock (_gate)
        {
            if (_lost || (_files.Count >= MaxFiles && !_files.ContainsKey((device, inode))))
            {
                return; // Not recorded: not known, compared by hash.
            }

            ref var ranges = ref CollectionsMarshal.GetValueRefOrAddDefault(_files, (device, inode), out _);
            ranges.Add(start, end);
        }
    }

    /// <summary>
    /// For a durable record of these ranges: adds [<paramref name="start"/>, <paramref name="end"/>)
    /// unless a range already covers it, and returns whether it did. A range that continues one
    /// exactly where it ends is widened to at least that one's length, so a file rewritten
    /// sequentially is noted a logarithmic number of times, not once per write; the range added
    /// is returned in the two parameters. <see cref="RangeNote.Unrecorded"/>: nothing is known
    /// any more, or the file would be one too many.
    /// </summary>
    public RangeNote AddUncovered(ulong device, ulong inode, ref long start, ref long end)
    {
        if (end <= start || start < 0)
        {
            return RangeNote.Covered;
        }

        lock (_gate)
        {
            if (_lost || (_files.Count >= MaxFiles && !_files.ContainsKey((device, inode))))
            {
                return RangeNote.Unrecorded;
            }

            ref var ranges = ref CollectionsMarshal.GetValueRefOrAddDefault(_files, (device, inode), out _);
            if (ranges.Covers(start, end))
            {
                return RangeNote.Covered;
            }

            var run = ranges.LengthOfRunEndingAt(start);
            if (run > end - start)
            {
                end = run >= ByteRange.ToTheEnd - start ? ByteRange.ToTheEnd : start + run;
            }

            ranges.Add(start, end);
            return RangeNote.Added;
        }
    }

    /// <summary>
    /// Where the file at <paramref name="relative"/> (now (<paramref name="device"/>,
    /// <paramref name="inode"/>)) changed since tracking began, in order; null when that is not
    /// known. The caller checks the path still names the file it named then (no rename, create or
    /// link in its directory since).
    /// </summary>
    public ByteRange[]? Of(string relative, ulong device, ulong inode)
    {
        lock (_gate)
        {
            if (_lost || _untrusted is not { } untrusted || untrusted.ContainsKey(relative) || !_files.TryGetValue((device, inode), out var ranges))
            {
                return null;
            }

            return ranges.ToArray();
        }
    }

    /// <summary>One file's ranges: sorted, disjoint, not touching; a short array grown on demand.</summary>
    private struct Ranges
    {
        private ByteRange[]? _items;
        private int _count;

        public void Add(long start, long end)
        {
            _items ??= new ByteRange[2];

            // The first range that ends at or after start: those before it stay as they are.
            var first = _count;
            for (var i = _count - 1; i >= 0 && _items[i].End >= start; i--)
            {
                first = i;
            }

            // Every range from there that starts at or before end merges into the new one.
            var last = first;
            while (last < _count && _items[last].Start <= end)
            {
                start = Math.Min(start, _items[last].Start);
                end = Math.Max(end, _items[last].End);
                last++;
            }

            var removed = last - first;
            if (removed == 0 && _count == _items.Length)
            {
                Array.Resize(ref _items, Math.Min(_items.Length * 2, MaxRangesPerFile + 1));
            }

            Array.Copy(_items, last, _items, first + 1, _count - last);
            _items[first] = new ByteRange(start, end);
            _count += 1 - removed;
            if (_count > MaxRangesPerFile)
            {
                MergeClosest();
            }
        }

        public readonly bool Covers(long start, long end)
        {
            for (var i = 0; i < _count; i++)
            {
                if (_items![i].Start <= start && end <= _items[i].End)
                {
                    return true;
                }
            }

            return false;
        }

        /// <summary>The length of the range that ends exactly at <paramref name="at"/>; 0 when none does.</summary>
        public readonly long LengthOfRunEndingAt(long at)
        {
            for (var i = 0; i < _count; i++)
            {
                if (_items![i].End == at)
                {
                    return _items[i].End - _items[i].Start;
                }
            }

            return 0;
        }

        public readonly ByteRange[] ToArray() => _items is null ? [] : _items.AsSpan(0, _count).ToArray();

        /// <summary>One range fewer: the two with the smallest gap between them become one covering it.</summary>
        private void MergeClosest()
        {
            var items = _items!;
            var best = 0;
            for (var i = 1; i < _count - 1; i++)
            {
                if (items[i + 1].Start - items[i].End < items[best + 1].Start - items[best].End)
                {
                    best = i;
                }
            }

            items[best] = new ByteRange(items[best].Start, items[best + 1].End);
            Array.Copy(items, best + 2, items, best + 1, _count - best - 2);
            _count--;
        }
    }
}

/// <summary>What <see cref="ChangedRanges.AddUncovered"/> did.</summary>
public enum RangeNote
{
    /// <summary>A range already there covers it: nothing to write.</summary>
    Covered,

    /// <summary>Added (perhaps widened): to be written.</summary>
    Added,

    /// <summary>Not recorded (all is lost, or one file too many): nothing about the file can be answered for.</summary>
    Unrecorded,
}
