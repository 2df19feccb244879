using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using SafeKit.Native.Files;

namespace SafeKit.Native.Fuse;

// A reply that cannot be sent means the request was interrupted or the mount aborted: the kernel
// no longer waits for it, so there is nothing to do (open and create close their descriptor).
#pragma warning disable CA1806

/// <summary>
/// A FUSE file system that forwards every operation to a real directory (the data directory),
/// after libfuse's passthrough_ll: one O_PATH descriptor per node, I/O through descriptors reopened
/// via /proc/self/fd. What it adds: files and directories belong to the calling process's user
/// and group with exactly the mode asked for (the daemon runs as root), renames with flags,
/// O_DIRECT stripped for the real file (libfuse's buffers are not aligned) but honoured towards
/// the kernel's cache. Every reply is a positive errno or data; nothing throws into native code.
/// </summary>
public sealed unsafe partial class PassthroughFileSystem : IDisposable
{
    /// <summary>How long the kernel may cache names and attributes (every change passes through here).</summary>
    private const double CacheSeconds = 1.0;

    /// <summary>Seconds the kernel may cache names and attributes: none for a read-only view, whose files change underneath.</summary>
    private readonly double _cacheSeconds;

    /// <summary>Room for a record: ids, numbers, a name (≤ 255 bytes) and a symlink target (≤ 4096).</summary>
    private const int RecordSize = 4608;

    private readonly InodeTable _inodes;
    private readonly ConcurrentDictionary<ulong, DirectoryHandle> _directories = new();
    private readonly IReplicationSink? _sink;

    /// <summary>
    /// Held from a change to its enqueueing: the replication stream is in the order the changes
    /// were made here, so SECOND replays the same history (a create in a directory renamed at the
    /// same moment lands where it landed here).
    /// </summary>
    private readonly Lock _sequence = new();
    private long _nextDirectory;
    private int _repliesDeferred;

    private PassthroughFileSystem(InodeTable inodes, string dataDirectory, IReplicationSink? sink, bool readOnly)
    {
        _inodes = inodes;
        DataDirectory = dataDirectory;
        _sink = sink;
        ReadOnly = readOnly;
        _cacheSeconds = readOnly ? 0 : CacheSeconds;
    }

    /// <summary>
    /// A view for inspection (SECOND's copy, changed underneath by the applier): mounted read-only,
    /// nothing cached, every change refused with EROFS.
    /// </summary>
    public bool ReadOnly { get; }

    /// <summary>What the mount's INIT settled beyond libfuse (<see cref="FuseDevice"/>).</summary>
    internal FuseNegotiation Negotiation { get; } = new();

    /// <summary>The kernel leaves clearing set-user-ID and set-group-ID to this file system (<see cref="FuseDevice"/>).</summary>
    public bool HandlesKillPriv => Negotiation.HandlesKillPriv;

    /// <summary>The real directory behind the mount.</summary>
    public string DataDirectory { get; }

    /// <summary>Nodes the kernel currently holds (for tests and status).</summary>
    public int NodeCount => _inodes.Count;

    private long _xattrLookups;

    /// <summary>getxattr requests served so far (the kernel's security.capability lookups before writes among them).</summary>
    public long XattrLookups => Interlocked.Read(ref _xattrLookups);

    private long _createsThatFoundAFile;

    /// <summary>Creates that found the name taken in the real directory (made there since the kernel's lookup): answered ESTALE, or EEXIST for O_EXCL.</summary>
    public long CreatesThatFoundAFile => Interlocked.Read(ref _createsThatFoundAFile);

    /// <summary>Opens the data directory (before mounting: the mount may hide it).</summary>
    /// <exception cref="Interop.NativeException">It cannot be opened.</exception>
    public static PassthroughFileSystem Open(string dataDirectory, IReplicationSink? sink = null, bool readOnly = false)
    {
        ArgumentNullException.ThrowIfNull(dataDirectory);
        Host.OpenFileLimit.Raise();
        var path = Utf8(dataDirectory);
        int fd;
        fixed (byte* p = path)
        {
            fd = Posix.OpenAt(Posix.AtFdCwd, p, Posix.OPath | Posix.ODirectory | Posix.OCloexec, 0);
        }

        if (fd < 0)
        {
            throw Interop.NativeException.FromLastError($"open {dataDirectory}");
        }

        Stat stat;
        if (Posix.FStat(fd, &stat) < 0)
        {
            var errno = Posix.Errno;
            Posix.Close(fd);
            throw new Interop.NativeException($"stat {dataDirectory}", errno);
        }

        return new PassthroughFileSystem(new InodeTable(fd, stat.Dev, stat.Ino), dataDirectory, sink, readOnly);
    }

    public void Dispose()
    {
        foreach (var handle in _directories.Values)
        {
            Posix.CloseDir(handle.Stream);
        }

        _directories.Clear();
        _inodes.Dispose();
    }

    internal static byte[] Utf8(string text) => System.Text.Encoding.UTF8.GetBytes(text + "\0");

    /// <summary>"/proc/self/fd/N" as a NUL-terminated string in <paramref name="buffer"/> (≥ 32 bytes).</summary>
    internal static byte* ProcPath(int fd, byte* buffer)
    {
        ReadOnlySpan<byte> prefix = "/proc/self/fd/"u8;
        var span = new Span<byte>(buffer, 32);
        prefix.CopyTo(span);
        System.Buffers.Text.Utf8Formatter.TryFormat(fd, span[prefix.Length..], out var written);
        span[prefix.Length + written] = 0;
        return buffer;
    }

    private Inode? Node(ulong id) => id == InodeTable.RootId ? _inodes.Root : _inodes.Find(id);

    private static ReadOnlySpan<byte> Name(byte* name) => MemoryMarshal.CreateReadOnlySpanFromNullTerminated(name);

