using Microsoft.Extensions.Logging;
using SafeKit.Dataplane.Buckets;
using SafeKit.Dataplane.Flows;
using SafeKit.Dataplane.Takeover;
using SafeKit.Native.Interop;
using SafeKit.Native.Netlink;

namespace SafeKit.Dataplane.Engine;

/// <summary>The control side of the dataplane: views, news of the other nodes, pins.</summary>
public sealed partial class FarmDataplane
{
    private readonly BucketHandover _handover;
    private readonly Lock _control = new();
    private ForwardingState _state;
    private Timer? _maintenance;
    private long _pinningSince;
    private long _timeWaitCleared;

    /// <summary>True while this node still serves flows in buckets it gave away (advertised to the others).</summary>
    public bool Pinning
    {
        get
        {
            lock (_control)
            {
                return _handover.Pinning;
            }
        }
    }

    /// <summary>Raised (on a control thread) when <see cref="Pinning"/> may have changed.</summary>
    public event Action? PinningChanged;

    /// <summary>Applies a new view: its bucket table, its epoch, and what is known of every other node.</summary>
    public void ApplyView(BucketTable table, uint epoch, IReadOnlyDictionary<string, PeerHandover> peers)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(peers);
        lock (_control)
        {
            var fromDead = _handover.Apply(table, epoch, peers);
            Publish(table);
            Replay(fromDead, peers);
        }

        PinningChanged?.Invoke();
    }

    /// <summary>News from the other nodes: a node released buckets, stopped pinning, or died.</summary>
    public void UpdatePeers(IReadOnlyDictionary<string, PeerHandover> peers)
    {
        ArgumentNullException.ThrowIfNull(peers);
        lock (_control)
        {
            if (_handover.Update(peers, out var fromDead))
            {
                Publish(Volatile.Read(ref _state).Table);
            }

            Replay(fromDead, peers);
        }
    }

    /// <summary>Ends pins whose last flow ended (or that lasted too long).</summary>
    private void Maintain()
    {
        bool changed;
        // A timer tick must not wait: while a view is being applied (the membership thread holds
        // the lock), skip this round instead of parking a thread-pool thread on the lock.
        if (!_control.TryEnter())
        {
            return;
        }

        try
        {
            var now = Environment.TickCount64;
            if (!_handover.Pinning)
            {
                _pinningSince = 0;
                _workers.ForEach(w => w.UseKernelConnections(null));
                return;
            }

            ReadKernelConnections(now);

            _pinningSince = _pinningSince == 0 ? now : _pinningSince;
            var sweeps = _workers.Select(w => w.LastSweep).ToList();
            var tooLong = now - _pinningSince > _options.FlowTimeouts.MaxPinMilliseconds;
            // A bucket pinned after a worker's last sweep is not in that sweep: it stays pinned
            // until every worker has looked (each sweeps within a second of a change).
            changed = _handover.Unpin(b => !tooLong && sweeps.Any(s => s is null || s.Keeps(b)));
            if (changed)
            {
                Publish(Volatile.Read(ref _state).Table);
            }
        }
        finally
        {
            _control.Exit();
        }

        if (changed)
        {
            PinningChanged?.Invoke();
        }
    }

    /// <summary>Tells the workers which connections the stack still has, so pins of ended ones go.</summary>
    private void ReadKernelConnections(long now)
    {
        var live = new HashSet<FlowKey>();
        try
        {
            TcpSocketTable.ForEachLive(_options.Vips, (local, localPort, peer, peerPort) =>
                live.Add(FlowKey.Tcp(peer, peerPort, local, localPort)));
        }
        catch (NativeException e)
        {
            LogKernelConnectionsUnread(_logger, e.Message);
            return;
        }

        var connections = new KernelConnections(live, now);
        _workers.ForEach(w => w.UseKernelConnections(connections));
    }

    private void Publish(BucketTable table)
    {
        var modes = _handover.Modes;
        var (owned, shared, awaiting, pinned) = (Count(modes, BucketMode.Owned), Count(modes, BucketMode.Shared), Count(modes, BucketMode.Awaiting), Count(modes, BucketMode.Pinned));
        LogModes(_logger, owned, shared, awaiting, pinned);

        var state = new ForwardingState(table, modes);
        Volatile.Write(ref _state, state);
        _nftUpdater?.Post(state);
        foreach (var worker in _workers)
        {
            worker.Decider.UseState(state);
        }
    }

    private void Replay(bool[]? fromDead, IReadOnlyDictionary<string, PeerHandover> peers)
    {
        if (fromDead is null)
        {
            return;
        }

        // Everything received since the longest-silent dead node went quiet (one interval of margin).
        var silent = peers.Values.Where(p => !p.Alive).Select(p => p.SilentMilliseconds).DefaultIfEmpty(0).Max();
        var request = new TakeoverRequest(fromDead, Environment.TickCount64 - silent - 100);
        // Off the membership thread (it holds the membership lock): the stack is asked over netlink.
        _ = Task.Run(() =>
        {
            ClearTimeWait(fromDead);
            foreach (var worker in _workers)
            {
                worker.RequestTakeover(request);
            }
        });
    }

    /// <summary>
    /// The orphaned connections of a dead node must get a reset from this node's stack at once. A
    /// TIME_WAIT socket left here by an earlier connection on the same 4-tuple would answer with
    /// bare ACKs instead (the client reused its port), and the client would stall until its timeout.
    /// </summary>
    private void ClearTimeWait(bool[] adopted)
    {
        var table = Volatile.Read(ref _state).Table;
        var hasher = new FlowHasher(_options.Affinity, _options.HashSeed);
        var withPort = hasher.KeyUsesPort(6);
        try
        {
            var cleared = TcpSocketTable.DestroyTimeWait(_options.Vips, (address, port) => adopted[table.BucketOf(hasher.Hash(address, withPort, port))]);
            Interlocked.Add(ref _timeWaitCleared, cleared);
        }
        catch (NativeException e)
        {
            LogTimeWaitNotCleared(_logger, e.Message);
        }
    }

    private static int Count(BucketMode[] modes, BucketMode mode) => modes.Count(m => m == mode);

    [LoggerMessage(EventId = 103, Level = LogLevel.Information, Message = "buckets: {Owned} owned, {Shared} shared (previous owners still pin flows), {Awaiting} awaiting release, {Pinned} pinned (given away, flows kept)")]
    private static partial void LogModes(ILogger logger, int owned, int shared, int awaiting, int pinned);

    [LoggerMessage(EventId = 104, Level = LogLevel.Warning, Message = "the stack's connections could not be read ({Reason}): pinned flows end by their FIN or idle timeout only")]
    private static partial void LogKernelConnectionsUnread(ILogger logger, string reason);

    [LoggerMessage(EventId = 102, Level = LogLevel.Warning, Message = "TIME_WAIT sockets of adopted connections not cleared ({Reason}): a client that reused a port may wait for its timeout")]
    private static partial void LogTimeWaitNotCleared(ILogger logger, string reason);
}
