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
/// hashes asked. Listings travel on the first connection; the files go over streams of their own,
/// side by side (<see cref="FileLane"/>, each file to the least busy) — or, with a target that
/// takes no extra streams, on the first connection too. Requests are pipelined on each, a
/// bounded number in flight, so memory stays bounded. A file's time is taken before it is read,
/// so a file written meanwhile shows a newer time to the next pass and is compared again.
/// </summary>
public sealed class ResyncSource : IAsyncDisposable
{
    public const int BlockSize = 64 * 1024;

    /// <summary>Hashes one request asks for at most (4 GiB of file; 256 KiB of answer).</summary>
    public const int HashesPerRequest = 65_536;

    /// <summary>Streams a resync uses unless told otherwise.</summary>
    public const int DefaultStreams = 4;

    /// <summary>Streams a resync may use at most.</summary>
    public const int MaxStreams = 16;

    /// <summary>
    /// Directory requests a pass keeps in flight: fewer than a stream's window of 32 when files
    /// share the connection (hash and data requests need room too), most of it when they do not.
    /// </summary>
    private int DirectoriesInFlight => ListingsAlone ? 24 : 8;

    /// <summary>Files whose hashes a lane has asked before the file before them is done.</summary>
    private const int FilesAhead = 16;
    private const int DataMessageBytes = 1024 * 1024;

    private readonly string _root;
    private readonly ResyncStream _main;
    /// <summary>The lanes of files: replaced whole, once (status requests read it from other threads).</summary>
    private volatile FileLane[] _lanes;
    private readonly BandwidthCap? _cap;
    private readonly int _streams;
    private readonly Func<CancellationToken, Task<ResyncConnection>>? _connect;
    private readonly TreeWarmer _warmer;

    /// <summary>In a pass from the journals: the files whose changed bytes are known exactly (see <see cref="ChangedRanges"/>).</summary>
    private readonly Dictionary<string, ByteRange[]> _exact = new(StringComparer.Ordinal);
    private bool _lanesOpened;
    private int _nextLane;

    /// <summary>While a verify runs: what it found so far (nothing is sent to the target then).</summary>
    private List<VerifyDifference>? _differences;

    /// <param name="cap">The bandwidth the resync may use (null: no cap).</param>
    /// <param name="streams">Connections the files travel on side by side, besides the listings' own (with <paramref name="connect"/> and a target that takes them).</param>
    /// <param name="connect">Opens another connection to the target, for a stream of files (null: everything on <paramref name="connection"/>).</param>
    public ResyncSource(string root, ResyncConnection connection, BandwidthCap? cap = null, int streams = 1, Func<CancellationToken, Task<ResyncConnection>>? connect = null)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentOutOfRangeException.ThrowIfLessThan(streams, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(streams, MaxStreams);
        _root = Path.GetFullPath(root);
        _cap = cap;
        _streams = connect is null ? 1 : streams;
        _connect = connect;
        _warmer = new TreeWarmer(_root, smallContents: true);
        var offer = connect is not null ? OptionsAnswer.Supported : OptionsAnswer.Supported & ~ResyncFeatures.ParallelStreams;
        _main = new ResyncStream(connection, cap, offer);
        _lanes = [new FileLane(_root, _main, Statistics)];
    }

    public ResyncStatistics Statistics { get; } = new();

    /// <summary>Bytes on the connections so far, both ways (live, unlike <see cref="ResyncStatistics.WireBytes"/>).</summary>
    public long WireBytes => _main.WireBytes + _lanes.Where(l => l.Stream != _main).Sum(static l => l.Stream.WireBytes);

    /// <summary>Whether the files have connections of their own (the listings then have the first to themselves).</summary>
    private bool ListingsAlone => _lanes[0].Stream != _main;

    /// <summary>The streams the files travel on (1 until the first pass opened the others, or when the target takes no more).</summary>
    public int Streams => _lanes.Length;

    /// <summary>The connections of this resync: the files' streams, and the listings' own once they have one.</summary>
    public int Connections
    {
        get
        {
            var lanes = _lanes;
            return lanes.Length + (lanes[0].Stream == _main ? 0 : 1);
        }
    }

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

    private Task PassCoreAsync(ChangeSet? changes, Func<string, ulong, ulong, ByteRange[]?>? changedRanges, CancellationToken cancellationToken) =>
        WithLanesAsync(() => ListPassAsync(changes, changedRanges, cancellationToken), cancellationToken);

    /// <summary>Runs <paramref name="list"/> (the listings, on the first connection) while the lanes take the files it finds; returns once every file is done.</summary>
    private async Task WithLanesAsync(Func<Task> list, CancellationToken cancellationToken)
    {
        await OpenLanesAsync(cancellationToken);
        using var lanesStop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        foreach (var lane in _lanes)
        {
            lane.Start(FilesAhead, _differences, lanesStop.Token);
        }

        try
        {
            await list();
            foreach (var lane in _lanes)
            {
                await lane.FinishPassAsync();
            }
        }
        catch
        {
            await lanesStop.CancelAsync();
            foreach (var lane in _lanes)
            {
                await lane.AbandonPassAsync();
            }

            throw;
        }

        Statistics.WireBytes = WireBytes;
    }

