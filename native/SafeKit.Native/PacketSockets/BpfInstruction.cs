using System.Runtime.InteropServices;

namespace SafeKit.Native.PacketSockets;

/// <summary>One classic BPF instruction (struct sock_filter).</summary>
[StructLayout(LayoutKind.Sequential)]
public readonly record struct BpfInstruction(ushort Code, byte JumpTrue, byte JumpFalse, uint K)
{
    public const ushort LoadHalfAbsolute = 0x28;
    public const ushort LoadWordAbsolute = 0x20;
    public const ushort LoadByteAbsolute = 0x30;
    public const ushort JumpEqual = 0x15;
    public const ushort JumpSet = 0x45;
    public const ushort Return = 0x06;
}
