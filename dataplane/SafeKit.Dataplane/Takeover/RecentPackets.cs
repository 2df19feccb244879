using System.Buffers.Binary;
using SafeKit.Dataplane.Parsing;

namespace SafeKit.Dataplane.Takeover;

/// <summary>
/// The headers of the TCP packets this node saw and left to other nodes, in a fixed ring, so that
/// when it takes over the buckets of a node that died it can act on what that node never answered:
/// <list type="bullet">
/// <item>a SYN is handed to the local stack as is: the client gets its SYN-ACK at takeover instead
/// of waiting for its own retransmission (one second for a SYN);</item>
/// <item>for any other packet of a connection (a request, a retransmission) a bare ACK with the
/// client's sequence numbers is handed to the stack, which has no such connection and answers
/// with a reset the client accepts: it reconnects at once instead of after its backoff.</item>
/// </list>
/// Recording copies at most <see cref="SlotSize"/> bytes per rejected TCP packet; nothing is
/// allocated. One ring per worker thread.
/// </summary>
public sealed class RecentPackets
{
    public const int SlotSize = 128;

    private readonly byte[] _slots;
    private readonly long[] _ticks;
    private readonly int[] _buckets;
    private readonly short[] _lengths;
    private int _next;
    private int _count;

    public RecentPackets(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Capacity = capacity;
        _slots = GC.AllocateArray<byte>(capacity * SlotSize, pinned: true);
        _ticks = new long[capacity];
        _buckets = new int[capacity];
        _lengths = new short[capacity];
    }

    public int Capacity { get; }

    /// <summary>Records a rejected TCP packet (its IP header, TCP header and options; not its data).</summary>
    public void Record(ReadOnlySpan<byte> frame, in ParsedPacket packet, int bucket, long now)
    {
        if (packet.Protocol != IpProtocol.Tcp || packet.L4Offset < 0 || packet.IsFragment)
        {
            return;
        }

        var tcpLength = (frame[packet.L4Offset + 12] >> 4) * 4;
        var length = packet.L4Offset + tcpLength - packet.L3Offset;
        var syn = (frame[packet.L4Offset + 13] & 0x02) != 0;
        if (length > SlotSize || (syn && packet.L3Length > SlotSize))
        {
            return;
        }

        // A SYN is kept whole (it may carry data only with TCP Fast Open: then it is not kept).
        var keep = syn ? packet.L3Length : length;
        var slot = _next;
        frame.Slice(packet.L3Offset, keep).CopyTo(_slots.AsSpan(slot * SlotSize, SlotSize));
        _ticks[slot] = now;
        _buckets[slot] = bucket;
        _lengths[slot] = (short)keep;
        _next = slot + 1 == Capacity ? 0 : slot + 1;
        _count = Math.Min(_count + 1, Capacity);
    }

    /// <summary>
    /// Replays, newest first and once per connection, what was recorded since
    /// <paramref name="request"/>.SinceTick in the gained buckets: SYNs as they came, other packets
    /// as bare ACKs. Each packet goes to <paramref name="deliver"/>.
    /// </summary>
    /// <returns>Packets delivered.</returns>
    public int Replay(TakeoverRequest request, Func<ReadOnlyMemory<byte>, bool> deliver)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(deliver);
        var seen = new HashSet<(UInt128, UInt128, uint)>();
        var replayed = 0;
        for (var i = 0; i < _count; i++)
        {
            var slot = (_next - 1 - i + Capacity) % Capacity;
            if (_ticks[slot] < request.SinceTick)
            {
                break;
            }

            if (_buckets[slot] < 0 || _buckets[slot] >= request.Gained.Length || !request.Gained[_buckets[slot]])
            {
                continue;
            }

            var datagram = _slots.AsMemory(slot * SlotSize, _lengths[slot]);
            if (!TryFlow(datagram.Span, out var flow, out var tcp) || !seen.Add(flow))
            {
                continue;
            }

            var syn = (datagram.Span[tcp + 13] & 0x02) != 0;
            if (deliver(syn ? WithChecksum(datagram.Span, tcp) : BareAck(datagram.Span, tcp)))
            {
                replayed++;
            }
        }

        return replayed;
    }

    private static bool TryFlow(ReadOnlySpan<byte> datagram, out (UInt128, UInt128, uint) flow, out int tcp)
    {
        flow = default;
        tcp = 0;
        var version = datagram[0] >> 4;
        if (version == 4)
        {
            tcp = (datagram[0] & 0x0f) * 4;
            flow = (BinaryPrimitives.ReadUInt32BigEndian(datagram[12..]), BinaryPrimitives.ReadUInt32BigEndian(datagram[16..]), BinaryPrimitives.ReadUInt32BigEndian(datagram[tcp..]));
            return true;
        }

        if (version == 6 && datagram[6] == IpProtocol.Tcp)
        {
            tcp = 40;
            flow = (BinaryPrimitives.ReadUInt128BigEndian(datagram[8..]), BinaryPrimitives.ReadUInt128BigEndian(datagram[24..]), BinaryPrimitives.ReadUInt32BigEndian(datagram[tcp..]));
            return true;
        }

        return false;
    }

    /// <summary>
    /// A copy with the TCP checksum computed: the recorded packet may carry only the pseudo-header
    /// sum (a partial checksum the sender's NIC or veth was to complete).
    /// </summary>
    private static byte[] WithChecksum(ReadOnlySpan<byte> datagram, int tcp)
    {
        var packet = datagram.ToArray();
        var v4 = packet[0] >> 4 == 4;
        var header = packet.AsSpan(tcp);
        header[16] = 0;
        header[17] = 0;
        var checksum = v4
            ? InternetChecksum.Compute(packet.AsSpan(12, 4), packet.AsSpan(16, 4), IpProtocol.Tcp, header)
            : InternetChecksum.Compute(packet.AsSpan(8, 16), packet.AsSpan(24, 16), IpProtocol.Tcp, header);
        BinaryPrimitives.WriteUInt16BigEndian(header[16..], checksum);
        return packet;
    }

    /// <summary>The same segment without data or options, ACK only, checksums recomputed.</summary>
    private static byte[] BareAck(ReadOnlySpan<byte> datagram, int tcp)
    {
        var v4 = datagram[0] >> 4 == 4;
        var packet = new byte[tcp + 20];
        datagram[..tcp].CopyTo(packet);
        datagram.Slice(tcp, 20).CopyTo(packet.AsSpan(tcp));
        var header = packet.AsSpan(tcp);
        header[12] = 0x50;
        header[13] = 0x10;
        header[16] = 0;
        header[17] = 0;
        header[18] = 0;
        header[19] = 0;
        if (v4)
        {
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
            packet[10] = 0;
            packet[11] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(10), InternetChecksum.Compute(packet.AsSpan(0, tcp)));
            BinaryPrimitives.WriteUInt16BigEndian(header[16..], InternetChecksum.Compute(packet.AsSpan(12, 4), packet.AsSpan(16, 4), IpProtocol.Tcp, header));
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), 20);
            BinaryPrimitives.WriteUInt16BigEndian(header[16..], InternetChecksum.Compute(packet.AsSpan(8, 16), packet.AsSpan(24, 16), IpProtocol.Tcp, header));
        }

        return packet;
    }
}
