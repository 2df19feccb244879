using System.IO.Hashing;
using System.Threading.Channels;
using Microsoft.Win32.SafeHandles;
using SafeKit.Native.Files;
using SafeKit.Native.Interop;
using ZstdSharp;

namespace SafeKit.Replication.Resync;

/// <summary>
/// The node being brought up to date: answers a source's requests on its own data directory.
/// It removes what the source no longer has, creates what is missing, reports which files differ
/// (size or modification time), hashes its blocks on request and writes the blocks it is sent.
/// Every path stays inside the data directory (see <see cref="MessageReader.RelativePath"/>).
/// </summary>
public sealed class ResyncTarget : IDisposable
{
    private readonly string _root;
    private readonly TreeWarmer _warmer;
    private readonly Decompressor _decompressor = new();
    private readonly Dictionary<(ulong Device, ulong Inode), string> _links = [];
    private readonly byte[] _block = new byte[ResyncSource.BlockSize];
    private SafeFileHandle? _open;
    private string? _openPath;

    /// <summary>The sessions of the listener this target serves (null: served alone, no extra streams).</summary>
    private ResyncSessions? _sessions;

    /// <summary>This target's session token, once it entered (its extra streams join with it).</summary>
    private Guid? _token;

    /// <summary>For an extra stream: the session it joined (it takes only hashes and data then).</summary>
    private ResyncTarget? _joined;

    /// <summary>The extra streams that joined this session: their writes count as its.</summary>
    private readonly List<ResyncTarget> _streams = [];
    private long _filesWritten;
    private long _bytesWritten;

    public ResyncTarget(string root)
    {
        _root = Path.GetFullPath(root);
        // A changed file of one block is sent whole or by its changed bytes, without its hash:
        // read ahead all the same, as writing part of a page not in memory reads it first.
        _warmer = new TreeWarmer(_root, smallContents: true);
    }

    /// <summary>
    /// Called when the source ends its resync with a handover (its bytes given), after this copy
    /// is durable and before the source hears back: the node takes its new role here (a failure
    /// is reported to the source).
    /// </summary>
    public Action<byte[]>? Handover { get; init; }

    /// <summary>What this copy is and may hold beyond it (asked by the source first); null: not known, the source walks everything.</summary>
    public Func<TargetJournal>? Journal { get; init; }

    /// <summary>
    /// Only compared (a verify): this copy is never changed; a directory's listing is answered
    /// with what differs from the source's, and data is refused.
    /// </summary>
    public bool CompareOnly { get; init; }

    /// <summary>Files whose content was written (on every stream of the session).</summary>
    public long FilesWritten => Interlocked.Read(ref _filesWritten) + Streams().Sum(static s => s.FilesWritten);

    /// <summary>Uncompressed bytes written (on every stream of the session).</summary>
    public long BytesWritten => Interlocked.Read(ref _bytesWritten) + Streams().Sum(static s => s.BytesWritten);

    /// <summary>Files written by each stream of the session: this connection's, then each extra stream's.</summary>
    internal long[] FilesWrittenPerStream => [Interlocked.Read(ref _filesWritten), .. Streams().Select(static s => s.FilesWritten)];

    /// <summary>Whether this connection was an extra stream of another's session.</summary>
    public bool IsStream => _joined is not null;

    private ResyncTarget[] Streams()
    {
        lock (_streams)
        {
            return [.. _streams];
        }
    }

    /// <summary>Entries removed because the source no longer has them.</summary>
    public long Removed { get; private set; }

    /// <summary>
    /// Answers requests until the source closes the connection. Hash requests only read, and the
    /// source asks several ahead: up to <see cref="HashWorkers"/> are answered at once, so a cold
    /// disk reads several files together; answers still leave in request order. Data is written
    /// meanwhile (to files whose hashes were already answered); every other request (it may add,
    /// remove or replace files) waits for the hashes in flight.
    /// </summary>
    public Task ServeAsync(ResyncConnection connection, CancellationToken cancellationToken = default) => ServeAsync(connection, null, cancellationToken);

    /// <summary>
    /// As <see cref="ServeAsync(ResyncConnection, CancellationToken)"/>, for one of the
    /// connections of a listener's <paramref name="sessions"/>: a first request that joins a
    /// session makes this an extra stream of it; any other waits until no other source is served.
    /// </summary>
    internal async Task ServeAsync(ResyncConnection connection, ResyncSessions? sessions, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        _sessions = sessions;
        try
        {
            await ServeRequestsAsync(connection, cancellationToken);
        }
        finally
        {
            if (_token is not null)
            {
                sessions!.Leave(this);
            }
        }
    }