    /// <summary>Hands a change to the sink (under <see cref="_sequence"/>).</summary>
    private ReplicationTicket Send(MutationKind kind, scoped ReadOnlySpan<byte> record, bool changes, bool durable = false, scoped ReadOnlySpan<byte> data = default)
    {
        if (changes)
        {
            Track(kind, record);
        }

        return _sink?.Enqueue(kind, record, data, durable, changes) ?? ReplicationTicket.None;
    }

    private static int Fail(nint request, int errno) => LibFuse.ReplyErr(request, errno == 0 ? Posix.EIO : errno);

    private static int ReplyResult(nint request, int result) => LibFuse.ReplyErr(request, result < 0 ? Posix.Errno : 0);

    /// <summary>Looks <paramref name="name"/> up in <paramref name="parent"/> and fills <paramref name="entry"/> (one more lookup); 0 or errno.</summary>
    private int Lookup(Inode parent, byte* name, FuseEntryParam* entry, bool bind = false)
    {
        var fd = Posix.OpenAt(parent.Fd, name, Posix.OPath | Posix.ONofollow | Posix.OCloexec, 0);
        if (fd < 0)
        {
            return Posix.Errno;
        }

        *entry = default;
        if (Posix.FStatAt(fd, (byte*)Empty, &entry->Attr, Posix.AtEmptyPath | Posix.AtSymlinkNofollow) < 0)
        {
            var errno = Posix.Errno;
            Posix.Close(fd);
            return errno;
        }

        var inode = _inodes.Acquire(fd, entry->Attr.Dev, entry->Attr.Ino, out var created);
        if (created && bind && _sink is not null)
        {
            // A node met by name: SECOND learns which of its files the id means before anything uses it.
            Span<byte> buffer = stackalloc byte[RecordSize];
            var record = new MutationWriter(buffer);
            record.U64(parent.Id);
            record.U64(inode.Id);
            record.Bytes(Name(name));
            Send(MutationKind.Bind, record.Written, changes: false);
        }

        entry->Ino = inode.Id;
        entry->AttrTimeout = _cacheSeconds;
        entry->EntryTimeout = _cacheSeconds;
        return 0;
    }

    /// <summary>"" for the *at calls with AT_EMPTY_PATH (kept for the life of the process).</summary>
    internal static readonly nint Empty = Marshal.StringToCoTaskMemUTF8(string.Empty);

    /// <summary>After creating <paramref name="name"/>: owner and group of the caller (group of a set-group-ID parent kept), then the exact mode.</summary>
    private static int TakeOwnership(nint request, Inode parent, byte* name, uint mode, bool symlink)
    {
        var (owner, group) = Creator(request, parent);
        if (Posix.FChownAt(parent.Fd, name, owner, group, Posix.AtSymlinkNofollow) < 0)
        {
            return Posix.Errno;
        }

        // chown as root clears set-ID bits, and the daemon's umask narrowed the mode: set it last.
        return symlink || Posix.FChmodAt(parent.Fd, name, mode & 0xFFF, 0) == 0 ? 0 : Posix.Errno;
    }

    /// <summary>The same for the file this call created and holds open as <paramref name="fd"/> (by its descriptor: whatever the name means by now).</summary>
    private static int TakeOwnership(nint request, Inode parent, int fd, uint mode)
    {
        var (owner, group) = Creator(request, parent);
        return SetOwnerAndMode(fd, owner, group, mode);
    }

    /// <summary>Owner, group and permission bits of a file just created, through its descriptor (PRIM's create, and SECOND's replay of it); 0 or the errno.</summary>
    internal static int SetOwnerAndMode(int fd, uint owner, uint group, uint mode) =>
        Posix.FChownAt(fd, (byte*)Empty, owner, group, Posix.AtEmptyPath) == 0 && Posix.FChmod(fd, mode & 0xFFF) == 0 ? 0 : Posix.Errno;

    /// <summary>Owner and group of what the caller of <paramref name="request"/> creates in <paramref name="parent"/> (uint.MaxValue: the group chown leaves).</summary>
    private static (uint Owner, uint Group) Creator(nint request, Inode parent)
    {
        var context = LibFuse.RequestContext(request);
        Stat parentStat;
        var keepGroup = Posix.FStatAt(parent.Fd, (byte*)Empty, &parentStat, Posix.AtEmptyPath) == 0 && (parentStat.Mode & 0x400) != 0;
        return (context->Uid, keepGroup ? uint.MaxValue : context->Gid);
    }

    private void DoLookup(nint request, ulong parent, byte* name)
    {
        if (Node(parent) is not { } directory)
        {
            Fail(request, Posix.ENOENT);
            return;
        }

        FuseEntryParam entry;
        int errno;
        lock (_sequence)
        {
            errno = Lookup(directory, name, &entry, bind: true);
        }

        if (errno != 0)
        {
            Fail(request, errno);
            return;
        }

        LibFuse.ReplyEntry(request, &entry);
    }

    private void DoForget(ulong id, ulong count)
    {
        lock (_sequence)
        {
            if (_inodes.Forget(id, count) && _sink is not null)
            {
                Span<byte> buffer = stackalloc byte[8];
                var record = new MutationWriter(buffer);
                record.U64(id);
                Send(MutationKind.Forget, record.Written, changes: false);
            }
        }
    }

    private void DoGetattr(nint request, ulong id)
    {
        if (Node(id) is not { } inode)
        {
            Fail(request, Posix.ENOENT);
            return;
        }

        Stat stat;
        if (Posix.FStatAt(inode.Fd, (byte*)Empty, &stat, Posix.AtEmptyPath | Posix.AtSymlinkNofollow) < 0)
        {
            Fail(request, Posix.Errno);
            return;
        }

        LibFuse.ReplyAttr(request, &stat, _cacheSeconds);
    }

