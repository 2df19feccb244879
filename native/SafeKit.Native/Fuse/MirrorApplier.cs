using System.Buffers;
using SafeKit.Native.Files;
using SafeKit.Native.Interop;

namespace SafeKit.Native.Fuse;

/// <summary>
/// SECOND's side: applies PRIM's changes, in order, to its own copy of the data directory. It keeps
/// a descriptor for every node id and file handle PRIM named, so each change means what it meant
/// on PRIM. Not thread-safe: one stream, applied in sequence. Returns 0 or the errno a change met
/// (then this copy no longer follows PRIM: the caller reports it and stops mirroring).
/// </summary>
public sealed unsafe class MirrorApplier : IDisposable
{
    /// <summary>Writes from this size on start their writeback at once (<see cref="StartWriteback"/>).</summary>
    public const int EarlyWritebackBytes = 128 * 1024;

    private const int MaxVectors = 64;
    private const int OTmpfile = 0x410000;
    private readonly Dictionary<ulong, int> _nodes = [];
    private readonly Dictionary<ulong, int> _handles = [];

    /// <summary>The last checkpoint's syncfs, running in the background: its errno.</summary>
    private Task<int>? _checkpoint;
    private readonly MemoryHandle[] _pins = new MemoryHandle[MaxVectors];

    private MirrorApplier(int root)
    {
        _nodes[InodeTable.RootId] = root;
    }

    /// <summary>Changes applied.</summary>
    public long Applied { get; private set; }

    /// <summary>Node descriptors held (for tests).</summary>
    public int Nodes => _nodes.Count;

    /// <summary>File handles held (for tests).</summary>
    public int Handles => _handles.Count;

    /// <exception cref="NativeException">The directory cannot be opened.</exception>
    public static MirrorApplier Open(string dataDirectory)
    {
        ArgumentNullException.ThrowIfNull(dataDirectory);
        Host.OpenFileLimit.Raise(); // One descriptor per node PRIM names.
        var path = PassthroughFileSystem.Utf8(dataDirectory);
        int fd;
        fixed (byte* p = path)
        {
            fd = Posix.OpenAt(Posix.AtFdCwd, p, Posix.OPath | Posix.ODirectory | Posix.OCloexec, 0);
        }

        return fd < 0 ? throw NativeException.FromLastError($"open {dataDirectory}") : new MirrorApplier(fd);
    }

    /// <summary>Applies one change; 0 or errno. A malformed record is EINVAL.</summary>
    public int Apply(MutationKind kind, ReadOnlySpan<byte> record, bool durable)
    {
        try
        {
            var errno = ApplyOne(kind, new MutationReader(record), durable);
            if (errno == 0)
            {
                Applied++;
            }

            return errno;
        }
        catch (FormatException)
        {
            return Posix.EINVAL;
        }
        catch (KeyNotFoundException)
        {
            // PRIM named a node or handle this copy never learnt: the streams diverged.
            return Posix.EBADF;
        }
    }

    /// <summary>
    /// A Write whose data lies in several buffers (as received): written with pwritev straight
    /// from them, without first gathering them into one. Same result as <see cref="Apply"/>.
    /// </summary>
    public int ApplyWrite(ulong handle, long offset, in ReadOnlySequence<byte> data, bool durable)
    {
        if (!_handles.TryGetValue(handle, out var fd))
        {
            return Posix.EBADF;
        }

        var vectors = stackalloc Posix.IoVector[MaxVectors];
        var pins = _pins;
        var position = data.Start;
        var written = 0L;
        while (written < data.Length)
        {
            // Up to MaxVectors segments per call, pinned for its duration (the channel's blocks already are).
            var count = 0;
            var bytes = 0L;
            try
            {
                var cursor = data.Slice(written);
                foreach (var segment in cursor)
                {
                    if (count == MaxVectors)
                    {
                        break;
                    }

                    if (segment.Length == 0)
                    {
                        continue;
                    }

                    pins[count] = segment.Pin();
                    vectors[count].Base = pins[count].Pointer;
                    vectors[count].Length = (nuint)segment.Length;
                    bytes += segment.Length;
                    count++;
                }

                var result = Posix.PWritev(fd, vectors, count, offset + written);
                if (result <= 0)
                {
                    return result < 0 ? Posix.Errno : Posix.EIO;
                }

                written += result;
            }
            finally
            {
                for (var i = 0; i < count; i++)
                {
                    pins[i].Dispose();
                }
            }
        }

        var errno = durable ? Result(Posix.FDataSync(fd)) : StartWriteback(fd, offset, written);
        if (errno == 0)
        {
            Applied++;
        }

        return errno;
    }

