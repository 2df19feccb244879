using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace SafeKit.Dataplane.Parsing;

/// <summary>
/// Zero-allocation parser for the frames the farm dataplane sees: Ethernet with up to two VLAN tags,
/// ARP, IPv4 (options, fragments), IPv6 (extension headers, fragments), TCP, UDP, SCTP, DCCP,
/// UDP-Lite, ICMP and ICMPv6 including the flow quoted by error messages and NDP solicitations.
/// Every read is bounds-checked against the frame and the datagram length; nothing throws.
/// </summary>
[SkipLocalsInit]
public static class PacketParser
{
    private const int EthernetHeaderLength = 14;
    private const int MaxVlanTags = 2;
    private const int MaxExtensionHeaders = 8;
    private const int ArpLength = 28;
    private const int IPv4MinHeaderLength = 20;
    private const int IPv6HeaderLength = 40;

    /// <summary>Parses <paramref name="frame"/>, an Ethernet frame starting at its destination MAC.</summary>
    public static ParseStatus Parse(ReadOnlySpan<byte> frame, out ParsedPacket packet)
    {
        packet = default;
        packet.L4Offset = -1;
        packet.NdpTargetOffset = -1;
        packet.NdpSourceLinkLayerOffset = -1;
        if (frame.Length < EthernetHeaderLength)
        {
            return ParseStatus.Truncated;
        }

        var offset = 12;
        var etherType = BinaryPrimitives.ReadUInt16BigEndian(frame[offset..]);
        while (etherType is EtherTypes.Vlan or EtherTypes.QinQ)
        {
            if (packet.VlanCount == MaxVlanTags)
            {
                return ParseStatus.Unsupported;
            }

            if (frame.Length < offset + 6)
            {
                return ParseStatus.Truncated;
            }

            if (packet.VlanCount == 0)
            {
                packet.VlanId = (ushort)(BinaryPrimitives.ReadUInt16BigEndian(frame[(offset + 2)..]) & 0x0fff);
            }

            packet.VlanCount++;
            offset += 4;
            etherType = BinaryPrimitives.ReadUInt16BigEndian(frame[offset..]);
        }

        packet.EtherType = etherType;
        packet.L3Offset = offset + 2;
        return etherType switch
        {
            EtherTypes.IPv4 => ParseIPv4(frame, ref packet),
            EtherTypes.IPv6 => ParseIPv6(frame, ref packet),
            EtherTypes.Arp => ParseArp(frame, ref packet),
            _ => ParseStatus.Unsupported,
        };
    }

    private static ParseStatus ParseArp(ReadOnlySpan<byte> frame, ref ParsedPacket packet)
    {
        var l3 = packet.L3Offset;
        if (frame.Length < l3 + ArpLength)
        {
            return ParseStatus.Truncated;
        }

        var arp = frame.Slice(l3, ArpLength);
        var hardwareType = BinaryPrimitives.ReadUInt16BigEndian(arp);
        var protocolType = BinaryPrimitives.ReadUInt16BigEndian(arp[2..]);
        if (hardwareType != 1 || protocolType != EtherTypes.IPv4 || arp[4] != 6 || arp[5] != 4)
        {
            return ParseStatus.Unsupported;
        }

        packet.Network = NetworkLayer.Arp;
        packet.L3Length = ArpLength;
        packet.ArpOperation = BinaryPrimitives.ReadUInt16BigEndian(arp[6..]);
        packet.ArpSenderHardwareOffset = l3 + 8;
        packet.SourceOffset = l3 + 14;
        packet.DestinationOffset = l3 + 24;
        packet.AddressLength = 4;
        return ParseStatus.Ok;
    }