    private void DoSetattr(nint request, ulong id, Stat* attr, int toSet, FuseFileInfo* fileInfo)
    {
        if (Node(id) is not { } inode)
        {
            Fail(request, Posix.ENOENT);
            return;
        }

        var ticket = ReplicationTicket.None;
        int errno;
        long journaled;
        lock (_sequence)
        {
            do
            {
                journaled = IntendNode(id, ChangeScope.Entry);
                if ((toSet & FuseSetAttr.Size) != 0)
                {
                    journaled = Math.Max(journaled, IntendNodeRange(id, attr->Size, ByteRange.ToTheEnd));
                }
            }
            while (!RecordedFirst(journaled));

            toSet = WithKilledPrivileges(inode, attr, toSet);
            var done = 0;
            errno = ApplySetattr(inode, attr, toSet, fileInfo, ref done);
            if (done != 0)
            {
                ticket = SendSetattr(inode, fileInfo is null ? -1 : (long)fileInfo->Fh, done, attr);
            }
        }

        ticket.Wait();
        if (errno != 0)
        {
            Fail(request, errno);
            return;
        }

        DoGetattr(request, id);
    }

    /// <summary>Under <see cref="_sequence"/>: a setattr made (<paramref name="done"/>), sent to SECOND.</summary>
    private ReplicationTicket SendSetattr(Inode inode, long handle, int done, Stat* attr)
    {
        if (_sink is null)
        {
            return ReplicationTicket.None;
        }

        // The times as they resulted here ("now" is PRIM's now), so both copies carry the same.
        Stat after;
        Posix.FStatAt(inode.Fd, (byte*)Empty, &after, Posix.AtEmptyPath | Posix.AtSymlinkNofollow);
        Span<byte> buffer = stackalloc byte[96];
        var record = new MutationWriter(buffer);
        record.U64(inode.Id);
        record.I64(handle);
        record.I32(done);
        record.U32(attr->Mode);
        record.U32(attr->Uid);
        record.U32(attr->Gid);
        record.I64(attr->Size);
        record.I64(after.Atime.Seconds);
        record.I64(after.Atime.Nanoseconds);
        record.I64(after.Mtime.Seconds);
        record.I64(after.Mtime.Nanoseconds);
        return Send(MutationKind.Setattr, record.Written, changes: true);
    }

    /// <summary>Applies what <paramref name="toSet"/> asks, in order, recording in <paramref name="done"/> what succeeded; 0 or errno.</summary>
    private static int ApplySetattr(Inode inode, Stat* attr, int toSet, FuseFileInfo* fileInfo, ref int done)
    {
        var path = stackalloc byte[32];
        ProcPath(inode.Fd, path);
        var handle = fileInfo is null ? -1 : (int)fileInfo->Fh;
        if ((toSet & FuseSetAttr.Mode) != 0)
        {
            if ((handle >= 0 ? Posix.FChmod(handle, attr->Mode) : Posix.FChmodAt(Posix.AtFdCwd, path, attr->Mode, 0)) < 0)
            {
                return Posix.Errno;
            }

            done |= FuseSetAttr.Mode;
        }

        if ((toSet & (FuseSetAttr.Uid | FuseSetAttr.Gid)) != 0)
        {
            var uid = (toSet & FuseSetAttr.Uid) != 0 ? attr->Uid : uint.MaxValue;
            var gid = (toSet & FuseSetAttr.Gid) != 0 ? attr->Gid : uint.MaxValue;
            if (Posix.FChownAt(inode.Fd, (byte*)Empty, uid, gid, Posix.AtEmptyPath | Posix.AtSymlinkNofollow) < 0)
            {
                return Posix.Errno;
            }

            done |= toSet & (FuseSetAttr.Uid | FuseSetAttr.Gid);
        }

        if ((toSet & FuseSetAttr.Size) != 0)
        {
            if ((handle >= 0 ? Posix.FTruncate(handle, attr->Size) : Posix.Truncate(path, attr->Size)) < 0)
            {
                return Posix.Errno;
            }

            done |= FuseSetAttr.Size;
        }

        const int Times = FuseSetAttr.Atime | FuseSetAttr.Mtime | FuseSetAttr.AtimeNow | FuseSetAttr.MtimeNow;
        if ((toSet & Times) != 0)
        {
            var times = stackalloc Timespec[2];
            times[0] = Time(toSet, FuseSetAttr.AtimeNow, FuseSetAttr.Atime, attr->Atime);
            times[1] = Time(toSet, FuseSetAttr.MtimeNow, FuseSetAttr.Mtime, attr->Mtime);
            if ((handle >= 0 ? Posix.FUtimens(handle, times) : Posix.UtimensAt(Posix.AtFdCwd, path, times, 0)) < 0)
            {
                return Posix.Errno;
            }

            done |= toSet & Times;
        }

        return 0;
    }

    private static Timespec Time(int toSet, int now, int given, Timespec value) =>
        (toSet & now) != 0 ? new Timespec { Nanoseconds = Posix.UtimeNow }
        : (toSet & given) != 0 ? value
        : new Timespec { Nanoseconds = Posix.UtimeOmit };

    private void DoReadlink(nint request, ulong id)
    {
        if (Node(id) is not { } inode)
        {
            Fail(request, Posix.ENOENT);
            return;
        }

        var buffer = stackalloc byte[4097];
        var length = Posix.ReadlinkAt(inode.Fd, (byte*)Empty, buffer, 4096);
        if (length < 0)
        {
            Fail(request, Posix.Errno);
            return;
        }

        buffer[length] = 0;
        LibFuse.ReplyReadlink(request, buffer);
    }

