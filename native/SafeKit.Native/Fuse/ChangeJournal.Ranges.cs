using System.Buffers.Binary;
using System.IO.Hashing;
using SafeKit.Native.Files;
using SafeKit.Native.Interop;

namespace SafeKit.Native.Fuse;

/// <summary>
/// While the node serves alone, which bytes of each file changed, kept as crash-safe as the
/// paths: a range is written beside the epoch (<c>NNN.ranges</c>) before the change it covers
/// is made and is durable before that change is acknowledged, in the same fdatasync round as the
/// paths. After a crash of the node alone, the next tracking continues from what is there, so a
/// failback still sends only the changed bytes.
/// <para>
/// Cheap on the write path: a write inside a range already written costs nothing; one that
/// continues a range is written widened (<see cref="ChangedRanges.AddUncovered"/>), so a file
/// rewritten or appended sequentially costs a handful of records. The ranges on disk are
/// therefore a superset of the exact ones kept in memory; only a resync after a crash sees them.
/// A separate file keeps the journal's own format, which earlier releases read, unchanged.
/// </para>
/// <para>
/// A ranges file says whether it continues the previous epoch's. Tracking resumes after a restart
/// only when every epoch since the one tracking began has one, in an unbroken chain up to the
/// epoch just before the current, still empty, one; otherwise it starts afresh and the paths
/// already listed are not answered for.
/// </para>
/// </summary>
public sealed unsafe partial class ChangeJournal
{
    private const string RangesExtension = ".ranges";
    private const int RangeRecordSize = 48;
    private const uint RangeKind = 1;
    private const uint LostKind = 2;
    private const uint Continues = 1;
    private static ReadOnlySpan<byte> RangesMagic => "SKR1"u8;

    /// <summary>The durable record of ranges (widened), null while not tracking.</summary>
    private ChangedRanges? _noted;

    /// <summary>The in-memory, exact record the file system keeps: lost along with the durable one.</summary>
    private ChangedRanges? _exact;
    private LogFile _ranges = LogFile.Closed;
    private readonly byte[] _rangeRecord = new byte[RangeRecordSize];

    /// <summary>Range records written since the last fdatasync of their file.</summary>
    private bool _rangesWritten;

    /// <summary>
    /// Each file's last range record, while records may not all be on disk (emptied when they
    /// are): a change inside a range another change just wrote must still wait for that record.
    /// </summary>
    private readonly Dictionary<(ulong Device, ulong Inode), long> _unsyncedRanges = [];

    /// <summary>
    /// Starts keeping <paramref name="exact"/>'s ranges durably too. It is filled with what a
    /// previous run alone recorded when that run's record continues up to now (a restart after a
    /// crash), and told which paths it cannot answer for (<see cref="ChangedRanges.Distrust"/>):
    /// those listed before tracking began.
    /// </summary>
    public void BeginRanges(ChangedRanges exact)
    {
        ArgumentNullException.ThrowIfNull(exact);
        lock (_gate)
        {
            if (_noted is not null || !_complete)
            {
                return; // Tracking already, or nothing here can be trusted anyway.
            }

            var noted = new ChangedRanges(Base);
            var current = _epochs[^1];
            var resumed = current.Paths.Count == 0 && ResumableFrom() is { } first && Replay(first, exact, noted) ? first : -1;
            IReadOnlyDictionary<string, ChangeScope> untrusted;
            if (resumed >= 0)
            {
                untrusted = UnionBefore(resumed);
                _noted = noted;
                _exact = exact;
                OpenRanges(current.Number, continues: true);
            }
            else
            {
                untrusted = Union();
                if (current.Paths.Count != 0)
                {
                    FlushCurrent();
                    StartEpoch(current.Number + 1); // Tracking starts with an epoch: what came before is all untrusted.
                }

                _noted = noted;
                _exact = exact;
                OpenRanges(_epochs[^1].Number, continues: false);
            }

            exact.Distrust(untrusted);
        }
    }