    private static ParseStatus ParseIPv4(ReadOnlySpan<byte> frame, ref ParsedPacket packet)
    {
        var l3 = packet.L3Offset;
        if (frame.Length < l3 + IPv4MinHeaderLength)
        {
            return ParseStatus.Truncated;
        }

        var header = frame[l3..];
        if (header[0] >> 4 != 4)
        {
            return ParseStatus.Malformed;
        }

        var headerLength = (header[0] & 0x0f) * 4;
        var totalLength = BinaryPrimitives.ReadUInt16BigEndian(header[2..]);
        if (headerLength < IPv4MinHeaderLength || totalLength < headerLength)
        {
            return ParseStatus.Malformed;
        }

        if (header.Length < totalLength)
        {
            return ParseStatus.Truncated;
        }

        if (headerLength > IPv4MinHeaderLength && !OptionsAreWellFormed(header[IPv4MinHeaderLength..headerLength]))
        {
            return ParseStatus.Malformed;
        }

        packet.Network = NetworkLayer.IPv4;
        packet.L3Length = totalLength;
        packet.AddressLength = 4;
        packet.SourceOffset = l3 + 12;
        packet.DestinationOffset = l3 + 16;
        packet.Protocol = header[9];
        var fragmentField = BinaryPrimitives.ReadUInt16BigEndian(header[6..]);
        packet.MoreFragments = (fragmentField & 0x2000) != 0;
        packet.FragmentOffset = (fragmentField & 0x1fff) * 8;
        packet.IsFragment = packet.MoreFragments || packet.FragmentOffset != 0;
        packet.FragmentId = BinaryPrimitives.ReadUInt16BigEndian(header[4..]);
        if (packet.FragmentOffset != 0)
        {
            return ParseStatus.Ok;
        }

        return ParseTransport(frame, ref packet, l3 + headerLength);
    }

    private static bool OptionsAreWellFormed(ReadOnlySpan<byte> options)
    {
        var i = 0;
        while (i < options.Length)
        {
            var type = options[i];
            if (type == 0)
            {
                return true;
            }

            if (type == 1)
            {
                i++;
                continue;
            }

            if (i + 1 >= options.Length)
            {
                return false;
            }

            var length = options[i + 1];
            if (length < 2 || i + length > options.Length)
            {
                return false;
            }

            i += length;
        }

        return true;
    }

    private static ParseStatus ParseIPv6(ReadOnlySpan<byte> frame, ref ParsedPacket packet)
    {
        var l3 = packet.L3Offset;
        if (frame.Length < l3 + IPv6HeaderLength)
        {
            return ParseStatus.Truncated;
        }

        var header = frame[l3..];
        if (header[0] >> 4 != 6)
        {
            return ParseStatus.Malformed;
        }

        var payloadLength = BinaryPrimitives.ReadUInt16BigEndian(header[4..]);
        if (payloadLength == 0)
        {
            // A jumbogram (or a GSO super-packet past 64 KiB): not something the farm accepts.
            return ParseStatus.Unsupported;
        }

        var totalLength = IPv6HeaderLength + payloadLength;
        if (header.Length < totalLength)
        {
            return ParseStatus.Truncated;
        }

        packet.Network = NetworkLayer.IPv6;
        packet.L3Length = totalLength;
        packet.AddressLength = 16;
        packet.SourceOffset = l3 + 8;
        packet.DestinationOffset = l3 + 24;
        var status = WalkExtensionHeaders(frame, l3, l3 + totalLength, out var chain);
        if (status != ParseStatus.Ok)
        {
            return status;
        }

        packet.Protocol = chain.Protocol;
        packet.IsFragment = chain.IsFragment;
        packet.MoreFragments = chain.MoreFragments;
        packet.FragmentOffset = chain.FragmentOffset;
        packet.FragmentId = chain.FragmentId;
        if (chain.TransportOffset < 0)
        {
            return ParseStatus.Ok;
        }

        return ParseTransport(frame, ref packet, chain.TransportOffset);
    }