    private async Task ServeRequestsAsync(ResyncConnection connection, CancellationToken cancellationToken)
    {
        var answers = System.Threading.Channels.Channel.CreateBounded<(Task<byte[]> Answer, bool ThenCompress)>(new BoundedChannelOptions(64) { SingleReader = true, SingleWriter = true });
        var writing = Task.Run(
            async () =>
            {
                try
                {
                    await foreach (var (answer, thenCompress) in answers.Reader.ReadAllAsync(cancellationToken))
                    {
                        // Answers already done behind this one leave together with it.
                        var more = !thenCompress && answers.Reader.TryPeek(out var next) && next.Answer.IsCompleted;
                        await connection.WriteAsync(await answer, more, cancellationToken);
                        if (thenCompress)
                        {
                            connection.CompressWrites();
                        }
                    }
                }
                catch (Exception e)
                {
                    // The reader must not wait for room that will never come.
                    answers.Writer.TryComplete(e);
                    throw;
                }
            },
            cancellationToken);
        using var workers = new SemaphoreSlim(HashWorkers, HashWorkers);
        var reading = new List<Task<byte[]>>();
        try
        {
            var first = true;
            while (await connection.ReadAsync(cancellationToken) is { } request)
            {
                if (first && _sessions is { } sessions && request is not [(byte)ResyncMessageType.Stream, ..])
                {
                    _token = await sessions.EnterAsync(this, cancellationToken);
                }

                first = false;
                if (request is [(byte)ResyncMessageType.Hashes, ..])
                {
                    await workers.WaitAsync(cancellationToken);
                    var hashes = Task.Run(
                        () =>
                        {
                            var block = System.Buffers.ArrayPool<byte>.Shared.Rent(ResyncSource.BlockSize);
                            try
                            {
                                return Handle(request, block);
                            }
                            finally
                            {
                                System.Buffers.ArrayPool<byte>.Shared.Return(block);
                                workers.Release();
                            }
                        },
                        cancellationToken);
                    if (reading.Count >= 64)
                    {
                        reading.RemoveAll(static t => t.IsCompleted);
                    }

                    reading.Add(hashes);
                    await answers.Writer.WriteAsync((hashes, false), cancellationToken);
                    continue;
                }

                if (request is [(byte)ResyncMessageType.Options, ..])
                {
                    // The source sends nothing more until it has the answer: everything it sends
                    // next, and everything written after the answer, is in the agreed form.
                    var answer = Handle(request);
                    var compress = OptionsAnswer.Accepted(answer).HasFlag(ResyncFeatures.CompressedStream);
                    await answers.Writer.WriteAsync((Task.FromResult(answer), compress), cancellationToken);
                    if (compress)
                    {
                        connection.DecompressReads();
                    }

                    continue;
                }

                // Data goes to a file whose hashes the source already has (none of those in flight);
                // anything else may add, remove or replace the files being read: it waits for them.
                if (request is not [(byte)ResyncMessageType.Data, ..])
                {
                    await Task.WhenAll(reading);
                    reading.Clear();
                }

                await answers.Writer.WriteAsync((Task.FromResult(Handle(request)), false), cancellationToken);
            }
        }
        finally
        {
            answers.Writer.TryComplete();
            await writing.ContinueWith(static _ => { }, TaskScheduler.Default);
            await Task.WhenAll(reading).ContinueWith(static _ => { }, TaskScheduler.Default);
            CloseOpen();
        }

        await writing;
    }

    /// <summary>Hash requests answered at once at most.</summary>
    private const int HashWorkers = 4;

