using System.Net;
using Microsoft.Extensions.Logging;
using SafeKit.ControlPlane.Configuration;
using SafeKit.ControlPlane.Status;
using SafeKit.Native.Files;
using SafeKit.Native.Fuse;
using SafeKit.Replication.Channel;
using SafeKit.Replication.Mirror;
using SafeKit.Replication.Resync;

namespace SafeKit.Daemon;

/// <summary>
/// One replicated directory on this node, in whichever role: PRIM's read-write mount feeding a
/// replication link, SECOND's listener and applier under a read-only view, or only the guard.
/// </summary>
internal sealed partial class MirrorDirectory : IAsyncDisposable
{
    private readonly MirrorDirectoryConfig _config;
    private readonly ILogger _logger;
    private FuseMount? _mount;
    private ChangeJournal? _journal;
    private Task? _rotation;

    /// <summary>The epoch the last acknowledged rotation left: durable on SECOND once the next checkpoint is answered.</summary>
    private long? _durableThrough;
    private long _lastRotation = System.Diagnostics.Stopwatch.GetTimestamp();
    private ReplicationLink? _link;
    private ReplicationListener? _listener;
    private static readonly TimeSpan OrderlyCloseTimeout = TimeSpan.FromSeconds(10);
    private SecondApplier? _applier;
    private Task<ReplicationReceiver>? _accepting;
    private ReplicationReceiver? _receiver;
    private CancellationTokenSource? _acceptStop;
    private PassthroughFileSystem? _fileSystem;
    private ResyncListener? _resyncListener;
    private CancellationTokenSource? _resyncStop;
    private Task? _resyncServing;
    private ResyncListener? _verifyListener;
    private CancellationTokenSource? _verifyStop;
    private Task? _verifyServing;

    public MirrorDirectory(MirrorDirectoryConfig config, string stateDirectory, ILogger logger)
    {
        _config = config;
        _logger = logger;
        JournalDirectory = Path.Combine(stateDirectory, "journal", config.Data.Trim('/').Replace('/', '_'));
    }

    /// <summary>Where this directory's change journal lives (next to the node's generation record).</summary>
    public string JournalDirectory { get; }

    public MirrorDirectoryConfig Config => _config;

    public ReplicationLink? Link => _link;

    /// <summary>PRIM or ALONE: the mounted file system (null otherwise).</summary>
    public PassthroughFileSystem? FileSystem => _fileSystem;

    /// <summary>WAIT with older data: whether this directory's resync listener is bound.</summary>
    public bool ResyncListening => _resyncListener is not null;

    /// <summary>The last resync this directory received as target: what was written, or why it failed.</summary>
    public string? LastResync { get; private set; }

    /// <summary>SECOND: whether PRIM's replication connection has been heard within <paramref name="window"/> (its keepalives count).</summary>
    public bool ReceiverHeardWithin(TimeSpan window) => _receiver is { } receiver && !receiver.Lost.IsCompleted && receiver.SilentFor < window;

    /// <summary>SECOND: the change this copy could not apply (disk full, I/O error), if any.</summary>
    public string? ApplyFailure => _applier?.Failure;

    /// <summary>SECOND: the connection from PRIM was lost (or PRIM closed it).</summary>
    public bool ReceiverLost => _receiver?.Lost.IsCompleted == true || _accepting?.IsFaulted == true;

    /// <summary>Creates the data directory and puts the guard under the application's path.</summary>
    public void Prepare()
    {
        Directory.CreateDirectory(_config.Data);
        MountGuard.Prepare(_config.Path);
    }

    /// <summary>PRIM: connects to SECOND's listener. The mount comes after, so SECOND sees every node PRIM names.</summary>
    public async Task ConnectAsync(IPEndPoint second, ReplicationChannelOptions options, CancellationToken cancellationToken)
    {
        var sender = await ReplicationSender.ConnectAsync(second, options, _logger, cancellationToken);
        _link = new ReplicationLink(sender, _config.Mode == ReplicationMode.Fsync ? MirrorMode.Fsync : MirrorMode.Sync, _logger);
    }

    /// <summary>
    /// ALONE: a link that records changes as missed by SECOND. What this node applied as SECOND
    /// is made durable first, in one syncfs: the application restarting on it (a database
    /// recovering from PRIM's crash fsyncs every file it has) then finds nothing left to flush.
    /// </summary>
    public void StartAlone()
    {
        DirectorySync.SyncFileSystem(_config.Data);
        _link = new ReplicationLink(null, _config.Mode == ReplicationMode.Fsync ? MirrorMode.Fsync : MirrorMode.Sync, _logger);
    }

