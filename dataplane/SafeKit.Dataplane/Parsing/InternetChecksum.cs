using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace SafeKit.Dataplane.Parsing;

/// <summary>The RFC 1071 ones'-complement checksum of IPv4, TCP, UDP and ICMP(v6).</summary>
public static class InternetChecksum
{
    /// <summary>Adds <paramref name="data"/> to a running 32-bit sum (not yet folded).</summary>
    public static ulong Add(ulong sum, ReadOnlySpan<byte> data)
    {
        while (data.Length >= 8)
        {
            var word = BinaryPrimitives.ReadUInt64BigEndian(data);
            sum += (word >> 32) + (word & 0xffffffff);
            data = data[8..];
        }

        while (data.Length >= 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(data);
            data = data[2..];
        }

        if (data.Length == 1)
        {
            sum += (ulong)data[0] << 8;
        }

        return sum;
    }

    /// <summary>Folds a running sum to 16 bits (not complemented).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Fold(ulong sum)
    {
        while (sum >> 16 != 0)
        {
            sum = (sum & 0xffff) + (sum >> 16);
        }

        return (ushort)sum;
    }

    /// <summary>Sum of the TCP/UDP/ICMPv6 pseudo-header of an IPv4 or IPv6 packet.</summary>
    public static ulong PseudoHeader(ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination, byte protocol, int upperLength)
    {
        var sum = Add(0, source);
        sum = Add(sum, destination);
        return sum + protocol + (ulong)(uint)upperLength;
    }

    /// <summary>Checksum (complemented) over a pseudo-header and a transport segment.</summary>
    public static ushort Compute(ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination, byte protocol, ReadOnlySpan<byte> segment)
    {
        var sum = Add(PseudoHeader(source, destination, protocol, segment.Length), segment);
        return (ushort)~Fold(sum);
    }

    /// <summary>Checksum (complemented) of a header such as IPv4's.</summary>
    public static ushort Compute(ReadOnlySpan<byte> header) => (ushort)~Fold(Add(0, header));
}
