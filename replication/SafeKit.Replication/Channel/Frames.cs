using System.Buffers.Binary;
using System.IO.Pipelines;

namespace SafeKit.Replication.Channel;

/// <summary>
/// The frames that follow the handshake (big-endian). No per-frame MAC: the handshake proved
/// both ends hold the cluster key, and the link is a private replication network (as with DRBD,
/// authenticated at connect, not encrypted). The first byte is the kind.
/// <code>
/// op        (sender → receiver)   0 kind=1  1 type  2 flags  3 0  4 u32 payload length P
///                                 8 i64 sequence  16 u16 header length H  18 u16 0
///                                20 H header bytes, then P payload bytes
/// ack       (receiver → sender)   0 kind=2  1..3 0  4 u32 F  8 i64 cumulative sequence C
///                                16 F × (i64 sequence, i32 status)
///           every operation ≤ C is applied; its status is 0 unless listed (listed ones are
///           above the previous C, ascending)
/// keepalive (either way, idle)    0 kind=3  1..7 0
/// </code>
/// </summary>
internal static class Frames
{
    public const byte Op = 1;
    public const byte Ack = 2;
    public const byte Keepalive = 3;

    public const int OpHeaderLength = 20;
    public const int AckHeaderLength = 16;
    public const int AckEntryLength = 12;
    public const int KeepaliveLength = 8;

    /// <summary>Failures one ack frame lists at most; the receiver acks early when it has this many.</summary>
    public const int MaxAckFailures = 255;

    public const int MaxOpFrameLength = OpHeaderLength + ReplicationOp.MaxHeaderLength + ReplicationOp.MaxPayloadLength;

    public static void WriteOpHeader(Span<byte> frame, byte type, OpFlags flags, long sequence, int headerLength, int payloadLength)
    {
        frame[0] = Op;
        frame[1] = type;
        frame[2] = (byte)flags;
        frame[3] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(frame[4..], (uint)payloadLength);
        BinaryPrimitives.WriteInt64BigEndian(frame[8..], sequence);
        BinaryPrimitives.WriteUInt16BigEndian(frame[16..], (ushort)headerLength);
        BinaryPrimitives.WriteUInt16BigEndian(frame[18..], 0);
    }

    public static void WriteAckHeader(Span<byte> frame, long cumulative, int failures)
    {
        frame[..4].Clear();
        frame[0] = Ack;
        BinaryPrimitives.WriteUInt32BigEndian(frame[4..], (uint)failures);
        BinaryPrimitives.WriteInt64BigEndian(frame[8..], cumulative);
    }

    public static void WriteAckEntry(Span<byte> entry, long sequence, int status)
    {
        BinaryPrimitives.WriteInt64BigEndian(entry, sequence);
        BinaryPrimitives.WriteInt32BigEndian(entry[8..], status);
    }

    public static void WriteKeepalive(PipeWriter writer)
    {
        var span = writer.GetSpan(KeepaliveLength);
        span[..KeepaliveLength].Clear();
        span[0] = Keepalive;
        writer.Advance(KeepaliveLength);
    }

    /// <summary>Copies <paramref name="data"/> into the pipe, segment by segment (a 1 MiB payload spans several).</summary>
    public static void Copy(PipeWriter writer, ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty)
        {
            var span = writer.GetSpan(1);
            var n = Math.Min(span.Length, data.Length);
            data[..n].CopyTo(span);
            writer.Advance(n);
            data = data[n..];
        }
    }

    /// <summary>
    /// Flushes without waiting: the pipes are built with no pause threshold (the byte budget bounds
    /// them), so the flush completes at once. False when the socket's side of the pipe has ended.
    /// </summary>
    public static bool Flush(PipeWriter writer)
    {
        var flush = writer.FlushAsync();
        if (flush.IsCompletedSuccessfully)
        {
            return !flush.Result.IsCompleted;
        }

        // Cannot happen with pauseWriterThreshold 0; observe the task so nothing goes unobserved.
        _ = flush.AsTask().ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        return true;
    }
}
