using SafeKit.Native.PacketSockets;

namespace SafeKit.Dataplane.Capture;

/// <summary>What a capture backend knows about a frame besides its bytes.</summary>
public readonly struct FrameInfo
{
    public FrameInfo(in VirtioNetHeader vnet, bool hasVnet, bool truncated)
    {
        Vnet = vnet;
        HasVnet = hasVnet;
        Truncated = truncated;
    }

    /// <summary>GSO and checksum state of the frame (valid when <see cref="HasVnet"/>).</summary>
    public VirtioNetHeader Vnet { get; }

    /// <summary>True when the backend delivers the kernel's offload metadata.</summary>
    public bool HasVnet { get; }

    /// <summary>The frame did not fit the capture buffer: its tail is missing.</summary>
    public bool Truncated { get; }
}