    /// <summary>Follows the IPv6 next-header chain from the fixed header at <paramref name="l3"/>.</summary>
    private static ParseStatus WalkExtensionHeaders(ReadOnlySpan<byte> frame, int l3, int end, out ExtensionChain chain)
    {
        chain = default;
        chain.TransportOffset = -1;
        var next = frame[l3 + 6];
        var offset = l3 + IPv6HeaderLength;
        for (var count = 0; count <= MaxExtensionHeaders; count++)
        {
            switch (next)
            {
                case IpProtocol.HopByHop:
                case IpProtocol.IPv6Routing:
                case IpProtocol.IPv6DestinationOptions:
                case IpProtocol.Mobility:
                {
                    if (offset + 2 > end)
                    {
                        return ParseStatus.Truncated;
                    }

                    var length = (frame[offset + 1] + 1) * 8;
                    if (offset + length > end)
                    {
                        return ParseStatus.Truncated;
                    }

                    next = frame[offset];
                    offset += length;
                    break;
                }

                case IpProtocol.Ah:
                {
                    if (offset + 2 > end)
                    {
                        return ParseStatus.Truncated;
                    }

                    var length = (frame[offset + 1] + 2) * 4;
                    if (offset + length > end)
                    {
                        return ParseStatus.Truncated;
                    }

                    next = frame[offset];
                    offset += length;
                    break;
                }

                case IpProtocol.IPv6Fragment:
                {
                    if (offset + 8 > end)
                    {
                        return ParseStatus.Truncated;
                    }

                    if (chain.IsFragment)
                    {
                        return ParseStatus.Malformed;
                    }

                    var field = BinaryPrimitives.ReadUInt16BigEndian(frame[(offset + 2)..]);
                    chain.IsFragment = true;
                    chain.FragmentOffset = field & 0xfff8;
                    chain.MoreFragments = (field & 1) != 0;
                    chain.FragmentId = BinaryPrimitives.ReadUInt32BigEndian(frame[(offset + 4)..]);
                    next = frame[offset];
                    offset += 8;
                    if (chain.FragmentOffset != 0)
                    {
                        chain.Protocol = next;
                        return ParseStatus.Ok;
                    }

                    break;
                }

                case IpProtocol.IPv6NoNext:
                case IpProtocol.Esp:
                    chain.Protocol = next;
                    return ParseStatus.Ok;

                default:
                    chain.Protocol = next;
                    chain.TransportOffset = offset;
                    return ParseStatus.Ok;
            }
        }

        return ParseStatus.Malformed;
    }

    private static ParseStatus ParseTransport(ReadOnlySpan<byte> frame, ref ParsedPacket packet, int l4)
    {
        var end = packet.L3End;
        var protocol = packet.Protocol;
        var minimum = IpProtocol.MinimumHeaderLength(protocol);
        packet.L4Offset = l4;
        if (minimum == 0)
        {
            return ParseStatus.Ok;
        }

        if (l4 + minimum > end)
        {
            // A first fragment may legally stop before the whole transport header; ports are
            // still needed to decide the datagram, so it is treated as truncated either way.
            return ParseStatus.Truncated;
        }

        var transport = frame[l4..end];
        if (IpProtocol.HasPorts(protocol))
        {
            packet.HasPorts = true;
            packet.SourcePort = BinaryPrimitives.ReadUInt16BigEndian(transport);
            packet.DestinationPort = BinaryPrimitives.ReadUInt16BigEndian(transport[2..]);
            if (protocol == IpProtocol.Tcp)
            {
                var dataOffset = (transport[12] >> 4) * 4;
                if (dataOffset < 20)
                {
                    return ParseStatus.Malformed;
                }

                if (dataOffset > transport.Length)
                {
                    return ParseStatus.Truncated;
                }
            }

            return ParseStatus.Ok;
        }

        packet.IcmpType = transport[0];
        packet.IcmpCode = transport[1];
        return protocol == IpProtocol.Icmp
            ? ParseIcmpV4(frame, ref packet, l4, end)
            : ParseIcmpV6(frame, ref packet, l4, end);
    }