    /// <summary>mknod, mkdir and symlink: make it, give it to the caller, answer with its entry.</summary>
    private void DoMake(nint request, ulong parent, byte* name, uint mode, ulong device, byte* linkTarget, bool directory)
    {
        if (Node(parent) is not { } dir)
        {
            Fail(request, Posix.ENOENT);
            return;
        }

        FuseEntryParam entry = default;
        int errno;
        var ticket = ReplicationTicket.None;
        long journaled;
        lock (_sequence)
        {
            do
            {
                journaled = IntendNode(dir.Id, ChangeScope.Directory);
            }
            while (!RecordedFirst(journaled));

            var result = linkTarget is not null ? Posix.SymlinkAt(linkTarget, dir.Fd, name)
                : directory ? Posix.MkdirAt(dir.Fd, name, mode & 0xFFF)
                : Posix.MknodAt(dir.Fd, name, mode, device);
            errno = result < 0 ? Posix.Errno : TakeOwnership(request, dir, name, mode, linkTarget is not null);
            if (result == 0 && errno == 0)
            {
                errno = Lookup(dir, name, &entry);
                if (errno == 0)
                {
                    NoteCreated(entry.Ino);
                }
            }

            if (result == 0 && _sink is not null)
            {
                // Even when a later step failed the name exists here: SECOND gets it too, as it is.
                Stat made;
                Posix.FStatAt(dir.Fd, name, &made, Posix.AtSymlinkNofollow);
                Span<byte> buffer = stackalloc byte[RecordSize];
                var record = new MutationWriter(buffer);
                record.U64(dir.Id);
                record.U64(errno == 0 ? entry.Ino : 0);
                var kind = linkTarget is not null ? MutationKind.Symlink : directory ? MutationKind.Mkdir : MutationKind.Mknod;
                if (kind != MutationKind.Symlink)
                {
                    record.U32(made.Mode);
                }

                if (kind == MutationKind.Mknod)
                {
                    record.U64(made.Rdev);
                }

                record.U32(made.Uid);
                record.U32(made.Gid);
                record.Bytes(Name(name));
                if (kind == MutationKind.Symlink)
                {
                    record.Bytes(Name(linkTarget));
                }

                ticket = Send(kind, record.Written, changes: true);
            }
        }

        ticket.Wait();
        if (errno != 0)
        {
            Fail(request, errno);
            return;
        }

        LibFuse.ReplyEntry(request, &entry);
    }

    private void DoRemove(nint request, ulong parent, byte* name, bool directory)
    {
        if (Node(parent) is not { } dir)
        {
            Fail(request, Posix.ENOENT);
            return;
        }

        int result;
        var errno = 0;
        var ticket = ReplicationTicket.None;
        long journaled;
        lock (_sequence)
        {
            do
            {
                journaled = IntendNode(dir.Id, ChangeScope.Directory);
            }
            while (!RecordedFirst(journaled));

            result = Posix.UnlinkAt(dir.Fd, name, directory ? Posix.AtRemoveDir : 0);
            if (result < 0)
            {
                errno = Posix.Errno;
            }
            else if (_sink is not null)
            {
                Span<byte> buffer = stackalloc byte[RecordSize];
                var record = new MutationWriter(buffer);
                record.U64(dir.Id);
                record.Bytes(Name(name));
                ticket = Send(directory ? MutationKind.Rmdir : MutationKind.Unlink, record.Written, changes: true);
            }
        }

        ticket.Wait();
        LibFuse.ReplyErr(request, errno);
    }

    private void DoRename(nint request, ulong parent, byte* name, ulong newParent, byte* newName, uint flags)
    {
        if (Node(parent) is not { } from || Node(newParent) is not { } to)
        {
            Fail(request, Posix.ENOENT);
            return;
        }

        var errno = 0;
        var ticket = ReplicationTicket.None;
        long journaled;
        lock (_sequence)
        {
            // Both listings, and everything under the name that receives something (both names for an exchange).
            do
            {
                journaled = Math.Max(IntendNode(from.Id, ChangeScope.Directory), IntendNode(to.Id, ChangeScope.Directory));
                journaled = Math.Max(journaled, IntendChild(to.Id, newName, ChangeScope.Tree));
                if ((flags & 2) != 0)
                {
                    journaled = Math.Max(journaled, IntendChild(from.Id, name, ChangeScope.Tree));
                }
            }
            while (!RecordedFirst(journaled));

            if (Posix.RenameAt2(from.Fd, name, to.Fd, newName, flags) < 0)
            {
                errno = Posix.Errno;
            }
            else if (_sink is not null)
            {
                Span<byte> buffer = stackalloc byte[RecordSize];
                var record = new MutationWriter(buffer);
                record.U64(from.Id);
                record.U64(to.Id);
                record.U32(flags);
                record.Bytes(Name(name));
                record.Bytes(Name(newName));
                ticket = Send(MutationKind.Rename, record.Written, changes: true);
            }
        }

        ticket.Wait();
        LibFuse.ReplyErr(request, errno);
    }

    private void DoLink(nint request, ulong id, ulong newParent, byte* newName)
    {
        if (Node(id) is not { } inode || Node(newParent) is not { } dir)
        {
            Fail(request, Posix.ENOENT);
            return;
        }

        var path = stackalloc byte[32];
        FuseEntryParam entry = default;
        var errno = 0;
        var ticket = ReplicationTicket.None;
        long journaled;
        lock (_sequence)
        {
            do
            {
                journaled = Math.Max(IntendNode(dir.Id, ChangeScope.Directory), IntendNode(id, ChangeScope.Entry));
            }
            while (!RecordedFirst(journaled));

            if (Posix.LinkAt(Posix.AtFdCwd, ProcPath(inode.Fd, path), dir.Fd, newName, Posix.AtSymlinkFollow) < 0)
            {
                errno = Posix.Errno;
            }
            else
            {
                errno = Lookup(dir, newName, &entry);
                if (_sink is not null)
                {
                    Span<byte> buffer = stackalloc byte[RecordSize];
                    var record = new MutationWriter(buffer);
                    record.U64(id);
                    record.U64(dir.Id);
                    record.Bytes(Name(newName));
                    ticket = Send(MutationKind.Link, record.Written, changes: true);
                }
            }
        }

        ticket.Wait();
        if (errno != 0)
        {
            Fail(request, errno);
            return;
        }

        LibFuse.ReplyEntry(request, &entry);
    }

    /// <summary>Flags for the real file: no O_NOFOLLOW (we open /proc/self/fd/N), no O_DIRECT (unaligned buffers).</summary>
    private static int RealFlags(int flags) => (flags & ~(Posix.ONofollow | Posix.ODirect)) | Posix.OCloexec;

