using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using SafeKit.Native.Files;

namespace SafeKit.Native.Fuse;

/// <summary>
/// What bringing a peer up to date needs from the running file system: the paths changed since
/// the last look (<see cref="TrackChanges"/>, <see cref="TakeChanges"/>), a moment with no
/// change in progress (<see cref="Freeze"/>), and, within it, telling a newly connected SECOND
/// every node and open file it will hear about (<see cref="FrozenFileSystem.Announce"/>).
/// </summary>
public sealed unsafe partial class PassthroughFileSystem
{
    /// <summary>Open file handles → (node, open flags): a SECOND attached later must open them too.</summary>
    private readonly ConcurrentDictionary<ulong, (ulong Node, int Flags)> _open = new();
    private ChangeTracker? _tracker;
    private string? _canonicalRoot;

    /// <summary>Starts recording changed paths (until the file system is disposed).</summary>
    public void TrackChanges()
    {
        lock (_sequence)
        {
            _canonicalRoot ??= LinkTarget(_inodes.Root.Fd);
            _tracker ??= new ChangeTracker();
        }
    }

    /// <summary>The paths changed since tracking started or since the last call; tracking continues.</summary>
    public ChangeSet TakeChanges() => _tracker?.Take() ?? throw new InvalidOperationException("changes are not tracked on this file system");

    /// <summary>
    /// Waits until no change is in progress and holds every new one back (reads go on) until the
    /// returned object is disposed. Keep it short: the application's writes wait meanwhile.
    /// </summary>
    public FrozenFileSystem Freeze() => new(this);

    private void Opened(int fd, ulong node, int flags) => _open[(ulong)fd] = (node, flags);

    /// <summary>Forgets an open handle; its open flags, or null when it was not known.</summary>
    private int? Closed(int fd) => _open.TryRemove((ulong)fd, out var file) ? file.Flags : null;

    /// <summary>Under <see cref="_sequence"/>, for a change just made: notes the paths a resync must look at.</summary>
    private void Track(MutationKind kind, ReadOnlySpan<byte> record)
    {
        if (_tracker is not { } tracker)
        {
            return;
        }

        var r = new MutationReader(record);
        switch (kind)
        {
            case MutationKind.Mknod or MutationKind.Mkdir or MutationKind.Symlink or MutationKind.Create or MutationKind.Unlink or MutationKind.Rmdir:
                NoteNode(tracker, r.U64(), ChangeScope.Directory);
                break;
            case MutationKind.Rename:
            {
                var from = r.U64();
                var to = r.U64();
                var flags = r.U32();
                var name = r.Bytes();
                var newName = r.Bytes();
                NoteNode(tracker, from, ChangeScope.Directory);
                NoteNode(tracker, to, ChangeScope.Directory);
                NoteChild(tracker, to, newName);
                if ((flags & 2) != 0)
                {
                    NoteChild(tracker, from, name); // RENAME_EXCHANGE: both names hold something new.
                }

                break;
            }

            case MutationKind.Link:
            {
                var node = r.U64();
                NoteNode(tracker, r.U64(), ChangeScope.Directory);
                NoteNode(tracker, node, ChangeScope.Entry);
                break;
            }

            case MutationKind.Open or MutationKind.Setattr or MutationKind.Setxattr or MutationKind.Removexattr:
                NoteNode(tracker, r.U64(), ChangeScope.Entry);
                break;
            case MutationKind.Write or MutationKind.Fallocate:
                NoteHandle(tracker, r.U64());
                break;
            case MutationKind.CopyFileRange:
                r.U64();
                r.I64();
                NoteHandle(tracker, r.U64());
                break;
        }
    }

    private void NoteHandle(ChangeTracker tracker, ulong handle)
    {
        if (_open.TryGetValue(handle, out var file))
        {
            NoteNode(tracker, file.Node, ChangeScope.Entry);
        }
    }

    private void NoteNode(ChangeTracker tracker, ulong id, ChangeScope scope)
    {
        if (scope == ChangeScope.Entry && tracker.AlreadyNoted(id))
        {
            return;
        }

        if (Node(id) is not { } inode || Relative(inode.Fd) is not { } relative)
        {
            return; // Gone: the change that removed it noted its directory.
        }

        if (scope == ChangeScope.Entry && IsDirectory(inode.Fd))
        {
            scope = ChangeScope.Directory; // A directory's own metadata: its listing is compared.
        }

        tracker.Note(relative, scope, scope == ChangeScope.Entry ? id : 0);
    }

