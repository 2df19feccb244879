using System.Buffers.Binary;
using System.Net;
using System.Text.Json;
using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Parsing;
using SafeKit.Native.Host;
using SafeKit.Native.PacketSockets;

namespace SafeKit.Loadgen;

/// <summary>
/// <c>udp-raw --interface IF --dst-mac MAC --src-ip A --dst-ip B --sport P --dport P --payload-hex HEX [--count N]</c>:
/// sends a UDP datagram with any source address as a raw IPv4 frame — how tests replay captured
/// heartbeats and forge spoofed ones.
/// </summary>
internal static class UdpRawCommand
{
    public static int Run(Options options)
    {
        var nic = options.String("interface");
        var info = NetworkInterfaceInfo.TryRead(nic) ?? throw new ArgumentException($"no interface {nic}");
        var destinationMac = ClusterMac.TryParse(options.String("dst-mac")) ?? throw new ArgumentException("--dst-mac is not a MAC");
        var source = IPAddress.Parse(options.String("src-ip")).GetAddressBytes();
        var destination = IPAddress.Parse(options.String("dst-ip")).GetAddressBytes();
        var payload = Convert.FromHexString(options.String("payload-hex"));
        var count = options.Int("count", 1);
        var udpLength = 8 + payload.Length;
        var frame = new byte[14 + 20 + udpLength];
        destinationMac.CopyTo(frame, 0);
        info.MacAddress.CopyTo(frame, 6);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), EtherTypes.IPv4);
        var ip = frame.AsSpan(14, 20);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + udpLength));
        BinaryPrimitives.WriteUInt16BigEndian(ip[6..], 0x4000);
        ip[8] = 64;
        ip[9] = IpProtocol.Udp;
        source.CopyTo(ip[12..]);
        destination.CopyTo(ip[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], InternetChecksum.Compute(ip));
        var udp = frame.AsSpan(34, udpLength);
        BinaryPrimitives.WriteUInt16BigEndian(udp, (ushort)options.Int("sport", 4800));
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], (ushort)options.Int("dport", 4800));
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)udpLength);
        payload.CopyTo(udp[8..]);
        BinaryPrimitives.WriteUInt16BigEndian(udp[6..], InternetChecksum.Compute(source, destination, IpProtocol.Udp, udp));
        using var socket = PacketSocket.Open(new PacketSocketOptions { Interface = nic });
        var sent = 0;
        for (var i = 0; i < count; i++)
        {
            if (socket.Send(frame))
            {
                sent++;
            }

            Thread.Sleep(2);
        }

        Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object> { ["sent"] = sent }));
        return 0;
    }
}
