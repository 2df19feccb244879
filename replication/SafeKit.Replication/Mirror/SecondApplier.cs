using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using SafeKit.Native.Fuse;
using SafeKit.Replication.Channel;

namespace SafeKit.Replication.Mirror;

/// <summary>
/// SECOND's side of the channel: hands each operation to <see cref="MirrorApplier"/> as one
/// contiguous record (header and payload), from one reused buffer — the receive loop calls it one
/// operation at a time.
/// </summary>
public sealed partial class SecondApplier : IOperationApplier, IDisposable
{
    private const int EIO = 5;

    // A Write's header: PRIM's file handle (u64) and the offset (i64), little-endian.
    private const int WriteHeaderLength = 16;
    private readonly MirrorApplier _applier;
    private readonly ILogger _logger;
    private readonly byte[] _buffer = new byte[ReplicationOp.MaxHeaderLength + ReplicationOp.MaxPayloadLength];

    public SecondApplier(MirrorApplier applier, ILogger logger)
    {
        _applier = applier;
        _logger = logger;
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

        var durable = (op.Flags & OpFlags.DurableBarrier) != 0;
        int errno;
        if ((MutationKind)op.Type == MutationKind.Write && op.Header.Length == WriteHeaderLength && !op.Payload.IsSingleSegment)
        {
            // The data of a large write arrives in several of the channel's blocks: written from
            // them as they are (pwritev), not gathered into one buffer first.
            errno = _applier.ApplyWrite(BinaryPrimitives.ReadUInt64LittleEndian(op.Header), BinaryPrimitives.ReadInt64LittleEndian(op.Header[8..]), op.Payload, durable);
        }
        else
        {
            op.Header.CopyTo(_buffer);
            op.Payload.CopyTo(_buffer.AsSpan(op.Header.Length));
            var length = op.Header.Length + (int)op.Payload.Length;
            errno = _applier.Apply((MutationKind)op.Type, _buffer.AsSpan(0, length), durable);
        }

        if (errno != 0)
        {
            Failure = $"could not apply {(MutationKind)op.Type} #{op.Sequence}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})";
            LogFailed(_logger, Failure);
        }

        return errno;
    }

    [LoggerMessage(EventId = 610, Level = LogLevel.Critical, Message = "mirror: SECOND {Failure}; this copy no longer follows PRIM, which goes on alone")]
    private static partial void LogFailed(ILogger logger, string failure);

    public void Dispose() => _applier.Dispose();
}