    private int ApplyOne(MutationKind kind, MutationReader r, bool durable)
    {
        Span<byte> name = stackalloc byte[4097];
        Span<byte> other = stackalloc byte[4097];
        var path = stackalloc byte[32];
        switch (kind)
        {
            case MutationKind.Bind:
            {
                var parent = _nodes[r.U64()];
                var id = r.U64();
                return Bind(id, parent, Terminated(r.Bytes(), name));
            }

            case MutationKind.BindPath:
            {
                var id = r.U64();
                var deleted = r.U32() != 0;
                var relative = r.Bytes();
                if (deleted)
                {
                    // Open on PRIM after its last name went: writes to it land in a nameless file here too.
                    return Hold(id, Posix.OpenAt(_nodes[InodeTable.RootId], (byte*)PassthroughFileSystem.Dot, OTmpfile | Posix.ORdwr | Posix.OCloexec, 0x180));
                }

                return Bind(id, _nodes[InodeTable.RootId], Terminated(relative, name));
            }

            case MutationKind.Forget:
            {
                if (_nodes.Remove(r.U64(), out var fd))
                {
                    DeferredClose.Close(fd); // An unlinked file is freed at its last close: not in the stream's way.
                }

                return 0;
            }

            case MutationKind.Mknod or MutationKind.Mkdir or MutationKind.Symlink:
            {
                var parent = _nodes[r.U64()];
                var id = r.U64();
                var mode = kind == MutationKind.Symlink ? 0 : r.U32();
                var device = kind == MutationKind.Mknod ? r.U64() : 0;
                var uid = r.U32();
                var gid = r.U32();
                fixed (byte* n = Terminated(r.Bytes(), name))
                {
                    var result = kind switch
                    {
                        MutationKind.Mkdir => Posix.MkdirAt(parent, n, mode & 0xFFF),
                        MutationKind.Mknod => Posix.MknodAt(parent, n, mode, device),
                        _ => SymlinkAt(Terminated(r.Bytes(), other), parent, n),
                    };
                    if (result < 0 || Posix.FChownAt(parent, n, uid, gid, Posix.AtSymlinkNofollow) < 0
                        || (kind != MutationKind.Symlink && Posix.FChmodAt(parent, n, mode & 0xFFF, 0) < 0))
                    {
                        return Posix.Errno;
                    }
                }

                return id == 0 ? 0 : Bind(id, parent, name);
            }

            case MutationKind.Unlink or MutationKind.Rmdir:
            {
                var parent = _nodes[r.U64()];
                fixed (byte* n = Terminated(r.Bytes(), name))
                {
                    return Result(Posix.UnlinkAt(parent, n, kind == MutationKind.Rmdir ? Posix.AtRemoveDir : 0));
                }
            }

            case MutationKind.Rename:
            {
                var from = _nodes[r.U64()];
                var to = _nodes[r.U64()];
                var flags = r.U32();
                fixed (byte* n = Terminated(r.Bytes(), name))
                fixed (byte* m = Terminated(r.Bytes(), other))
                {
                    return Result(Posix.RenameAt2(from, n, to, m, flags));
                }
            }

            case MutationKind.Link:
            {
                var node = _nodes[r.U64()];
                var parent = _nodes[r.U64()];
                fixed (byte* n = Terminated(r.Bytes(), name))
                {
                    return Result(Posix.LinkAt(Posix.AtFdCwd, PassthroughFileSystem.ProcPath(node, path), parent, n, Posix.AtSymlinkFollow));
                }
            }

            case MutationKind.Open:
            {
                var node = _nodes[r.U64()];
                var handle = r.U64();
                var flags = r.I32();
                var fd = Posix.OpenAt(Posix.AtFdCwd, PassthroughFileSystem.ProcPath(node, path), Posix.ORdwr | Posix.OCloexec | (flags & Posix.OTrunc), 0);
                if (fd < 0)
                {
                    // A directory or a file only root's reading may open: read-only is all a copy needs then.
                    fd = Posix.OpenAt(Posix.AtFdCwd, path, Posix.ORdonly | Posix.OCloexec, 0);
                }

                return fd < 0 ? Posix.Errno : Keep(handle, fd);
            }

            case MutationKind.Create:
            {
                var parent = _nodes[r.U64()];
                var id = r.U64();
                var handle = r.U64();
                _ = r.I32(); // The application's open flags: O_TRUNC means nothing for a file just made.
                var mode = r.U32();
                var uid = r.U32();
                var gid = r.U32();
                fixed (byte* n = Terminated(r.Bytes(), name))
                {
                    // PRIM sends a create only for a file it made (O_EXCL there): a name this copy
                    // already holds means it diverged, which must send PRIM alone, not be written into.
                    var fd = Posix.OpenAt(parent, n, Posix.ORdwr | Posix.OCreat | Posix.OExcl | Posix.OCloexec, mode & 0xFFF);
                    if (fd < 0)
                    {
                        return Posix.Errno;
                    }

                    var errno = PassthroughFileSystem.SetOwnerAndMode(fd, uid, gid, mode);
                    if (errno != 0)
                    {
                        Posix.Close(fd);
                        return errno;
                    }

                    Keep(handle, fd);
                }

                return id == 0 ? 0 : Bind(id, parent, name);
            }

            case MutationKind.Write:
            {
                var fd = _handles[r.U64()];
                var offset = r.I64();
                var data = r.Rest;
                fixed (byte* d = data)
                {
                    for (var done = 0; done < data.Length;)
                    {
                        var written = Posix.PWrite(fd, d + done, (nuint)(data.Length - done), offset + done);
                        if (written <= 0)
                        {
                            return written < 0 ? Posix.Errno : Posix.EIO;
                        }

                        done += (int)written;
                    }
                }

                return durable ? Result(Posix.FDataSync(fd)) : StartWriteback(fd, offset, data.Length);
            }

            case MutationKind.Release:
            {
                if (_handles.Remove(r.U64(), out var fd))
                {
                    // PRIM's modification time when it closed a handle that could write.
                    var errno = 0;
                    if (r.Rest.Length >= 16)
                    {
                        var times = stackalloc Timespec[2];
                        times[0].Nanoseconds = Posix.UtimeOmit;
                        times[1].Seconds = r.I64();
                        times[1].Nanoseconds = r.I64();
                        errno = Result(Posix.FUtimens(fd, times));
                    }

                    Posix.Close(fd);
                    return errno;
                }

                return 0;
            }

            case MutationKind.Setattr:
                return Setattr(ref r, path);

            case MutationKind.Fsync:
            {
                var fd = _handles[r.U64()];
                return Result(r.I32() != 0 ? Posix.FDataSync(fd) : Posix.FSync(fd));
            }

            case MutationKind.Checkpoint:
            {
                // The previous checkpoint's syncfs must be done (its result is this answer); this
                // one's runs in the background, so applying goes on meanwhile.
                var previous = _checkpoint?.GetAwaiter().GetResult() ?? 0;
                var fd = Posix.OpenAt(Posix.AtFdCwd, PassthroughFileSystem.ProcPath(_nodes[InodeTable.RootId], path), Posix.ORdonly | Posix.ODirectory | Posix.OCloexec, 0);
                if (fd < 0)
                {
                    return Posix.Errno;
                }

                _checkpoint = Task.Run(() =>
                {
                    var errno = Posix.SyncFs(fd) < 0 ? Posix.Errno : 0;
                    Posix.Close(fd);
                    return errno;
                });
                return previous;
            }

            case MutationKind.Fsyncdir:
            {
                var fd = Posix.OpenAt(Posix.AtFdCwd, PassthroughFileSystem.ProcPath(_nodes[r.U64()], path), Posix.ORdonly | Posix.ODirectory | Posix.OCloexec, 0);
                if (fd < 0)
                {
                    return Posix.Errno;
                }

                var result = Posix.FSync(fd);
                var errno = result < 0 ? Posix.Errno : 0;
                Posix.Close(fd);
                return errno;
            }

            case MutationKind.Setxattr:
            {
                var node = _nodes[r.U64()];
                var flags = r.I32();
                fixed (byte* n = Terminated(r.Bytes(), name))
                {
                    var value = r.Rest;
                    fixed (byte* v = value)
                    {
                        return Result(Posix.SetXattr(PassthroughFileSystem.ProcPath(node, path), n, v, (nuint)value.Length, flags));
                    }
                }
            }

            case MutationKind.Removexattr:
            {
                var node = _nodes[r.U64()];
                fixed (byte* n = Terminated(r.Bytes(), name))
                {
                    return Result(Posix.RemoveXattr(PassthroughFileSystem.ProcPath(node, path), n));
                }
            }

            case MutationKind.Fallocate:
            {
                var fd = _handles[r.U64()];
                var mode = r.I32();
                var offset = r.I64();
                return Result(Posix.FAllocate(fd, mode, offset, r.I64()));
            }

            case MutationKind.CopyFileRange:
            {
                var from = _handles[r.U64()];
                var offsetIn = r.I64();
                var to = _handles[r.U64()];
                var offsetOut = r.I64();
                var length = r.I64();
                var flags = (uint)r.I32();
                while (length > 0)
                {
                    var copied = Posix.CopyFileRange(from, &offsetIn, to, &offsetOut, (nuint)length, flags);
                    if (copied <= 0)
                    {
                        return copied < 0 ? Posix.Errno : Posix.EIO;
                    }

                    length -= copied;
                }

                return 0;
            }

            default:
                return Posix.EINVAL;
        }
    }

