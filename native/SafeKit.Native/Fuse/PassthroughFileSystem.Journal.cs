using SafeKit.Native.Files;

namespace SafeKit.Native.Fuse;

/// <summary>
/// The change journal on the write path: under <see cref="_sequence"/>, before a change is made,
/// the paths it touches are written to the journal, and the change waits until they are on disk
/// (a crash after the change, even a power cut, then cannot miss it).
/// </summary>
public sealed unsafe partial class PassthroughFileSystem
{
    private ChangeJournal? _journal;

    /// <summary>The journal this file system writes every change into from now on.</summary>
    public ChangeJournal? Journal => _journal;

    /// <summary>Starts writing every change into <paramref name="journal"/> (before mounting, or with nothing in progress).</summary>
    public void UseJournal(ChangeJournal journal)
    {
        ArgumentNullException.ThrowIfNull(journal);
        lock (_sequence)
        {
            _canonicalRoot ??= LinkTarget(_inodes.Root.Fd);
            _journal = journal;
        }
    }

    /// <summary>
    /// While mirroring: starts a new journal epoch and sends SECOND a checkpoint after every
    /// change of the epochs before (see <see cref="MutationKind.Checkpoint"/>). Once it is
    /// acknowledged — the returned task, then the link still mirroring — every change before the
    /// <em>previous</em> checkpoint is durable on SECOND: the epoch the previous rotation returned
    /// may be dropped (<see cref="ChangeJournal.DropThrough"/>).
    /// </summary>
    public (long Epoch, Task Acknowledged) RotateJournal()
    {
        var journal = _journal ?? throw new InvalidOperationException("this file system has no journal");
        lock (_sequence)
        {
            var previous = journal.BeginEpoch();
            return (previous, Send(MutationKind.Checkpoint, [], changes: false, durable: true).AsValueTask().AsTask());
        }
    }

    /// <summary>Before the change: its node's path (e.g. a file about to be written); 0 when nothing needs waiting for.</summary>
    private long IntendNode(ulong id, ChangeScope scope)
    {
        if (_journal is not { } journal)
        {
            return 0;
        }

        if (journal.IsNoted(id, scope, out var pending) || Node(id) is not { } inode)
        {
            return pending;
        }

        if (scope == ChangeScope.Entry && IsDirectory(inode.Fd))
        {
            scope = ChangeScope.Directory; // A directory's own metadata: its listing is compared.
        }

        return Relative(inode.Fd) is { } relative ? journal.Note(relative, scope, id) : 0;
    }

    /// <summary>Before the change: a name in a directory (one about to be created, or to arrive by rename).</summary>
    private long IntendChild(ulong parent, byte* name, ChangeScope scope)
    {
        if (_journal is not { } journal || Node(parent) is not { } inode || Relative(inode.Fd) is not { } relative)
        {
            return 0;
        }

        var child = System.Text.Encoding.UTF8.GetString(Name(name));
        return journal.Note(relative.Length == 0 ? child : $"{relative}/{child}", scope);
    }

    /// <summary>Before the change: the file behind an open handle (about to be written).</summary>
    private long IntendHandle(ulong handle) =>
        _journal is null || !_open.TryGetValue(handle, out var file) ? 0 : IntendNode(file.Node, ChangeScope.Entry);

    /// <summary>
    /// Under <see cref="_sequence"/>, after the intents of a change and before the change: whether
    /// the records they wrote (<paramref name="sequence"/>, 0: none) are on disk. The change may
    /// reach the disk at any moment once made (page writeback, the file system's own journal
    /// commit), so its record must be there first, or a power cut between the two could leave it
    /// on disk, unrecorded (DRBD's activity-log order). When not yet, waits for them with the lock
    /// released (other changes go on meanwhile and share the fdatasync) and returns false: the
    /// caller takes its intents again, which write nothing more unless an epoch began meanwhile.
    /// </summary>
    private bool RecordedFirst(long sequence)
    {
        if (sequence == 0 || _journal is not { } journal || journal.IsDurable(sequence))
        {
            return true;
        }

        _sequence.Exit();
        try
        {
            journal.WaitDurable(sequence);
        }
        finally
        {
            _sequence.Enter();
        }

        return false;
    }

    private static bool IsDirectory(int fd)
    {
        Stat stat;
        return Posix.FStatAt(fd, (byte*)Empty, &stat, Posix.AtEmptyPath | Posix.AtSymlinkNofollow) == 0 && (stat.Mode & 0xF000) == 0x4000;
    }
}
