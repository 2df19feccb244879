using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using SafeKit.Dataplane.Parsing;

namespace SafeKit.Dataplane.Flows;

/// <summary>One client flow to a VIP: client and VIP addresses and ports, protocol.</summary>
public readonly record struct FlowKey(UInt128 Client, UInt128 Vip, ushort ClientPort, ushort VipPort, byte Protocol)
{
    /// <summary>The flow of a packet sent by a client to a VIP.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static FlowKey FromClient(ReadOnlySpan<byte> frame, in ParsedPacket packet) => new(
        Address(frame.Slice(packet.SourceOffset, packet.AddressLength)),
        Address(frame.Slice(packet.DestinationOffset, packet.AddressLength)),
        packet.HasPorts ? packet.SourcePort : (ushort)0,
        packet.HasPorts ? packet.DestinationPort : (ushort)0,
        packet.Protocol);

    /// <summary>The flow an ICMP error is about (it quotes a packet the VIP sent to the client).</summary>
    public static FlowKey FromQuoted(ReadOnlySpan<byte> frame, in EmbeddedFlow quoted) => new(
        Address(frame.Slice(quoted.DestinationOffset, quoted.AddressLength)),
        Address(frame.Slice(quoted.SourceOffset, quoted.AddressLength)),
        quoted.HasPorts ? quoted.DestinationPort : (ushort)0,
        quoted.HasPorts ? quoted.SourcePort : (ushort)0,
        quoted.Protocol);

    /// <summary>A TCP flow given by its addresses (4 or 16 bytes each) and ports, as the stack reports its sockets.</summary>
    public static FlowKey Tcp(ReadOnlySpan<byte> client, ushort clientPort, ReadOnlySpan<byte> vip, ushort vipPort) =>
        new(Address(client), Address(vip), clientPort, vipPort, IpProtocol.Tcp);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Mix()
    {
        var x = ((ulong)Client * 0x9e3779b97f4a7c15UL) ^ (ulong)(Client >> 64) ^ (ulong)Vip ^ (ulong)(Vip >> 64)
            ^ ((((ulong)ClientPort << 24) | ((ulong)VipPort << 8) | Protocol) * 0xc2b2ae3d27d4eb4fUL);
        x ^= x >> 29;
        x *= 0xbf58476d1ce4e5b9UL;
        return x ^ (x >> 32);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static UInt128 Address(ReadOnlySpan<byte> address) =>
        address.Length == 16 ? BinaryPrimitives.ReadUInt128BigEndian(address) : BinaryPrimitives.ReadUInt32BigEndian(address);
}
