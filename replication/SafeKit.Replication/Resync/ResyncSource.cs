using System.IO.Hashing;
using Microsoft.Win32.SafeHandles;
using SafeKit.Native.Files;
using SafeKit.Native.Fuse;
using ZstdSharp;

namespace SafeKit.Replication.Resync;

/// <summary>
/// The node with the newest data: walks its data directory and brings the target's copy to the
/// same tree. Per directory one round trip says which files differ (size or modification time);
/// for those, the target's block hashes (XxHash128 of 64 KiB blocks) are compared with this
/// side's, and only the blocks that differ travel, zstd-compressed — or, for a file whose changed
/// bytes this node recorded while alone (<see cref="ChangedRanges"/>), only those bytes, with no
/// hashes asked. Requests are pipelined: up to
/// <see cref="Window"/> are in flight, so memory stays bounded (about <see cref="Window"/> MiB).
/// A file's time is taken before it is read, so a file written meanwhile shows a newer time to
/// the next pass and is compared again.
/// </summary>
public sealed class ResyncSource : IAsyncDisposable
{
    public const int BlockSize = 64 * 1024;

    /// <summary>Hashes one request asks for at most (4 GiB of file; 256 KiB of answer).</summary>
    public const int HashesPerRequest = 65_536;

    private const int Window = 32;

    /// <summary>Directory requests a walk keeps in flight (fewer than <see cref="Window"/>: hash and data requests need room too).</summary>
    private const int DirectoriesInFlight = 8;

    /// <summary>Files whose hashes are asked before the file before them is done (across directories).</summary>
    private const int FilesAhead = 16;
    private const int DataMessageBytes = 1024 * 1024;

    private readonly string _root;
    private readonly ResyncConnection _connection;
    private readonly Queue<TaskCompletionSource<byte[]>> _pending = new();
    private readonly SemaphoreSlim _window = new(Window, Window);
    private readonly BandwidthCap? _cap;
    private readonly TreeWarmer _warmer;

    /// <summary>Files whose content differs, in order, each with the target's hashes already asked or the ranges to send.</summary>
    private readonly Queue<(string Path, TreeEntry Entry, long TargetSize, Task<UInt128[]>? Hashes, ByteRange[]? Ranges)> _ahead = new();

    /// <summary>In a pass from the journals: the files whose changed bytes are known exactly (see <see cref="ChangedRanges"/>).</summary>
    private readonly Dictionary<string, ByteRange[]> _exact = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _sendGate = new(1, 1);
    private readonly Compressor _compressor = new(1);
    private readonly byte[] _block = new byte[BlockSize];
    private readonly byte[] _packed = new byte[Compressor.GetCompressBound(BlockSize)];
    private readonly List<(Task<byte[]> Response, string Path)> _sent = [];
    private readonly Task _reading;
    private readonly Task _negotiated;
    private Exception? _lost;

    /// <summary>While a verify runs: what it found so far (nothing is sent to the target then).</summary>
    private List<VerifyDifference>? _differences;

    /// <param name="cap">The bandwidth the resync may use (null: no cap).</param>
    public ResyncSource(string root, ResyncConnection connection, BandwidthCap? cap = null)
    {
        ArgumentNullException.ThrowIfNull(connection);
        _root = Path.GetFullPath(root);
        _connection = connection;
        _cap = cap;
        _warmer = new TreeWarmer(_root, smallContents: true);
        _reading = Task.Run(ReadResponsesAsync);
        _negotiated = NegotiateAsync();
    }

    public ResyncStatistics Statistics { get; } = new();

    /// <summary>Bytes on the connection so far, both ways (live, unlike <see cref="ResyncStatistics.WireBytes"/>).</summary>
    public long WireBytes => _connection.WireBytes;

    /// <summary>One pass over the whole tree, then the target makes its copy durable.</summary>
    /// <exception cref="ResyncException">The target refused a change (the message names the path and errno) or the connection failed.</exception>
    public async Task<ResyncStatistics> RunAsync(CancellationToken cancellationToken = default)
    {
        await PassAsync(null, cancellationToken);
        await FinishAsync(null, cancellationToken);
        return Statistics;
    }

    /// <summary>
    /// One pass: over the whole tree (<paramref name="changes"/> null), or over what changed since
    /// the previous pass — each changed directory's listing, each changed entry compared even if
    /// its size and time match, everything under a name that arrived by rename, and everything
    /// under a directory the target had to create.
    /// </summary>
    public Task PassAsync(ChangeSet? changes, CancellationToken cancellationToken = default) => PassAsync(changes, null, cancellationToken);

