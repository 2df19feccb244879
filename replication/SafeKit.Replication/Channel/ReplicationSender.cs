using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace SafeKit.Replication.Channel;

/// <summary>
/// PRIM's end of the replication link: sends an ordered stream of operations to SECOND and
/// hands each send the status SECOND's applier returned for it.
/// <para>
/// Pipelined: operations are numbered from 1 and written as soon as the budget allows, without
/// waiting for earlier acknowledgements. Bounded: the frames sent and not yet acknowledged never
/// exceed <see cref="ReplicationChannelOptions.MaxBytesInFlight"/> bytes nor
/// <see cref="ReplicationChannelOptions.MaxOpsInFlight"/> operations; that is all the memory the
/// channel holds for them (its send pipe plus the kernel's socket buffer). A send that does not fit
/// waits, in order, for acknowledgements to free room, keeping a reference to the caller's buffers
/// rather than a copy; how many sends wait is bounded by the caller's own concurrency.
/// </para>
/// <para>
/// Failure: when the link ends (peer closed, reset, nothing heard for the silence timeout, a
/// protocol violation, dispose), every pending send fails at once with a
/// <see cref="ReplicationLinkLostException"/> and <see cref="Lost"/> completes. Operations after
/// <see cref="LastAcked"/> may or may not have been applied on SECOND.
/// </para>
/// <para>
/// Authenticated at connect with the cluster key (see <see cref="Handshake"/>), not encrypted: the
/// replication network is private, as with DRBD. Sends may come from several threads; the order
/// of the calls is the order of the sequence numbers.
/// </para>
/// </summary>
public sealed class ReplicationSender : IAsyncDisposable
{
    /// <summary>Payloads from this size on skip the send pipe (<see cref="ChannelConnection.SendDirect"/>).</summary>
    internal const int DirectPayloadLength = 16 * 1024;

    /// <summary>Lazy frames held back at most (see <see cref="SendAsync(byte, ReadOnlyMemory{byte}, ReadOnlyMemory{byte}, OpFlags, bool)"/>).</summary>
    public const int LazyBytes = 64 * 1024;

    private readonly ChannelConnection _connection;
    private readonly ReplicationChannelOptions _options;
    private readonly ILogger _logger;
    private readonly string _remote;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private readonly Queue<PendingSend> _unacked = new();
    private readonly Queue<PendingSend> _waiting = new();
    private readonly Stack<PendingSend> _free = new();
    private readonly List<(PendingSend Send, int Status)> _acknowledged = [];
    private readonly TaskCompletionSource<ReplicationLinkLostException> _lost = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ITimer _timer;
    private Task _readLoop = Task.CompletedTask;
    private LinkCut? _cut;
    private ReplicationLinkLostException? _loss;
    private long _lastSequence;
    private long _lastWritten;
    private long _lastAcked;
    private long _bytesInFlight;
    private long _peakBytesInFlight;
    private long _lastReceived;
    private bool _wroteSinceTick;
    private int _lazyBytes;