    private static void CacheMode(FuseFileInfo* fileInfo)
    {
        // O_DIRECT callers get no page cache on the mount, as on a local disk.
        if ((fileInfo->Flags & Posix.ODirect) != 0)
        {
            fileInfo->Bits |= FuseFileInfo.DirectIo;
        }
    }

    private void DoOpen(nint request, ulong id, FuseFileInfo* fileInfo)
    {
        if (Node(id) is not { } inode)
        {
            Fail(request, Posix.ENOENT);
            return;
        }

        var path = stackalloc byte[32];
        int fd;
        var ticket = ReplicationTicket.None;
        long journaled;
        lock (_sequence)
        {
            do
            {
                journaled = (fileInfo->Flags & Posix.OTrunc) != 0 ? Math.Max(IntendNode(id, ChangeScope.Entry), IntendNodeRange(id, 0, ByteRange.ToTheEnd)) : 0;
            }
            while (!RecordedFirst(journaled));

            fd = Posix.OpenAt(Posix.AtFdCwd, ProcPath(inode.Fd, path), RealFlags(fileInfo->Flags), 0);
            if (fd >= 0)
            {
                Opened(fd, id, fileInfo->Flags);
            }

            if (fd >= 0 && _sink is not null)
            {
                Span<byte> buffer = stackalloc byte[24];
                var record = new MutationWriter(buffer);
                record.U64(id);
                record.U64((ulong)fd);
                record.I32(fileInfo->Flags);
                ticket = Send(MutationKind.Open, record.Written, changes: (fileInfo->Flags & Posix.OTrunc) != 0);
            }

            if (fd >= 0 && KillPrivileges((ulong)fd) is { MustWait: true } killed)
            {
                ticket = killed; // Acknowledged after the open, in order.
            }
        }

        if (fd < 0)
        {
            Fail(request, Posix.Errno);
            return;
        }

        ticket.Wait();
        fileInfo->Fh = (ulong)fd;
        CacheMode(fileInfo);
        if (LibFuse.ReplyOpen(request, fileInfo) == -Posix.ENOENT)
        {
            // Interrupted: release will not come.
            Release(fd);
        }
    }

    private void DoCreate(nint request, ulong parent, byte* name, uint mode, FuseFileInfo* fileInfo)
    {
        if (Node(parent) is not { } dir)
        {
            Fail(request, Posix.ENOENT);
            return;
        }

        FuseEntryParam entry = default;
        int fd;
        var errno = 0;
        var ticket = ReplicationTicket.None;
        long journaled;
        lock (_sequence)
        {
            // The listing only (once per directory and epoch): a resync compares every entry of a
            // listed directory by size and time, and a new file the target lacks is sent whole; what
            // the application writes into it next moves its time (a time set back is a setattr, noted).
            do
            {
                journaled = IntendNode(dir.Id, ChangeScope.Directory);
            }
            while (!RecordedFirst(journaled));

            // O_EXCL whatever the caller asked: only a file this call made is the caller's to own.
            // The kernel asks for a create after its LOOKUP found nothing, so a file there now was
            // made in the real directory since, behind the mount's back; ESTALE has the kernel look
            // the name up again and open that file as it is, with its owner and the caller's
            // permission checks, as a local file system's open(O_CREAT) of an existing file would.
            fd = Posix.OpenAt(dir.Fd, name, RealFlags(fileInfo->Flags) | Posix.OCreat | Posix.OExcl, mode & 0xFFF);
            if (fd < 0)
            {
                errno = Posix.Errno;
                if (errno == Posix.EEXIST)
                {
                    Interlocked.Increment(ref _createsThatFoundAFile);
                    errno = (fileInfo->Flags & Posix.OExcl) != 0 ? errno : Posix.ESTALE;
                }
            }
            else
            {
                errno = TakeOwnership(request, dir, fd, mode);
                if (errno == 0)
                {
                    errno = Lookup(dir, name, &entry);
                }

                if (errno == 0)
                {
                    Opened(fd, entry.Ino, fileInfo->Flags);
                    _journal?.NoteNode(entry.Ino, ChangeScope.Entry);
                    NoteCreated(entry.Ino);
                }

                if (_sink is not null)
                {
                    Stat made;
                    Posix.FStat(fd, &made);
                    Span<byte> buffer = stackalloc byte[RecordSize];
                    var record = new MutationWriter(buffer);
                    record.U64(dir.Id);
                    record.U64(errno == 0 ? entry.Ino : 0);
                    record.U64((ulong)fd);
                    record.I32(fileInfo->Flags);
                    record.U32(made.Mode);
                    record.U32(made.Uid);
                    record.U32(made.Gid);
                    record.Bytes(Name(name));
                    ticket = Send(MutationKind.Create, record.Written, changes: true);
                }
            }
        }

        ticket.Wait();
        if (errno != 0)
        {
            if (fd >= 0)
            {
                Release(fd);
            }

            Fail(request, errno);
            return;
        }

        fileInfo->Fh = (ulong)fd;
        CacheMode(fileInfo);
        if (LibFuse.ReplyCreate(request, &entry, fileInfo) == -Posix.ENOENT)
        {
            Release(fd);
        }
    }

    /// <summary>Closes a file handle here and on SECOND.</summary>
    private void Release(int fd)
    {
        var ticket = ReplicationTicket.None;
        lock (_sequence)
        {
            // A handle that could write: its file's modification time goes along, so SECOND's copy
            // carries the same time (a resync then sees the file unchanged by its size and time).
            var writable = Closed(fd) is { } flags && (flags & Posix.OAccessMode) != Posix.ORdonly;
            Stat stat = default;
            var timed = writable && _sink is not null && Posix.FStat(fd, &stat) == 0;
            Posix.Close(fd);
            if (_sink is not null)
            {
                Span<byte> buffer = stackalloc byte[24];
                var record = new MutationWriter(buffer);
                record.U64((ulong)fd);
                if (timed)
                {
                    record.I64(stat.Mtime.Seconds);
                    record.I64(stat.Mtime.Nanoseconds);
                }

                ticket = Send(MutationKind.Release, record.Written, changes: false);
            }
        }

        ticket.Wait();
    }