    /// <summary>
    /// PRIM or ALONE: mounts the read-write file system on the application's path, every change
    /// written first into the change journal that lists what the peer may lack since
    /// <paramref name="journalBase"/> (kept from before when it continues that generation).
    /// </summary>
    /// <param name="completeIfNew">Whether a journal started afresh lists everything (this copy is <paramref name="journalBase"/>'s as is).</param>
    /// <param name="alone">Serving without the peer: where each file changes is recorded too, for a resync that sends only those bytes.</param>
    public void MountReadWrite(Guid journalBase, bool completeIfNew, bool alone)
    {
        var fileSystem = PassthroughFileSystem.Open(_config.Data, _link);
        _journal = ChangeJournal.Open(JournalDirectory, journalBase, completeIfNew);
        fileSystem.UseJournal(_journal);
        if (alone)
        {
            fileSystem.TrackChangedRanges();
        }

        _mount = FuseMount.Mount(fileSystem, _config.Path, "safekit:" + _config.Data);
        _fileSystem = fileSystem;
    }

    /// <summary>
    /// PRIM mirroring: every <paramref name="every"/>, a new journal epoch and a checkpoint to
    /// SECOND; once SECOND made everything before it durable, the older epochs are dropped.
    /// </summary>
    public void RotateJournalIfDue(TimeSpan every)
    {
        if (_fileSystem is not { Journal: { } journal } fileSystem || _link is not { State: LinkState.Mirroring } link
            || _rotation is { IsCompleted: false } || System.Diagnostics.Stopwatch.GetElapsedTime(_lastRotation) < every)
        {
            return;
        }

        _lastRotation = System.Diagnostics.Stopwatch.GetTimestamp();
        var attached = link.Attachments;
        var (epoch, acknowledged) = fileSystem.RotateJournal();
        _rotation = acknowledged.ContinueWith(
            t =>
            {
                // A link that went alone (or was re-attached) meanwhile keeps every epoch.
                if (!t.IsCompletedSuccessfully || link.State != LinkState.Mirroring || link.Attachments != attached)
                {
                    _durableThrough = null;
                    return;
                }

                // This answer says the previous checkpoint's syncfs is done: what came before it is durable on SECOND.
                if (_durableThrough is { } durable)
                {
                    try
                    {
                        journal.DropThrough(durable);
                    }
                    catch (IOException e)
                    {
                        JournalTrimFailed(_logger, _config.Path, e.Message);
                    }
                }

                _durableThrough = epoch;
            },
            CancellationToken.None,
            TaskContinuationOptions.None,
            TaskScheduler.Default);
    }

    /// <summary>SECOND: listens for PRIM (and for its verifies on <paramref name="verify"/>) and mounts the read-only view.</summary>
    public void ListenAndView(IPEndPoint local, IPEndPoint verify, ReplicationChannelOptions options)
    {
        _listener = ReplicationListener.Listen(local, options, _logger);
        var verifyListener = ResyncListener.Listen(verify, options);
        _verifyListener = verifyListener;
        _verifyStop = new CancellationTokenSource();
        _verifyServing = ServeAsync(verifyListener, () => new ResyncTarget(_config.Data) { CompareOnly = true }, null, () => _verifyListener == verifyListener, _verifyStop.Token);
        _applier = new SecondApplier(MirrorApplier.Open(_config.Data), _logger);
        _acceptStop = new CancellationTokenSource();
        var listener = _listener;
        var applier = _applier;
        var stop = _acceptStop.Token;
        _accepting = Task.Run(async () =>
        {
            // A connection that fails its handshake (a stray client, a wrong key) does not end the wait.
            while (true)
            {
                try
                {
                    var receiver = await listener.AcceptAsync(applier, stop);
                    _receiver = receiver;
                    return receiver;
                }
                catch (ReplicationHandshakeException)
                {
                    stop.ThrowIfCancellationRequested();
                }
            }
        }, stop);
        _mount = FuseMount.Mount(PassthroughFileSystem.Open(_config.Data, null, readOnly: true), _config.Path, "safekit:" + _config.Data);
    }

    /// <summary>
    /// WAIT with older data: accepts the node with the newest data and lets it bring this copy up
    /// to date (<see cref="ResyncTarget"/>), one source at a time; <paramref name="handover"/>
    /// runs when the source ends with a handover.
    /// </summary>
    public void ListenForResync(IPEndPoint local, ReplicationChannelOptions options, Action<byte[]> handover, Guid dataGeneration)
    {
        var listener = ResyncListener.Listen(local, options);
        var stop = new CancellationTokenSource();
        _resyncListener = listener;
        _resyncStop = stop;
        _resyncServing = ServeAsync(
            listener,
            () => new ResyncTarget(_config.Data)
            {
                Handover = handover,
                Journal = () => TargetJournal.Of(dataGeneration, ChangeJournal.Read(JournalDirectory)),
            },
            target => LastResync = $"{target.FilesWritten} files written ({target.BytesWritten} bytes), {target.Removed} entries removed",
            () => _resyncListener == listener,
            stop.Token);
    }