    private ReplicationSender(ChannelConnection connection, ReplicationChannelOptions options, ILogger logger, string remote)
    {
        _connection = connection;
        _options = options;
        _logger = logger;
        _remote = remote;
        _time = options.TimeProvider;
        _lastReceived = _time.GetTimestamp();
        _timer = _time.CreateTimer(static s => ((ReplicationSender)s!).OnTick(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>The receiving node (proven by the handshake).</summary>
    public string PeerNode => _options.PeerNode;

    /// <summary>The highest sequence SECOND has acknowledged: it and everything before it are applied.</summary>
    public long LastAcked => Volatile.Read(ref _lastAcked);

    /// <summary>Bytes of frames sent and not yet acknowledged; never above the budget.</summary>
    public long BytesInFlight
    {
        get
        {
            lock (_lock)
            {
                return _bytesInFlight;
            }
        }
    }

    /// <summary>The most bytes ever in flight on this connection (to check the bound).</summary>
    public long PeakBytesInFlight
    {
        get
        {
            lock (_lock)
            {
                return _peakBytesInFlight;
            }
        }
    }

    /// <summary>Sends waiting for room in the budget.</summary>
    public int WaitingSends
    {
        get
        {
            lock (_lock)
            {
                return _waiting.Count;
            }
        }
    }

    /// <summary>Completes (never faults) when the link ends, with the error every pending send got.</summary>
    public Task<ReplicationLinkLostException> Lost => _lost.Task;

    /// <summary>How long nothing (ack or keepalive) has arrived from the receiver.</summary>
    public TimeSpan SilentFor => _time.GetElapsedTime(Volatile.Read(ref _lastReceived));

    /// <summary>Connects to SECOND's listener and runs the handshake; returns once both ends are proven.</summary>
    /// <exception cref="ReplicationHandshakeException">The peer was refused or refused this node; the message says why.</exception>
    /// <exception cref="SocketException">The peer could not be reached.</exception>
    public static async Task<ReplicationSender> ConnectAsync(EndPoint endpoint, ReplicationChannelOptions options, ILogger? logger = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        logger ??= NullLogger.Instance;
        var remote = endpoint.ToString() ?? "?";
        var socket = endpoint is IPEndPoint ip
            ? new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp)
            : new Socket(SocketType.Stream, ProtocolType.Tcp);
        ChannelConnection? connection = null;
        try
        {
            await ChannelConnection.ConnectAsync(socket, endpoint, cancellationToken);
            connection = ChannelSocket.Open(socket, options, $"replication {options.LocalNode}->{options.PeerNode}");
            await Handshake.RunAsync(connection, options, ChannelRole.Sender, remote, cancellationToken);
            var sender = new ReplicationSender(connection, options, logger, remote);
            sender.Start();
            ReplicationLog.LinkUp(logger, options.LocalNode, options.PeerNode, remote, "sender");
            return sender;
        }
        catch (ReplicationHandshakeException ex)
        {
            ReplicationLog.Refused(logger, remote, ex.Failure, ex.Message);
            if (connection is not null)
            {
                await ChannelSocket.CloseRefusedAsync(connection, options.TimeProvider);
            }

            throw;
        }
        catch
        {
            if (connection is null)
            {
                socket.Dispose();
            }
            else
            {
                connection.Dispose();
            }

            throw;
        }
    }

    /// <summary>Sends an operation with no header.</summary>
    /// <inheritdoc cref="SendAsync(byte, ReadOnlyMemory{byte}, ReadOnlyMemory{byte}, OpFlags)"/>
    public ValueTask<int> SendAsync(byte type, ReadOnlyMemory<byte> payload, OpFlags flags = OpFlags.None)
        => SendAsync(type, ReadOnlyMemory<byte>.Empty, payload, flags);

    /// <summary>
    /// Queues one operation after every operation sent before it; the task completes with SECOND's
    /// status for it (0 applied, else a positive errno) or fails with
    /// <see cref="ReplicationLinkLostException"/>. The buffers are copied into the connection when
    /// the budget has room — at once in steady state; otherwise later, so leave them unchanged until
    /// the task completes. Await the task exactly once (it is pooled).
    /// </summary>
    /// <param name="type">The user's operation type, opaque to the channel.</param>
    /// <param name="header">A small header, up to <see cref="ReplicationOp.MaxHeaderLength"/> bytes, handed to the applier contiguous.</param>
    /// <param name="payload">Up to <see cref="ReplicationOp.MaxPayloadLength"/> bytes.</param>
    /// <param name="flags">Passed to the applier (e.g. <see cref="OpFlags.DurableBarrier"/>).</param>
    /// <param name="lazy">
    /// Nobody waits for this one now: it may stay in the connection until a send that is not lazy,
    /// <see cref="LazyBytes"/> of lazy frames, a large payload, <see cref="Flush"/> or the next
    /// keepalive tick sends it — one wake-up of SECOND for a burst instead of one each.
    /// </param>
    public ValueTask<int> SendAsync(byte type, ReadOnlyMemory<byte> header, ReadOnlyMemory<byte> payload, OpFlags flags = OpFlags.None, bool lazy = false)
    {
        Validate(header.Length, payload.Length, flags);
        ValueTask<int> task;
        bool sent;
        lock (_lock)
        {
            if (_loss is { } loss)
            {
                return ValueTask.FromException<int>(loss);
            }

            var send = _free.TryPop(out var pooled) ? pooled : new PendingSend(this);
            send.Sequence = ++_lastSequence;
            send.FrameLength = Frames.OpHeaderLength + header.Length + payload.Length;
            task = send.Completion;
            if (_waiting.Count == 0 && HasRoom(send.FrameLength))
            {
                sent = Write(send, type, flags, header.Span, payload.Span) && FlushUnlessLazy(lazy, send.FrameLength, payload.Length);
            }
            else
            {
                send.Type = type;
                send.Flags = flags;
                send.Header = header;
                send.Payload = payload;
                _waiting.Enqueue(send);
                sent = true;
            }
        }

        if (!sent)
        {
            Fail(LinkLossReason.ConnectionFailed, "the connection's send side closed", null);
        }

        return task;
    }

    /// <summary>
    /// Sends an operation at once, copied straight from the caller's spans into the connection,
    /// when the budget has room and no earlier operation waits for it. Otherwise sends nothing and
    /// returns false: the caller then hands buffers of its own to
    /// <see cref="SendAsync(byte, ReadOnlyMemory{byte}, ReadOnlyMemory{byte}, OpFlags)"/>, which
    /// keeps them until there is room (ordering is the caller's: it holds its own lock across both).
    /// </summary>
    /// <param name="lazy">See <see cref="SendAsync(byte, ReadOnlyMemory{byte}, ReadOnlyMemory{byte}, OpFlags, bool)"/>.</param>
    public bool TrySend(byte type, ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload, OpFlags flags, out ValueTask<int> completion, bool lazy = false)
    {
        Validate(header.Length, payload.Length, flags);
        bool sent;
        lock (_lock)
        {
            if (_loss is { } loss)
            {
                completion = ValueTask.FromException<int>(loss);
                return true;
            }

            var frameLength = Frames.OpHeaderLength + header.Length + payload.Length;
            if (_waiting.Count != 0 || !HasRoom(frameLength))
            {
                completion = default;
                return false;
            }

            var send = _free.TryPop(out var pooled) ? pooled : new PendingSend(this);
            send.Sequence = ++_lastSequence;
            send.FrameLength = frameLength;
            completion = send.Completion;
            sent = Write(send, type, flags, header, payload) && FlushUnlessLazy(lazy, frameLength, payload.Length);
        }

        if (!sent)
        {
            Fail(LinkLossReason.ConnectionFailed, "the connection's send side closed", null);
        }

        return true;
    }

    private static void Validate(int headerLength, int payloadLength, OpFlags flags)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(headerLength, ReplicationOp.MaxHeaderLength, "header");
        ArgumentOutOfRangeException.ThrowIfGreaterThan(payloadLength, ReplicationOp.MaxPayloadLength, "payload");
        if ((flags & ~OpFlags.DurableBarrier) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(flags), flags, "unknown operation flags");
        }
    }