    private int Setattr(ref MutationReader r, byte* path)
    {
        var node = _nodes[r.U64()];
        var handle = r.I64();
        var toSet = r.I32();
        var mode = r.U32();
        var uid = r.U32();
        var gid = r.U32();
        var size = r.I64();
        var times = stackalloc Timespec[2];
        times[0] = new Timespec { Seconds = r.I64(), Nanoseconds = r.I64() };
        times[1] = new Timespec { Seconds = r.I64(), Nanoseconds = r.I64() };
        PassthroughFileSystem.ProcPath(node, path);
        var fd = handle >= 0 && _handles.TryGetValue((ulong)handle, out var open) ? open : -1;
        if ((toSet & FuseSetAttr.Mode) != 0 && (fd >= 0 ? Posix.FChmod(fd, mode) : Posix.FChmodAt(Posix.AtFdCwd, path, mode, 0)) < 0)
        {
            return Posix.Errno;
        }

        if ((toSet & (FuseSetAttr.Uid | FuseSetAttr.Gid)) != 0
            && Posix.FChownAt(node, (byte*)PassthroughFileSystem.Empty, (toSet & FuseSetAttr.Uid) != 0 ? uid : uint.MaxValue, (toSet & FuseSetAttr.Gid) != 0 ? gid : uint.MaxValue, Posix.AtEmptyPath | Posix.AtSymlinkNofollow) < 0)
        {
            return Posix.Errno;
        }

        if ((toSet & FuseSetAttr.Size) != 0 && (fd >= 0 ? Posix.FTruncate(fd, size) : Posix.Truncate(path, size)) < 0)
        {
            return Posix.Errno;
        }

        if ((toSet & (FuseSetAttr.Atime | FuseSetAttr.AtimeNow)) == 0)
        {
            times[0].Nanoseconds = Posix.UtimeOmit;
        }

        if ((toSet & (FuseSetAttr.Mtime | FuseSetAttr.MtimeNow)) == 0)
        {
            times[1].Nanoseconds = Posix.UtimeOmit;
        }

        const int Times = FuseSetAttr.Atime | FuseSetAttr.Mtime | FuseSetAttr.AtimeNow | FuseSetAttr.MtimeNow;
        return (toSet & Times) == 0 ? 0 : Result(fd >= 0 ? Posix.FUtimens(fd, times) : Posix.UtimensAt(Posix.AtFdCwd, path, times, 0));
    }