    /// <summary>
    /// Serves the sources that connect to <paramref name="listener"/> (<see cref="ResyncServer"/>:
    /// one at a time, each with a new target and its extra streams), until stopped or no longer
    /// <paramref name="current"/> (the listener was replaced).
    /// </summary>
    private Task ServeAsync(ResyncListener listener, Func<ResyncTarget> create, Action<ResyncTarget>? served, Func<bool> current, CancellationToken stop) =>
        ResyncServer.ServeAsync(
            listener,
            create,
            served,
            e =>
            {
                if (served is not null)
                {
                    LastResync = $"failed: {e.Message}";
                }

                ResyncFailed(_logger, _config.Path, e.Message);
            },
            current,
            stop);

    /// <summary>
    /// Stops accepting resync sources; the session in progress finishes on its own (from the
    /// handover: it must still answer the source). Frees the port for the replication listener.
    /// </summary>
    public void StopAcceptingResync()
    {
        _resyncListener?.Dispose();
        _resyncListener = null;
    }

    /// <summary>Stops accepting resync sources and ends the session in progress.</summary>
    public async Task StopResyncListeningAsync()
    {
        var serving = _resyncServing;
        StopAcceptingResync();
        if (_resyncStop is { } stop)
        {
            await stop.CancelAsync();
        }

        if (serving is not null)
        {
            await serving.WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(_ => { }, TaskScheduler.Default);
        }

        _resyncStop?.Dispose();
        _resyncStop = null;
        _resyncServing = null;
    }

    /// <summary>Unmounts (the guard shows again) and ends replication in either direction.</summary>
    public async Task CloseAsync()
    {
        await StopResyncListeningAsync();
        _mount?.Dispose();
        _mount = null;
        _fileSystem = null;
        _journal?.Dispose();
        _journal = null;
        if (_link is { } link)
        {
            // Nothing writes any more: SECOND keeps the shared generation if it confirms everything.
            await link.CloseInOrderAsync(OrderlyCloseTimeout);
            _link = null;
        }

        await CloseSecondAsync();
    }

    /// <summary>SECOND: stops applying (nothing PRIM sends from now on lands here) and drops the view.</summary>
    public async Task CloseSecondAsync()
    {
        if (_acceptStop is { } stop)
        {
            await stop.CancelAsync();
        }

        _listener?.Dispose();
        _listener = null;
        _verifyListener?.Dispose();
        _verifyListener = null;
        if (_verifyStop is { } verifyStop)
        {
            await verifyStop.CancelAsync();
            await (_verifyServing ?? Task.CompletedTask).WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(_ => { }, TaskScheduler.Default);
            verifyStop.Dispose();
            _verifyStop = null;
            _verifyServing = null;
        }

        if (_receiver is { } receiver)
        {
            await receiver.DisposeAsync();
            _receiver = null;
        }

        if (_accepting is { } accepting)
        {
            await accepting.ContinueWith(_ => { }, TaskScheduler.Default);
            _accepting = null;
        }

        _applier?.Dispose();
        _applier = null;
        _acceptStop?.Dispose();
        _acceptStop = null;
        _mount?.Dispose();
        _mount = null;
    }

    public ValueTask DisposeAsync() => new(CloseAsync());

    public MirrorDirectoryStatus Status(MirrorRole role)
    {
        var mounted = _mount is null ? (MountGuard.Exposed(_config.Path) ? "guard" : "none") : role == MirrorRole.Second ? "ro" : "rw";
        var link = role switch
        {
            MirrorRole.Prim or MirrorRole.Alone => _link?.State == LinkState.Mirroring ? "mirroring" : "alone",
            MirrorRole.Second => _receiver is null ? "waiting for PRIM" : _receiver.Lost.IsCompleted ? "lost" : "receiving",
            _ => "idle",
        };
        return new MirrorDirectoryStatus(
            _config.Path,
            _config.Data,
            _config.Mode == ReplicationMode.Fsync ? "fsync" : "sync",
            mounted,
            link,
            _link?.ChangesSinceAlone ?? 0,
            _applier?.Applied ?? 0,
            _link?.BytesInFlight ?? 0);
    }

    [LoggerMessage(EventId = 711, Level = LogLevel.Warning, Message = "mirror {Path}: the journal's older epochs could not be removed: {Reason}")]
    private static partial void JournalTrimFailed(ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 710, Level = LogLevel.Error, Message = "mirror {Path}: a resync into this copy failed: {Reason}")]
    private static partial void ResyncFailed(ILogger logger, string path, string reason);
}