    /// <summary>Ends the link: pending sends fail with <see cref="LinkLossReason.Closed"/>. Await them first for a clean stop.</summary>
    public async ValueTask DisposeAsync()
    {
        Fail(LinkLossReason.Closed, "closed by this node", null);
        await _readLoop;
        await _timer.DisposeAsync();
    }

    /// <summary>Takes a send back into the pool once its caller has its result.</summary>
    internal void Return(PendingSend send)
    {
        send.ReleaseBuffers();
        lock (_lock)
        {
            if (_free.Count < _options.MaxOpsInFlight)
            {
                _free.Push(send);
            }
        }
    }

    /// <summary>Closes the TCP connection with a RST, as a reset link would (tests).</summary>
    internal void ResetConnection() => ChannelSocket.Reset(_connection);

    private void Start()
    {
        _connection.ReadInline();
        _readLoop = Task.Run(ReadLoopAsync);
        _timer.Change(_options.KeepaliveInterval, _options.KeepaliveInterval);
    }

    /// <summary>
    /// Sends the lazy frames written so far (see <see cref="SendAsync(byte, ReadOnlyMemory{byte}, ReadOnlyMemory{byte}, OpFlags, bool)"/>)
    /// now, e.g. before waiting for everything sent to be acknowledged.
    /// </summary>
    public void Flush()
    {
        bool ok;
        lock (_lock)
        {
            if (_loss is not null || _lazyBytes == 0)
            {
                return;
            }

            ok = FlushPipe();
        }

        if (!ok)
        {
            Fail(LinkLossReason.ConnectionFailed, "the connection's send side closed", null);
        }
    }

