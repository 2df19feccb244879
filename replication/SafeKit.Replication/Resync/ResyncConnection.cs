using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Pipelines.Sockets.Unofficial;
using SafeKit.Replication.Channel;

namespace SafeKit.Replication.Resync;

/// <summary>
/// One authenticated TCP connection of a resync (the replication handshake, with the resync
/// roles), carrying length-prefixed messages: requests from the source, one response each from
/// the target, in order. Counts the bytes both ways — what the resync costs on the wire. Once
/// both ends agreed (<see cref="ResyncFeatures.CompressedStream"/>), each direction from a chosen
/// message on is one zstd stream (<see cref="CompressWrites"/>, <see cref="DecompressReads"/>).
/// </summary>
public sealed class ResyncConnection : IAsyncDisposable
{
    /// <summary>The largest message either end accepts (a data message carries at most 1 MiB of blocks).</summary>
    public const int MaxMessageLength = 4 * 1024 * 1024;

    /// <summary>Room decoded bytes get per step (and that a full buffer keeps beyond the largest message).</summary>
    private const int PlainStep = 128 * 1024;

    private readonly SocketConnection _connection;
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private long _sent;
    private long _received;
    private volatile StreamCompressor? _compressor;
    private volatile StreamDecompressor? _decompressor;

    /// <summary>Decoded bytes not yet taken as messages: [_plainStart, _plainEnd).</summary>
    private byte[] _plain = [];
    private int _plainStart;
    private int _plainEnd;

    /// <summary>The last decode filled its output: the decoder may hold more before any new input.</summary>
    private bool _decoderFull;

    private ResyncConnection(SocketConnection connection, string remote)
    {
        _connection = connection;
        Remote = remote;
    }

    /// <summary>The peer's address, for messages.</summary>
    public string Remote { get; }

    /// <summary>Bytes written and read so far (message headers included, handshake excluded).</summary>
    public long WireBytes => Interlocked.Read(ref _sent) + Interlocked.Read(ref _received);

    /// <summary>The source's side: connects to the target's listener and proves both ends.</summary>
    /// <exception cref="ReplicationHandshakeException">The target refused, or was refused.</exception>
    public static async Task<ResyncConnection> ConnectAsync(IPEndPoint target, ReplicationChannelOptions options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var socket = new Socket(target.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(target, cancellationToken);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return await OpenAsync(socket, options, ChannelRole.ResyncSource, cancellationToken);
    }

    internal static async Task<ResyncConnection> OpenAsync(Socket socket, ReplicationChannelOptions options, ChannelRole role, CancellationToken cancellationToken)
    {
        var remote = socket.RemoteEndPoint?.ToString() ?? "?";
        var connection = ChannelSocket.OpenStreaming(socket, options, $"resync {options.LocalNode}<->{options.PeerNode}");
        try
        {
            await Handshake.RunAsync(connection, options, role, remote, cancellationToken);
            return new ResyncConnection(connection, remote);
        }
        catch (ReplicationHandshakeException)
        {
            await ChannelSocket.CloseRefusedAsync(connection, options.TimeProvider);
            throw;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>Whether the messages this side writes are compressed.</summary>
    public bool CompressesWrites => _compressor is not null;

    /// <summary>
    /// Every message written after this call is compressed. Call it where both ends agree on the
    /// point (after the message that concluded the negotiation), with no write in progress.
    /// </summary>
    internal void CompressWrites() => _compressor ??= new StreamCompressor();

    /// <summary>Every byte read after the message just read is compressed (the peer's <see cref="CompressWrites"/>).</summary>
    internal void DecompressReads() => _decompressor ??= new StreamDecompressor();

    /// <summary>Writes one message and sends it (safe from several tasks: messages never interleave).</summary>
    public ValueTask WriteAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken = default)
        => WriteAsync(message, more: false, cancellationToken);

    /// <summary>
    /// Writes one message; with <paramref name="more"/> it is only buffered, to leave with the
    /// next one (the caller writes again at once, without waiting for anything): one compressed
    /// block and one TCP send for several messages instead of one each.
    /// </summary>
    public async ValueTask WriteAsync(ReadOnlyMemory<byte> message, bool more, CancellationToken cancellationToken = default)
    {
        if (message.Length > MaxMessageLength)
        {
            throw new ArgumentException($"a resync message of {message.Length} bytes is over the {MaxMessageLength}-byte limit", nameof(message));
        }

        await _writeGate.WaitAsync(cancellationToken);
        try
        {
            var output = _connection.Output;
            long wire;
            if (_compressor is { } compressor)
            {
                wire = WriteCompressed(compressor, output, message.Span, flush: !more);
            }
            else
            {
                BinaryPrimitives.WriteInt32LittleEndian(output.GetSpan(4), message.Length);
                output.Advance(4);
                Frames.Copy(output, message.Span);
                wire = message.Length + 4;
            }

            if (!more && (await output.FlushAsync(cancellationToken)).IsCompleted)
            {
                throw new IOException($"the resync connection to {Remote} is closed");
            }

            Interlocked.Add(ref _sent, wire);
        }
        finally
        {
            _writeGate.Release();
        }
    }

    /// <summary>Reads the next message; null when the peer closed the connection between messages.</summary>
    /// <exception cref="IOException">The connection ended inside a message, or a length is out of bounds.</exception>
    /// <exception cref="InvalidDataException">The peer's compressed stream does not decode.</exception>
    public ValueTask<byte[]?> ReadAsync(CancellationToken cancellationToken = default)
        => _decompressor is { } decompressor ? ReadCompressedAsync(decompressor, cancellationToken) : ReadPlainAsync(cancellationToken);

    private static long WriteCompressed(StreamCompressor compressor, PipeWriter output, ReadOnlySpan<byte> message, bool flush)
    {
        Span<byte> prefix = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(prefix, message.Length);
        return compressor.Write(prefix, output, flush: false) + compressor.Write(message, output, flush);
    }

    private async ValueTask<byte[]?> ReadCompressedAsync(StreamDecompressor decompressor, CancellationToken cancellationToken)
    {
        var input = _connection.Input;
        while (true)
        {
            if (TakeMessage() is { } message)
            {
                return message;
            }

            var room = Room();
            if (_decoderFull)
            {
                decompressor.Read(ReadOnlySequence<byte>.Empty, room.Span, out _, out var flushed);
                _plainEnd += flushed;
                _decoderFull = flushed == room.Length;
                continue;
            }

            if (await ReadSocketAsync(cancellationToken) is not { } result)
            {
                return null; // Closed on this side.
            }

            var buffer = result.Buffer;
            long consumed;
            int produced;
            try
            {
                decompressor.Read(buffer, room.Span, out consumed, out produced);
            }
            catch (ObjectDisposedException)
            {
                input.AdvanceTo(buffer.Start, buffer.End);
                return null; // Disposed on this side while reading.
            }

            _plainEnd += produced;
            _decoderFull = produced == room.Length;
            Interlocked.Add(ref _received, consumed);
            var used = buffer.GetPosition(consumed);
            input.AdvanceTo(used, _decoderFull ? used : buffer.End);
            if (produced == 0 && (result.IsCompleted || result.IsCanceled))
            {
                return _plainEnd == _plainStart && consumed == buffer.Length
                    ? null
                    : throw new IOException($"the resync connection to {Remote} ended inside a message");
            }
        }
    }

    /// <summary>The bytes received so far; null once this side closed the connection.</summary>
    private async ValueTask<ReadResult?> ReadSocketAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await _connection.Input.ReadAsync(cancellationToken);
        }
        catch (ConnectionResetException e)
        {
            throw new IOException($"the resync connection to {Remote} was reset", e);
        }
        catch (ConnectionAbortedException)
        {
            return null;
        }
    }

