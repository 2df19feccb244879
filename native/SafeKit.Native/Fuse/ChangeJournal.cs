using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using SafeKit.Native.Files;
using SafeKit.Native.Interop;

namespace SafeKit.Native.Fuse;

/// <summary>
/// The crash-safe record of what PRIM changed that its peer may lack (DRBD's activity log, by
/// path): every changed path is written here and is durable before the change is made (even a
/// power cut cannot leave a change on disk unrecorded), so after any crash a resync looks at
/// these paths only instead of walking the whole tree. Cheap on the write path: a path is
/// written once per epoch (a file's next writes find its node already noted), and concurrent
/// callers share one fdatasync.
/// <para>
/// Epochs bound its size while mirroring: a new epoch starts, a checkpoint makes everything
/// before it durable on SECOND, and the older epochs are dropped. While the peer is away nothing
/// is dropped: the journal then lists everything since the last generation both copies shared
/// (<see cref="Base"/>). <see cref="Complete"/> is false when the record cannot be trusted to
/// hold every change since <see cref="Base"/> (it was lost or failed): a resync then walks everything.
/// </para>
/// </summary>
public sealed unsafe partial class ChangeJournal : IDisposable
{
    private const int HeaderSize = 64;
    private const int Chunk = 1 << 20;
    private const int MaxPath = 4096;
    private const string Extension = ".journal";
    private const string IncompleteMarker = "INCOMPLETE";
    private const uint Version = 1;
    private static ReadOnlySpan<byte> Magic => "SKJ1"u8;

    private readonly string _directory;
    private readonly Lock _gate = new();
    private readonly object _syncGate = new(); // Monitor.Wait: waiters sleep until the fdatasync covering them is done.
    private readonly List<(long Number, Dictionary<string, ChangeScope> Paths)> _epochs = [];

    /// <summary>
    /// The current epoch's nodes already noted (how widely, and by which record): a write storm
    /// pays the path lookup once, and a change racing the one that wrote the record still waits for it.
    /// </summary>
    private readonly Dictionary<ulong, (ChangeScope Scope, long Record)> _nodes = [];

    /// <summary>Each path's record while records may not all be on disk (emptied when they are), for the same reason.</summary>
    private readonly Dictionary<string, long> _unsyncedPaths = new(StringComparer.Ordinal);
    private readonly byte[] _record = new byte[8 + MaxPath];
    private int _fd = -1;
    private long _length;
    private long _allocated;
    private long _written;
    private long _synced;
    private bool _syncing;
    private bool _complete;

    private ChangeJournal(string directory, Guid @base, bool complete)
    {
        _directory = directory;
        Base = @base;
        _complete = complete;
    }

    /// <summary>The last generation both copies shared: the journal lists every change made since.</summary>
    public Guid Base { get; private set; }

    /// <summary>Whether the journal can be trusted to hold every change since <see cref="Base"/>.</summary>
    public bool Complete
    {
        get
        {
            lock (_gate)
            {
                return _complete;
            }
        }
    }

    /// <summary>The current epoch's number.</summary>
    public long Epoch
    {
        get
        {
            lock (_gate)
            {
                return _epochs[^1].Number;
            }
        }
    }