    /// <summary>Under the lock, after <see cref="Write"/>: a lazy frame stays in the pipe while the lazy ones there stay below <see cref="LazyBytes"/>.</summary>
    private bool FlushUnlessLazy(bool lazy, int frameLength, int payloadLength)
    {
        if (payloadLength >= DirectPayloadLength)
        {
            return true; // Sent already, the pipe before it: nothing lazy is left to count.
        }

        if (lazy && _lazyBytes + frameLength < LazyBytes)
        {
            _lazyBytes += frameLength;
            return true;
        }

        return FlushPipe();
    }

    /// <summary>Under the lock: sends everything in the pipe, lazy frames included.</summary>
    private bool FlushPipe()
    {
        _lazyBytes = 0;
        return Frames.Flush(_connection.Output);
    }

    private bool HasRoom(int frameLength)
        => _unacked.Count < _options.MaxOpsInFlight && _bytesInFlight + frameLength <= _options.MaxBytesInFlight;

    /// <summary>Copies one operation's frame into the pipe (under the lock); false when the pipe is gone.</summary>
    private bool Write(PendingSend send, byte type, OpFlags flags, ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload)
    {
        _unacked.Enqueue(send);
        _lastWritten = send.Sequence;
        _bytesInFlight += send.FrameLength;
        if (_bytesInFlight > _peakBytesInFlight)
        {
            _peakBytesInFlight = _bytesInFlight;
        }

        _wroteSinceTick = true;
        try
        {
            var output = _connection.Output;
            if (payload.Length >= DirectPayloadLength)
            {
                // Straight from the caller's buffer (a write's data, up to 1 MiB): one copy of
                // each byte less than through the pipe.
                Span<byte> frameHead = stackalloc byte[Frames.OpHeaderLength + ReplicationOp.MaxHeaderLength];
                frameHead = frameHead[..(Frames.OpHeaderLength + header.Length)];
                Frames.WriteOpHeader(frameHead, type, flags, send.Sequence, header.Length, payload.Length);
                header.CopyTo(frameHead[Frames.OpHeaderLength..]);
                return FlushPipe() && _connection.SendDirect(frameHead, payload);
            }

            var head = Frames.OpHeaderLength + header.Length;
            var span = output.GetSpan(head);
            Frames.WriteOpHeader(span, type, flags, send.Sequence, header.Length, payload.Length);
            header.CopyTo(span[Frames.OpHeaderLength..]);
            output.Advance(head);
            Frames.Copy(output, payload);
            return true;
        }
        catch (InvalidOperationException)
        {
            // The socket's send loop ended and completed the pipe: the link is gone.
            return false;
        }
    }

