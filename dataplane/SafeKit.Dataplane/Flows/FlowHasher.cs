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

    /// <summary>Hash of a client given by its 4- or 16-byte address and, when the key uses it, its port.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint Hash(ReadOnlySpan<byte> clientAddress, bool withPort, ushort clientPort)
    {
        if (clientAddress.Length is not (4 or 16))
        {
            throw new ArgumentException("a client address has 4 or 16 bytes", nameof(clientAddress));
        }

        // The port occupies the first two bytes of its 32-bit register, big-endian, then zeros;
        // read little-endian that word is (low byte << 8) | high byte.
        var portWord = (uint)((clientPort >> 8) | ((clientPort & 0xff) << 8));
        return JHash.HashFlowKey(clientAddress, withPort, portWord, _seed);
    }
}
