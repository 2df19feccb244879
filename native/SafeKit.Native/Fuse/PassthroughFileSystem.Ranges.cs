using SafeKit.Native.Files;

namespace SafeKit.Native.Fuse;

/// <summary>
/// While alone: the byte ranges every change touches. Before the change, durably in the journal
/// (<see cref="ChangeJournal.NoteRange"/>, waited for with the path before the answer); after it,
/// exactly in memory (<see cref="ChangedRanges"/>), from the same records the mirror and the
/// change tracker get, under <see cref="_sequence"/>. A file created writes no ranges to disk:
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
            return Posix.FStat((int)fileInfo->Fh, &now) < 0 ? _journal?.LoseRanges() ?? 0 : IntendRange(fileInfo->Fh, now.Size, ByteRange.ToTheEnd);
        }

        return IntendRange(fileInfo->Fh, offset, offset + (long)size);
    }

    /// <summary>Under <see cref="_sequence"/>, before a change to bytes [<paramref name="start"/>, <paramref name="end"/>) of the file behind <paramref name="handle"/>: the range, durably.</summary>
    private long IntendRange(ulong handle, long start, long end)
    {
        if (_ranges is null || _journal is not { } journal)
        {
            return 0;
        }

        return _open.TryGetValue(handle, out var file) ? IntendNodeRange(file.Node, start, end) : journal.LoseRanges();
    }

    /// <summary>Under <see cref="_sequence"/>, before a change to bytes [<paramref name="start"/>, <paramref name="end"/>) of node <paramref name="id"/>: the range, durably.</summary>
    private long IntendNodeRange(ulong id, long start, long end)
    {
        if (_ranges is null || _journal is not { } journal)
        {
            return 0;
        }

        return id != 0 && Node(id) is { } inode ? journal.NoteRange(inode.Device, inode.Number, start, end) : journal.LoseRanges();
    }

    /// <summary>Under <see cref="_sequence"/>, for a file just created: no ranges on disk for it (<see cref="ChangeJournal.NoteCreated"/>).</summary>
    private void NoteCreated(ulong id)
    {
        if (_ranges is not null && _journal is { } journal && Node(id) is { } inode)
        {
            journal.NoteCreated(inode.Device, inode.Number);
        }
    }

    /// <summary>Under <see cref="_sequence"/>, for a change just made: the exact bytes it touched, in memory.</summary>
    private void RecordRanges(MutationKind kind, ReadOnlySpan<byte> record, int dataLength)
    {
        if (_ranges is not { } ranges)
        {
            return;
        }

        var r = new MutationReader(record);
        switch (kind)
        {
            case MutationKind.Write:
            {
                var handle = r.U64();
                var offset = r.I64();
                AddForHandle(ranges, handle, offset, offset + dataLength);
                break;
            }

            case MutationKind.Fallocate:
            {
                var handle = r.U64();
                var mode = r.I32();
                var offset = r.I64();
                var length = r.I64();

                // Collapsing or inserting moves every byte after the range.
                AddForHandle(ranges, handle, offset, (mode & (FallocCollapseRange | FallocInsertRange)) != 0 ? ByteRange.ToTheEnd : offset + length);
                break;
            }

            case MutationKind.CopyFileRange:
            {
                r.U64();
                r.I64();
                var handle = r.U64();
                var to = r.I64();
                AddForHandle(ranges, handle, to, to + r.I64());
                break;
            }

            case MutationKind.Setattr:
            {
                var id = r.U64();
                r.I64();
                if ((r.I32() & FuseSetAttr.Size) != 0)
                {
                    r.U32();
                    r.U32();
                    r.U32();

                    // A shrink then a growth leaves zeros where the peer still has bytes: all from the new size on.
                    AddForNode(ranges, id, r.I64(), ByteRange.ToTheEnd);
                }

                break;
            }

            case MutationKind.Open:
                AddForNode(ranges, r.U64(), 0, ByteRange.ToTheEnd); // Sent as a change only with O_TRUNC.
                break;
            case MutationKind.Create or MutationKind.Mknod:
                r.U64();
                AddForNode(ranges, r.U64(), 0, ByteRange.ToTheEnd); // A new file (perhaps on a reused inode number): all of it.
                break;
        }
    }

    private void AddForHandle(ChangedRanges ranges, ulong handle, long start, long end)
    {
        if (_open.TryGetValue(handle, out var file))
        {
            AddForNode(ranges, file.Node, start, end);
        }
        else
        {
            ranges.Lose(); // A change to a file that cannot be named: from now on nothing is known.
        }
    }

    private void AddForNode(ChangedRanges ranges, ulong id, long start, long end)
    {
        if (id != 0 && Node(id) is { } inode)
        {
            ranges.Add(inode.Device, inode.Number, start, end);
        }
        else
        {
            ranges.Lose();
        }
    }
}
