namespace SafeKit.Native.Fuse;

/// <summary>
/// Answers a write or an fsync once SECOND has acknowledged it, on the thread that completes the
/// acknowledgement (PRIM's replication receive thread), instead of a libfuse worker blocked until
/// then: the worker goes back to serving requests (reads go on while writes wait for SECOND), and
/// the application wakes one thread hand-off sooner. Pooled: no allocation per request.
/// </summary>
internal sealed class DeferredReply
{
    private const int PoolLimit = 64;
    private static readonly Lock PoolGate = new();
    private static readonly Stack<DeferredReply> Pool = new();

    private readonly Action _run;
    private PassthroughFileSystem? _fileSystem;
    private ReplicationTicket _ticket;
    private nint _request;
    private nuint _written;
    private int _errno;
    private bool _isWrite;

    private DeferredReply() => _run = Run;

    /// <summary>Replies <paramref name="written"/> to the write <paramref name="request"/> once <paramref name="ticket"/> completes.</summary>
    public static void Write(PassthroughFileSystem fileSystem, nint request, nuint written, ReplicationTicket ticket) =>
        Rent().Start(fileSystem, request, ticket, isWrite: true, written, 0);

    /// <summary>Replies <paramref name="errno"/> (0: success) to <paramref name="request"/> once <paramref name="ticket"/> completes.</summary>
    public static void Error(PassthroughFileSystem fileSystem, nint request, int errno, ReplicationTicket ticket) =>
        Rent().Start(fileSystem, request, ticket, isWrite: false, 0, errno);

    private static DeferredReply Rent()
    {
        lock (PoolGate)
        {
            if (Pool.TryPop(out var reply))
            {
                return reply;
            }
        }

        return new DeferredReply();
    }

    private void Start(PassthroughFileSystem fileSystem, nint request, ReplicationTicket ticket, bool isWrite, nuint written, int errno)
    {
        _fileSystem = fileSystem;
        _request = request;
        _ticket = ticket;
        _isWrite = isWrite;
        _written = written;
        _errno = errno;
        fileSystem.ReplyDeferred();
        ticket.OnCompleted(_run);
    }

    private void Run()
    {
        var fileSystem = _fileSystem!;
        var request = _request;
        try
        {
            _ticket.Observe(); // Never fails: a lost link or a failed apply sent PRIM alone, the write stands.
        }
        catch (Exception)
        {
            // Nothing to add: the reply below is what the application gets either way.
        }

        if (_isWrite)
        {
            _ = LibFuse.ReplyWrite(request, _written);
        }
        else
        {
            _ = LibFuse.ReplyErr(request, _errno);
        }

        _fileSystem = null;
        _ticket = default;
        lock (PoolGate)
        {
            if (Pool.Count < PoolLimit)
            {
                Pool.Push(this);
            }
        }

        fileSystem.DeferredReplied();
    }
}