    private async Task ReadLoopAsync()
    {
        var input = _connection.Input;
        try
        {
            while (true)
            {
                var result = await input.ReadAsync();
                Volatile.Write(ref _lastReceived, _time.GetTimestamp());
                var buffer = result.Buffer;
                var violation = ReadFrames(buffer, out var consumed);
                input.AdvanceTo(consumed, buffer.End);
                if (violation is not null)
                {
                    Fail(LinkLossReason.ProtocolViolation, violation, null);
                    return;
                }

                if (Volatile.Read(ref _loss) is not null || result.IsCanceled)
                {
                    return;
                }

                if (result.IsCompleted)
                {
                    Fail(LinkLossReason.PeerClosed, "the peer closed the connection", null);
                    return;
                }
            }
        }
        catch (Exception ex)
        {
            // Whatever ends the read (a reset, an abort after dispose) ends the link; the loop
            // itself must never fault, DisposeAsync awaits it.
            Fail(LinkLossReason.ConnectionFailed, ex.Message, ex);
        }
        finally
        {
            try
            {
                await input.CompleteAsync();
            }
            catch (Exception)
            {
                // Completing shuts the socket's receive side down, which may fail on a dead socket.
            }
        }
    }

    /// <summary>Parses the acks and keepalives in <paramref name="buffer"/>; a protocol violation's description, or null.</summary>
    private string? ReadFrames(in ReadOnlySequence<byte> buffer, out SequencePosition consumed)
    {
        var reader = new SequenceReader<byte>(buffer);
        string? violation = null;
        while (violation is null && reader.TryPeek(out var kind))
        {
            if (kind == Frames.Keepalive)
            {
                if (reader.Remaining < Frames.KeepaliveLength)
                {
                    break;
                }

                reader.Advance(Frames.KeepaliveLength);
                continue;
            }

            if (kind != Frames.Ack)
            {
                violation = $"unexpected frame kind {kind} from the receiver";
                break;
            }

            if (reader.Remaining < Frames.AckHeaderLength)
            {
                break;
            }

            var head = reader;
            head.Advance(4);
            head.TryReadBigEndian(out int failures);
            head.TryReadBigEndian(out long cumulative);
            if ((uint)failures > Frames.MaxAckFailures)
            {
                violation = $"an ack lists {(uint)failures} failures (at most {Frames.MaxAckFailures})";
                break;
            }

            var length = Frames.AckHeaderLength + (failures * Frames.AckEntryLength);
            if (reader.Remaining < length)
            {
                break;
            }

            violation = Acknowledge(cumulative, head, failures);
            reader.Advance(length);
        }

        consumed = reader.Position;
        return violation;
    }

    /// <summary>Completes every send up to <paramref name="cumulative"/> with its status, then writes waiting sends that now fit.</summary>
    private string? Acknowledge(long cumulative, SequenceReader<byte> entries, int failures)
    {
        string? violation = null;
        bool flushed;
        lock (_lock)
        {
            if (_loss is not null)
            {
                return null;
            }

            if (cumulative < _lastAcked || cumulative > _lastWritten)
            {
                return $"ack of operation {cumulative} while {_lastAcked} was acknowledged and {_lastWritten} sent";
            }

            var failedSequence = long.MaxValue;
            var failedStatus = 0;
            if (failures > 0)
            {
                entries.TryReadBigEndian(out failedSequence);
                entries.TryReadBigEndian(out failedStatus);
                failures--;
            }

            while (_unacked.TryPeek(out var send) && send.Sequence <= cumulative)
            {
                _unacked.Dequeue();
                _bytesInFlight -= send.FrameLength;
                var status = 0;
                if (send.Sequence == failedSequence)
                {
                    status = failedStatus;
                    failedSequence = long.MaxValue;
                    if (failures > 0)
                    {
                        entries.TryReadBigEndian(out failedSequence);
                        entries.TryReadBigEndian(out failedStatus);
                        failures--;
                    }
                }

                _acknowledged.Add((send, status));
            }

            if (failedSequence != long.MaxValue)
            {
                violation = $"an ack up to {cumulative} reports a status for operation {failedSequence}, out of order or out of range";
            }

            Volatile.Write(ref _lastAcked, cumulative);
            flushed = WriteWaiting();
        }

        // Outside the lock: a completion's continuation runs here (see PendingSend.Complete), and
        // the call it wakes may send at once.
        foreach (var (send, status) in _acknowledged)
        {
            send.Complete(status);
        }

        _acknowledged.Clear();

        if (!flushed)
        {
            Fail(LinkLossReason.ConnectionFailed, "the connection's send side closed", null);
        }

        return violation;
    }