    /// <summary>One request → its response (a failure becomes a status, never an exception that ends the session silently).</summary>
    /// <param name="block">A buffer of its own for a hash request answered beside others (null: this target's, on the session's only thread).</param>
    internal byte[] Handle(byte[] request, byte[]? block = null)
    {
        using var reader = new MessageReader(request);
        using var response = new MessageWriter(reader.Type);
        var body = new MemoryStream();
        using (var answer = new BinaryWriter(body))
        {
            try
            {
                switch (reader.Type)
                {
                    case not (ResyncMessageType.Hashes or ResyncMessageType.Data or ResyncMessageType.Options) when _joined is not null:
                        throw new InvalidDataException($"an extra stream of a resync carries only hashes and data, not a {reader.Type} request");
                    case ResyncMessageType.Dir when CompareOnly:
                        CompareDir(reader, answer);
                        break;
                    case ResyncMessageType.Dir:
                        Dir(reader, answer);
                        break;
                    case ResyncMessageType.Data or ResyncMessageType.Finish when CompareOnly:
                        throw new InvalidDataException("this copy is only compared (a verify): it takes no data");
                    case ResyncMessageType.Hashes:
                        Hashes(reader, answer, block);
                        break;
                    case ResyncMessageType.Data:
                        Data(reader);
                        break;
                    case ResyncMessageType.Journal:
                        WriteJournal(answer);
                        break;
                    case ResyncMessageType.Options:
                        Options(reader, answer);
                        break;
                    case ResyncMessageType.Stream:
                        Join(reader);
                        break;
                    case ResyncMessageType.Warm:
                        _warmer.Add(ReadPaths(reader));
                        break;
                    case ResyncMessageType.Finish:
                        CloseOpen();
                        DirectorySync.SyncFileSystem(_root);
                        if (reader.Body.ReadBoolean())
                        {
                            var handover = reader.Body.ReadBytes(reader.Body.ReadInt32());
                            (Handover ?? throw new InvalidDataException("this node takes no handover"))(handover);
                        }

                        break;
                    default:
                        throw new InvalidDataException($"unknown resync request type {(int)reader.Type}");
                }

                response.Body.Write(0);
            }
            catch (Exception e) when (e is NativeException or IOException or UnauthorizedAccessException or InvalidDataException or EndOfStreamException or ZstdException or InvalidOperationException)
            {
                if (block is null)
                {
                    CloseOpen();
                }

                response.Body.Write(e is NativeException n ? n.Errno : 5);
                response.Body.Write(e.Message);
                return response.ToArray();
            }

            answer.Flush();
            response.Body.Write(body.GetBuffer(), 0, (int)body.Length);
        }

        return response.ToArray();
    }

    /// <summary>The features this target takes of those offered; with parallel streams, the token the extra streams join with.</summary>
    private void Options(MessageReader reader, BinaryWriter answer)
    {
        var accepted = (ResyncFeatures)reader.Body.ReadInt32() & OptionsAnswer.Supported;
        if (_token is null)
        {
            accepted &= ~ResyncFeatures.ParallelStreams; // Served alone, or itself an extra stream.
        }

        answer.Write((int)accepted);
        if (_token is { } token && accepted.HasFlag(ResyncFeatures.ParallelStreams))
        {
            answer.Write(token.ToByteArray());
        }
    }

    /// <summary>This connection becomes an extra stream of the session the token names.</summary>
    private void Join(MessageReader reader)
    {
        var token = new Guid(reader.Body.ReadBytes(16));
        if (_joined is not null || _token is not null)
        {
            throw new InvalidDataException("a stream joins a session with its first request only");
        }

        _joined = _sessions?.Join(token) ?? throw new InvalidDataException("no resync session holds this stream's token (it ended, or this node was not asked for streams)");
        if (_joined.CompareOnly != CompareOnly)
        {
            throw new InvalidDataException("a stream joins a session of its own kind only");
        }

        lock (_joined._streams)
        {
            _joined._streams.Add(this);
        }
    }

    /// <summary>Paths with their scopes, as a warm request carries them.</summary>
    private static List<KeyValuePair<string, Native.Fuse.ChangeScope>> ReadPaths(MessageReader reader)
    {
        var count = reader.Body.ReadInt32();
        var paths = new List<KeyValuePair<string, Native.Fuse.ChangeScope>>(Math.Clamp(count, 0, 1 << 16));
        for (var i = 0; i < count; i++)
        {
            paths.Add(new(reader.RelativePath(), (Native.Fuse.ChangeScope)reader.Body.ReadByte()));
        }

        return paths;
    }