    /// <summary>
    /// A pass over <paramref name="changes"/> where <paramref name="changedRanges"/> tells, for a
    /// changed file (its path, device and inode as listed), exactly which bytes changed since the
    /// target's copy was equal, or null when that is not known: a known file whose copy there is
    /// stale gets those bytes only, without asking the target's hashes.
    /// </summary>
    public async Task PassAsync(ChangeSet? changes, Func<string, ulong, ulong, ByteRange[]?>? changedRanges, CancellationToken cancellationToken = default)
    {
        try
        {
            await PassCoreAsync(changes, changedRanges, cancellationToken);
        }
        finally
        {
            _exact.Clear();
        }
    }

    private async Task PassCoreAsync(ChangeSet? changes, Func<string, ulong, ulong, ByteRange[]?>? changedRanges, CancellationToken cancellationToken)
    {
        Statistics.PassPlanned = 0;
        if (changes is null)
        {
            await WalkAsync("", cancellationToken);
        }
        else
        {
            // Both sides read ahead what this pass will look at, several paths at once.
            await WarmAsync(changes, cancellationToken);
            var directories = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
            var trees = new List<string>();

            // Directories whose names changed: their whole listing is compared. In the others only
            // the changed entries are looked at (a file written in place: one entry, not the
            // hundreds beside it).
            var whole = new HashSet<string>(StringComparer.Ordinal);
            HashSet<string> Forced(string directory) => directories.TryGetValue(directory, out var names) ? names : directories[directory] = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (path, scope) in changes.Paths)
            {
                switch (scope)
                {
                    case ChangeScope.Directory:
                        Forced(path);
                        whole.Add(path);
                        break;
                    case ChangeScope.Tree:
                        trees.Add(path);
                        Forced(Parent(path)).Add(Path.GetFileName(path));
                        whole.Add(Parent(path));
                        break;
                    default:
                        if (path.Length > 0)
                        {
                            Forced(Parent(path)).Add(Path.GetFileName(path));
                        }

                        break;
                }
            }

            // Parents before children: a directory's listing creates the subdirectories below it.
            // Several listings are in flight (the target answers in order, so a parent's is
            // applied before its children's) while this side lists the next directories.
            var pending = new Queue<(string Directory, Listing Listing, Task<byte[]> Response, HashSet<string> Forced)>();
            Statistics.PassPlanned = directories.Count;
            Statistics.PassDone = 0;
            async Task CompleteHeadAsync()
            {
                var (directory, listing, response, forced) = pending.Dequeue();
                foreach (var child in await CompleteDirectoryAsync(directory, listing, response, forced, cancellationToken))
                {
                    await WalkAsync(child, cancellationToken);
                }

                Statistics.PassDone++;
            }

            foreach (var (directory, forced) in directories.OrderBy(static d => Depth(d.Key)).ThenBy(static d => d.Key, StringComparer.Ordinal))
            {
                var partial = !whole.Contains(directory) && ListSome(directory, forced) is { } some ? some : null;
                if (partial is not null && changedRanges is not null)
                {
                    NoteExactRanges(directory, partial, changedRanges);
                }
                if ((partial ?? List(directory)) is { } listing)
                {
                    pending.Enqueue((directory, listing, await SendDirAsync(directory, listing, forced, digestOnly: false, cancellationToken, partial: partial is not null), forced));
                    if (pending.Count >= DirectoriesInFlight)
                    {
                        await CompleteHeadAsync();
                    }
                }
            }

            while (pending.Count > 0)
            {
                await CompleteHeadAsync();
            }

            foreach (var tree in trees)
            {
                if (FileTree.TryLstat(Full(tree), out var entry) && entry.Kind == EntryKind.Directory)
                {
                    await WalkAsync(tree, cancellationToken);
                }
            }
        }

        while (_ahead.Count > 0)
        {
            await SyncNextFileAsync(cancellationToken);
        }