    /// <summary>
    /// Before a change to bytes [<paramref name="start"/>, <paramref name="end"/>) of the file
    /// (<paramref name="device"/>, <paramref name="inode"/>): writes the range unless one already
    /// covers it; returns what to pass to <see cref="WaitDurable"/>, 0 when nothing was written.
    /// </summary>
    public long NoteRange(ulong device, ulong inode, long start, long end)
    {
        lock (_gate)
        {
            switch (_noted?.AddUncovered(device, inode, ref start, ref end))
            {
                case RangeNote.Added:
                    var record = WriteRange(RangeKind, device, inode, start, end);
                    _unsyncedRanges[(device, inode)] = record;
                    return record;

                // A file beyond the cap: after a crash, with fewer files replayed, its later
                // ranges would be recorded without its earlier ones. Nothing is answered for.
                case RangeNote.Unrecorded:
                    return LoseRangesLocked();
                case RangeNote.Covered:
                    // Perhaps by a record another change wrote and waits for now.
                    return _unsyncedRanges.TryGetValue((device, inode), out var covering) ? Unsynced(covering) : 0;
                default:
                    return 0;
            }
        }
    }

    /// <summary>A change could not be tied to a file: from now on no range is answered for, here or after a crash.</summary>
    public long LoseRanges()
    {
        lock (_gate)
        {
            return LoseRangesLocked();
        }
    }

    /// <summary>
    /// A file just created: its directory is listed (<see cref="ChangeScope.Directory"/>), so no
    /// resync compares it by ranges (<see cref="ChangeSet.KeepsName"/>) and its writes need none
    /// on disk — creating files alone costs no more than before.
    /// </summary>
    public void NoteCreated(ulong device, ulong inode)
    {
        long start = 0, end = ByteRange.ToTheEnd;
        lock (_gate)
        {
            if (_noted?.AddUncovered(device, inode, ref start, ref end) == RangeNote.Unrecorded)
            {
                LoseRangesLocked();
            }
        }
    }

    private long LoseRangesLocked()
    {
        if (_noted is not { Lost: false } noted)
        {
            return 0;
        }

        noted.Lose();
        _exact?.Lose();
        return WriteRange(LostKind, 0, 0, 0, 0);
    }

    /// <summary>Under <see cref="_gate"/>: one record appended; on failure the whole journal is distrusted (a resync then walks everything).</summary>
    private long WriteRange(uint kind, ulong device, ulong inode, long start, long end)
    {
        var record = _rangeRecord.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(record, kind);
        BinaryPrimitives.WriteUInt64LittleEndian(record[8..], device);
        BinaryPrimitives.WriteUInt64LittleEndian(record[16..], inode);
        BinaryPrimitives.WriteInt64LittleEndian(record[24..], start);
        BinaryPrimitives.WriteInt64LittleEndian(record[32..], end);
        BinaryPrimitives.WriteUInt32LittleEndian(record[40..], XxHash32.HashToUInt32(record[..40]));
        if (!Append(_ranges.Fd, ref _ranges.Length, ref _ranges.Allocated, record))
        {
            Fail();
            return 0;
        }

        _rangesWritten = true;
        return ++_written;
    }

    /// <summary>Under <see cref="_gate"/>: epoch <paramref name="number"/>'s ranges file, its header and name durable before any record.</summary>
    private void OpenRanges(long number, bool continues)
    {
        var created = CreateFile(RangesPath(number), RangesMagic, continues ? Continues : 0, number);
        CloseRanges();
        _ranges = created;
    }

    /// <summary>Under <see cref="_gate"/>: tracking ends (the copies are equal again); the files go with their epochs.</summary>
    private void EndRanges()
    {
        _noted = null;
        _exact = null;
        CloseRanges();
    }

