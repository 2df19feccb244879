using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace SafeKit.Dataplane.Decisions;

/// <summary>The virtual addresses of a farm, compared as integers on the packet path.</summary>
public sealed class VipSet
{
    private readonly uint[] _v4;
    private readonly UInt128[] _v6;
    private readonly int[] _v4Index;
    private readonly int[] _v6Index;

    public VipSet(IEnumerable<IPAddress> addresses)
    {
        ArgumentNullException.ThrowIfNull(addresses);
        var all = addresses.ToArray();
        Addresses = all;
        _v4 = all.Where(a => a.AddressFamily == AddressFamily.InterNetwork)
            .Select(a => BinaryPrimitives.ReadUInt32BigEndian(a.GetAddressBytes())).ToArray();
        _v6 = all.Where(a => a.AddressFamily == AddressFamily.InterNetworkV6)
            .Select(a => BinaryPrimitives.ReadUInt128BigEndian(a.GetAddressBytes())).ToArray();
        _v4Index = Enumerable.Range(0, all.Length).Where(i => all[i].AddressFamily == AddressFamily.InterNetwork).ToArray();
        _v6Index = Enumerable.Range(0, all.Length).Where(i => all[i].AddressFamily == AddressFamily.InterNetworkV6).ToArray();
    }

    public IReadOnlyList<IPAddress> Addresses { get; }

    public bool HasIPv4 => _v4.Length > 0;

    public bool HasIPv6 => _v6.Length > 0;

    /// <summary>True when the 4- or 16-byte address is one of the VIPs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Contains(ReadOnlySpan<byte> address) => IndexOf(address) >= 0;

    /// <summary>Position of the 4- or 16-byte address in <see cref="Addresses"/>, or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int IndexOf(ReadOnlySpan<byte> address)
    {
        if (address.Length == 4)
        {
            var value = BinaryPrimitives.ReadUInt32BigEndian(address);
            for (var i = 0; i < _v4.Length; i++)
            {
                if (_v4[i] == value)
                {
                    return _v4Index[i];
                }
            }

            return -1;
        }

        if (address.Length == 16)
        {
            var value = BinaryPrimitives.ReadUInt128BigEndian(address);
            for (var i = 0; i < _v6.Length; i++)
            {
                if (_v6[i] == value)
                {
                    return _v6Index[i];
                }
            }
        }

        return -1;
    }
}
