using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using SafeKit.Native.Files;

namespace SafeKit.Replication.Channel;

/// <summary>
/// One replication link's TCP connection as a duplex pipe, driven by blocking calls on threads the
/// channel chooses, never by the runtime's socket engine.
/// <para>
/// Why not <c>Pipelines.Sockets.Unofficial</c>'s <c>SocketConnection</c> (which the resync still
/// uses): every completion of an asynchronous socket read is first seen by the runtime's epoll
/// thread, which hands it to a pool thread — two wake-ups per frame, at both ends of a 4 KiB
/// write's round trip, on a machine with two cores. Here a thread of the connection's own sleeps in
/// <c>recv</c> and the kernel wakes it with the data: it runs the reader inline (SECOND applies
/// the operation, PRIM completes the sends it acknowledges), so a frame costs one wake-up. The
/// socket is never used asynchronously, so the runtime never registers it with epoll.
/// </para>
/// <para>
/// Sending: the output pipe's reader runs inline on the flushing thread and writes with blocking
/// <c>send</c>, so a flush returns once the kernel holds the bytes. It blocks only while the
/// peer's window and the socket buffer are both full — back-pressure the byte budget already
/// bounds; <see cref="Shutdown"/> unblocks it.
/// </para>
/// </summary>
internal sealed class ChannelConnection : IDuplexPipe, IDisposable
{
    private readonly Pipe _receive;
    private readonly Pipe _send;
    private readonly Task _sending;
    private readonly ReceiveScheduler _readerScheduler = new();
    private int _disposed;

    /// <param name="receive">The receive pipe's options; its reader scheduler is replaced (see <see cref="ReadInline"/>).</param>
    public ChannelConnection(Socket socket, PipeOptions send, PipeOptions receive, string name)
    {
        Socket = socket;
        _send = new Pipe(send);
        _receive = new Pipe(new PipeOptions(
            receive.Pool,
            _readerScheduler,
            receive.WriterScheduler,
            receive.PauseWriterThreshold,
            receive.ResumeWriterThreshold,
            receive.MinimumSegmentSize,
            receive.UseSynchronizationContext));
        _sending = SendLoopAsync();
        new Thread(ReceiveLoop) { IsBackground = true, Name = name }.Start();
    }

    public Socket Socket { get; }

    public PipeReader Input => _receive.Reader;

    public PipeWriter Output => _send.Writer;

    /// <summary>Completes once the output is completed and everything written to it was sent (or the socket failed).</summary>
    public Task Sent => _sending;

    /// <summary>
    /// From now on the reader runs on the receive thread, inside the flush of each read. Not during
    /// the handshake: whoever awaits the connection would then continue on the receive thread, and
    /// a send blocking there would stop the reads it waits for.
    /// </summary>
    public void ReadInline() => _readerScheduler.GoInline();

    /// <summary>
    /// Connects with a blocking call on a pool thread: an asynchronous connect, or a non-blocking
    /// one, would leave the socket non-blocking for good, and the runtime would then emulate every
    /// blocking receive with its epoll thread. Cancellation closes the socket, which ends the call.
    /// </summary>
    public static async Task ConnectAsync(Socket socket, EndPoint endpoint, CancellationToken cancellationToken)
    {
        using var cancel = cancellationToken.Register(static s => ((Socket)s!).Dispose(), socket);
        try
        {
            await Task.Run(() => socket.Connect(endpoint), CancellationToken.None);
        }
        catch (Exception e) when (cancellationToken.IsCancellationRequested && e is SocketException or ObjectDisposedException)
        {
            throw new OperationCanceledException(cancellationToken);
        }
    }

    /// <summary>
    /// Sends a frame's head and payload straight from the caller's memory with one gather write,
    /// after what the output pipe holds (the caller flushed it first, under the lock that orders
    /// its frames: with the inline send loop, that leaves the pipe empty). False when the socket
    /// failed; the pipe's next flush then reports it too.
    /// </summary>
    public bool SendDirect(ReadOnlySpan<byte> head, ReadOnlySpan<byte> payload)
    {
        try
        {
            if (GatherWrite.WriteAll(Socket.SafeHandle, head, payload) == 0)
            {
                return true;
            }
        }
        catch (ObjectDisposedException)
        {
        }

        Shutdown();
        return false;
    }

    /// <summary>Ends both directions at once: a blocked send or receive returns.</summary>
    public void Shutdown()
    {
        try
        {
            Socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
    }

    /// <summary>Closes the socket (the owner completes the pipes: the receive thread ends on its own).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            Shutdown();
            Socket.Dispose();
        }
    }

    private async Task SendLoopAsync()
    {
        var reader = _send.Reader;
        try
        {
            while (true)
            {
                // Continues inline on the thread that flushed (the pipe's reader scheduler).
                var result = await reader.ReadAsync();
                var buffer = result.Buffer;
                foreach (var segment in buffer)
                {
                    SendAll(segment.Span);
                }

                reader.AdvanceTo(buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }

            // The peer reads a FIN after the last frame: an orderly close, not a reset.
            Socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // The owner learns it from its next flush (the pipe reports the reader gone) and from
            // the receive side; completing with the error would make that flush throw instead.
        }
        finally
        {
            await reader.CompleteAsync();
        }
    }

    private void SendAll(ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty)
        {
            data = data[Socket.Send(data)..];
        }
    }

    private void ReceiveLoop()
    {
        var writer = _receive.Writer;
        Exception? error = null;
        try
        {
            while (true)
            {
                var memory = writer.GetMemory(1);
                var count = Socket.Receive(memory.Span);
                if (count == 0)
                {
                    break;
                }

                writer.Advance(count);

                // The reader runs inline inside this flush; it pauses only above the receive window.
                var flush = writer.FlushAsync();
                var result = flush.IsCompleted ? flush.GetAwaiter().GetResult() : flush.AsTask().GetAwaiter().GetResult();
                if (result.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or InvalidOperationException)
        {
            error = e;
        }
        finally
        {
            writer.Complete(error);
        }
    }

    /// <summary>The thread pool until <see cref="ReadInline"/>, then the receive thread itself.</summary>
    private sealed class ReceiveScheduler : PipeScheduler
    {
        private volatile bool _inline;

        public void GoInline() => _inline = true;

        public override void Schedule(Action<object?> action, object? state)
        {
            if (_inline)
            {
                action(state);
            }
            else
            {
                ThreadPool.Schedule(action, state);
            }
        }
    }
}
