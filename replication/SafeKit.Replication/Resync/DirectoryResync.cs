using System.Diagnostics;
using System.Net;
using SafeKit.Native.Fuse;
using SafeKit.Replication.Channel;
using SafeKit.Replication.Mirror;

namespace SafeKit.Replication.Resync;

/// <summary>
/// Brings the peer's copy of one replicated directory up to date while the application keeps
/// writing to it here, then hands over to mirroring — the failback. Pre-copy passes run with the
/// file system live: a full one, then passes over what changed during the previous one, until
/// little is left; then the file system is frozen (writes wait, reads go on), a last pass makes
/// the copies equal, and the link attaches to SECOND with every node and open file announced,
/// so the application's next write is mirrored. The freeze lasts one short pass.
/// </summary>
public sealed class DirectoryResync : IAsyncDisposable
{
    /// <summary>Changed paths few enough for the frozen pass.</summary>
    public const int SmallEnough = 256;

    private const int MaxPrecopyPasses = 6;

    private readonly PassthroughFileSystem _fileSystem;
    private readonly ResyncSource _source;
    private PassthroughFileSystem.FrozenFileSystem? _frozen;
    private long _frozenSince;

    /// <summary>What changed during the last live pass, left for the frozen one.</summary>
    private ChangeSet? _pending;

    /// <summary>For the pass from the journals: which bytes of a changed file changed, when this node knows it.</summary>
    private Func<string, ulong, ulong, ByteRange[]?>? _changedRanges;

    private DirectoryResync(PassthroughFileSystem fileSystem, ResyncSource source)
    {
        _fileSystem = fileSystem;
        _source = source;
    }

    public ResyncStatistics Statistics => _source.Statistics;

    /// <summary>Bytes on the resync connection so far, both ways.</summary>
    public long WireBytes => _source.WireBytes;

    /// <summary>Where the resync is: connecting, pass N, frozen.</summary>
    public string Phase { get; private set; } = "connecting";

    /// <summary>When the current pass began (Stopwatch timestamp): with its planned and done directories, an ETA.</summary>
    public long PassStarted { get; private set; } = Stopwatch.GetTimestamp();

    /// <summary>What the first pass looked at: the journals' paths, or the whole tree and why.</summary>
    public string FirstPassScope { get; private set; } = "";

    /// <summary>Whether the first pass used the journals (no tree walk).</summary>
    public bool FromJournal { get; private set; }

    /// <summary>How long the first pass took.</summary>
    public TimeSpan FirstPass { get; private set; }

    /// <summary>Pre-copy passes run (the frozen one not included).</summary>
    public int Passes { get; private set; }

    /// <summary>How long the application's writes were held back (the frozen pass, the handover, the attach).</summary>
    public TimeSpan Frozen { get; private set; }

    /// <summary>Starts tracking changes on the live file system, then connects to the target.</summary>
    /// <param name="cap">The bandwidth the resync may use (null: no cap).</param>
    /// <param name="streams">Connections the files travel on side by side, when the target takes them (see <see cref="ResyncSource"/>).</param>
    public static async Task<DirectoryResync> ConnectAsync(PassthroughFileSystem fileSystem, IPEndPoint target, ReplicationChannelOptions options, CancellationToken cancellationToken, BandwidthCap? cap = null, int streams = ResyncSource.DefaultStreams)
    {
        ArgumentNullException.ThrowIfNull(fileSystem);
        fileSystem.TrackChanges();
        _ = fileSystem.TakeChanges(); // The first pass looks at everything.
        var connection = await ResyncConnection.ConnectAsync(target, options, cancellationToken);
        return new DirectoryResync(fileSystem, new ResyncSource(fileSystem.DataDirectory, connection, cap, streams, ct => ResyncConnection.ConnectAsync(target, options, ct)));
    }

    /// <summary>The streams the files travel on (see <see cref="ResyncSource.Streams"/>).</summary>
    public int Streams => _source.Streams;

    /// <summary>The connections of this resync (see <see cref="ResyncSource.Connections"/>).</summary>
    public int Connections => _source.Connections;

