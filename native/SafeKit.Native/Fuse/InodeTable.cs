using SafeKit.Native.Files;

namespace SafeKit.Native.Fuse;

/// <summary>A file the kernel knows: an O_PATH descriptor of the real file and the kernel's lookup count.</summary>
internal sealed class Inode
{
    public Inode(ulong id, int fd, ulong device, ulong number)
    {
        Id = id;
        Fd = fd;
        Device = device;
        Number = number;
    }

    /// <summary>The FUSE node id handed to the kernel (stable; 1 is the root).</summary>
    public ulong Id { get; }

    /// <summary>O_PATH|O_NOFOLLOW descriptor of the real file.</summary>
    public int Fd { get; }

    public ulong Device { get; }

    public ulong Number { get; }

    /// <summary>Lookups the kernel holds (guarded by the table's lock).</summary>
    public ulong Lookups { get; set; }
}

/// <summary>
/// Node ids ↔ real files, keyed by (device, inode) so hard links share one node. A node lives
/// while the kernel holds lookups on it (each entry reply adds one, forget removes them); its
/// descriptor is closed with it. Ids are counters, never pointers: the GC may move objects.
/// </summary>
internal sealed class InodeTable : IDisposable
{
    public const ulong RootId = 1;

    private readonly Lock _gate = new();
    private readonly Dictionary<ulong, Inode> _byId = [];
    private readonly Dictionary<(ulong Device, ulong Number), Inode> _byFile = [];
    private ulong _nextId = RootId + 1;

    public InodeTable(int rootFd, ulong device, ulong number)
    {
        Root = new Inode(RootId, rootFd, device, number) { Lookups = 2 };
        _byId[RootId] = Root;
        _byFile[(device, number)] = Root;
    }

    public Inode Root { get; }

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _byId.Count;
            }
        }
    }

    /// <summary>The nodes held now (a copy).</summary>
    public List<Inode> Snapshot()
    {
        lock (_gate)
        {
            return [.. _byId.Values];
        }
    }

    public Inode? Find(ulong id)
    {
        lock (_gate)
        {
            return _byId.GetValueOrDefault(id);
        }
    }

    /// <summary>
    /// The node of the file <paramref name="fd"/> designates, with one more lookup; takes ownership
    /// of <paramref name="fd"/> (closed when the file already has a node).
    /// </summary>
    public Inode Acquire(int fd, ulong device, ulong number, out bool created)
    {
        lock (_gate)
        {
            if (_byFile.TryGetValue((device, number), out var known))
            {
                known.Lookups++;
                Posix.Close(fd);
                created = false;
                return known;
            }

            var inode = new Inode(_nextId++, fd, device, number) { Lookups = 1 };
            _byId[inode.Id] = inode;
            _byFile[(device, number)] = inode;
            created = true;
            return inode;
        }
    }

    /// <summary>Drops <paramref name="count"/> lookups; the node goes (and its descriptor closes) at zero: then true.</summary>
    public bool Forget(ulong id, ulong count)
    {
        lock (_gate)
        {
            if (id == RootId || !_byId.TryGetValue(id, out var inode))
            {
                return false;
            }

            inode.Lookups = count >= inode.Lookups ? 0 : inode.Lookups - count;
            if (inode.Lookups > 0)
            {
                return false;
            }

            _byId.Remove(id);
            _byFile.Remove((inode.Device, inode.Number));
            DeferredClose.Close(inode.Fd); // An unlinked file is freed at its last close: not under our locks.
            return true;
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            foreach (var inode in _byId.Values)
            {
                Posix.Close(inode.Fd);
            }

            _byId.Clear();
            _byFile.Clear();
        }
    }
}
