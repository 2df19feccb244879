using System.Buffers;
using Microsoft.Extensions.Logging;
using SafeKit.Native.Fuse;
using SafeKit.Replication.Channel;

namespace SafeKit.Replication.Mirror;

/// <summary>What PRIM's replication is doing.</summary>
public enum LinkState
{
    /// <summary>Every change goes to SECOND.</summary>
    Mirroring,

    /// <summary>SECOND is gone (or failed to apply): PRIM serves alone and SECOND is behind.</summary>
    Alone,
}

/// <summary>
/// PRIM's file system → the replication channel. Each change is sent in the order it was made; the
/// application's call waits for SECOND's acknowledgement as the <see cref="MirrorMode"/> says. When
/// the link is lost (SECOND dead, link cut, nothing heard for the channel's silence timeout — the
/// bound on how long a write stalls) or SECOND cannot apply a change (disk full, I/O error), PRIM
/// goes <see cref="LinkState.Alone"/>: the waiting calls return, nothing is lost here, and SECOND
/// is recorded as behind.
/// </summary>
public sealed partial class ReplicationLink : IReplicationSink
{
    private ReplicationSender? _sender;
    private readonly MirrorMode _mode;
    private readonly ILogger _logger;
    private readonly Lock _aloneGate = new();
    private int _state;
    private long _sinceAlone;

    /// <param name="sender">The connected channel, or null to start alone (no SECOND).</param>
    public ReplicationLink(ReplicationSender? sender, MirrorMode mode, ILogger logger)
    {
        _sender = sender;
        _mode = mode;
        _logger = logger;
        if (sender is null)
        {
            _state = (int)LinkState.Alone;
            AloneReason = "no SECOND connected";
        }
        else
        {
            Follow(sender);
        }
    }

    /// <summary>Goes alone when <paramref name="sender"/> loses its link — while it is still this link's sender.</summary>
    private void Follow(ReplicationSender sender) =>
        _ = sender.Lost.ContinueWith(
            t =>
            {
                if (ReferenceEquals(Volatile.Read(ref _sender), sender))
                {
                    GoAlone(t.Result.Message);
                }
            },
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);

    public LinkState State => (LinkState)Volatile.Read(ref _state);

    /// <summary>
    /// An alone link starts mirroring to a SECOND brought up to date meanwhile (a resync). Call it
    /// with the file system frozen (no change in progress), then announce the nodes and open files:
    /// every change after it goes to SECOND.
    /// </summary>
    public void Attach(ReplicationSender sender)
    {
        ArgumentNullException.ThrowIfNull(sender);
        ReplicationSender? previous;
        lock (_aloneGate)
        {
            if (State != LinkState.Alone)
            {
                throw new InvalidOperationException("only a link that is alone can be attached to a SECOND");
            }

            previous = _sender;
            Volatile.Write(ref _sender, sender);
            Attachments++;
            AloneReason = null;
            Interlocked.Exchange(ref _sinceAlone, 0);
            Volatile.Write(ref _state, (int)LinkState.Mirroring);
        }

        Follow(sender);
        if (previous is not null)
        {
            // The connection this link lost before it went alone: nothing waits on it any more.
            _ = previous.DisposeAsync().AsTask().ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        }
    }

    /// <summary>How many times this link was attached to a new SECOND (a resync's end).</summary>
    public int Attachments { get; private set; }

    /// <summary>Bytes sent to SECOND and not yet acknowledged (0 when alone).</summary>
    public long BytesInFlight => _sender is null || State == LinkState.Alone ? 0 : _sender.BytesInFlight;

    /// <summary>How long SECOND has said nothing on this link (its keepalives count); infinite when alone.</summary>
    public TimeSpan SilentFor => _sender is null || State == LinkState.Alone ? Timeout.InfiniteTimeSpan : _sender.SilentFor;

    /// <summary>Why PRIM is alone (null while mirroring).</summary>
    public string? AloneReason { get; private set; }

    /// <summary>Changes made since PRIM went alone: SECOND misses them (a resync brings them over).</summary>
    public long ChangesSinceAlone => Interlocked.Read(ref _sinceAlone);

    /// <summary>Raised once, when PRIM goes alone, with the reason, before any write returns without SECOND.</summary>
    public event Action<string>? WentAlone;

    public ReplicationTicket Enqueue(MutationKind kind, ReadOnlySpan<byte> record, ReadOnlySpan<byte> data, bool durable, bool changes)
    {
        if (State == LinkState.Alone || _sender is null)
        {
            if (changes)
            {
                Interlocked.Increment(ref _sinceAlone);
            }

            return ReplicationTicket.None;
        }

        var flags = durable ? OpFlags.DurableBarrier : OpFlags.None;
        var mustWait = durable || (_mode == MirrorMode.Sync && changes);
        byte[]? buffer = null;
        try
        {
            // Room in the budget: straight into the connection. Otherwise the channel sends it
            // later, from a buffer of its own.
            // A change nobody waits for now rides with the next one somebody waits for (or leaves
            // within a keepalive interval): fewer wake-ups of SECOND, and of this node for acks.
            if (_sender.TrySend((byte)kind, record, data, flags, out var direct, lazy: !mustWait))
            {
                return new ReplicationTicket(ObserveAsync(direct, null, kind), mustWait);
            }

            buffer = ArrayPool<byte>.Shared.Rent(record.Length + data.Length);
            record.CopyTo(buffer);
            data.CopyTo(buffer.AsSpan(record.Length));
            var queued = _sender.SendAsync((byte)kind, buffer.AsMemory(0, record.Length), buffer.AsMemory(record.Length, data.Length), flags, lazy: !mustWait);
            return new ReplicationTicket(ObserveAsync(queued, buffer, kind), mustWait);
        }
        catch (Exception e) when (e is ReplicationLinkLostException or ObjectDisposedException)
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }

            GoAlone(e.Message);
            return ReplicationTicket.None;
        }
    }

    /// <summary>Waits for SECOND's answer; never fails: a lost link or a failed apply sends PRIM alone.</summary>
    private async ValueTask ObserveAsync(ValueTask<int> send, byte[]? buffer, MutationKind kind)
    {
        try
        {
            var status = await send;
            if (status != 0)
            {
                LogApplyFailed(_logger, kind, status);
                GoAlone($"SECOND could not apply a {kind}: {System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(status)} (errno {status}); its copy no longer follows");
            }
        }
        catch (ReplicationLinkLostException e)
        {
            GoAlone(e.Message);
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    public void Diverged(string reason)
    {
        LogDiverged(_logger, reason);
        GoAlone(reason);
    }

    /// <summary>
    /// Goes alone now (SECOND declared dead by the heartbeats, or the node leaves): the calls still
    /// waiting for SECOND return, and the channel is closed.
    /// </summary>
    public async ValueTask AbandonAsync(string reason)
    {
        GoAlone(reason);
        if (_sender is not null)
        {
            await _sender.DisposeAsync();
        }
    }

    /// <summary>
    /// The node stops in order: once nothing can change the files any more (the mount is gone),
    /// waits until SECOND acknowledged everything sent, then closes without going alone — SECOND
    /// holds every change and the nodes keep sharing their data generation (SECOND may take over
    /// as is). True when it did; false when SECOND could not confirm (lost, or not within
    /// <paramref name="timeout"/>): then the link went alone as usual and SECOND is behind.
    /// </summary>
    public async ValueTask<bool> CloseInOrderAsync(TimeSpan timeout)
    {
        if (_sender is not { } sender || State == LinkState.Alone)
        {
            await AbandonAsync("the module stops on this node");
            return false;
        }

        await WaitAcknowledgedAsync(timeout);
        bool inOrder;
        lock (_aloneGate)
        {
            inOrder = State != LinkState.Alone && !sender.Lost.IsCompleted && sender.BytesInFlight == 0 && sender.WaitingSends == 0;
            if (inOrder)
            {
                AloneReason = "stopped in order: SECOND acknowledged every change";
                Volatile.Write(ref _state, (int)LinkState.Alone);
            }
        }

        if (!inOrder)
        {
            GoAlone("the module stops on this node before SECOND acknowledged every change");
        }

        await sender.DisposeAsync();
        return inOrder;
    }

    /// <summary>
    /// Waits until SECOND acknowledged (applied) everything sent so far — call it with nothing
    /// changing the files (frozen or unmounted). False when the link went alone meanwhile or
    /// <paramref name="timeout"/> passed.
    /// </summary>
    public async ValueTask<bool> WaitAcknowledgedAsync(TimeSpan timeout)
    {
        if (_sender is not { } sender)
        {
            return false;
        }

        sender.Flush(); // Changes sent lazily leave now, not at the next keepalive tick.
        var deadline = DateTime.UtcNow + timeout;
        while ((sender.BytesInFlight > 0 || sender.WaitingSends > 0) && !sender.Lost.IsCompleted && State != LinkState.Alone && DateTime.UtcNow < deadline)
        {
            await Task.Delay(5);
        }

        return State != LinkState.Alone && !sender.Lost.IsCompleted && sender.BytesInFlight == 0 && sender.WaitingSends == 0;
    }

    /// <summary>
    /// The first caller records the loss (<see cref="WentAlone"/>: the node persists that SECOND
    /// is behind) before the state turns Alone; every other caller — a write whose ack will never
    /// come, a new write — waits for that record, so no write returns unreplicated before it is durable.
    /// </summary>
    private void GoAlone(string reason)
    {
        if (State == LinkState.Alone)
        {
            return;
        }

        lock (_aloneGate)
        {
            if (State == LinkState.Alone)
            {
                return;
            }

            AloneReason = reason;
            LogAlone(_logger, reason);
            WentAlone?.Invoke(reason);
            Volatile.Write(ref _state, (int)LinkState.Alone);
        }
    }

    [LoggerMessage(EventId = 600, Level = LogLevel.Error, Message = "mirror: PRIM goes ALONE, SECOND is behind from now on: {Reason}")]
    private static partial void LogAlone(ILogger logger, string reason);

    [LoggerMessage(EventId = 602, Level = LogLevel.Critical, Message = "mirror: {Reason}")]
    private static partial void LogDiverged(ILogger logger, string reason);

    [LoggerMessage(EventId = 601, Level = LogLevel.Critical, Message = "mirror: SECOND failed to apply a {Kind}: errno {Errno} (disk full? I/O error?)")]
    private static partial void LogApplyFailed(ILogger logger, MutationKind kind, int errno);
}