    private void WriteJournal(BinaryWriter answer)
    {
        if (Journal?.Invoke() is not { } journal)
        {
            answer.Write(false);
            return;
        }

        // Too many paths for one message: say the journal cannot be used (the source walks everything).
        var fits = journal.Paths.Paths.Keys.Sum(static p => (long)System.Text.Encoding.UTF8.GetByteCount(p) + 8) < ResyncConnection.MaxMessageLength / 2;
        answer.Write(true);
        answer.Write(journal.Data.ToByteArray());
        answer.Write(journal.Base.ToByteArray());
        answer.Write(journal.Complete && fits);
        if (!fits)
        {
            answer.Write(0);
            return;
        }

        answer.Write(journal.Paths.Count);
        foreach (var (path, scope) in journal.Paths.Paths)
        {
            answer.Write(path);
            answer.Write((byte)scope);
        }
    }

    private string Full(string relative) => relative.Length == 0 ? _root : Path.Join(_root, relative);

    private void Dir(MessageReader reader, BinaryWriter answer)
    {
        var relative = reader.RelativePath();
        var self = reader.Entry(Path.GetFileName(relative));
        var directory = Full(relative);
        if (reader.Body.ReadBoolean())
        {
            var digest = new UInt128(0, reader.Body.ReadUInt64()) | (new UInt128(0, reader.Body.ReadUInt64()) << 64);
            var same = ListingDigest.Read(directory) is { } mine && ListingDigest.Of(mine) == digest;
            answer.Write(same);
            if (same)
            {
                SelfMetadata(directory, self);
                answer.Write(0);
                answer.Write(0);
            }

            return;
        }

        answer.Write(true);
        var partial = reader.Body.ReadBoolean();
        Directory.CreateDirectory(directory);
        var existing = partial ? [] : FileTree.List(directory).ToDictionary(static e => e.Name, StringComparer.Ordinal);
        var wanted = Entries(reader);

        if (partial)
        {
            // Only these entries: each looked up by name, nothing else in the directory touched.
            foreach (var (entry, _, _, _, _, _) in wanted)
            {
                if (FileTree.TryLstat(Path.Join(directory, entry.Name), out var mine))
                {
                    existing[entry.Name] = mine with { Name = entry.Name };
                }
            }
        }

        var kinds = wanted.ToDictionary(static w => w.Entry.Name, static w => w.Entry.Kind, StringComparer.Ordinal);
        foreach (var (name, entry) in existing)
        {
            if (!kinds.TryGetValue(name, out var kind) || kind != entry.Kind)
            {
                FileTree.Remove(Path.Join(directory, name));
                existing.Remove(name);
                Removed++;
            }
        }

        var differing = new List<(string Name, long Size, bool Stale)>();
        var created = new List<string>();
        foreach (var (entry, linkDevice, linkInode, compare, target, xattrs) in wanted)
        {
            var path = Path.Join(directory, entry.Name);
            var present = existing.TryGetValue(entry.Name, out var mine);
            switch (entry.Kind)
            {
                case EntryKind.Directory:
                    if (!present)
                    {
                        Directory.CreateDirectory(path);
                        created.Add(entry.Name);
                    }

                    break;
                case EntryKind.Symlink:
                    if (present && ReadLink(path) != target)
                    {
                        FileTree.Remove(path);
                        present = false;
                    }

                    if (!present)
                    {
                        File.CreateSymbolicLink(path, target!);
                    }

                    FileTree.SetMetadata(path, entry.Kind, entry.Mode, entry.Uid, entry.Gid, entry.MtimeNs);
                    break;
                case EntryKind.Fifo:
                    if (!present)
                    {
                        FileTree.MakeFifo(path, entry.Mode);
                    }

                    FileTree.SetMetadata(path, entry.Kind, entry.Mode, entry.Uid, entry.Gid, entry.MtimeNs);
                    break;
                case EntryKind.Regular:
                    if (Regular(path, entry, present ? mine : null, linkDevice, linkInode, compare != EntryCompare.Listed) is var (size, stale))
                    {
                        differing.Add((entry.Name, size, stale));
                        if (size > 0 && !ResyncSource.SentWithoutHashes(compare, stale, entry.Size, size))
                        {
                            // Its hashes are asked next: the disk starts reading it now, while the source works.
                            FileTree.Prefetch(path);
                        }
                    }

                    break;
            }

            // Extended attributes and ACLs (a symlink carries none).
            if (entry.Kind != EntryKind.Symlink)
            {
                ExtendedAttributes.Apply(path, xattrs);
            }
        }

        // Last: creating and removing entries above moved the directory's own time.
        if (!partial)
        {
            SelfMetadata(directory, self);
        }

        answer.Write(differing.Count);
        foreach (var (name, size, stale) in differing)
        {
            answer.Write(name);
            answer.Write(size);
            answer.Write(stale);
        }

        answer.Write(created.Count);
        foreach (var name in created)
        {
            answer.Write(name);
        }
    }