    private static ParseStatus ParseIcmpV4(ReadOnlySpan<byte> frame, ref ParsedPacket packet, int l4, int end)
    {
        // Destination unreachable, source quench, time exceeded, parameter problem quote our packet.
        if (packet.IcmpType is not (3 or 4 or 11 or 12))
        {
            return ParseStatus.Ok;
        }

        var inner = l4 + 8;
        if (inner + IPv4MinHeaderLength > end || frame[inner] >> 4 != 4)
        {
            return ParseStatus.Ok;
        }

        var headerLength = (frame[inner] & 0x0f) * 4;
        if (headerLength < IPv4MinHeaderLength || inner + headerLength > end)
        {
            return ParseStatus.Ok;
        }

        ref var embedded = ref packet.Embedded;
        embedded.Present = true;
        embedded.AddressLength = 4;
        embedded.SourceOffset = inner + 12;
        embedded.DestinationOffset = inner + 16;
        embedded.Protocol = frame[inner + 9];
        var fragmentOffset = BinaryPrimitives.ReadUInt16BigEndian(frame[(inner + 6)..]) & 0x1fff;
        var ports = inner + headerLength;
        if (fragmentOffset == 0 && IpProtocol.HasPorts(embedded.Protocol) && ports + 4 <= end)
        {
            embedded.HasPorts = true;
            embedded.SourcePort = BinaryPrimitives.ReadUInt16BigEndian(frame[ports..]);
            embedded.DestinationPort = BinaryPrimitives.ReadUInt16BigEndian(frame[(ports + 2)..]);
        }

        return ParseStatus.Ok;
    }

    private static ParseStatus ParseIcmpV6(ReadOnlySpan<byte> frame, ref ParsedPacket packet, int l4, int end)
    {
        switch (packet.IcmpType)
        {
            case 1 or 2 or 3 or 4:
                ParseEmbeddedIPv6(frame, ref packet.Embedded, l4 + 8, end);
                return ParseStatus.Ok;
            case 135:
                return ParseNeighborSolicitation(frame, ref packet, l4, end);
            default:
                return ParseStatus.Ok;
        }
    }

    private static void ParseEmbeddedIPv6(ReadOnlySpan<byte> frame, ref EmbeddedFlow embedded, int inner, int end)
    {
        if (inner + IPv6HeaderLength > end || frame[inner] >> 4 != 6)
        {
            return;
        }

        embedded.Present = true;
        embedded.AddressLength = 16;
        embedded.SourceOffset = inner + 8;
        embedded.DestinationOffset = inner + 24;
        if (WalkExtensionHeaders(frame, inner, end, out var chain) != ParseStatus.Ok)
        {
            embedded.Protocol = frame[inner + 6];
            return;
        }

        embedded.Protocol = chain.Protocol;
        if (chain.TransportOffset >= 0 && IpProtocol.HasPorts(chain.Protocol) && chain.TransportOffset + 4 <= end)
        {
            embedded.HasPorts = true;
            embedded.SourcePort = BinaryPrimitives.ReadUInt16BigEndian(frame[chain.TransportOffset..]);
            embedded.DestinationPort = BinaryPrimitives.ReadUInt16BigEndian(frame[(chain.TransportOffset + 2)..]);
        }
    }

    private static ParseStatus ParseNeighborSolicitation(ReadOnlySpan<byte> frame, ref ParsedPacket packet, int l4, int end)
    {
        // type, code, checksum, reserved (8 bytes) then the 16-byte target, then options.
        if (l4 + 24 > end)
        {
            return ParseStatus.Truncated;
        }

        packet.NdpTargetOffset = l4 + 8;
        var option = l4 + 24;
        while (option + 2 <= end)
        {
            var length = frame[option + 1] * 8;
            if (length == 0 || option + length > end)
            {
                return ParseStatus.Malformed;
            }

            if (frame[option] == 1 && length >= 8)
            {
                packet.NdpSourceLinkLayerOffset = option + 2;
            }

            option += length;
        }

        return ParseStatus.Ok;
    }

    private struct ExtensionChain
    {
        public byte Protocol;
        public int TransportOffset;
        public bool IsFragment;
        public bool MoreFragments;
        public int FragmentOffset;
        public uint FragmentId;
    }
}