    private void NoteChild(ChangeTracker tracker, ulong parent, ReadOnlySpan<byte> name)
    {
        if (Node(parent) is { } inode && Relative(inode.Fd) is { } relative)
        {
            var child = System.Text.Encoding.UTF8.GetString(name);
            tracker.Note(relative.Length == 0 ? child : $"{relative}/{child}", ChangeScope.Tree);
        }
    }

    /// <summary>The path of a node's file relative to the data directory; null when it was deleted or lies outside.</summary>
    private string? Relative(int fd)
    {
        var path = LinkTarget(fd);
        var root = _canonicalRoot!;
        if (path is null || path.EndsWith(" (deleted)", StringComparison.Ordinal))
        {
            return null;
        }

        return path == root ? "" : path.StartsWith(root + "/", StringComparison.Ordinal) ? path[(root.Length + 1)..] : null;
    }

    private static string? LinkTarget(int fd)
    {
        var proc = stackalloc byte[32];
        var buffer = stackalloc byte[4096];
        var length = Posix.ReadlinkAt(Posix.AtFdCwd, ProcPath(fd, proc), buffer, 4096);
        return length <= 0 ? null : System.Text.Encoding.UTF8.GetString(buffer, (int)length);
    }

    /// <summary>
    /// Sends, through the sink, every node the kernel holds (by path, or as deleted-but-open) and
    /// every open file handle: a SECOND attached while the application runs can then apply what
    /// comes next exactly as one attached from the start. Under <see cref="_sequence"/>.
    /// </summary>
    private void AnnounceAll()
    {
        _canonicalRoot ??= LinkTarget(_inodes.Root.Fd);
        Span<byte> buffer = stackalloc byte[RecordSize];
        foreach (var inode in _inodes.Snapshot())
        {
            if (inode.Id == InodeTable.RootId)
            {
                continue;
            }

            var relative = Relative(inode.Fd);
            Stat stat;
            var deleted = relative is null && Posix.FStatAt(inode.Fd, (byte*)Empty, &stat, Posix.AtEmptyPath | Posix.AtSymlinkNofollow) == 0 && stat.Nlink == 0;
            if (relative is null && !deleted)
            {
                continue;
            }

            var record = new MutationWriter(buffer);
            record.U64(inode.Id);
            record.U32(deleted ? 1u : 0u);
            record.Bytes(System.Text.Encoding.UTF8.GetBytes(relative ?? ""));
            Send(MutationKind.BindPath, record.Written, changes: false);
        }

        foreach (var (handle, (node, flags)) in _open)
        {
            var record = new MutationWriter(buffer);
            record.U64(node);
            record.U64(handle);
            record.I32(flags & ~(Posix.OTrunc | Posix.OCreat | Posix.OExcl));
            Send(MutationKind.Open, record.Written, changes: false);
        }
    }

    /// <summary>The file system with no change in progress and every new one held back; see <see cref="Freeze"/>.</summary>
    public sealed class FrozenFileSystem : IDisposable
    {
        private readonly BlockingCollection<(Action Work, TaskCompletionSource Done)> _work = [];
        private readonly Thread _holder;

        internal FrozenFileSystem(PassthroughFileSystem fileSystem)
        {
            // The sequencing lock belongs to the thread that took it: one thread holds it for the
            // whole freeze and runs, inside it, what must happen while nothing changes.
            using var held = new ManualResetEventSlim();
            _holder = new Thread(() =>
            {
                lock (fileSystem._sequence)
                {
                    held.Set();
                    foreach (var (work, done) in _work.GetConsumingEnumerable())
                    {
                        try
                        {
                            work();
                            done.SetResult();
                        }
#pragma warning disable CA1031 // Handed to the caller through its task.
                        catch (Exception e)
#pragma warning restore CA1031
                        {
                            done.SetException(e);
                        }
                    }
                }
            })
            {
                IsBackground = true,
                Name = "safekit-freeze",
            };
            FileSystem = fileSystem;
            _holder.Start();
            held.Wait();
        }

        public PassthroughFileSystem FileSystem { get; }

        /// <summary>
        /// Within the freeze: runs <paramref name="attach"/> (the sink starts sending to the new
        /// SECOND), then announces every node and open file through it.
        /// </summary>
        public Task Announce(Action attach) => Run(() =>
        {
            attach();
            FileSystem.AnnounceAll();
        });

        private Task Run(Action work)
        {
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _work.Add((work, done));
            return done.Task;
        }

        /// <summary>Lets changes through again.</summary>
        public void Dispose()
        {
            _work.CompleteAdding();
            _holder.Join();
            _work.Dispose();
        }
    }
}
