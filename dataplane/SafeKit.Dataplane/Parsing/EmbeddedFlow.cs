using System.Runtime.InteropServices;

namespace SafeKit.Dataplane.Parsing;

/// <summary>
/// The header of the packet an ICMP error message quotes. It was sent by us (source = VIP) to the
/// client, so the client is its destination.
/// </summary>
[StructLayout(LayoutKind.Auto)]
public struct EmbeddedFlow
{
    /// <summary>True when the quoted IP header is complete.</summary>
    public bool Present;

    /// <summary>Offset of the quoted source address in the frame.</summary>
    public int SourceOffset;

    /// <summary>Offset of the quoted destination address in the frame.</summary>
    public int DestinationOffset;

    /// <summary>4 or 16.</summary>
    public byte AddressLength;

    /// <summary>Upper-layer protocol of the quoted packet.</summary>
    public byte Protocol;

    /// <summary>True when the quoted transport ports are present.</summary>
    public bool HasPorts;

    public ushort SourcePort;

    public ushort DestinationPort;
}
