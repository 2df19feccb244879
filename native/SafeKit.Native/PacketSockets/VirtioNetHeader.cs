using System.Runtime.InteropServices;

namespace SafeKit.Native.PacketSockets;

/// <summary>
/// struct virtio_net_hdr as the kernel writes it before each frame (PACKET_VNET_HDR) and reads it
/// before each packet written to a TUN opened with IFF_VNET_HDR. Host byte order.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct VirtioNetHeader
{
    public const int Size = 10;

    /// <summary>csum_start/csum_offset are valid: the checksum is partial and must be completed.</summary>
    public const byte FlagNeedsChecksum = 1;

    /// <summary>The checksum has been verified already.</summary>
    public const byte FlagDataValid = 2;

    public const byte GsoNone = 0;
    public const byte GsoTcpV4 = 1;
    public const byte GsoUdp = 3;
    public const byte GsoTcpV6 = 4;
    public const byte GsoUdpL4 = 5;
    public const byte GsoEcn = 0x80;

    public byte Flags;
    public byte GsoType;
    public ushort HeaderLength;
    public ushort GsoSize;
    public ushort ChecksumStart;
    public ushort ChecksumOffset;
}