    /// <summary>The entries of a listing as the source sent them.</summary>
    private static List<(TreeEntry Entry, ulong LinkDevice, ulong LinkInode, EntryCompare Compare, string? Target, byte[]? Xattrs)> Entries(MessageReader reader)
    {
        var count = reader.Body.ReadInt32();
        var wanted = new List<(TreeEntry Entry, ulong LinkDevice, ulong LinkInode, EntryCompare Compare, string? Target, byte[]? Xattrs)>(Math.Min(count, 1 << 16));
        for (var i = 0; i < count; i++)
        {
            var entry = reader.Entry(reader.Name());
            var device = reader.Body.ReadUInt64();
            var inode = reader.Body.ReadUInt64();
            var compare = reader.Body.ReadByte() switch
            {
                0 => EntryCompare.Listed,
                2 => EntryCompare.ByRanges,
                _ => EntryCompare.Forced, // What a boolean reader would take as true.
            };
            var target = entry.Kind == EntryKind.Symlink ? reader.Body.ReadString() : null;
            var length = reader.Body.ReadInt32();
            var xattrs = length is < 0 or > ResyncConnection.MaxMessageLength ? throw new InvalidDataException($"{entry.Name}: {length} bytes of extended attributes") : reader.Body.ReadBytes(length);
            wanted.Add((entry, device, inode, compare, target, xattrs.Length == 0 ? null : xattrs));
        }

        return wanted;
    }

    /// <summary>
    /// A verify's listing: nothing changes here. Answers the regular files whose blocks must be
    /// compared (present on both sides with the same size) and every other difference in words:
    /// missing or extra entries, kind, permissions, owner, size, symlink target, hard links.
    /// Times are not compared (an open file's time reaches SECOND when it is closed).
    /// </summary>
    private void CompareDir(MessageReader reader, BinaryWriter answer)
    {
        var relative = reader.RelativePath();
        var self = reader.Entry(Path.GetFileName(relative));
        if (reader.Body.ReadBoolean() || reader.Body.ReadBoolean())
        {
            throw new InvalidDataException("a verify sends whole listings");
        }

        var wanted = Entries(reader);
        var directory = Full(relative);
        var differences = new List<(string Name, string What)>();
        var differing = new List<(string Name, long Size)>();
        answer.Write(true);
        if (FileTree.TryLstat(directory, out var mine) && mine.Kind == EntryKind.Directory)
        {
            if (Metadata(mine, self) is { } own)
            {
                differences.Add(("", own));
            }

            var existing = FileTree.List(directory).ToDictionary(static e => e.Name, StringComparer.Ordinal);
            foreach (var (entry, linkDevice, linkInode, _, target, xattrs) in wanted)
            {
                var path = Path.Join(directory, entry.Name);
                if (!existing.Remove(entry.Name, out var copy))
                {
                    differences.Add((entry.Name, "missing from the copy"));
                }
                else if (copy.Kind != entry.Kind)
                {
                    differences.Add((entry.Name, $"a {Kind(copy.Kind)} in the copy, a {Kind(entry.Kind)} here"));
                }
                else if (Metadata(copy, entry) is { } metadata)
                {
                    differences.Add((entry.Name, metadata));
                }
                else if (entry.Kind == EntryKind.Symlink && ReadLink(path) is var link && link != target)
                {
                    differences.Add((entry.Name, $"symlink to '{link}' in the copy, to '{target}' here"));
                }
                else if (entry.Kind != EntryKind.Symlink && !(ListingDigest.Xattrs(path, copy.Kind) ?? []).AsSpan().SequenceEqual(xattrs ?? []))
                {
                    differences.Add((entry.Name, "extended attributes or ACLs differ"));
                }
                else if (entry.Kind == EntryKind.Regular && Linked(path, copy, linkDevice, linkInode) is { } links)
                {
                    differences.Add((entry.Name, links));
                }
                else if (entry.Kind == EntryKind.Regular && copy.Size != entry.Size)
                {
                    differences.Add((entry.Name, $"{copy.Size} bytes in the copy, {entry.Size} here"));
                }
                else if (entry.Kind == EntryKind.Regular && entry.Size > 0)
                {
                    differing.Add((entry.Name, copy.Size));
                    FileTree.Prefetch(path);
                }
            }

            foreach (var name in existing.Keys)
            {
                differences.Add((name, "only in the copy"));
            }
        }

        answer.Write(differing.Count);
        foreach (var (name, size) in differing)
        {
            answer.Write(name);
            answer.Write(size);
            answer.Write(false); // Same size and time: only the blocks can tell.
        }

        answer.Write(0);
        answer.Write(differences.Count);
        foreach (var (name, what) in differences)
        {
            answer.Write(name);
            answer.Write(what);
        }
    }

