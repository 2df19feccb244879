using System.Buffers.Binary;
using SafeKit.Dataplane.Parsing;

namespace SafeKit.Dataplane.Delivery;

/// <summary>
/// Completes partial TCP/UDP checksums for a backend without offload metadata (libpcap). A veth
/// peer hands over packets whose checksum field holds only the pseudo-header sum
/// (CHECKSUM_PARTIAL); written to a TUN as they are, the kernel drops them (TcpInCsumErrors).
/// A packet whose checksum is already right is left alone; one whose field holds exactly the
/// pseudo-header sum is completed; anything else is corrupt and left for the kernel to drop.
/// </summary>
public static class ChecksumRepair
{
    /// <summary>Outcome of <see cref="Complete"/>.</summary>
    public enum Result
    {
        Valid,
        Completed,
        Corrupt,
        NotApplicable,
    }

    /// <summary>Checks and if needed completes the transport checksum of one datagram in place.</summary>
    /// <param name="datagram">The IP datagram (starting at the IP header).</param>
    /// <param name="packet">Its parse, with offsets relative to the frame.</param>
    public static Result Complete(Span<byte> datagram, in ParsedPacket packet)
    {
        var protocol = packet.Protocol;
        if (packet.IsFragment || packet.L4Offset < 0 || protocol is not (IpProtocol.Tcp or IpProtocol.Udp))
        {
            return Result.NotApplicable;
        }

        var l3 = packet.L3Offset;
        var l4 = packet.L4Offset - l3;
        var source = datagram.Slice(packet.SourceOffset - l3, packet.AddressLength);
        var destination = datagram.Slice(packet.DestinationOffset - l3, packet.AddressLength);
        var segment = datagram[l4..];
        var field = protocol == IpProtocol.Tcp ? 16 : 6;
        var stored = BinaryPrimitives.ReadUInt16BigEndian(segment[field..]);
        if (protocol == IpProtocol.Udp && stored == 0 && packet.AddressLength == 4)
        {
            return Result.Valid;
        }

        var pseudo = InternetChecksum.PseudoHeader(source, destination, protocol, segment.Length);
        if (InternetChecksum.Fold(InternetChecksum.Add(pseudo, segment)) == 0xffff)
        {
            return Result.Valid;
        }

        var partial = InternetChecksum.Fold(pseudo);
        if (stored != partial)
        {
            return Result.Corrupt;
        }

        BinaryPrimitives.WriteUInt16BigEndian(segment[field..], 0);
        var complete = (ushort)~InternetChecksum.Fold(InternetChecksum.Add(pseudo, segment));
        if (complete == 0 && protocol == IpProtocol.Udp)
        {
            complete = 0xffff;
        }

        BinaryPrimitives.WriteUInt16BigEndian(segment[field..], complete);
        return Result.Completed;
    }
}
