using System.Buffers;

namespace SafeKit.Replication.Channel;

/// <summary>
/// One operation as the receiver hands it to its <see cref="IOperationApplier"/>. The bytes live
/// in the connection's receive buffer: they are valid only during the call (copy what must outlive it).
/// </summary>
public readonly ref struct ReplicationOp
{
    /// <summary>The largest header an operation may carry.</summary>
    public const int MaxHeaderLength = 4096;

    /// <summary>The largest payload an operation may carry: 1 MiB.</summary>
    public const int MaxPayloadLength = 1024 * 1024;

    internal ReplicationOp(long sequence, byte type, OpFlags flags, ReadOnlySpan<byte> header, ReadOnlySequence<byte> payload)
    {
        Sequence = sequence;
        Type = type;
        Flags = flags;
        Header = header;
        Payload = payload;
    }

    /// <summary>The operation's number on this connection: 1 for the first, then +1 each.</summary>
    public long Sequence { get; }

    /// <summary>The user's operation type, opaque to the channel.</summary>
    public byte Type { get; }

    /// <summary>The sender's flags (see <see cref="OpFlags.DurableBarrier"/>).</summary>
    public OpFlags Flags { get; }

    /// <summary>The small header the sender gave (contiguous), possibly empty.</summary>
    public ReadOnlySpan<byte> Header { get; }

    /// <summary>The payload, possibly in several segments of the receive buffer.</summary>
    public ReadOnlySequence<byte> Payload { get; }
}
