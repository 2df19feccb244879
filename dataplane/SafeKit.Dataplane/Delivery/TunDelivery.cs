using SafeKit.Dataplane.Capture;
using SafeKit.Dataplane.Parsing;
using SafeKit.Native.PacketSockets;
using SafeKit.Native.Tun;

namespace SafeKit.Dataplane.Delivery;

/// <summary>
/// Hands accepted datagrams to the local stack through the VIP's TUN device. With offload
/// metadata from the capture the virtio-net header is passed on (its offsets rebased from the
/// Ethernet frame to the IP header), so GSO super-packets stay whole and partial checksums are
/// completed by the kernel; without it, checksums are completed here.
/// </summary>
public sealed class TunDelivery
{
    private readonly TunDevice _tun;

    public TunDelivery(TunDevice tun)
    {
        _tun = tun;
    }

    /// <summary>Delivers the datagram of an accepted frame. False when the kernel refused it.</summary>
    public bool Deliver(Span<byte> frame, in ParsedPacket packet, in FrameInfo info)
    {
        var l3 = packet.L3Offset;
        var datagram = frame.Slice(l3, packet.L3Length);
        if (info.HasVnet)
        {
            var header = info.Vnet;
            if ((header.Flags & VirtioNetHeader.FlagNeedsChecksum) != 0)
            {
                header.ChecksumStart = (ushort)(header.ChecksumStart - l3);
            }

            header.HeaderLength = header.HeaderLength > l3 ? (ushort)(header.HeaderLength - l3) : (ushort)0;
            return _tun.Write(header, datagram);
        }

        _ = ChecksumRepair.Complete(datagram, packet);
        return _tun.Write(datagram);
    }

    /// <summary>Delivers a bare IP datagram (a fragment held back earlier).</summary>
    public bool DeliverDatagram(ReadOnlySpan<byte> datagram) => _tun.Write(datagram);
}