    /// <summary>Paths noted in the epochs still kept.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return Union().Count;
            }
        }
    }

    /// <summary>
    /// Opens the journal in <paramref name="directory"/> and starts a new epoch in it. The epochs
    /// already there are kept when they continue <paramref name="base"/>; otherwise (another
    /// history, or none) they are discarded and the new record is complete only if
    /// <paramref name="completeIfNew"/> (the data is known to be <paramref name="base"/>'s as is).
    /// </summary>
    /// <exception cref="NativeException">The directory or its files cannot be written.</exception>
    public static ChangeJournal Open(string directory, Guid @base, bool completeIfNew)
    {
        ArgumentNullException.ThrowIfNull(directory);
        Directory.CreateDirectory(directory);
        var found = Read(directory);
        ChangeJournal journal;
        if (found is { } kept && kept.Base == @base)
        {
            journal = new ChangeJournal(directory, @base, kept.Complete);
            journal._epochs.AddRange(kept.Epochs);
        }
        else
        {
            Delete(directory);
            Directory.CreateDirectory(directory);
            journal = new ChangeJournal(directory, @base, completeIfNew);
            if (!completeIfNew)
            {
                journal.MarkIncomplete();
            }
        }

        journal.StartEpoch(journal._epochs.Count == 0 ? 1 : journal._epochs[^1].Number + 1);
        return journal;
    }

    /// <summary>What a journal directory holds (for a node that is not serving): null when there is none.</summary>
    public static JournalContents? Read(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (!Directory.Exists(directory))
        {
            return null;
        }

        var files = Directory.GetFiles(directory, "*" + Extension).Order(StringComparer.Ordinal).ToList();
        if (files.Count == 0)
        {
            return null;
        }

        var epochs = new List<(long, Dictionary<string, ChangeScope>)>();
        Guid? @base = null;
        var complete = !File.Exists(Path.Combine(directory, IncompleteMarker));
        foreach (var file in files)
        {
            var bytes = File.ReadAllBytes(file);
            if (!ReadHeader(bytes, out var fileBase, out var number, out var fileComplete))
            {
                continue; // Created but never used: its header is made durable before the first record.
            }

            if (@base is { } known && known != fileBase)
            {
                complete = false; // Epochs of two histories: trust neither.
            }

            @base ??= fileBase;
            complete &= fileComplete;
            epochs.Add((number, ReadRecords(bytes)));
        }

        return @base is { } b ? new JournalContents(b, complete, epochs) : null;
    }

    /// <summary>Removes a journal (a node whose copy was just made equal to its peer's).</summary>
    public static void Delete(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true);
            DirectorySync.Fsync(Path.GetDirectoryName(Path.GetFullPath(directory))!);
        }
    }

    /// <summary>Whether <paramref name="node"/> is already noted in this epoch at least as widely as <paramref name="scope"/>.</summary>
    public bool IsNoted(ulong node, ChangeScope scope) => IsNoted(node, scope, out _);

    /// <summary>
    /// Whether <paramref name="node"/> is already noted in this epoch at least as widely as
    /// <paramref name="scope"/>; if so, <paramref name="pending"/> is the record to wait for when
    /// it may not be on disk yet (another change noted it and is waiting for it now), else 0.
    /// </summary>
    public bool IsNoted(ulong node, ChangeScope scope, out long pending)
    {
        lock (_gate)
        {
            if (_nodes.TryGetValue(node, out var known) && known.Scope >= scope)
            {
                pending = Unsynced(known.Record);
                return true;
            }

            pending = 0;
            return false;
        }
    }

    /// <summary>Marks a node noted (its path was noted under another name in the same step, e.g. the name it was created with).</summary>
    public void NoteNode(ulong node, ChangeScope scope)
    {
        lock (_gate)
        {
            WidenNode(node, scope, _written);
        }
    }

    /// <summary>
    /// Writes <paramref name="relative"/> into the journal (before the change it covers is made);
    /// returns what to pass to <see cref="WaitDurable"/> before the change is made, 0 when this
    /// epoch already holds it on disk.
    /// </summary>
    public long Note(string relative, ChangeScope scope, ulong node = 0)
    {
        ArgumentNullException.ThrowIfNull(relative);
        lock (_gate)
        {
            if (!ScopeMap.Widen(_epochs[^1].Paths, relative, scope))
            {
                // Held by a record of this epoch, which may still be on its way to the disk.
                var pending = _unsyncedPaths.TryGetValue(relative, out var holding) ? Unsynced(holding) : 0;
                WidenNode(node, scope, pending);
                return pending;
            }

            if (System.Text.Encoding.UTF8.GetByteCount(relative) > MaxPath)
            {
                Fail(); // A path no file system here allows: the record cannot hold it, so it is not trusted.
                return 0;
            }

            var length = System.Text.Encoding.UTF8.GetBytes(relative, 0, relative.Length, _record, 4);

            BinaryPrimitives.WriteUInt16LittleEndian(_record, (ushort)length);
            _record[2] = (byte)scope;
            _record[3] = 0;
            var size = 4 + length + 4;
            BinaryPrimitives.WriteUInt32LittleEndian(_record.AsSpan(4 + length), XxHash32.HashToUInt32(_record.AsSpan(0, 4 + length)));
            if (!Append(_record.AsSpan(0, size)))
            {
                Fail();
                return 0;
            }

            WidenNode(node, scope, ++_written);
            _unsyncedPaths[relative] = _written;
            return _written;
        }
    }

    /// <summary>Under <see cref="_gate"/>: <paramref name="record"/> if it may not be on disk yet, else 0.</summary>
    private long Unsynced(long record) => record > Volatile.Read(ref _synced) ? record : 0;

    /// <summary>Under <see cref="_gate"/>: <paramref name="node"/> (0: none) noted at least as widely as <paramref name="scope"/>, by <paramref name="record"/>.</summary>
    private void WidenNode(ulong node, ChangeScope scope, long record)
    {
        if (node == 0)
        {
            return;
        }

        ref var known = ref CollectionsMarshal.GetValueRefOrAddDefault(_nodes, node, out var exists);
        known = exists ? (known.Scope > scope ? known.Scope : scope, Math.Max(known.Record, record)) : (scope, record);
    }

    /// <summary>Whether record <paramref name="sequence"/> (from <see cref="Note"/> or <see cref="NoteRange"/>; 0: none) is on disk already.</summary>
    public bool IsDurable(long sequence) => Volatile.Read(ref _synced) >= sequence;

    /// <summary>Whether every record written so far is on disk.</summary>
    public bool AllDurable
    {
        get
        {
            lock (_gate)
            {
                return Volatile.Read(ref _synced) >= _written;
            }
        }
    }

    /// <summary>Returns once the record <paramref name="sequence"/> (from <see cref="Note"/>) is on disk; waiters share one fdatasync.</summary>
    public void WaitDurable(long sequence)
    {
        while (true)
        {
            long target;
            int fd;
            lock (_syncGate)
            {
                while (true)
                {
                    if (Volatile.Read(ref _synced) >= sequence)
                    {
                        return;
                    }

                    if (!_syncing)
                    {
                        break;
                    }

                    Monitor.Wait(_syncGate);
                }

                _syncing = true;
            }

            int rangesFd;
            lock (_gate)
            {
                target = _written;
                fd = _fd;
                rangesFd = _rangesWritten ? _ranges.Fd : -1;
                _rangesWritten = false;
            }

            var failed = Posix.FDataSync(fd) < 0;
            var rangesFailed = rangesFd >= 0 && Posix.FDataSync(rangesFd) < 0;
            if (failed || rangesFailed)
            {
                lock (_gate)
                {
                    // An epoch left meanwhile was synced (and closed) by BeginEpoch: only the current files' failures count.
                    failed = (failed && fd == _fd) || (rangesFailed && rangesFd == _ranges.Fd);
                }
            }

            lock (_syncGate)
            {
                if (failed)
                {
                    Fail();
                }

                if (target > _synced)
                {
                    Volatile.Write(ref _synced, target);
                }

                _syncing = false;
                Monitor.PulseAll(_syncGate);
            }

            lock (_gate)
            {
                if (Volatile.Read(ref _synced) >= _written)
                {
                    // Every record is on disk: no path or range to wait for.
                    _unsyncedPaths.Clear();
                    _unsyncedRanges.Clear();
                }
            }
        }
    }

    /// <summary>
    /// Starts a new epoch (call it where no change is in progress); returns the previous one's
    /// number, for <see cref="DropThrough"/> once everything before this point is durable on SECOND.
    /// </summary>
    public long BeginEpoch()
    {
        lock (_gate)
        {
            var previous = _epochs[^1].Number;
            FlushCurrent();
            StartEpoch(previous + 1);
            return previous;
        }
    }

    /// <summary>Drops the epochs up to <paramref name="epoch"/>: the peer holds, durably, every change they list.</summary>
    public void DropThrough(long epoch)
    {
        lock (_gate)
        {
            while (_epochs.Count > 1 && _epochs[0].Number <= epoch)
            {
                File.Delete(RangesPath(_epochs[0].Number));
                File.Delete(EpochPath(_epochs[0].Number));
                _epochs.RemoveAt(0);
            }
        }
    }

    /// <summary>
    /// The copies are equal now (a resync's handover), at generation <paramref name="base"/>:
    /// everything noted so far is dropped and the record is complete again.
    /// </summary>
    public void Restart(Guid @base)
    {
        lock (_gate)
        {
            var previous = _epochs[^1].Number;
            FlushCurrent();
            EndRanges();
            Base = @base;
            _complete = true;
            File.Delete(Path.Combine(_directory, IncompleteMarker));
            StartEpoch(previous + 1);
            DropThrough(previous);
        }
    }

    /// <summary>From now until a <see cref="Restart"/>, the journal is not trusted: the next resync compares everything.</summary>
    public void Distrust() => Fail();

    /// <summary>Every path noted in the epochs kept, each with its widest scope.</summary>
    public ChangeSet Snapshot()
    {
        lock (_gate)
        {
            return new ChangeSet(Union());
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_fd >= 0)
            {
                Posix.FDataSync(_fd);
                Posix.Close(_fd);
                _fd = -1;
            }

            EndRanges();
        }
    }

    private Dictionary<string, ChangeScope> Union()
    {
        var all = new Dictionary<string, ChangeScope>(StringComparer.Ordinal);
        foreach (var (_, paths) in _epochs)
        {
            ScopeMap.WidenAll(all, paths);
        }

        return all;
    }

    private string EpochPath(long number) => Path.Combine(_directory, $"{number:D12}{Extension}");

    /// <summary>Creates the epoch's file, its header durable (and its name, by an fsync of the directory) before any record goes in.</summary>
    private void StartEpoch(long number)
    {
        var created = CreateFile(EpochPath(number), Magic, _complete ? 1u : 0u, number);
        var old = _fd;
        (_fd, _length, _allocated) = (created.Fd, created.Length, created.Allocated);
        if (old >= 0)
        {
            Posix.Close(old);
        }

        _epochs.Add((number, new Dictionary<string, ChangeScope>(StringComparer.Ordinal)));
        _nodes.Clear();
        if (_noted is not null)
        {
            OpenRanges(number, continues: true); // Still tracking: the new epoch's ranges follow the last one's.
        }
    }

    /// <summary>Writes at the end, in space zero-filled ahead (a record's fdatasync then has no size to update).</summary>
    /// <summary>A new file of this journal with its header (<paramref name="magic"/>, flags, base, epoch), durable with its name.</summary>
    private LogFile CreateFile(string path, ReadOnlySpan<byte> magic, uint flags, long number)
    {
        var name = System.Text.Encoding.UTF8.GetBytes(path + "\0");
        int fd;
        fixed (byte* p = name)
        {
            fd = Posix.OpenAt(Posix.AtFdCwd, p, Posix.ORdwr | Posix.OCreat | Posix.OTrunc | Posix.OCloexec, 0x180);
        }

        if (fd < 0)
        {
            throw NativeException.FromLastError($"create {path}");
        }

        Span<byte> header = stackalloc byte[HeaderSize];
        header.Clear();
        magic.CopyTo(header);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], Version);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], flags);
        Base.TryWriteBytes(header[16..]);
        BinaryPrimitives.WriteInt64LittleEndian(header[32..], number);
        BinaryPrimitives.WriteUInt32LittleEndian(header[60..], XxHash32.HashToUInt32(header[..60]));
        var file = new LogFile { Fd = fd };
        if (!Append(fd, ref file.Length, ref file.Allocated, header) || Posix.FDataSync(fd) < 0)
        {
            var errno = Posix.Errno;
            Posix.Close(fd);
            throw new NativeException($"write {path}", errno);
        }

        DirectorySync.Fsync(_directory);
        return file;
    }

    private bool Append(ReadOnlySpan<byte> bytes) => Append(_fd, ref _length, ref _allocated, bytes);

    private static bool Append(int fd, ref long length, ref long allocated, ReadOnlySpan<byte> bytes)
    {
        if (length + bytes.Length > allocated)
        {
            var zeros = new byte[Chunk];
            fixed (byte* z = zeros)
            {
                if (Posix.PWrite(fd, z, Chunk, allocated) != Chunk)
                {
                    return false;
                }
            }

            allocated += Chunk;
        }

        fixed (byte* b = bytes)
        {
            if (Posix.PWrite(fd, b, (nuint)bytes.Length, length) != bytes.Length)
            {
                return false;
            }
        }

        length += bytes.Length;
        return true;
    }

    /// <summary>Under <see cref="_gate"/>: the current epoch's records durable before it is left.</summary>
    private void FlushCurrent()
    {
        if (Posix.FDataSync(_fd) < 0 || (_ranges.Fd >= 0 && Posix.FDataSync(_ranges.Fd) < 0))
        {
            Fail();
        }

        lock (_syncGate)
        {
            Volatile.Write(ref _synced, _written);
            Monitor.PulseAll(_syncGate);
        }
    }

    /// <summary>The record could not be kept: from now on it is not trusted (a resync walks everything).</summary>
    private void Fail()
    {
        lock (_gate)
        {
            _complete = false;
        }

        MarkIncomplete();
    }

    private void MarkIncomplete()
    {
        try
        {
            File.WriteAllBytes(Path.Combine(_directory, IncompleteMarker), []);
            DirectorySync.Fsync(_directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NativeException)
        {
            // The in-memory flag still holds for this run; nothing better can be done on a failing disk.
        }
    }

    /// <summary>Whether <paramref name="bytes"/> start with an intact header of this version (see <see cref="CreateFile"/>) with <paramref name="magic"/>.</summary>
    private static bool IsHeader(ReadOnlySpan<byte> bytes, ReadOnlySpan<byte> magic) =>
        bytes.Length >= HeaderSize && bytes[..4].SequenceEqual(magic) && BinaryPrimitives.ReadUInt32LittleEndian(bytes[4..]) == Version
        && BinaryPrimitives.ReadUInt32LittleEndian(bytes[60..]) == XxHash32.HashToUInt32(bytes[..60]);

    private static bool ReadHeader(ReadOnlySpan<byte> bytes, out Guid @base, out long number, out bool complete)
    {
        @base = default;
        number = 0;
        complete = false;
        if (!IsHeader(bytes, Magic))
        {
            return false;
        }

        complete = (BinaryPrimitives.ReadUInt32LittleEndian(bytes[8..]) & 1) != 0;
        @base = new Guid(bytes.Slice(16, 16));
        number = BinaryPrimitives.ReadInt64LittleEndian(bytes[32..]);
        return true;
    }

    /// <summary>The records up to the first empty or torn one (a crash in the middle of a write).</summary>
    private static Dictionary<string, ChangeScope> ReadRecords(ReadOnlySpan<byte> bytes)
    {
        var paths = new Dictionary<string, ChangeScope>(StringComparer.Ordinal);
        var offset = HeaderSize;
        while (offset + 8 <= bytes.Length)
        {
            var length = BinaryPrimitives.ReadUInt16LittleEndian(bytes[offset..]);
            var scope = (ChangeScope)bytes[offset + 2];
            if (length == 0 && scope == 0)
            {
                break;
            }

            if (length > MaxPath || offset + 8 + length > bytes.Length || scope is < ChangeScope.Entry or > ChangeScope.Tree
                || BinaryPrimitives.ReadUInt32LittleEndian(bytes[(offset + 4 + length)..]) != XxHash32.HashToUInt32(bytes.Slice(offset, 4 + length)))
            {
                break;
            }

            ScopeMap.Widen(paths, System.Text.Encoding.UTF8.GetString(bytes.Slice(offset + 4, length)), scope);

            offset += 8 + length;
        }

        return paths;
    }
}

/// <summary>A journal as found on disk: its base generation, whether it is trusted, and its epochs' paths.</summary>
public sealed record JournalContents(Guid Base, bool Complete, IReadOnlyList<(long Number, Dictionary<string, ChangeScope> Paths)> Epochs)
{
    /// <summary>Every path, each with its widest scope.</summary>
    public ChangeSet Paths()
    {
        var all = new Dictionary<string, ChangeScope>(StringComparer.Ordinal);
        foreach (var (_, paths) in Epochs)
        {
            ScopeMap.WidenAll(all, paths);
        }

        return new ChangeSet(all);
    }
}