    private static void DoRead(nint request, nuint size, long offset, FuseFileInfo* fileInfo)
    {
        // Straight from the real file's descriptor: libfuse reads (or splices) it, no copy here.
        var vector = new FuseBufVec { Count = 1 };
        vector.Buf.Size = size;
        vector.Buf.Flags = FuseBuf.IsFd | FuseBuf.FdSeek;
        vector.Buf.Fd = (int)fileInfo->Fh;
        vector.Buf.Pos = offset;
        LibFuse.ReplyData(request, &vector, 0);
    }

    private void DoWrite(nint request, byte* buffer, nuint size, long offset, FuseFileInfo* fileInfo)
    {
        var fd = (int)fileInfo->Fh;
        nint written;
        int errno;
        var ticket = ReplicationTicket.None;
        lock (_sequence)
        {
            long journaled;
            do
            {
                journaled = Math.Max(IntendHandle(fileInfo->Fh), IntendWrite(fileInfo, offset, size));
            }
            while (!RecordedFirst(journaled));

            var killed = KillPrivileges(fileInfo->Fh);
            written = Write(fd, buffer, size, offset, fileInfo, ref ticket, out errno);
            if (ticket == ReplicationTicket.None)
            {
                ticket = killed; // The write failed here and was not sent; the mode change was.
            }
        }

        if (written < 0)
        {
            Fail(request, errno);
            return;
        }

        if (ticket.IsPending)
        {
            DeferredReply.Write(this, request, (nuint)written, ticket); // Last: the reply is the ticket's now.
            return;
        }

        ticket.Wait();
        LibFuse.ReplyWrite(request, (nuint)written);
    }

    /// <summary>Under <see cref="_sequence"/>, its record durable: the write itself, sent to SECOND ahead of it when it can be.</summary>
    private nint Write(int fd, byte* buffer, nuint size, long offset, FuseFileInfo* fileInfo, ref ReplicationTicket ticket, out int errno)
    {
        nint written;
        if (_sink is not null && (fileInfo->Flags & Posix.OAppend) == 0 && size > 0)
        {
            // Sent first, so SECOND receives and applies it while this disk writes it: the
            // write's round trip overlaps the local write instead of following it.
            Span<byte> ahead = stackalloc byte[16];
            var sent = new MutationWriter(ahead);
            sent.U64((ulong)fd);
            sent.I64(offset);
            ticket = Send(MutationKind.Write, sent.Written, changes: true, durable: (fileInfo->Flags & Posix.ODsync) != 0, data: new ReadOnlySpan<byte>(buffer, (int)size));
            written = Posix.PWrite(fd, buffer, size, offset);
            errno = written < 0 ? Posix.Errno : 0;
            if (written != (nint)size)
            {
                _sink.Diverged($"a write of {size} bytes at {offset} sent to SECOND failed on PRIM ({(written < 0 ? $"errno {errno}" : $"{written} bytes written")}): SECOND's copy no longer matches and is behind from now on");
            }
        }
        else
        {
            written = WriteThenSend(fd, buffer, size, offset, fileInfo, ref ticket);
            errno = written < 0 ? Posix.Errno : 0;
        }

        return written;
    }

    /// <summary>O_APPEND (where it lands is known only once written) and the alone case: write, then send where it went.</summary>
    private nint WriteThenSend(int fd, byte* buffer, nuint size, long offset, FuseFileInfo* fileInfo, ref ReplicationTicket ticket)
    {
        var written = Posix.PWrite(fd, buffer, size, offset);
        if (written > 0 && _sink is not null)
        {
            if ((fileInfo->Flags & Posix.OAppend) != 0)
            {
                // O_APPEND wrote at the end, wherever the kernel thought that was: send where it went.
                Stat after;
                Posix.FStat(fd, &after);
                offset = after.Size - written;
            }

            Span<byte> header = stackalloc byte[16];
            var record = new MutationWriter(header);
            record.U64((ulong)fd);
            record.I64(offset);
            ticket = Send(MutationKind.Write, record.Written, changes: true, durable: (fileInfo->Flags & Posix.ODsync) != 0, data: new ReadOnlySpan<byte>(buffer, (int)written));
        }

        return written;
    }

    private static void DoFlush(nint request, FuseFileInfo* fileInfo)
    {
        // close(dup(fd)) reports what a close of the application's descriptor would (NFS-style errors).
        var copy = Posix.Dup((int)fileInfo->Fh);
        ReplyResult(request, copy < 0 ? -1 : Posix.Close(copy));
    }

    private void DoRelease(nint request, FuseFileInfo* fileInfo)
    {
        Release((int)fileInfo->Fh);
        LibFuse.ReplyErr(request, 0);
    }

    /// <summary>
    /// Durable here and on SECOND: the request is queued first (after every write it covers), then
    /// both disks flush at the same time.
    /// </summary>
    private void DoFsync(nint request, int datasync, FuseFileInfo* fileInfo)
    {
        var fd = (int)fileInfo->Fh;
        var ticket = ReplicationTicket.None;
        if (_sink is not null)
        {
            lock (_sequence)
            {
                Span<byte> buffer = stackalloc byte[12];
                var record = new MutationWriter(buffer);
                record.U64((ulong)fd);
                record.I32(datasync);
                ticket = Send(MutationKind.Fsync, record.Written, changes: false, durable: true);
            }
        }

        var result = datasync != 0 ? Posix.FDataSync(fd) : Posix.FSync(fd);
        var errno = result < 0 ? Posix.Errno : 0;
        if (ticket.IsPending)
        {
            DeferredReply.Error(this, request, errno, ticket); // Last: the reply is the ticket's now.
            return;
        }

        ticket.Wait();
        LibFuse.ReplyErr(request, errno);
    }