    /// <summary>
    /// Before the first pass: once the target agreed to parallel streams, opens the others and
    /// joins them to this session. A target that did not agree (an earlier release, a verify)
    /// gets everything on the first connection.
    /// </summary>
    private async Task OpenLanesAsync(CancellationToken cancellationToken)
    {
        if (_lanesOpened)
        {
            return;
        }

        _lanesOpened = true;
        var (_, token) = await _main.Negotiated.WaitAsync(cancellationToken);
        if (token is not { } session || _connect is not { } connect)
        {
            return;
        }

        // The listings keep the first connection to themselves: the target answers a listing only
        // after the hashes it is reading for that connection, and a listing late holds up every
        // file of its directory.
        var opened = new List<FileLane>(_streams);
        try
        {
            while (opened.Count < _streams)
            {
                var stream = new ResyncStream(await connect(cancellationToken), _cap, ResyncFeatures.CompressedStream, session);
                opened.Add(new FileLane(_root, stream, Statistics));
                await stream.Negotiated.WaitAsync(cancellationToken); // A target that refuses the stream fails the resync here, naming why.
            }
        }
        catch
        {
            foreach (var lane in opened)
            {
                await lane.Stream.DisposeAsync();
                await lane.DisposeAsync();
            }

            throw;
        }

        var first = _lanes[0];
        _lanes = [.. opened];
        await first.DisposeAsync();
    }

    private async Task ListPassAsync(ChangeSet? changes, Func<string, ulong, ulong, ByteRange[]?>? changedRanges, CancellationToken cancellationToken)
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
    }

    /// <summary>
    /// Ends the resync: the target makes its copy durable; with <paramref name="handover"/>, it
    /// then takes its part of the handover (given these bytes) before answering.
    /// </summary>
    public async Task FinishAsync(byte[]? handover, CancellationToken cancellationToken = default)
    {
        await _main.CheckSentAsync(all: true);
        using var finish = new MessageWriter(ResyncMessageType.Finish);
        finish.Body.Write(handover is not null);
        if (handover is not null)
        {
            finish.Body.Write(handover.Length);
            finish.Body.Write(handover);
        }

        using var _ = ResyncStream.Check(await await _main.SendAsync(finish.ToArray(), cancellationToken), ResyncMessageType.Finish, handover is null ? "the final sync" : "the handover");
        Statistics.WireBytes = WireBytes;
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
        var found = new List<VerifyDifference>();
        _differences = found;
        try
        {
            await WithLanesAsync(
                async () =>
                {
                    foreach (var directory in directories is null ? [""] : directories.Order(StringComparer.Ordinal).ToArray())
                    {
                        await WalkAsync(directory, cancellationToken, recursive: directories is null);
                    }
                },
                cancellationToken);
            return found;
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
        using var reader = ResyncStream.Check(await await _main.SendAsync(request.ToArray(), cancellationToken), ResyncMessageType.Journal, "the journal request");
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
        _ = (await _main.SendAsync(message, cancellationToken)).ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
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

        return await _main.SendAsync(message, cancellationToken);
    }

    /// <summary>Handles a directory's answer: its entries sent when the digest differed, then the files that differ.</summary>
    private async Task<List<string>> CompleteDirectoryAsync(string relative, Listing listing, Task<byte[]> response, HashSet<string>? forced, CancellationToken cancellationToken)
    {
        var differing = new List<(string Name, long Size, bool Stale)>();
        var created = new List<string>();
        using (var reader = ResyncStream.Check(await response, ResyncMessageType.Dir, $"directory '{relative}'"))
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
            var lane = LeastBusyLane();
            await lane.AddAsync(new FileJob(path, entry, targetSize, targetSize > 0 && !whole ? lane.AskHashesAsync(path, cancellationToken) : null, ranges), cancellationToken);
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

    private static string Join(string directory, string name) => directory.Length == 0 ? name : $"{directory}/{name}";

    /// <summary>The lane with the fewest bytes still to do; of equal ones, the next after the last chosen (idle lanes take turns).</summary>
    private FileLane LeastBusyLane()
    {
        var lanes = _lanes;
        var best = _nextLane % lanes.Length;
        for (var i = 1; i < lanes.Length; i++)
        {
            var candidate = (_nextLane + i) % lanes.Length;
            if (lanes[candidate].QueuedBytes < lanes[best].QueuedBytes)
            {
                best = candidate;
            }
        }

        _nextLane = best + 1;
        return lanes[best];
    }

    public async ValueTask DisposeAsync()
    {
        // Connections first: a lane waiting for an answer gets the loss instead.
        await _main.DisposeAsync();
        foreach (var lane in _lanes.Where(l => l.Stream != _main))
        {
            await lane.Stream.DisposeAsync();
        }

        foreach (var lane in _lanes)
        {
            await lane.DisposeAsync();
        }
    }
}
