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
/// the target, in order. Counts the bytes both ways — what the resync costs on the wire.
/// </summary>
public sealed class ResyncConnection : IAsyncDisposable
{
    /// <summary>The largest message either end accepts (a data message carries at most 1 MiB of blocks).</summary>
    public const int MaxMessageLength = 4 * 1024 * 1024;

    private readonly SocketConnection _connection;
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private long _sent;
    private long _received;

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
        var connection = ChannelSocket.Open(socket, options, $"resync {options.LocalNode}<->{options.PeerNode}");
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

    /// <summary>Writes one message (safe from several tasks: messages never interleave).</summary>
    public async ValueTask WriteAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken = default)
    {
        if (message.Length > MaxMessageLength)
        {
            throw new ArgumentException($"a resync message of {message.Length} bytes is over the {MaxMessageLength}-byte limit", nameof(message));
        }

        await _writeGate.WaitAsync(cancellationToken);
        try
        {
            var output = _connection.Output;
            BinaryPrimitives.WriteInt32LittleEndian(output.GetSpan(4), message.Length);
            output.Advance(4);
            Frames.Copy(output, message.Span);
            var flushed = await output.FlushAsync(cancellationToken);
            if (flushed.IsCompleted)
            {
                throw new IOException($"the resync connection to {Remote} is closed");
            }

            Interlocked.Add(ref _sent, message.Length + 4);
        }
        finally
        {
            _writeGate.Release();
        }
    }

    /// <summary>Reads the next message; null when the peer closed the connection between messages.</summary>
    /// <exception cref="IOException">The connection ended inside a message, or a length is out of bounds.</exception>
    public async ValueTask<byte[]?> ReadAsync(CancellationToken cancellationToken = default)
    {
        var input = _connection.Input;
        while (true)
        {
            ReadResult result;
            try
            {
                result = await input.ReadAsync(cancellationToken);
            }
            catch (ConnectionResetException e)
            {
                throw new IOException($"the resync connection to {Remote} was reset", e);
            }
            catch (ConnectionAbortedException)
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
        _writeGate.Dispose();
    }
}
