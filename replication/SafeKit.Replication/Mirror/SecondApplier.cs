using System.Buffers;
using SafeKit.Native.Fuse;
using SafeKit.Replication.Channel;

namespace SafeKit.Replication.Mirror;

/// <summary>
/// SECOND's side of the channel: hands each operation to <see cref="MirrorApplier"/> as one
/// contiguous record (header and payload), from one reused buffer — the receive loop calls it one
/// operation at a time.
/// </summary>
public sealed class SecondApplier : IOperationApplier, IDisposable
{
    private const int EIO = 5;
    private readonly MirrorApplier _applier;
    private readonly byte[] _buffer = new byte[ReplicationOp.MaxHeaderLength + ReplicationOp.MaxPayloadLength];

    public SecondApplier(MirrorApplier applier)
    {
        _applier = applier;
    }

    /// <summary>The first change SECOND could not apply, if any (its copy stopped following there).</summary>
    public string? Failure { get; private set; }

    public long Applied => _applier.Applied;

    public int Apply(in ReplicationOp op)
    {
        if (Failure is not null)
        {
            // After a failed change every later one would apply to a copy that no longer matches.
            return EIO;
        }

        op.Header.CopyTo(_buffer);
        op.Payload.CopyTo(_buffer.AsSpan(op.Header.Length));
        var length = op.Header.Length + (int)op.Payload.Length;
        var errno = _applier.Apply((MutationKind)op.Type, _buffer.AsSpan(0, length), (op.Flags & OpFlags.DurableBarrier) != 0);
        if (errno != 0)
        {
            Failure = $"{(MutationKind)op.Type} #{op.Sequence}: errno {errno}";
        }

        return errno;
    }

    public void Dispose() => _applier.Dispose();
}