    /// <summary>Requests answered later by <see cref="DeferredReply"/>, not yet answered: the session must outlive them.</summary>
    internal int RepliesDeferred => Volatile.Read(ref _repliesDeferred);

    internal void ReplyDeferred() => Interlocked.Increment(ref _repliesDeferred);

    internal void DeferredReplied() => Interlocked.Decrement(ref _repliesDeferred);

    private void DoOpendir(nint request, ulong id, FuseFileInfo* fileInfo)
    {
        if (Node(id) is not { } inode)
        {
            Fail(request, Posix.ENOENT);
            return;
        }

        var fd = Posix.OpenAt(inode.Fd, (byte*)Dot, Posix.ORdonly | Posix.ODirectory | Posix.OCloexec, 0);
        if (fd < 0)
        {
            Fail(request, Posix.Errno);
            return;
        }

        var stream = Posix.FdOpenDir(fd);
        if (stream == 0)
        {
            var errno = Posix.Errno;
            Posix.Close(fd);
            Fail(request, errno);
            return;
        }

        var handle = (ulong)Interlocked.Increment(ref _nextDirectory);
        _directories[handle] = new DirectoryHandle(stream, fd, id);
        fileInfo->Fh = handle;
        if (LibFuse.ReplyOpen(request, fileInfo) == -Posix.ENOENT)
        {
            ReleaseDirectory(handle);
        }
    }

    internal static readonly nint Dot = Marshal.StringToCoTaskMemUTF8(".");

    private void DoReaddir(nint request, nuint size, long offset, FuseFileInfo* fileInfo)
    {
        if (!_directories.TryGetValue(fileInfo->Fh, out var handle))
        {
            Fail(request, Posix.EBADF);
            return;
        }

        var buffer = (byte*)NativeMemory.Alloc(size);
        try
        {
            nuint used = 0;
            lock (handle.Gate)
            {
                if (offset != handle.Offset)
                {
                    Posix.SeekDir(handle.Stream, offset);
                    handle.Pending = null;
                    handle.Offset = offset;
                }

                while (true)
                {
                    var entry = handle.Pending;
                    if (entry is null)
                    {
                        entry = Posix.ReadDir(handle.Stream);
                        if (entry is null)
                        {
                            break;
                        }
                    }

                    handle.Pending = entry;
                    var stat = default(Stat);
                    stat.Ino = entry->Ino;
                    stat.Mode = (uint)entry->Type << 12;
                    var needed = LibFuse.AddDirentry(request, buffer + used, size - used, entry->Name, &stat, entry->Offset);
                    if (needed > size - used)
                    {
                        break;
                    }

                    used += needed;
                    handle.Offset = entry->Offset;
                    handle.Pending = null;
                }
            }

            LibFuse.ReplyBuf(request, buffer, used);
        }
        finally
        {
            NativeMemory.Free(buffer);
        }
    }

    private void ReleaseDirectory(ulong handle)
    {
        if (_directories.TryRemove(handle, out var directory))
        {
            Posix.CloseDir(directory.Stream);
        }
    }

    private void DoReleasedir(nint request, FuseFileInfo* fileInfo)
    {
        ReleaseDirectory(fileInfo->Fh);
        LibFuse.ReplyErr(request, 0);
    }

    private void DoFsyncdir(nint request, int datasync, FuseFileInfo* fileInfo)
    {
        if (!_directories.TryGetValue(fileInfo->Fh, out var handle))
        {
            Fail(request, Posix.EBADF);
            return;
        }

        var ticket = ReplicationTicket.None;
        if (_sink is not null)
        {
            lock (_sequence)
            {
                Span<byte> buffer = stackalloc byte[8];
                var record = new MutationWriter(buffer);
                record.U64(handle.Node);
                ticket = Send(MutationKind.Fsyncdir, record.Written, changes: false, durable: true);
            }
        }

        var errno = (datasync != 0 ? Posix.FDataSync(handle.Fd) : Posix.FSync(handle.Fd)) < 0 ? Posix.Errno : 0;
        ticket.Wait();
        LibFuse.ReplyErr(request, errno);
    }

    private void DoStatfs(nint request, ulong id)
    {
        var inode = Node(id) ?? _inodes.Root;
        StatVfs stat;
        if (Posix.FStatVfs(inode.Fd, &stat) < 0)
        {
            Fail(request, Posix.Errno);
            return;
        }

        LibFuse.ReplyStatfs(request, &stat);
    }

    private void DoSetxattr(nint request, ulong id, byte* name, byte* value, nuint size, int flags)
    {
        if (Node(id) is not { } inode)
        {
            Fail(request, Posix.ENOENT);
            return;
        }

        var path = stackalloc byte[32];
        var errno = 0;
        var ticket = ReplicationTicket.None;
        long journaled;
        lock (_sequence)
        {
            do
            {
                journaled = IntendNode(id, ChangeScope.Entry);
            }
            while (!RecordedFirst(journaled));

            if (Posix.SetXattr(ProcPath(inode.Fd, path), name, value, size, flags) < 0)
            {
                errno = Posix.Errno;
            }
            else if (_sink is not null)
            {
                Span<byte> buffer = stackalloc byte[RecordSize];
                var record = new MutationWriter(buffer);
                record.U64(id);
                record.I32(flags);
                record.Bytes(Name(name));
                ticket = Send(MutationKind.Setxattr, record.Written, changes: true, data: new ReadOnlySpan<byte>(value, (int)size));
            }
        }

        ticket.Wait();
        LibFuse.ReplyErr(request, errno);
    }

