using System.Net;
using System.Net.NetworkInformation;
using PacketDotNet;

namespace SafeKit.Benchmarks;

/// <summary>A fixed mix of client frames to the VIP: TCP and UDP, IPv4 and IPv6, random clients.</summary>
internal static class BenchmarkFrames
{
    public static readonly IPAddress Vip = IPAddress.Parse("198.18.0.100");
    public static readonly IPAddress Vip6 = IPAddress.Parse("2001:2::100");
    public static readonly byte[] ClusterMac = [0x02, 0x53, 0x4b, 0x12, 0x00, 0x64];

    public static byte[][] Mix(int count, int seed)
    {
        var random = new Random(seed);
        var frames = new byte[count][];
        for (var i = 0; i < count; i++)
        {
            var v6 = i % 4 == 3;
            var source = new byte[v6 ? 16 : 4];
            random.NextBytes(source);
            source[0] = v6 ? (byte)0x20 : (byte)198;
            Packet transport = i % 2 == 0
                ? new TcpPacket((ushort)random.Next(1024, 65536), 80) { Acknowledgment = true, PayloadData = new byte[random.Next(0, 200)] }
                : new UdpPacket((ushort)random.Next(1024, 65536), 53) { PayloadData = new byte[random.Next(8, 200)] };
            IPPacket ip = v6 ? new IPv6Packet(new IPAddress(source), Vip6) : new IPv4Packet(new IPAddress(source), Vip);
            ip.PayloadPacket = transport;
            var ethernet = new EthernetPacket(PhysicalAddress.Parse("02-C1-00-00-00-10"), new PhysicalAddress(ClusterMac), v6 ? EthernetType.IPv6 : EthernetType.IPv4) { PayloadPacket = ip };
            ethernet.UpdateCalculatedValues();
            frames[i] = ethernet.Bytes;
        }

        return frames;
    }
}
