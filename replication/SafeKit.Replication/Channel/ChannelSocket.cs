using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Pipelines.Sockets.Unofficial;

namespace SafeKit.Replication.Channel;

/// <summary>
/// Wraps a connected TCP socket in the duplex pipe both ends use, with pipe limits that fit the
/// protocol: the stream towards the peer never pauses (the sender's byte budget bounds it, acks
/// and keepalives are tiny), and the receive pipe pauses the socket only above four of the
/// largest frames, so a whole frame always fits (the parser needs it whole in the pipe).
/// </summary>
internal static class ChannelSocket
{
    private const long ReceiveWindow = 4L * Frames.MaxOpFrameLength;

    /// <summary>
    /// The replication link: TCP_NODELAY on (an ack or a lone operation must not wait for Nagle),
    /// then the pipes. Both readers run inline: a flush sends on the flushing thread, and a received
    /// frame is parsed on the connection's receive thread as soon as the kernel wakes it (see
    /// <see cref="ChannelConnection"/>).
    /// </summary>
    public static ChannelConnection Open(Socket socket, ReplicationChannelOptions options, string name)
    {
        var (send, receive) = Pipes(socket, options);
        return new ChannelConnection(socket, send, receive, name);
    }

    /// <summary>
    /// A resync connection: the same pipes on <c>Pipelines.Sockets.Unofficial</c>'s asynchronous
    /// loops. A resync moves bulk data from many concurrent lanes, where a flush must not block
    /// its thread; a round trip's latency matters less there.
    /// </summary>
    public static SocketConnection OpenStreaming(Socket socket, ReplicationChannelOptions options, string name)
    {
        var (send, receive) = Pipes(socket, options);
        return SocketConnection.Create(socket, send, receive, SocketConnectionOptions.InlineReads | SocketConnectionOptions.InlineWrites, name);
    }

    private static (PipeOptions Send, PipeOptions Receive) Pipes(Socket socket, ReplicationChannelOptions options)
    {
        socket.NoDelay = true;
        var pool = new BlockPool(options.MaxBytesInFlight + ReceiveWindow);
        var send = new PipeOptions(
            pool: pool,
            readerScheduler: PipeScheduler.Inline,
            writerScheduler: PipeScheduler.ThreadPool,
            pauseWriterThreshold: 0,
            resumeWriterThreshold: 0,
            minimumSegmentSize: BlockPool.BlockSize,
            useSynchronizationContext: false);
        var receive = new PipeOptions(
            pool: pool,
            readerScheduler: PipeScheduler.Inline,
            writerScheduler: PipeScheduler.ThreadPool,
            pauseWriterThreshold: ReceiveWindow,
            resumeWriterThreshold: ReceiveWindow / 2,
            minimumSegmentSize: BlockPool.BlockSize,
            useSynchronizationContext: false);
        return (send, receive);
    }

    /// <summary>A socket bound to <paramref name="endpoint"/> (address reuse on: a restarted node binds at once) and listening.</summary>
    public static Socket Listen(IPEndPoint endpoint)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(endpoint);
            socket.Listen(4);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Closes after what is already written has reached the socket (bounded by
    /// <paramref name="grace"/>): the peer then reads the last acks before the FIN.
    /// </summary>
    public static async Task CloseAsync(ChannelConnection connection, TimeSpan grace, TimeProvider time)
    {
        try
        {
            await connection.Sent.WaitAsync(grace, time);
        }
        catch (TimeoutException)
        {
        }
        finally
        {
            connection.Dispose();
        }
    }

    /// <inheritdoc cref="CloseAsync(ChannelConnection, TimeSpan, TimeProvider)"/>
    public static async Task CloseAsync(SocketConnection connection, TimeSpan grace, TimeProvider time)
    {
        var start = time.GetTimestamp();
        try
        {
            while (connection.GetCounters().BytesWaitingToBeSent > 0 && time.GetElapsedTime(start) < grace)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(5), time);
            }
        }
        finally
        {
            connection.Dispose();
        }
    }

    /// <summary>
    /// After a refused handshake: ends the stream and lets the verdict already written (a refusal
    /// code, or the proof the peer needs to name a key mismatch) leave before the socket closes.
    /// </summary>
    public static async Task CloseRefusedAsync(ChannelConnection connection, TimeProvider time)
    {
        await EndOutputAsync(connection.Output);
        await CloseAsync(connection, TimeSpan.FromSeconds(1), time);
    }

    /// <inheritdoc cref="CloseRefusedAsync(ChannelConnection, TimeProvider)"/>
    public static async Task CloseRefusedAsync(SocketConnection connection, TimeProvider time)
    {
        await EndOutputAsync(connection.Output);
        await CloseAsync(connection, TimeSpan.FromSeconds(1), time);
    }

    private static async Task EndOutputAsync(PipeWriter output)
    {
        try
        {
            await output.CompleteAsync();
        }
        catch (InvalidOperationException)
        {
        }
    }

    /// <summary>Closes with a RST instead of a FIN, as a link reset would; for tests of abrupt loss.</summary>
    public static void Reset(ChannelConnection connection)
    {
        try
        {
            connection.Socket.LingerState = new LingerOption(true, 0);
            connection.Socket.Close();
        }
        catch (ObjectDisposedException)
        {
        }
        catch (SocketException)
        {
        }
    }
}