    private static string Kind(EntryKind kind) => kind switch
    {
        EntryKind.Directory => "directory",
        EntryKind.Regular => "regular file",
        EntryKind.Symlink => "symlink",
        EntryKind.Fifo => "fifo",
        _ => kind.ToString().ToLowerInvariant(),
    };

    /// <summary>Permissions or owner that differ (a symlink's permissions mean nothing), in words.</summary>
    private static string? Metadata(TreeEntry copy, TreeEntry source)
    {
        if (copy.Kind != EntryKind.Symlink && (copy.Mode & 0xFFF) != (source.Mode & 0xFFF))
        {
            return $"mode {Convert.ToString(copy.Mode & 0xFFF, 8)} in the copy, {Convert.ToString(source.Mode & 0xFFF, 8)} here";
        }

        return copy.Uid != source.Uid || copy.Gid != source.Gid
            ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"owner {copy.Uid}:{copy.Gid} in the copy, {source.Uid}:{source.Gid} here")
            : null;
    }

    /// <summary>Hard links as the source has them: a file linked there is the same file here as its first name; one that is not is not linked here.</summary>
    private string? Linked(string path, TreeEntry copy, ulong linkDevice, ulong linkInode)
    {
        if (linkInode == 0)
        {
            return copy.Links > 1 ? $"{copy.Links} hard links in the copy, 1 here" : null;
        }

        if (_links.TryGetValue((linkDevice, linkInode), out var first))
        {
            return FileTree.SameFile(first, path) ? null : $"not the same file as '{Path.GetRelativePath(_root, first)}' in the copy (hard links here)";
        }

        _links[(linkDevice, linkInode)] = path;
        return null;
    }

    /// <summary>A directory's own owner, permissions and time, set only where they differ.</summary>
    private static void SelfMetadata(string directory, TreeEntry self)
    {
        if (!FileTree.TryLstat(directory, out var mine) || mine.Mode != self.Mode || mine.Uid != self.Uid || mine.Gid != self.Gid || mine.MtimeNs != self.MtimeNs)
        {
            FileTree.SetMetadata(directory, EntryKind.Directory, self.Mode, self.Uid, self.Gid, self.MtimeNs);
        }
    }

    /// <summary>A regular file: the size to report when its content must be sent, or null when it matches (or is a hard link of one already handled).</summary>
    /// <returns>
    /// Null when the file needs nothing more; else this copy's size (-1: just created) and whether
    /// its size or time differ from the source's (not only a forced comparison).
    /// </returns>
    private (long Size, bool Stale)? Regular(string path, TreeEntry entry, TreeEntry? mine, ulong linkDevice, ulong linkInode, bool force)
    {
        if (linkInode != 0 && _links.TryGetValue((linkDevice, linkInode), out var first))
        {
            if (!FileTree.SameFile(first, path))
            {
                FileTree.Remove(path);
                FileTree.Link(first, path);
            }

            return null;
        }

        // A file linked here but not on the source: writing it would change its other names too.
        if (mine is { Links: > 1 } && linkInode == 0)
        {
            FileTree.Remove(path);
            mine = null;
        }

        if (linkInode != 0)
        {
            _links[(linkDevice, linkInode)] = path;
        }

        if (mine is not { } current)
        {
            File.Create(path).Dispose();
            return (-1, true);
        }

        var stale = current.Size != entry.Size || current.MtimeNs != entry.MtimeNs;
        if (force || stale)
        {
            return (current.Size, stale);
        }

        if (current.Mode != entry.Mode || current.Uid != entry.Uid || current.Gid != entry.Gid)
        {
            FileTree.SetMetadata(path, entry.Kind, entry.Mode, entry.Uid, entry.Gid, entry.MtimeNs);
        }

        return null;
    }

    private static string? ReadLink(string path) => new FileInfo(path).LinkTarget;

    private void Hashes(MessageReader reader, BinaryWriter answer, byte[]? concurrent)
    {
        var path = Full(reader.RelativePath());
        var blockSize = reader.Body.ReadInt32();
        var firstBlock = reader.Body.ReadInt64();
        var count = reader.Body.ReadInt32();
        if (blockSize != ResyncSource.BlockSize || count is < 0 or > ResyncSource.HashesPerRequest || firstBlock < 0)
        {
            throw new InvalidDataException($"hashes of {path}: block size {blockSize}, {count} blocks from {firstBlock} are out of bounds");
        }

        if (concurrent is null)
        {
            CloseOpen();
        }

        var buffer = concurrent ?? _block;
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        }
        catch (Exception e) when (CompareOnly && e is FileNotFoundException or DirectoryNotFoundException)
        {
            // A verify compares a copy that keeps changing: gone since its listing. No hash, so
            // every block differs for the source, which compares it again later.
            answer.Write(-1L);
            answer.Write(0);
            return;
        }

        using var _ = handle;
        var size = RandomAccess.GetLength(handle);
        var blocks = (int)Math.Clamp(((size + blockSize - 1) / blockSize) - firstBlock, 0, count);
        answer.Write(size);
        answer.Write(blocks);
        for (var i = 0; i < blocks; i++)
        {
            var read = ReadFully(handle, buffer, (firstBlock + i) * blockSize, blockSize);
            var hash = XxHash128.HashToUInt128(buffer.AsSpan(0, read));
            answer.Write((ulong)hash);
            answer.Write((ulong)(hash >> 64));
        }
    }

    private void Data(MessageReader reader)
    {
        var relative = reader.RelativePath();
        var path = Full(relative);
        var last = reader.Body.ReadBoolean();
        var meta = reader.Entry(Path.GetFileName(path));
        var count = reader.Body.ReadInt32();
        if (_openPath != path)
        {
            CloseOpen();
            _open = File.OpenHandle(path, FileMode.OpenOrCreate, FileAccess.Write, FileShare.ReadWrite);
            _openPath = path;
            Interlocked.Increment(ref _filesWritten);
        }

        for (var i = 0; i < count; i++)
        {
            var offset = reader.Body.ReadInt64();
            var length = reader.Body.ReadInt32();
            var stored = reader.Body.ReadInt32();
            if (length is < 0 or > ResyncSource.BlockSize || stored < 0 || stored > ResyncConnection.MaxMessageLength || offset < 0)
            {
                throw new InvalidDataException($"data for {relative}: a block of {length} bytes stored in {stored} at {offset} is out of bounds");
            }

            var bytes = reader.Body.ReadBytes(stored);
            if (bytes.Length != stored)
            {
                throw new EndOfStreamException($"data for {relative}: a block is cut short");
            }

            ReadOnlySpan<byte> block = bytes;
            if (stored != length)
            {
                var unpacked = _decompressor.Unwrap(bytes, _block);
                if (unpacked != length)
                {
                    throw new InvalidDataException($"data for {relative}: a block unpacked to {unpacked} bytes, {length} announced");
                }

                block = _block.AsSpan(0, length);
            }

            RandomAccess.Write(_open!, block, offset);
            Interlocked.Add(ref _bytesWritten, length);
        }

        if (last)
        {
            RandomAccess.SetLength(_open!, meta.Size);

            // On its way to disk now, while the next files arrive: the copy is made durable at the
            // end in one syncfs, which then has little left to write (the node waits for it to
            // become SECOND, the application's writes wait for it).
            DirectorySync.StartWriteback(_open!);
            CloseOpen();
            FileTree.SetMetadata(path, EntryKind.Regular, meta.Mode, meta.Uid, meta.Gid, meta.MtimeNs);
        }
    }

    internal static int ReadFully(SafeFileHandle handle, byte[] buffer, long offset, int length = -1)
    {
        length = length < 0 ? buffer.Length : length;
        var total = 0;
        while (total < length)
        {
            var read = RandomAccess.Read(handle, buffer.AsSpan(total, length - total), offset + total);
            if (read == 0)
            {
                break;
            }

            total += read;
        }

        return total;
    }

    private void CloseOpen()
    {
        _open?.Dispose();
        _open = null;
        _openPath = null;
    }

    public void Dispose()
    {
        CloseOpen();
        _decompressor.Dispose();
    }
}
