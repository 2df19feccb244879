using SafeKit.Native.Files;

namespace SafeKit.Native.Fuse;

/// <summary>
/// While alone: the byte ranges every change touches, noted under <see cref="_sequence"/> before
/// the change is made — exactly in memory (<see cref="ChangedRanges"/>), widened and durably in the
/// journal (<see cref="ChangeJournal.NoteRange"/>, waited for with the path before the answer). A
/// range asked for and not made (a failed write, a short copy) only makes the record larger. An
/// O_APPEND write notes everything from the present end on. A file created writes no ranges to disk:
/// its directory's listing covers it instead (<see cref="ChangeSet.KeepsName"/>).
/// </summary>
public sealed unsafe partial class PassthroughFileSystem
{
    private const int FallocCollapseRange = 0x08;
    private const int FallocInsertRange = 0x20;

    private volatile ChangedRanges? _ranges;

    /// <summary>
    /// Starts recording where each file changes (the node serves alone from now on). Files the
    /// journal already lists were changed before, unseen here: they are not answered for.
    /// </summary>
    public void TrackChangedRanges()
    {
        if (_journal is not { } journal || _ranges is not null)
        {
            return;
        }

        // Published before the journal is read: a change noted in the journal after that read
        // finds the record and adds its range; one noted before is in what is read. The journal
        // fills it with what a run alone before a crash recorded, when that record reaches now.
        var ranges = new ChangedRanges(journal.Base);
        _ranges = ranges;
        journal.BeginRanges(ranges);
    }

    /// <summary>Stops recording (the peer holds every change again).</summary>
    public void StopTrackingChangedRanges() => _ranges = null;

    /// <summary>
    /// Where the file at <paramref name="relative"/> — (<paramref name="device"/>,
    /// <paramref name="inode"/>) as listed — changed since the node went alone, for a resync
    /// from the journal starting at <paramref name="base"/>; null when not known.
    /// </summary>
    public ByteRange[]? ChangedRangesOf(string relative, ulong device, ulong inode, Guid @base) =>
        _ranges is { } ranges && ranges.Base == @base && _journal?.Base == @base ? ranges.Of(relative, device, inode) : null;

    /// <summary>
    /// Under <see cref="_sequence"/>, before a write through <paramref name="fileInfo"/> (after its
    /// path is noted): its range, durably. An O_APPEND write lands at the end, wherever that is
    /// when it runs: everything from the present end on.
    /// </summary>
    private long IntendWrite(FuseFileInfo* fileInfo, long offset, nuint size)
    {
        if (_ranges is null || size == 0)
        {
            return 0;
        }

        if ((fileInfo->Flags & Posix.OAppend) != 0)
        {
            Stat now;
            return Posix.FStat((int)fileInfo->Fh, &now) < 0 ? LoseRanges() : IntendRange(fileInfo->Fh, now.Size, ByteRange.ToTheEnd);
        }

        return IntendRange(fileInfo->Fh, offset, offset + (long)size);
    }

    /// <summary>Under <see cref="_sequence"/>, before a change to bytes [<paramref name="start"/>, <paramref name="end"/>) of the file behind <paramref name="handle"/>: the range, in memory and durably.</summary>
    private long IntendRange(ulong handle, long start, long end) =>
        _ranges is null ? 0 : IntendNodeRange(_open.TryGetValue(handle, out var file) ? file.Node : 0, start, end);

    /// <summary>
    /// Under <see cref="_sequence"/>, before a change to bytes [<paramref name="start"/>,
    /// <paramref name="end"/>) of node <paramref name="id"/>: the range, exactly in memory and
    /// (widened) in the journal; a change that cannot be tied to a file loses both.
    /// </summary>
    private long IntendNodeRange(ulong id, long start, long end)
    {
        if (_ranges is not { } ranges || _journal is not { } journal)
        {
            return 0;
        }

        if (id == 0 || Node(id) is not { } inode)
        {
            return LoseRanges();
        }

        ranges.Add(inode.Device, inode.Number, start, end);
        return journal.NoteRange(inode.Device, inode.Number, start, end);
    }

    /// <summary>A change that cannot be tied to a file: from now on no range is answered for, in memory or after a crash.</summary>
    private long LoseRanges()
    {
        _ranges?.Lose();
        return _journal?.LoseRanges() ?? 0;
    }

    /// <summary>Under <see cref="_sequence"/>, for a file just created: no ranges on disk for it (<see cref="ChangeJournal.NoteCreated"/>).</summary>
    private void NoteCreated(ulong id)
    {
        if (_ranges is { } ranges && _journal is { } journal && Node(id) is { } inode)
        {
            ranges.Add(inode.Device, inode.Number, 0, ByteRange.ToTheEnd); // Perhaps on a reused inode number: all of it.
            journal.NoteCreated(inode.Device, inode.Number);
        }
    }
}