        await CheckSentAsync(all: true);
        Statistics.WireBytes = _connection.WireBytes;
    }

    /// <summary>
    /// Ends the resync: the target makes its copy durable; with <paramref name="handover"/>, it
    /// then takes its part of the handover (given these bytes) before answering.
    /// </summary>
    public async Task FinishAsync(byte[]? handover, CancellationToken cancellationToken = default)
    {
        await CheckSentAsync(all: true);
        using var finish = new MessageWriter(ResyncMessageType.Finish);
        finish.Body.Write(handover is not null);
        if (handover is not null)
        {
            finish.Body.Write(handover.Length);
            finish.Body.Write(handover);
        }

        using var _ = Check(await await SendAsync(finish.ToArray(), cancellationToken), ResyncMessageType.Finish, handover is null ? "the final sync" : "the handover");
        Statistics.WireBytes = _connection.WireBytes;
    }

    /// <summary>
    /// Compares this tree with the target's, changing nothing (the target serves it with
    /// <see cref="ResyncTarget.CompareOnly"/>): every directory's whole listing (entries, kinds,
    /// permissions, owners, sizes, symlinks, hard links) and the blocks of every regular file,
    /// by hash. Over the whole tree (<paramref name="directories"/> null) or only the entries of
    /// the given directories (a recheck).
    /// </summary>
    /// <returns>What differs, each with its path and in words.</returns>
    public async Task<IReadOnlyList<VerifyDifference>> VerifyAsync(IReadOnlyCollection<string>? directories, CancellationToken cancellationToken = default)
    {
        _differences = [];
        try
        {
            foreach (var directory in directories is null ? [""] : directories.Order(StringComparer.Ordinal).ToArray())
            {
                await WalkAsync(directory, cancellationToken, recursive: directories is null);
            }

            while (_ahead.Count > 0)
            {
                await SyncNextFileAsync(cancellationToken);
            }

            Statistics.WireBytes = _connection.WireBytes;
            return _differences;
        }
        finally
        {
            _differences = null;
        }
    }

    /// <summary>The target's data generation and journal (null when it does not say: walk everything).</summary>
    public async Task<TargetJournal?> TargetJournalAsync(CancellationToken cancellationToken = default)
    {
        using var request = new MessageWriter(ResyncMessageType.Journal);
        using var reader = Check(await await SendAsync(request.ToArray(), cancellationToken), ResyncMessageType.Journal, "the journal request");
        if (!reader.Body.ReadBoolean())
        {
            return null;
        }

        var data = new Guid(reader.Body.ReadBytes(16));
        var @base = new Guid(reader.Body.ReadBytes(16));
        var complete = reader.Body.ReadBoolean();
        var count = reader.Body.ReadInt32();
        var paths = new List<KeyValuePair<string, ChangeScope>>(Math.Min(count, 1 << 20));
        for (var i = 0; i < count; i++)
        {
            var path = reader.RelativePath();
            var scope = (ChangeScope)reader.Body.ReadByte();
            if (scope is < ChangeScope.Entry or > ChangeScope.Tree)
            {
                throw new InvalidDataException($"the resync target sent an unknown change scope {(int)scope} for '{path}'");
            }

            paths.Add(new(path, scope));
        }

        return new TargetJournal(data, @base, complete, ChangeSet.Of(paths));
    }

    /// <summary>Asks the target to read ahead the paths of a pass (its answer is not waited for) and does the same here.</summary>
    /// <remarks>
    /// In the order the pass goes (its directories by depth, then name): the readers stay just
    /// ahead of it, instead of warming, in the journal's order, paths it reaches last.
    /// </remarks>
    private async Task WarmAsync(ChangeSet changes, CancellationToken cancellationToken)
    {
        var ordered = changes.Paths
            .Select(static c => (Change: c, Directory: c.Value == ChangeScope.Directory ? c.Key : Parent(c.Key)))
            .OrderBy(static c => Depth(c.Directory)).ThenBy(static c => c.Directory, StringComparer.Ordinal)
            .Select(static c => c.Change)
            .ToList();
        _warmer.Add(ordered);
        var chunk = new List<KeyValuePair<string, ChangeScope>>();
        var bytes = 0L;
        foreach (var change in ordered)
        {
            chunk.Add(change);
            bytes += System.Text.Encoding.UTF8.GetByteCount(change.Key) + 8;
            if (bytes >= DataMessageBytes)
            {
                await SendWarmAsync(chunk, cancellationToken);
                chunk.Clear();
                bytes = 0;
            }
        }

        await SendWarmAsync(chunk, cancellationToken);
    }

    private async Task SendWarmAsync(List<KeyValuePair<string, ChangeScope>> paths, CancellationToken cancellationToken)
    {
        if (paths.Count == 0)
        {
            return;
        }

        byte[] message;
        using (var warm = new MessageWriter(ResyncMessageType.Warm))
        {
            warm.Body.Write(paths.Count);
            foreach (var (path, scope) in paths)
            {
                warm.Body.Write(path);
                warm.Body.Write((byte)scope);
            }

            message = warm.ToArray();
        }

        // Its answer is not waited for (a target that does not know the request answers with an error status).
        _ = (await SendAsync(message, cancellationToken)).ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
    }

    /// <summary>Which of a partial listing's files (each a changed one) have their changed bytes known.</summary>
    private void NoteExactRanges(string directory, Listing listing, Func<string, ulong, ulong, ByteRange[]?> changedRanges)
    {
        foreach (var (entry, _, _) in listing.Entries)
        {
            var path = Join(directory, entry.Name);
            if (entry.Kind == EntryKind.Regular && changedRanges(path, entry.Device, entry.Inode) is { } ranges)
            {
                _exact[path] = ranges;
            }
        }
    }

    private EntryCompare Compare(HashSet<string>? forced, string directory, string name) =>
        forced?.Contains(name) != true ? EntryCompare.Listed : _exact.ContainsKey(Join(directory, name)) ? EntryCompare.ByRanges : EntryCompare.Forced;

    /// <summary>How deep a directory lies (the root: 0): a pass goes through parents before children.</summary>
    private static int Depth(string directory) => directory.Count(static c => c == '/') + (directory.Length > 0 ? 1 : 0);

    private static string Parent(string relative) => relative.LastIndexOf('/') is var slash and >= 0 ? relative[..slash] : "";

    /// <summary>
    /// Reconciles <paramref name="start"/> and everything under it. Directories are asked by
    /// digest, several in flight while this side lists the next ones: a directory whose listing
    /// matches costs one small message; only one that differs sends its entries.
    /// </summary>
    /// <param name="recursive">False: <paramref name="start"/>'s own entries only.</param>
    private async Task WalkAsync(string start, CancellationToken cancellationToken, bool recursive = true)
    {
        var directories = new Stack<string>();
        var pending = new Queue<(string Path, Listing Listing, Task<byte[]> Response)>();
        directories.Push(start);
        while (true)
        {
            if (directories.TryPop(out var directory))
            {
                if (List(directory) is { } listing)
                {
                    // A verify compares every entry: no digest that could hide a difference in the files' content.
                    pending.Enqueue((directory, listing, await SendDirAsync(directory, listing, null, digestOnly: _differences is null, cancellationToken)));
                    for (var i = recursive ? listing.Entries.Count - 1 : -1; i >= 0; i--)
                    {
                        if (listing.Entries[i].Entry.Kind == EntryKind.Directory)
                        {
                            directories.Push(Join(directory, listing.Entries[i].Entry.Name));
                        }
                    }
                }

                if (pending.Count < DirectoriesInFlight)
                {
                    continue;
                }
            }

            if (!pending.TryDequeue(out var head))
            {
                return;
            }

            await CompleteDirectoryAsync(head.Path, head.Listing, head.Response, null, cancellationToken);
        }
    }

    private string Full(string relative) => relative.Length == 0 ? _root : Path.Join(_root, relative);

    /// <summary>A directory as this side sees it: its own metadata and its entries.</summary>
    private sealed record Listing(TreeEntry Self, List<ListedEntry> Entries);

    private Listing? List(string relative)
    {
        var directory = Full(relative);
        if (!FileTree.TryLstat(directory, out var self) || self.Kind != EntryKind.Directory || ListingDigest.Read(directory) is not { } entries)
        {
            return null; // Gone or replaced since it was noted: whatever removed it noted its parent.
        }

        Statistics.Directories++;
        Statistics.Entries += entries.Count;
        return new Listing(self, entries);
    }

    /// <summary>
    /// Only the named entries of a directory (each looked up by name: the others are not read);
    /// null when one of them is gone or the directory is (then the whole listing is compared).
    /// </summary>
    private Listing? ListSome(string relative, HashSet<string> names)
    {
        var directory = Full(relative);
        if (names.Count == 0 || !FileTree.TryLstat(directory, out var self) || self.Kind != EntryKind.Directory)
        {
            return null;
        }

        var entries = new List<ListedEntry>(names.Count);
        foreach (var name in names.Order(StringComparer.Ordinal))
        {
            var path = Path.Join(directory, name);
            if (!FileTree.TryLstat(path, out var entry))
            {
                return null;
            }

            string? target = null;
            if (entry.Kind == EntryKind.Symlink && (target = new FileInfo(path).LinkTarget) is null)
            {
                return null;
            }

            entries.Add(new ListedEntry(entry with { Name = name }, target, ListingDigest.Xattrs(path, entry.Kind)));
        }

        Statistics.Directories++;
        Statistics.Entries += entries.Count;
        return new Listing(self, entries);
    }

    /// <param name="partial">The listing holds only some of the directory's entries: the target compares those and removes nothing.</param>
    private async Task<Task<byte[]>> SendDirAsync(string relative, Listing listing, HashSet<string>? forced, bool digestOnly, CancellationToken cancellationToken, bool partial = false)
    {
        byte[] message;
        using (var dir = new MessageWriter(ResyncMessageType.Dir))
        {
            dir.Body.Write(relative);
            dir.Entry(listing.Self);
            dir.Body.Write(digestOnly);
            if (digestOnly)
            {
                var digest = ListingDigest.Of(listing.Entries);
                dir.Body.Write((ulong)digest);
                dir.Body.Write((ulong)(digest >> 64));
            }
            else
            {
                dir.Body.Write(partial);
                dir.Body.Write(listing.Entries.Count);
                foreach (var (entry, target, xattrs) in listing.Entries)
                {
                    dir.Body.Write(entry.Name);
                    dir.Entry(entry);
                    var linked = entry.Kind == EntryKind.Regular && entry.Links > 1;
                    dir.Body.Write(linked ? entry.Device : 0UL);
                    dir.Body.Write(linked ? entry.Inode : 0UL);
                    dir.Body.Write((byte)Compare(forced, relative, entry.Name));
                    if (target is not null)
                    {
                        dir.Body.Write(target);
                    }

                    dir.Body.Write(xattrs?.Length ?? 0);
                    dir.Body.Write(xattrs ?? []);
                }
            }

            message = dir.ToArray();
        }

        return await SendAsync(message, cancellationToken);
    }

    /// <summary>Handles a directory's answer: its entries sent when the digest differed, then the files that differ.</summary>
    private async Task<List<string>> CompleteDirectoryAsync(string relative, Listing listing, Task<byte[]> response, HashSet<string>? forced, CancellationToken cancellationToken)
    {
        var differing = new List<(string Name, long Size, bool Stale)>();
        var created = new List<string>();
        using (var reader = Check(await response, ResyncMessageType.Dir, $"directory '{relative}'"))
        {
            if (!reader.Body.ReadBoolean())
            {
                // The listings differ: compare entry by entry.
                Statistics.DirectoriesListed++;
                return await CompleteDirectoryAsync(relative, listing, await SendDirAsync(relative, listing, forced, digestOnly: false, cancellationToken), forced, cancellationToken);
            }

            var count = reader.Body.ReadInt32();
            for (var i = 0; i < count; i++)
            {
                differing.Add((reader.Name(), reader.Body.ReadInt64(), reader.Body.ReadBoolean()));
            }

            count = reader.Body.ReadInt32();
            for (var i = 0; i < count; i++)
            {
                created.Add(Join(relative, reader.Name()));
            }

            if (_differences is { } found)
            {
                count = reader.Body.ReadInt32();
                for (var i = 0; i < count; i++)
                {
                    var name = reader.NameOrSelf();
                    found.Add(new VerifyDifference(name.Length == 0 ? relative : Join(relative, name), reader.Body.ReadString()));
                }
            }
        }

        // The target's hashes of the next files — of this directory and the ones after it — are
        // asked ahead, so its reads overlap this side's and the round trips overlap each other.
        var byName = listing.Entries.ToDictionary(static e => e.Entry.Name, static e => e.Entry, StringComparer.Ordinal);
        foreach (var (name, _, _) in differing)
        {
            FileTree.Prefetch(Full(Join(relative, name))); // Read from disk while earlier files are compared.
        }

        foreach (var (name, targetSize, stale) in differing)
        {
            if (!byName.TryGetValue(name, out var entry))
            {
                continue;
            }

            var compare = Compare(forced, relative, name);
            var whole = _differences is null && SentWithoutHashes(compare, stale, entry.Size, targetSize);
            var path = Join(relative, name);

            // A copy the target just created (size -1) has none of the bytes the ranges leave out.
            var ranges = whole && compare == EntryCompare.ByRanges && targetSize >= 0 ? _exact[path] : null;
            _ahead.Enqueue((path, entry, targetSize, targetSize > 0 && !whole ? HashesAsync(path, 0, cancellationToken) : null, ranges));
            if (_ahead.Count >= FilesAhead)
            {
                await SyncNextFileAsync(cancellationToken);
            }
        }

        return created;
    }

    /// <summary>
    /// A file changed here since the copies were equal (forced: journaled) whose copy shows
    /// another size or time, and either its changed bytes are known (they are sent) or it is of
    /// one block (its one block differs, so it is sent): no hashes are asked, which would cost
    /// the target a read from disk and this side a round trip. The target applies the same rule
    /// and does not read it ahead.
    /// </summary>
    internal static bool SentWithoutHashes(EntryCompare compare, bool stale, long size, long targetSize) =>
        compare != EntryCompare.Listed && stale && (compare == EntryCompare.ByRanges || (size <= BlockSize && targetSize <= BlockSize));

    private Task SyncNextFileAsync(CancellationToken cancellationToken)
    {
        var (path, entry, targetSize, hashes, ranges) = _ahead.Dequeue();
        return SyncFileAsync(path, entry, targetSize, hashes, ranges, cancellationToken);
    }

    private static string Join(string directory, string name) => directory.Length == 0 ? name : $"{directory}/{name}";

    /// <summary>Sends the blocks of one file the target lacks (or its <paramref name="ranges"/>), then its size and metadata as listed.</summary>
    private async Task SyncFileAsync(string relative, TreeEntry listed, long targetSize, Task<UInt128[]>? firstHashes, ByteRange[]? ranges, CancellationToken cancellationToken)
    {
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(Full(relative), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            if (firstHashes is not null)
            {
                await firstHashes; // Its answer is on the way: take it, or a failure surfaces here.
            }

            return; // Removed since the listing: the next pass removes it there too.
        }

        using (handle)
        {
            Statistics.FilesCompared++;
            var size = RandomAccess.GetLength(handle);
            if (ranges is not null)
            {
                // If a rename put another file here since the listing, these bytes are its: the
                // rename is tracked, and the next pass compares this path whole.
                await SendRangesAsync(relative, handle, size, ranges, listed, cancellationToken);
                return;
            }

            var blocks = (size + BlockSize - 1) / BlockSize;
            UInt128[] theirs = firstHashes is null ? [] : await firstHashes;
            long theirsFrom = 0;
            var chunk = new BlockBatch();
            var differingBlocks = 0L;
            var firstDifference = -1L;
            try
            {
                for (long b = 0; b < blocks; b++)
                {
                    // Hashes are worth a round trip only where the target has data.
                    if (targetSize > 0 && b * BlockSize < targetSize && b - theirsFrom >= theirs.Length && b > 0)
                    {
                        theirsFrom = b;
                        theirs = await HashesAsync(relative, b, cancellationToken);
                    }

                    var read = ResyncTarget.ReadFully(handle, _block, b * BlockSize);
                    Statistics.BytesCompared += read;
                    var index = b - theirsFrom;
                    if (index < theirs.Length && XxHash128.HashToUInt128(_block.AsSpan(0, read)) == theirs[index])
                    {
                        continue;
                    }

                    if (_differences is not null)
                    {
                        differingBlocks++;
                        firstDifference = firstDifference < 0 ? b * BlockSize : firstDifference;
                        continue;
                    }

                    chunk = await AddBlockAsync(relative, chunk, b * BlockSize, read, cancellationToken);
                }

                if (_differences is { } found)
                {
                    if (differingBlocks > 0)
                    {
                        found.Add(new VerifyDifference(relative, string.Create(System.Globalization.CultureInfo.InvariantCulture, $"content: {differingBlocks} of {blocks} blocks of 64 KiB differ, the first at offset {firstDifference}")));
                    }

                    return;
                }

                await SendDataAsync(relative, chunk, last: listed with { Size = size }, cancellationToken);
            }
            finally
            {
                chunk.Dispose();
            }
        }
    }

    /// <summary>Sends a file's changed bytes (up to its size), then its size and metadata as listed.</summary>
    private async Task SendRangesAsync(string relative, SafeFileHandle handle, long size, ByteRange[] ranges, TreeEntry listed, CancellationToken cancellationToken)
    {
        Statistics.FilesByRanges++;
        var chunk = new BlockBatch();
        try
        {
            foreach (var (start, end) in ranges)
            {
                for (var offset = start; offset < Math.Min(end, size); offset += BlockSize)
                {
                    var read = ResyncTarget.ReadFully(handle, _block, offset, (int)Math.Min(BlockSize, Math.Min(end, size) - offset));
                    Statistics.BytesCompared += read;
                    chunk = await AddBlockAsync(relative, chunk, offset, read, cancellationToken);
                }
            }

            await SendDataAsync(relative, chunk, last: listed with { Size = size }, cancellationToken);
        }
        finally
        {
            chunk.Dispose();
        }
    }

    /// <summary>Adds the first <paramref name="read"/> bytes of <see cref="_block"/> at <paramref name="offset"/>; a full batch is sent, and a new one returned.</summary>
    private async Task<BlockBatch> AddBlockAsync(string relative, BlockBatch chunk, long offset, int read, CancellationToken cancellationToken)
    {
        // Inside a compressed stream a block travels raw: the stream compresses it, with the
        // blocks before it as context.
        var packed = _connection.CompressesWrites ? read : _compressor.Wrap(_block.AsSpan(0, read), _packed);
        chunk.Add(offset, _block.AsSpan(0, read), packed < read ? _packed.AsSpan(0, packed) : default);
        Statistics.BlocksSent++;
        Statistics.BytesSent += read;
        if (chunk.Bytes < DataMessageBytes)
        {
            return chunk;
        }

        await SendDataAsync(relative, chunk, last: null, cancellationToken);
        chunk.Dispose();
        return new BlockBatch();
    }

    private async Task<UInt128[]> HashesAsync(string relative, long first, CancellationToken cancellationToken)
    {
        Statistics.HashRequests++;
        byte[] message;
        using (var request = new MessageWriter(ResyncMessageType.Hashes))
        {
            request.Body.Write(relative);
            request.Body.Write(BlockSize);
            request.Body.Write(first);
            request.Body.Write(HashesPerRequest);
            message = request.ToArray();
        }

        using var reader = Check(await await SendAsync(message, cancellationToken), ResyncMessageType.Hashes, $"hashes of '{relative}'");
        _ = reader.Body.ReadInt64();
        var count = reader.Body.ReadInt32();
        var hashes = new UInt128[count];
        for (var i = 0; i < count; i++)
        {
            var low = reader.Body.ReadUInt64();
            var high = reader.Body.ReadUInt64();
            hashes[i] = new UInt128(high, low);
        }

        return hashes;
    }

    private async Task SendDataAsync(string relative, BlockBatch chunk, TreeEntry? last, CancellationToken cancellationToken)
    {
        byte[] message;
        using (var data = new MessageWriter(ResyncMessageType.Data))
        {
            data.Body.Write(relative);
            data.Body.Write(last is not null);
            data.Entry(last ?? default);
            data.Body.Write(chunk.Count);
            chunk.WriteTo(data.Body);
            message = data.ToArray();
        }

        _sent.Add((await SendAsync(message, cancellationToken), relative));
        await CheckSentAsync(all: false);
    }

    /// <summary>Looks at the data responses that arrived (all of them when <paramref name="all"/>): a refused write ends the pass.</summary>
    private async Task CheckSentAsync(bool all)
    {
        var done = 0;
        foreach (var (response, path) in _sent)
        {
            if (!all && !response.IsCompleted)
            {
                break;
            }

            using var _ = Check(await response, ResyncMessageType.Data, $"data of '{path}'");
            done++;
        }

        _sent.RemoveRange(0, done);
    }

    /// <summary>Writes a request once the features are agreed and the window has room; the task it returns is the response.</summary>
    private async Task<Task<byte[]>> SendAsync(byte[] message, CancellationToken cancellationToken)
    {
        await _negotiated.WaitAsync(cancellationToken);
        return await SendNowAsync(message, cancellationToken);
    }

    /// <summary>
    /// The first request: offers the features this side has (<see cref="ResyncFeatures"/>);
    /// nothing else is sent until the answer came. A target from before this request answers it
    /// with an error, and the resync goes on uncompressed.
    /// </summary>
    private async Task NegotiateAsync()
    {
        byte[] request;
        using (var options = new MessageWriter(ResyncMessageType.Options))
        {
            options.Body.Write((int)OptionsAnswer.Supported);
            request = options.ToArray();
        }

        if (OptionsAnswer.Accepted(await await SendNowAsync(request, CancellationToken.None)).HasFlag(ResyncFeatures.CompressedStream))
        {
            _connection.CompressWrites();
        }
    }

    private async Task<Task<byte[]>> SendNowAsync(byte[] message, CancellationToken cancellationToken)
    {
        await _window.WaitAsync(cancellationToken);
        var response = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);

        // Requests sent from several tasks (hashes asked ahead): each is queued for its answer in
        // the order it is written.
        await _sendGate.WaitAsync(cancellationToken);
        try
        {
            if (_cap is { } cap)
            {
                // Before the request is queued for its answer: a wait cancelled here leaves nothing behind.
                await cap.WaitAsync(message.Length, cancellationToken);
            }

            lock (_pending)
            {
                if (_lost is { } lost)
                {
                    throw new ResyncException($"the resync connection to {_connection.Remote} was lost: {lost.Message}", lost);
                }

                _pending.Enqueue(response);
            }

            await _connection.WriteAsync(message, cancellationToken);
        }
        finally
        {
            _sendGate.Release();
        }

        return response.Task;
    }

    private async Task ReadResponsesAsync()
    {
        Exception lost;
        try
        {
            var first = true;
            while (await _connection.ReadAsync() is { } message)
            {
                if (first && OptionsAnswer.Accepted(message).HasFlag(ResyncFeatures.CompressedStream))
                {
                    // The answer to the options request: the target compresses everything after it.
                    _connection.DecompressReads();
                }

                first = false;
                TaskCompletionSource<byte[]> waiting;
                lock (_pending)
                {
                    if (!_pending.TryDequeue(out waiting!))
                    {
                        throw new InvalidDataException("the resync target answered a request that was not made");
                    }
                }

                _window.Release();
                waiting.SetResult(message);
            }

            lost = new IOException("the target closed the connection");
        }
#pragma warning disable CA1031 // Whatever ended the read loop fails every waiting request with it.
        catch (Exception e)
#pragma warning restore CA1031
        {
            lost = e;
        }

        lock (_pending)
        {
            _lost = lost;
            while (_pending.TryDequeue(out var waiting))
            {
                waiting.SetException(new ResyncException($"the resync connection to {_connection.Remote} was lost: {lost.Message}", lost));
            }
        }
    }

    private static MessageReader Check(byte[] response, ResyncMessageType expected, string what)
    {
        var reader = new MessageReader(response);
        if (reader.Type != expected)
        {
            reader.Dispose();
            throw new ResyncException($"the resync target answered {what} with a {reader.Type} response");
        }

        var status = reader.Body.ReadInt32();
        if (status != 0)
        {
            var message = reader.Body.ReadString();
            reader.Dispose();
            throw new ResyncException($"the resync target could not apply {what}: {message}", status);
        }

        return reader;
    }

    public async ValueTask DisposeAsync()
    {
        await _connection.DisposeAsync();
        await _reading;
        await _negotiated.ContinueWith(static _ => { }, TaskScheduler.Default); // Its failure, if any, reached every request.

        _compressor.Dispose();
        _window.Dispose();
        _sendGate.Dispose();
    }

    /// <summary>Blocks gathered for one data message.</summary>
    private sealed class BlockBatch : IDisposable
    {
        private readonly MemoryStream _bytes = new();
        private readonly BinaryWriter _writer;

        public BlockBatch()
        {
            _writer = new BinaryWriter(_bytes);
        }

        public int Count { get; private set; }

        public long Bytes => _bytes.Length;

        /// <summary>Adds a block: compressed when that is smaller (<paramref name="packed"/> non-empty), else raw.</summary>
        public void Add(long offset, ReadOnlySpan<byte> raw, ReadOnlySpan<byte> packed)
        {
            var stored = packed.IsEmpty ? raw : packed;
            _writer.Write(offset);
            _writer.Write(raw.Length);
            _writer.Write(stored.Length);
            _writer.Write(stored);
            Count++;
        }

        public void WriteTo(BinaryWriter destination)
        {
            _writer.Flush();
            destination.Write(_bytes.GetBuffer(), 0, (int)_bytes.Length);
        }

        public void Dispose()
        {
            _writer.Dispose();
            _bytes.Dispose();
        }
    }
}