    /// <summary>
    /// The live passes: what the journals list (or, when they cannot be trusted, everything)
    /// once, then what changed meanwhile, until it is little.
    /// </summary>
    public async Task PrecopyAsync(IProgress<string>? progress, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var journaled = await FromJournalsAsync(cancellationToken);
        Phase = "pass 1";
        PassStarted = Stopwatch.GetTimestamp();
        progress?.Report($"pass 1 over {FirstPassScope}");
        await _source.PassAsync(journaled, _changedRanges, cancellationToken);
        FirstPass = Stopwatch.GetElapsedTime(started);
        Passes = 1;
        progress?.Report($"pass 1: {_source.Statistics}");
        while (true)
        {
            var changes = _fileSystem.TakeChanges();
            if (changes.Count <= SmallEnough || Passes >= MaxPrecopyPasses)
            {
                _pending = changes;
                return;
            }

            Phase = $"pass {Passes + 1}";
            PassStarted = Stopwatch.GetTimestamp();
            await _source.PassAsync(changes, cancellationToken);
            Passes++;
            progress?.Report($"pass {Passes}: {changes.Count} changed paths; {_source.Statistics}");
        }
    }

    /// <summary>
    /// The paths the first pass must look at: this node's journal (every change since the
    /// generation both copies last shared, tracked since before this resync's own tracking
    /// started) and the target's (what it changed beyond that generation) — or null, to walk the
    /// whole tree, when either cannot be trusted or the target's copy is not at that generation.
    /// </summary>
    private async Task<ChangeSet?> FromJournalsAsync(CancellationToken cancellationToken)
    {
        if (_fileSystem.Journal is not { } journal)
        {
            FirstPassScope = "the whole tree (no journal on this node)";
            return null;
        }

        var mine = journal.Snapshot();
        var complete = journal.Complete;
        var target = await _source.TargetJournalAsync(cancellationToken);
        var why = !complete ? "this node's journal is incomplete"
            : target is null ? "the target did not describe its copy"
            : target.Data != journal.Base ? "the target's copy is not at the generation this node's journal starts from"
            : !target.Complete || target.Base != target.Data ? "the target's own journal is incomplete"
            : null;
        if (why is not null)
        {
            FirstPassScope = $"the whole tree ({why})";
            return null;
        }

        var paths = ChangeSet.Union(mine, target!.Paths);
        FromJournal = true;

        // Exact ranges hold for a file the target did not change itself, still under the name
        // it had in the generation both copies share (their journals say neither moved it).
        var @base = journal.Base;
        _changedRanges = (relative, device, inode) =>
            !target.Paths.Paths.ContainsKey(relative) && paths.KeepsName(relative) ? _fileSystem.ChangedRangesOf(relative, device, inode, @base) : null;
        FirstPassScope = $"{paths.Count} journaled paths ({mine.Count} here, {target.Paths.Count} on the target)";
        return paths;
    }

    /// <summary>Freezes the file system and makes the target equal to it (what changed since the last live pass).</summary>
    public async Task FreezeAndCatchUpAsync(CancellationToken cancellationToken)
    {
        _frozen = _fileSystem.Freeze();
        _frozenSince = Stopwatch.GetTimestamp();
        Phase = "frozen";
        PassStarted = _frozenSince;
        var changes = _fileSystem.TakeChanges();
        await _source.PassAsync(_pending is { } pending ? ChangeSet.Union(pending, changes) : changes, cancellationToken);
    }

    /// <summary>The target makes its copy durable (and with <paramref name="handover"/>, takes its new role).</summary>
    public Task FinishAsync(byte[]? handover, CancellationToken cancellationToken) => _source.FinishAsync(handover, cancellationToken);

    /// <summary>Within the freeze: <paramref name="link"/> starts mirroring to <paramref name="sender"/>, nodes and open files announced.</summary>
    public async Task AttachAsync(ReplicationLink link, ReplicationSender sender)
    {
        ArgumentNullException.ThrowIfNull(link);
        var frozen = _frozen ?? throw new InvalidOperationException("attach comes after the frozen pass");
        await frozen.Announce(() => link.Attach(sender));
    }

    /// <summary>Lets the application's writes through again.</summary>
    public void Thaw()
    {
        if (_frozen is { } frozen)
        {
            frozen.Dispose();
            _frozen = null;
            Frozen = Stopwatch.GetElapsedTime(_frozenSince);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Thaw();
        await _source.DisposeAsync();
    }
}