    /// <summary>A whole decoded message, if there is one.</summary>
    private byte[]? TakeMessage()
    {
        var available = _plainEnd - _plainStart;
        if (available < 4)
        {
            return null;
        }

        var length = BinaryPrimitives.ReadInt32LittleEndian(_plain.AsSpan(_plainStart));
        if (length is < 0 or > MaxMessageLength)
        {
            throw new IOException($"the resync peer at {Remote} sent a message of {length} bytes (limit {MaxMessageLength})");
        }

        if (available < 4 + length)
        {
            return null;
        }

        var message = _plain.AsSpan(_plainStart + 4, length).ToArray();
        _plainStart += 4 + length;
        return message;
    }

    /// <summary>
    /// Free space for decoded bytes, at least <see cref="PlainStep"/>: what is left is moved to the
    /// front, and the buffer grows up to the largest message plus a step (an incomplete message
    /// never needs more).
    /// </summary>
    private Memory<byte> Room()
    {
        if (_plainStart > 0)
        {
            _plain.AsSpan(_plainStart, _plainEnd - _plainStart).CopyTo(_plain);
            _plainEnd -= _plainStart;
            _plainStart = 0;
        }

        if (_plain.Length - _plainEnd < PlainStep)
        {
            var grown = new byte[Math.Min(Math.Max(_plain.Length * 2, 2 * PlainStep), MaxMessageLength + 4 + PlainStep)];
            _plain.AsSpan(0, _plainEnd).CopyTo(grown);
            _plain = grown;
        }

        return _plain.AsMemory(_plainEnd);
    }

    private async ValueTask<byte[]?> ReadPlainAsync(CancellationToken cancellationToken)
    {
        var input = _connection.Input;
        while (true)
        {
            if (await ReadSocketAsync(cancellationToken) is not { } result)
            {
                return null; // Closed on this side.
            }

            var buffer = result.Buffer;
            if (buffer.Length >= 4)
            {
                var length = LengthPrefix(buffer);
                if (length is < 0 or > MaxMessageLength)
                {
                    input.AdvanceTo(buffer.Start, buffer.End);
                    throw new IOException($"the resync peer at {Remote} sent a message of {length} bytes (limit {MaxMessageLength})");
                }

                if (buffer.Length >= 4 + length)
                {
                    var message = buffer.Slice(4, length).ToArray();
                    input.AdvanceTo(buffer.GetPosition(4 + length));
                    Interlocked.Add(ref _received, length + 4);
                    return message;
                }
            }

            if (result.IsCompleted || result.IsCanceled)
            {
                var empty = buffer.IsEmpty;
                input.AdvanceTo(buffer.End);
                return empty ? null : throw new IOException($"the resync connection to {Remote} ended inside a message");
            }

            input.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private static int LengthPrefix(ReadOnlySequence<byte> buffer)
    {
        Span<byte> prefix = stackalloc byte[4];
        buffer.Slice(0, 4).CopyTo(prefix);
        return BinaryPrimitives.ReadInt32LittleEndian(prefix);
    }

    public async ValueTask DisposeAsync()
    {
        await ChannelSocket.CloseAsync(_connection, TimeSpan.FromSeconds(1), TimeProvider.System);
        _compressor?.Dispose();
        _decompressor?.Dispose();
        _writeGate.Dispose();
    }
}
