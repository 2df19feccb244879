using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using SafeKit.Dataplane.Parsing;

namespace SafeKit.Loadgen;

/// <summary>Writes complete Ethernet/IP/UDP frames with valid checksums into a buffer.</summary>
internal sealed class UdpFrameWriter
{
    private readonly byte[] _sourceMac;
    private readonly byte[] _destinationMac;
    private readonly byte[] _destination;
    private readonly bool _v6;

    public UdpFrameWriter(byte[] sourceMac, byte[] destinationMac, IPAddress destination)
    {
        _sourceMac = sourceMac;
        _destinationMac = destinationMac;
        _destination = destination.GetAddressBytes();
        _v6 = destination.AddressFamily == AddressFamily.InterNetworkV6;
    }

    /// <summary>Bytes of a frame carrying <paramref name="payload"/> bytes of UDP data.</summary>
    public int FrameLength(int payload) => 14 + (_v6 ? 40 : 20) + 8 + payload;

    public int Write(Span<byte> frame, ReadOnlySpan<byte> source, ushort sourcePort, ushort destinationPort, int payload, ushort id)
    {
        _destinationMac.CopyTo(frame);
        _sourceMac.CopyTo(frame[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(frame[12..], _v6 ? EtherTypes.IPv6 : EtherTypes.IPv4);
        var ip = frame[14..];
        var udpLength = 8 + payload;
        int headerLength;
        if (_v6)
        {
            headerLength = 40;
            BinaryPrimitives.WriteUInt32BigEndian(ip, 0x60000000);
            BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)udpLength);
            ip[6] = IpProtocol.Udp;
            ip[7] = 64;
            source.CopyTo(ip[8..]);
            _destination.CopyTo(ip[24..]);
        }
        else
        {
            headerLength = 20;
            ip[0] = 0x45;
            ip[1] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + udpLength));
            BinaryPrimitives.WriteUInt16BigEndian(ip[4..], id);
            BinaryPrimitives.WriteUInt16BigEndian(ip[6..], 0x4000);
            ip[8] = 64;
            ip[9] = IpProtocol.Udp;
            ip[10] = 0;
            ip[11] = 0;
            source.CopyTo(ip[12..]);
            _destination.CopyTo(ip[16..]);
            BinaryPrimitives.WriteUInt16BigEndian(ip[10..], InternetChecksum.Compute(ip[..20]));
        }

        var udp = ip.Slice(headerLength, udpLength);
        BinaryPrimitives.WriteUInt16BigEndian(udp, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], destinationPort);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)udpLength);
        BinaryPrimitives.WriteUInt16BigEndian(udp[6..], 0);
        udp[8..].Fill(0x5a);
        var checksum = InternetChecksum.Compute(source, _destination, IpProtocol.Udp, udp);
        BinaryPrimitives.WriteUInt16BigEndian(udp[6..], checksum == 0 ? (ushort)0xffff : checksum);
        return 14 + headerLength + udpLength;
    }
}