    private int Bind(ulong id, int parent, Span<byte> name)
    {
        int fd;
        fixed (byte* n = name)
        {
            fd = Posix.OpenAt(parent, n, Posix.OPath | Posix.ONofollow | Posix.OCloexec, 0);
        }

        return Hold(id, fd);
    }

    /// <summary>Keeps <paramref name="fd"/> (just opened; negative: errno) as node <paramref name="id"/>, closing the one it replaces.</summary>
    private int Hold(ulong id, int fd)
    {
        if (fd < 0)
        {
            return Posix.Errno;
        }

        if (_nodes.Remove(id, out var old))
        {
            DeferredClose.Close(old);
        }

        _nodes[id] = fd;
        return 0;
    }

    private int Keep(ulong handle, int fd)
    {
        if (_handles.Remove(handle, out var old))
        {
            Posix.Close(old);
        }

        _handles[handle] = fd;
        return 0;
    }

    private static int SymlinkAt(Span<byte> target, int parent, byte* name)
    {
        fixed (byte* t = target)
        {
            return Posix.SymlinkAt(t, parent, name);
        }
    }

    private static int Result(int result) => result < 0 ? Posix.Errno : 0;

    /// <summary>
    /// A large write not made durable yet starts on its way to the disk now (sync_file_range, no
    /// wait), so the fsync that makes it durable finds it written or under way. Otherwise SECOND's
    /// copy is written back only at that fsync, all at once, beside PRIM's own. Measured here, both
    /// copies on one disk, interleaved runs: 1 MiB writes +13–17% in `fsync` mode; in `sync` mode,
    /// where this call delays the ack, no clear change (−10% to +7%); small writes gained nothing,
    /// so they are left to the fsync. A hint: always 0.
    /// </summary>
    private static int StartWriteback(int fd, long offset, long length)
    {
        if (length >= EarlyWritebackBytes)
        {
            _ = Posix.SyncFileRange(fd, offset, length, Posix.SyncFileRangeWrite); // Refused: the fsync writes it.
        }

        return 0;
    }

    /// <summary>Copies <paramref name="bytes"/> into <paramref name="buffer"/> with a NUL after it.</summary>
    private static Span<byte> Terminated(ReadOnlySpan<byte> bytes, Span<byte> buffer)
    {
        if (bytes.Length >= buffer.Length)
        {
            throw new FormatException("name too long");
        }

        bytes.CopyTo(buffer);
        buffer[bytes.Length] = 0;
        return buffer[..(bytes.Length + 1)];
    }

    public void Dispose()
    {
        _checkpoint?.GetAwaiter().GetResult();
        foreach (var fd in _nodes.Values.Concat(_handles.Values))
        {
            Posix.Close(fd);
        }

        _nodes.Clear();
        _handles.Clear();
    }
}
