using System.Threading.Tasks.Sources;

namespace SafeKit.Replication.Channel;

/// <summary>
/// One operation between its send and its acknowledgement: the source of the
/// <see cref="ValueTask{TResult}"/> the send returns. Pooled by the sender (returned when the
/// caller takes the result), so a send allocates no Task in steady state. Holds the caller's
/// buffers only while the operation waits for room in the byte budget.
/// </summary>
internal sealed class PendingSend : IValueTaskSource<int>
{
    private readonly ReplicationSender _owner;

    private ManualResetValueTaskSourceCore<int> _core;

    public PendingSend(ReplicationSender owner) => _owner = owner;

    public long Sequence { get; set; }

    /// <summary>Bytes of the operation's frame, charged to the budget while unacknowledged.</summary>
    public int FrameLength { get; set; }

    public byte Type { get; set; }

    public OpFlags Flags { get; set; }

    public ReadOnlyMemory<byte> Header { get; set; }

    public ReadOnlyMemory<byte> Payload { get; set; }

    public ValueTask<int> Completion => new(this, _core.Version);

    /// <summary>
    /// Applied (status 0): the continuation runs here, on the thread reading the acks — it wakes
    /// the application's call waiting for it, which a hop through the thread pool would delay on a
    /// small machine. Callers keep that continuation short and never wait on the channel in it.
    /// A failed apply's continuation (which may take the mirror alone) runs on the thread pool.
    /// </summary>
    public void Complete(int status)
    {
        _core.RunContinuationsAsynchronously = status != 0;
        _core.SetResult(status);
    }

    /// <summary>The link is lost: continuations run on the thread pool, never on the failing thread.</summary>
    public void Fail(Exception error)
    {
        _core.RunContinuationsAsynchronously = true;
        _core.SetException(error);
    }

    /// <summary>Drops the references to the caller's buffers once they are copied (or never will be).</summary>
    public void ReleaseBuffers()
    {
        Header = default;
        Payload = default;
    }

    public int GetResult(short token)
    {
        var mine = token == _core.Version;
        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            if (mine)
            {
                _core.Reset();
                _owner.Return(this);
            }
        }
    }

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        => _core.OnCompleted(continuation, state, token, flags);
}
