using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace SafeKit.Replication.Channel;

/// <summary>
/// SECOND's end of the replication link, made by <see cref="ReplicationListener.AcceptAsync"/>:
/// reads operations, hands them to the applier strictly in sequence order and acknowledges them.
/// <para>
/// Acks are cumulative — one ack frame says "everything up to N applied", listing only the
/// operations whose status is not 0 — and go out after each batch read from the socket, or
/// sooner within a long batch (every <see cref="AckEveryOps"/> operations or
/// <see cref="AckEveryBytes"/> bytes), so the sender's budget keeps moving.
/// </para>
/// <para>
/// When idle (waiting for data) it sends a keepalive each keepalive interval in which it sent
/// nothing, and declares the link lost after the silence timeout without data (the sender keeps
/// the link alive the same way). While the applier runs, neither happens: an apply that outlasts
/// the sender's silence timeout makes the sender declare the link lost, which is the point.
/// </para>
/// <para>
/// Memory: the receive pipe pauses the socket above four of the largest frames; beyond that the
/// data waits in the kernel's socket buffers and on the sender (within its budget).
/// </para>
/// </summary>
public sealed class ReplicationReceiver : IAsyncDisposable
{
    /// <summary>Within one long batch, ack at least every this many operations.</summary>
    public const int AckEveryOps = 1024;

    /// <summary>Within one long batch, ack at least every this many bytes.</summary>
    public const int AckEveryBytes = 1024 * 1024;

    private readonly ChannelConnection _connection;
    private readonly ReplicationChannelOptions _options;
    private readonly IOperationApplier _applier;
    private readonly ILogger _logger;
    private readonly string _remote;
    private readonly TimeProvider _time;
    private readonly Lock _writeLock = new();
    private readonly TaskCompletionSource<ReplicationLinkLostException> _lost = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ITimer _timer;
    private readonly byte[] _headerScratch = new byte[ReplicationOp.MaxHeaderLength];
    private readonly long[] _failedSequences = new long[Frames.MaxAckFailures];
    private readonly int[] _failedStatuses = new int[Frames.MaxAckFailures];
    private Task _loop = Task.CompletedTask;
    private LinkCut? _cut;
    private Task _closing = Task.CompletedTask;
    private ReplicationLinkLostException? _loss;
    private Exception? _applierError;
    private long _lastApplied;
    private long _lastAckSent;
    private int _failureCount;
    private int _opsSinceAck;
    private long _bytesSinceAck;
    private long _idleSince;
    private volatile bool _idle;
    private bool _wroteSinceTick;