    private void DoGetxattr(nint request, ulong id, byte* name, nuint size)
    {
        Interlocked.Increment(ref _xattrLookups);
        if (Node(id) is not { } inode)
        {
            Fail(request, Posix.ENOENT);
            return;
        }

        var path = stackalloc byte[32];
        ProcPath(inode.Fd, path);
        if (size == 0)
        {
            var needed = Posix.GetXattr(path, name, null, 0);
            _ = needed < 0 ? Fail(request, Posix.Errno) : LibFuse.ReplyXattr(request, (nuint)needed);
            return;
        }

        var buffer = (byte*)NativeMemory.Alloc(size);
        try
        {
            var length = Posix.GetXattr(path, name, buffer, size);
            _ = length < 0 ? Fail(request, Posix.Errno) : LibFuse.ReplyBuf(request, buffer, (nuint)length);
        }
        finally
        {
            NativeMemory.Free(buffer);
        }
    }

    private void DoListxattr(nint request, ulong id, nuint size)
    {
        if (Node(id) is not { } inode)
        {
            Fail(request, Posix.ENOENT);
            return;
        }

        var path = stackalloc byte[32];
        ProcPath(inode.Fd, path);
        if (size == 0)
        {
            var needed = Posix.ListXattr(path, null, 0);
            _ = needed < 0 ? Fail(request, Posix.Errno) : LibFuse.ReplyXattr(request, (nuint)needed);
            return;
        }

        var buffer = (byte*)NativeMemory.Alloc(size);
        try
        {
            var length = Posix.ListXattr(path, buffer, size);
            _ = length < 0 ? Fail(request, Posix.Errno) : LibFuse.ReplyBuf(request, buffer, (nuint)length);
        }
        finally
        {
            NativeMemory.Free(buffer);
        }
    }

    private void DoRemovexattr(nint request, ulong id, byte* name)
    {
        if (Node(id) is not { } inode)
        {
            Fail(request, Posix.ENOENT);
            return;
        }

        var path = stackalloc byte[32];
        var errno = 0;
        var ticket = ReplicationTicket.None;
        long journaled;
        lock (_sequence)
        {
            do
            {
                journaled = IntendNode(id, ChangeScope.Entry);
            }
            while (!RecordedFirst(journaled));

            if (Posix.RemoveXattr(ProcPath(inode.Fd, path), name) < 0)
            {
                errno = Posix.Errno;
            }
            else if (_sink is not null)
            {
                Span<byte> buffer = stackalloc byte[RecordSize];
                var record = new MutationWriter(buffer);
                record.U64(id);
                record.Bytes(Name(name));
                ticket = Send(MutationKind.Removexattr, record.Written, changes: true);
            }
        }

        ticket.Wait();
        LibFuse.ReplyErr(request, errno);
    }

    private void DoFallocate(nint request, int mode, long offset, long length, FuseFileInfo* fileInfo)
    {
        var errno = 0;
        var ticket = ReplicationTicket.None;
        long journaled;
        lock (_sequence)
        {
            do
            {
                journaled = IntendHandle(fileInfo->Fh);
                journaled = Math.Max(journaled, IntendRange(fileInfo->Fh, offset, (mode & (FallocCollapseRange | FallocInsertRange)) != 0 ? ByteRange.ToTheEnd : offset + length));
            }
            while (!RecordedFirst(journaled));

            var killed = KillPrivileges(fileInfo->Fh, request);
            if (Posix.FAllocate((int)fileInfo->Fh, mode, offset, length) < 0)
            {
                errno = Posix.Errno;
                ticket = killed;
            }
            else if (_sink is not null)
            {
                Span<byte> buffer = stackalloc byte[32];
                var record = new MutationWriter(buffer);
                record.U64(fileInfo->Fh);
                record.I32(mode);
                record.I64(offset);
                record.I64(length);
                ticket = Send(MutationKind.Fallocate, record.Written, changes: true);
            }
        }

        ticket.Wait();
        LibFuse.ReplyErr(request, errno);
    }

    private static void DoFlock(nint request, FuseFileInfo* fileInfo, int operation) =>
        ReplyResult(request, Posix.Flock((int)fileInfo->Fh, operation));

    private void DoCopyFileRange(nint request, long offsetIn, FuseFileInfo* fileIn, long offsetOut, FuseFileInfo* fileOut, nuint length, int flags)
    {
        var from = offsetIn;
        var to = offsetOut;
        nint copied;
        var ticket = ReplicationTicket.None;
        long journaled;
        lock (_sequence)
        {
            do
            {
                journaled = IntendHandle(fileOut->Fh);
                journaled = Math.Max(journaled, IntendRange(fileOut->Fh, offsetOut, offsetOut + (long)length));
            }
            while (!RecordedFirst(journaled));

            ticket = KillPrivileges(fileOut->Fh, request);
            copied = Posix.CopyFileRange((int)fileIn->Fh, &offsetIn, (int)fileOut->Fh, &offsetOut, length, (uint)flags);
            if (copied > 0 && _sink is not null)
            {
                // SECOND copies the same range of its own (identical) copy: no data on the wire.
                Span<byte> buffer = stackalloc byte[48];
                var record = new MutationWriter(buffer);
                record.U64(fileIn->Fh);
                record.I64(from);
                record.U64(fileOut->Fh);
                record.I64(to);
                record.I64(copied);
                record.I32(flags);
                ticket = Send(MutationKind.CopyFileRange, record.Written, changes: true);
            }
        }

        if (copied < 0)
        {
            Fail(request, Posix.Errno);
            return;
        }

        ticket.Wait();
        LibFuse.ReplyWrite(request, (nuint)copied);
    }

    private static void DoLseek(nint request, long offset, int whence, FuseFileInfo* fileInfo)
    {
        var result = Posix.LSeek((int)fileInfo->Fh, offset, whence);
        _ = result < 0 ? Fail(request, Posix.Errno) : LibFuse.ReplyLseek(request, result);
    }

    private static void DoInit(FuseConnInfo* connection)
    {
        // Writes go through the daemon one by one (no writeback cache): each is replicated before it returns.
        connection->Want &= ~FuseCapabilities.WritebackCache;
        connection->Want |= connection->Capable & (FuseCapabilities.FlockLocks | FuseCapabilities.PosixAcl);
    }
}
