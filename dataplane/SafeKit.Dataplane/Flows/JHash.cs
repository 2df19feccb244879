using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace SafeKit.Dataplane.Flows;

/// <summary>
/// The Linux kernel's jhash (Bob Jenkins' lookup3 with JHASH_INITVAL), bit-identical to what
/// nftables computes for <c>jhash &lt;expr&gt; mod N seed S</c>: words are read little-endian, the
/// tail is zero-padded, and the bucket is <c>reciprocal_scale(hash, N)</c>, not <c>hash % N</c>.
/// </summary>
[SkipLocalsInit]
public static class JHash
{
    private const uint InitialValue = 0xdeadbeef;

    /// <summary>jhash(key, length, seed).</summary>
    public static uint Hash(ReadOnlySpan<byte> key, uint seed)
    {
        uint a, b, c;
        a = b = c = InitialValue + (uint)key.Length + seed;
        var remaining = key;
        while (remaining.Length > 12)
        {
            a += BinaryPrimitives.ReadUInt32LittleEndian(remaining);
            b += BinaryPrimitives.ReadUInt32LittleEndian(remaining[4..]);
            c += BinaryPrimitives.ReadUInt32LittleEndian(remaining[8..]);
            Mix(ref a, ref b, ref c);
            remaining = remaining[12..];
        }

        if (remaining.IsEmpty)
        {
            return c;
        }

        Span<byte> tail = stackalloc byte[12];
        tail.Clear();
        remaining.CopyTo(tail);
        a += BinaryPrimitives.ReadUInt32LittleEndian(tail);
        b += BinaryPrimitives.ReadUInt32LittleEndian(tail[4..]);
        c += BinaryPrimitives.ReadUInt32LittleEndian(tail[8..]);
        Final(ref a, ref b, ref c);
        return c;
    }

    /// <summary>
    /// jhash of a 4-, 8-, 16- or 20-byte flow key given as its little-endian 32-bit words, without
    /// copying the key: the shapes <see cref="FlowHasher"/> builds (address, then optionally the
    /// padded port word). Bit-identical to <see cref="Hash"/> over the same bytes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint HashFlowKey(ReadOnlySpan<byte> address, bool withPort, uint portWord, uint seed)
    {
        var length = (uint)address.Length + (withPort ? 4u : 0u);
        uint a, b, c;
        a = b = c = InitialValue + length + seed;
        var w0 = BinaryPrimitives.ReadUInt32LittleEndian(address);
        if (address.Length == 4)
        {
            a += w0;
            if (withPort)
            {
                b += portWord;
            }

            Final(ref a, ref b, ref c);
            return c;
        }

        a += w0;
        b += BinaryPrimitives.ReadUInt32LittleEndian(address[4..]);
        c += BinaryPrimitives.ReadUInt32LittleEndian(address[8..]);
        Mix(ref a, ref b, ref c);
        a += BinaryPrimitives.ReadUInt32LittleEndian(address[12..]);
        if (withPort)
        {
            b += portWord;
        }

        Final(ref a, ref b, ref c);
        return c;
    }

    /// <summary>The kernel's reciprocal_scale: maps a 32-bit hash onto [0, range).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Scale(uint hash, uint range) => (uint)(((ulong)hash * range) >> 32);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Mix(ref uint a, ref uint b, ref uint c)
    {
        a -= c; a ^= BitOperations.RotateLeft(c, 4); c += b;
        b -= a; b ^= BitOperations.RotateLeft(a, 6); a += c;
        c -= b; c ^= BitOperations.RotateLeft(b, 8); b += a;
        a -= c; a ^= BitOperations.RotateLeft(c, 16); c += b;
        b -= a; b ^= BitOperations.RotateLeft(a, 19); a += c;
        c -= b; c ^= BitOperations.RotateLeft(b, 4); b += a;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Final(ref uint a, ref uint b, ref uint c)
    {
        c ^= b; c -= BitOperations.RotateLeft(b, 14);
        a ^= c; a -= BitOperations.RotateLeft(c, 11);
        b ^= a; b -= BitOperations.RotateLeft(a, 25);
        c ^= b; c -= BitOperations.RotateLeft(b, 16);
        a ^= c; a -= BitOperations.RotateLeft(c, 4);
        b ^= a; b -= BitOperations.RotateLeft(a, 14);
        c ^= b; c -= BitOperations.RotateLeft(b, 24);
    }
}