    private void CloseRanges()
    {
        if (_ranges.Fd >= 0)
        {
            // Even with nothing written since: a waiter may have taken the flag and not synced yet.
            if (Posix.FDataSync(_ranges.Fd) < 0)
            {
                Fail();
            }

            _rangesWritten = false;

            Posix.Close(_ranges.Fd);
            _ranges = LogFile.Closed;
        }
    }

    /// <summary>
    /// The index in <see cref="_epochs"/> where the ranges recorded before the current epoch
    /// began: the start of an unbroken chain of ranges files ending just before it; null when none.
    /// </summary>
    private int? ResumableFrom()
    {
        for (var i = _epochs.Count - 2; i >= 0; i--)
        {
            if (ReadRangesHeader(_epochs[i].Number) is not { } continues)
            {
                return null;
            }

            if (!continues)
            {
                return i;
            }
        }

        return null; // The chain goes back past the oldest epoch kept: where it began is gone.
    }

    /// <summary>Whether epoch <paramref name="number"/>'s ranges file continues the previous one's; null when it has none that is valid.</summary>
    private bool? ReadRangesHeader(long number)
    {
        var path = RangesPath(number);
        if (!File.Exists(path))
        {
            return null;
        }

        Span<byte> header = stackalloc byte[HeaderSize];
        using (var stream = File.OpenRead(path))
        {
            if (stream.ReadAtLeast(header, HeaderSize, throwOnEndOfStream: false) < HeaderSize)
            {
                return null;
            }
        }

        if (!IsHeader(header, RangesMagic) || new Guid(header.Slice(16, 16)) != Base || BinaryPrimitives.ReadInt64LittleEndian(header[32..]) != number)
        {
            return null;
        }

        return (BinaryPrimitives.ReadUInt32LittleEndian(header[8..]) & Continues) != 0;
    }

    /// <summary>
    /// The ranges of epochs <paramref name="first"/> up to the one before the current, in the
    /// order written, into both records; each file up to its first empty or torn record (a crash
    /// while it was written: the change it covers was not made yet).
    /// </summary>
    private bool Replay(int first, ChangedRanges exact, ChangedRanges noted)
    {
        for (var i = first; i < _epochs.Count - 1; i++)
        {
            byte[] bytes;
            try
            {
                bytes = File.ReadAllBytes(RangesPath(_epochs[i].Number));
            }
            catch (IOException)
            {
                return false;
            }

            for (var offset = HeaderSize; offset + RangeRecordSize <= bytes.Length; offset += RangeRecordSize)
            {
                var record = bytes.AsSpan(offset, RangeRecordSize);
                var kind = BinaryPrimitives.ReadUInt32LittleEndian(record);
                if (kind is not (RangeKind or LostKind) || BinaryPrimitives.ReadUInt32LittleEndian(record[40..]) != XxHash32.HashToUInt32(record[..40]))
                {
                    break;
                }

                if (kind == LostKind)
                {
                    exact.Lose();
                    noted.Lose();
                    continue;
                }

                var device = BinaryPrimitives.ReadUInt64LittleEndian(record[8..]);
                var inode = BinaryPrimitives.ReadUInt64LittleEndian(record[16..]);
                var start = BinaryPrimitives.ReadInt64LittleEndian(record[24..]);
                var end = BinaryPrimitives.ReadInt64LittleEndian(record[32..]);
                exact.Add(device, inode, start, end);
                noted.Add(device, inode, start, end);
            }
        }

        return true;
    }

    private Dictionary<string, ChangeScope> UnionBefore(int index)
    {
        var all = new Dictionary<string, ChangeScope>(StringComparer.Ordinal);
        for (var i = 0; i < index; i++)
        {
            ScopeMap.WidenAll(all, _epochs[i].Paths);
        }

        return all;
    }

    private string RangesPath(long number) => Path.Combine(_directory, $"{number:D12}{RangesExtension}");

    /// <summary>A file written at its end into space zero-filled ahead.</summary>
    private struct LogFile
    {
        public static readonly LogFile Closed = new() { Fd = -1 };

        public int Fd;
        public long Length;
        public long Allocated;
    }
}