    /// <summary>Writes, in order, the waiting sends that fit in the budget now (under the lock).</summary>
    private bool WriteWaiting()
    {
        var wrote = false;
        while (_waiting.TryPeek(out var send) && HasRoom(send.FrameLength))
        {
            _waiting.Dequeue();
            var ok = Write(send, send.Type, send.Flags, send.Header.Span, send.Payload.Span);
            send.ReleaseBuffers();
            wrote = true;
            if (!ok)
            {
                return false;
            }
        }

        return !wrote || FlushPipe();
    }

    private void OnTick()
    {
        var silent = _time.GetElapsedTime(Volatile.Read(ref _lastReceived));
        if (silent > _options.SilenceTimeout)
        {
            Fail(LinkLossReason.SilenceTimeout, $"nothing received for {(long)silent.TotalMilliseconds} ms (silence timeout {(long)_options.SilenceTimeout.TotalMilliseconds} ms): the receiver is dead, stuck or unreachable", null);
            return;
        }

        var ok = true;
        lock (_lock)
        {
            if (_loss is not null)
            {
                return;
            }

            if (!_wroteSinceTick)
            {
                try
                {
                    Frames.WriteKeepalive(_connection.Output);
                    ok = FlushPipe();
                }
                catch (InvalidOperationException)
                {
                    ok = false;
                }
            }
            else if (_lazyBytes > 0)
            {
                ok = FlushPipe(); // Lazy frames wait at most one keepalive interval.
            }

            _wroteSinceTick = false;
        }

        if (!ok)
        {
            Fail(LinkLossReason.ConnectionFailed, "the connection's send side closed", null);
        }
    }

    /// <summary>Ends the link once: fails every pending send, closes the connection, completes <see cref="Lost"/>.</summary>
    private void Fail(LinkLossReason reason, string detail, Exception? cause)
    {
        ReplicationLinkLostException loss;
        int pending;
        if (!_lock.TryEnter())
        {
            // Whoever holds the lock may be blocked in send towards a peer that stopped reading:
            // the shutdown makes that send fail and release it.
            Interlocked.CompareExchange(ref _cut, new LinkCut(reason, detail, cause), null);
            _connection.Shutdown();
            _lock.Enter();
        }

        try
        {
            if (_loss is not null)
            {
                return;
            }

            if (_cut is { } cut)
            {
                (reason, detail, cause) = (cut.Reason, cut.Detail, cut.Cause);
            }

            pending = _unacked.Count + _waiting.Count;
            loss = new ReplicationLinkLostException(
                reason,
                $"replication link {_options.LocalNode} -> {_options.PeerNode} ({_remote}) lost ({reason}): {detail}; {pending} operation(s) pending, last acknowledged {_lastAcked}",
                cause);
            Volatile.Write(ref _loss, loss);
            while (_unacked.TryDequeue(out var send))
            {
                send.Fail(loss);
            }

            while (_waiting.TryDequeue(out var send))
            {
                send.ReleaseBuffers();
                send.Fail(loss);
            }

            _bytesInFlight = 0;
            try
            {
                // Under the lock, so no send is halfway through a frame.
                _connection.Output.Complete();
            }
            catch (InvalidOperationException)
            {
            }
        }
        finally
        {
            _lock.Exit();
        }

        _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        try
        {
            _connection.Input.CancelPendingRead();
        }
        catch (InvalidOperationException)
        {
        }

        _connection.Dispose();
        if (reason == LinkLossReason.Closed)
        {
            ReplicationLog.LinkClosed(_logger, loss.Message);
        }
        else
        {
            ReplicationLog.LinkLost(_logger, loss.Message, cause);
        }

        _lost.TrySetResult(loss);
    }
}
