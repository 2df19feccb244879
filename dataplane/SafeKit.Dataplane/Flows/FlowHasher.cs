using System.Runtime.CompilerServices;
using SafeKit.Dataplane.Parsing;

namespace SafeKit.Dataplane.Flows;

/// <summary>
/// Builds the flow key of a client and hashes it with <see cref="JHash"/>. The key has the same
/// layout as the nftables concatenation <c>ip saddr . th sport</c> (each field padded to 32 bits),
/// so the kernel can compute the same bucket:
/// <list type="bullet">
/// <item>client-ip, or a protocol without ports: the address (4 or 16 bytes);</item>
/// <item>client-ip-port with TCP/UDP/SCTP/DCCP/UDP-Lite: address, port (big-endian), two zero bytes.</item>
/// </list>
/// </summary>
[SkipLocalsInit]
public readonly struct FlowHasher
{
    private readonly uint _seed;
    private readonly bool _usePorts;

    public FlowHasher(Affinity affinity, uint seed)
    {
        Affinity = affinity;
        _seed = seed;
        _usePorts = affinity == Affinity.ClientIpPort;
    }

    public Affinity Affinity { get; }

    public uint Seed => _seed;

    /// <summary>True when the key of <paramref name="protocol"/> includes the client port.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool KeyUsesPort(byte protocol) => _usePorts && IpProtocol.HasPorts(protocol);

    /// <summary>Hash of a client given by its address and, when the key uses it, its port.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint Hash(ReadOnlySpan<byte> clientAddress, bool withPort, ushort clientPort)
    {
        if (!withPort)
        {
            return JHash.Hash(clientAddress, _seed);
        }

        Span<byte> key = stackalloc byte[20];
        clientAddress.CopyTo(key);
        var at = clientAddress.Length;
        key[at] = (byte)(clientPort >> 8);
        key[at + 1] = (byte)clientPort;
        key[at + 2] = 0;
        key[at + 3] = 0;
        return JHash.Hash(key[..(at + 4)], _seed);
    }
}