    internal ReplicationReceiver(ChannelConnection connection, ReplicationChannelOptions options, IOperationApplier applier, ILogger logger, string remote)
    {
        _connection = connection;
        _options = options;
        _applier = applier;
        _logger = logger;
        _remote = remote;
        _time = options.TimeProvider;
        _timer = _time.CreateTimer(static s => ((ReplicationReceiver)s!).OnTick(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>The sending node (proven by the handshake).</summary>
    public string PeerNode => _options.PeerNode;

    /// <summary>The sequence of the last operation applied (0 before the first).</summary>
    public long LastApplied => Volatile.Read(ref _lastApplied);

    /// <summary>Completes (never faults) when the link ends, with the reason.</summary>
    public Task<ReplicationLinkLostException> Lost => _lost.Task;

    /// <summary>How long nothing has arrived from the sender (zero while reading; keepalives count).</summary>
    public TimeSpan SilentFor => _idle ? _time.GetElapsedTime(Volatile.Read(ref _idleSince)) : TimeSpan.Zero;

    /// <summary>Closes the link; waits for an apply in progress to return.</summary>
    public async ValueTask DisposeAsync()
    {
        Fail(LinkLossReason.Closed, "closed by this node", null);
        await _loop;
        await _closing;
        await _timer.DisposeAsync();
    }

    /// <summary>Closes the TCP connection with a RST, as a reset link would (tests).</summary>
    internal void ResetConnection() => ChannelSocket.Reset(_connection);

    internal void Start()
    {
        _connection.ReadInline();
        _loop = Task.Run(ReceiveLoopAsync);
        _timer.Change(_options.KeepaliveInterval, _options.KeepaliveInterval);
    }

    private async Task ReceiveLoopAsync()
    {
        var input = _connection.Input;
        try
        {
            while (true)
            {
                Volatile.Write(ref _idleSince, _time.GetTimestamp());
                _idle = true;
                var result = await input.ReadAsync();
                _idle = false;
                var buffer = result.Buffer;
                var violation = Apply(buffer, out var consumed);
                input.AdvanceTo(consumed, buffer.End);
                if (!SendAck())
                {
                    Fail(LinkLossReason.ConnectionFailed, "the connection's send side closed", null);
                    return;
                }

                if (_applierError is { } error)
                {
                    Fail(LinkLossReason.ApplierFailed, $"the applier failed on operation {_lastApplied + 1}: {error.Message}", error);
                    return;
                }

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
            _idle = false;
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

    /// <summary>Applies every whole operation in <paramref name="buffer"/>; a protocol violation's description, or null.</summary>
    private string? Apply(in ReadOnlySequence<byte> buffer, out SequencePosition consumed)
    {
        var reader = new SequenceReader<byte>(buffer);
        Span<byte> head = stackalloc byte[Frames.OpHeaderLength];
        string? violation = null;
        while (Volatile.Read(ref _loss) is null && reader.TryPeek(out var kind))
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

            if (kind != Frames.Op)
            {
                violation = $"unexpected frame kind {kind} from the sender";
                break;
            }

            if (!reader.TryCopyTo(head))
            {
                break;
            }

            var payloadLength = BinaryPrimitives.ReadUInt32BigEndian(head[4..]);
            var sequence = BinaryPrimitives.ReadInt64BigEndian(head[8..]);
            int headerLength = BinaryPrimitives.ReadUInt16BigEndian(head[16..]);
            if (payloadLength > ReplicationOp.MaxPayloadLength || headerLength > ReplicationOp.MaxHeaderLength)
            {
                violation = $"operation {sequence} is too large (header {headerLength}, payload {payloadLength} bytes)";
                break;
            }

            var length = Frames.OpHeaderLength + headerLength + (int)payloadLength;
            if (reader.Remaining < length)
            {
                break;
            }

            if (sequence != _lastApplied + 1)
            {
                violation = $"operation {sequence} arrived after {_lastApplied}";
                break;
            }

            var frame = reader.UnreadSequence.Slice(0, length);
            var headerBytes = frame.Slice(Frames.OpHeaderLength, headerLength);
            ReadOnlySpan<byte> header;
            if (headerBytes.IsSingleSegment)
            {
                header = headerBytes.FirstSpan;
            }
            else
            {
                headerBytes.CopyTo(_headerScratch);
                header = _headerScratch.AsSpan(0, headerLength);
            }

            int status;
            try
            {
                status = _applier.Apply(new ReplicationOp(sequence, head[1], (OpFlags)head[2], header, frame.Slice(Frames.OpHeaderLength + headerLength)));
            }
            catch (Exception ex)
            {
                _applierError = ex;
                break;
            }

            reader.Advance(length);
            Volatile.Write(ref _lastApplied, sequence);
            if (status != 0)
            {
                _failedSequences[_failureCount] = sequence;
                _failedStatuses[_failureCount] = status;
                _failureCount++;
            }

            _opsSinceAck++;
            _bytesSinceAck += length;
            if ((_failureCount == Frames.MaxAckFailures || _opsSinceAck >= AckEveryOps || _bytesSinceAck >= AckEveryBytes) && !SendAck())
            {
                break;
            }
        }

        consumed = reader.Position;
        return violation;
    }

    /// <summary>Acknowledges everything applied since the last ack; false when the pipe is gone.</summary>
    private bool SendAck()
    {
        lock (_writeLock)
        {
            if (_lastApplied == _lastAckSent || _loss is not null)
            {
                return true;
            }

            try
            {
                var output = _connection.Output;
                var length = Frames.AckHeaderLength + (_failureCount * Frames.AckEntryLength);
                var span = output.GetSpan(length);
                Frames.WriteAckHeader(span, _lastApplied, _failureCount);
                for (var i = 0; i < _failureCount; i++)
                {
                    Frames.WriteAckEntry(span[(Frames.AckHeaderLength + (i * Frames.AckEntryLength))..], _failedSequences[i], _failedStatuses[i]);
                }

                output.Advance(length);
                _failureCount = 0;
                _opsSinceAck = 0;
                _bytesSinceAck = 0;
                _lastAckSent = _lastApplied;
                _wroteSinceTick = true;
                return Frames.Flush(output);
            }
            catch (InvalidOperationException)
            {
                return false;
            }
        }
    }

    private void OnTick()
    {
        var idle = _idle;
        if (idle)
        {
            var silent = _time.GetElapsedTime(Volatile.Read(ref _idleSince));
            if (silent > _options.SilenceTimeout)
            {
                Fail(LinkLossReason.SilenceTimeout, $"nothing received for {(long)silent.TotalMilliseconds} ms (silence timeout {(long)_options.SilenceTimeout.TotalMilliseconds} ms): the sender is dead, stuck or unreachable", null);
                return;
            }
        }

        var ok = true;
        lock (_writeLock)
        {
            if (_loss is not null)
            {
                return;
            }

            if (idle && !_wroteSinceTick)
            {
                try
                {
                    Frames.WriteKeepalive(_connection.Output);
                    ok = Frames.Flush(_connection.Output);
                }
                catch (InvalidOperationException)
                {
                    ok = false;
                }
            }

            _wroteSinceTick = false;
        }

        if (!ok)
        {
            Fail(LinkLossReason.ConnectionFailed, "the connection's send side closed", null);
        }
    }

    /// <summary>Ends the link once: closes the connection and completes <see cref="Lost"/>.</summary>
    private void Fail(LinkLossReason reason, string detail, Exception? cause)
    {
        ReplicationLinkLostException loss;
        if (!_writeLock.TryEnter())
        {
            // An ack may be blocked in send towards a sender that stopped reading: the shutdown
            // makes it fail and release the lock.
            Interlocked.CompareExchange(ref _cut, new LinkCut(reason, detail, cause), null);
            _connection.Shutdown();
            _writeLock.Enter();
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

            loss = new ReplicationLinkLostException(
                reason,
                $"replication link {_options.PeerNode} -> {_options.LocalNode} ({_remote}) lost ({reason}): {detail}; last applied {LastApplied}",
                cause);
            Volatile.Write(ref _loss, loss);
            try
            {
                // Under the lock, so no ack is halfway written.
                _connection.Output.Complete();
            }
            catch (InvalidOperationException)
            {
            }
        }
        finally
        {
            _writeLock.Exit();
        }

        _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        try
        {
            _connection.Input.CancelPendingRead();
        }
        catch (InvalidOperationException)
        {
        }

        // A local decision (dispose, a failed apply, a bad frame) lets the acks already written
        // reach PRIM before the FIN, so its LastAcked is exact; a dead link is cut at once.
        if (reason is LinkLossReason.Closed or LinkLossReason.ApplierFailed or LinkLossReason.ProtocolViolation)
        {
            _closing = ChannelSocket.CloseAsync(_connection, _options.SilenceTimeout, _time);
        }
        else
        {
            _connection.Dispose();
        }

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
