using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using SafeKit.Dataplane.Decisions;
using SafeKit.Native.Host;
using SafeKit.Native.PacketSockets;

namespace SafeKit.Loadgen;

/// <summary>
/// <c>frames --interface IF --dst-mac MAC --dst-ip IP [--count N | --seconds S] [--rate PPS]
/// [--src-net NET/LEN] [--dport P] [--size BYTES] [--seed S] [--malformed PERCENT]</c>:
/// UDP frames from random sources in a benchmarking range, sent with sendmmsg on an AF_PACKET
/// socket (qdisc bypassed). <c>--malformed</c> corrupts that share of frames (cut headers,
/// wrong versions and lengths) to exercise the parser's error paths on a live node.
/// </summary>
internal static class FramesCommand
{
    private const int Batch = 64;

    public static int Run(Options options)
    {
        var nic = options.String("interface");
        var info = NetworkInterfaceInfo.TryRead(nic) ?? throw new ArgumentException($"no interface {nic}");
        var destinationMac = ClusterMac.TryParse(options.String("dst-mac")) ?? throw new ArgumentException("--dst-mac is not a MAC");
        var destination = IPAddress.Parse(options.String("dst-ip"));
        var v6 = destination.AddressFamily == AddressFamily.InterNetworkV6;
        var (network, prefix) = ParseNetwork(options.String("src-net", v6 ? "2001:2::/48" : "198.18.0.0/15"));
        var count = options.Int("count", 0);
        var seconds = options.Double("seconds", count > 0 ? 0 : 1);
        var rate = options.Double("rate", 0);
        var destinationPort = (ushort)options.Int("dport", 9);
        var payload = options.Int("size", 18);
        var malformedPercent = options.Int("malformed", 0);
        var random = new Random(options.Int("seed", 1));
        var writer = new UdpFrameWriter(info.MacAddress, destinationMac, destination);
        var frameLength = writer.FrameLength(payload);
        var buffer = new byte[frameLength * Batch];
        var source = new byte[v6 ? 16 : 4];
        using var socket = PacketSocket.Open(new PacketSocketOptions { Interface = nic, QdiscBypass = true, SendBufferBytes = 4 << 20 });
        var clock = Stopwatch.StartNew();
        long sent = 0;
        long refused = 0;
        ushort id = 0;
        while (count > 0 ? sent < count : clock.Elapsed.TotalSeconds < seconds)
        {
            var batch = count > 0 ? (int)Math.Min(Batch, count - sent) : Batch;
            for (var i = 0; i < batch; i++)
            {
                RandomAddress(random, network, prefix, source);
                var frame = buffer.AsSpan(i * frameLength, frameLength);
                writer.Write(frame, source, (ushort)random.Next(1024, 65536), destinationPort, payload, id++);
                if (malformedPercent > 0 && random.Next(100) < malformedPercent)
                {
                    Corrupt(frame, random, v6);
                }
            }

            var taken = socket.SendBatch(buffer, frameLength, batch);
            sent += taken;
            refused += batch - taken;
            if (rate > 0)
            {
                var due = sent / rate;
                var wait = due - clock.Elapsed.TotalSeconds;
                if (wait > 0.0005)
                {
                    Thread.Sleep(TimeSpan.FromSeconds(wait));
                }
            }
        }

        var elapsed = clock.Elapsed.TotalSeconds;
        Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["sent"] = sent,
            ["refused"] = refused,
            ["seconds"] = Math.Round(elapsed, 3),
            ["pps"] = Math.Round(sent / elapsed),
        }));
        return 0;
    }

    private static void Corrupt(Span<byte> frame, Random random, bool v6)
    {
        switch (random.Next(4))
        {
            case 0:
                frame[14] = (byte)(v6 ? 0x45 : 0x65);
                break;
            case 1:
                frame[14] = v6 ? frame[14] : (byte)0x4f;
                frame[18] = 0xff;
                frame[19] = 0xff;
                break;
            case 2:
                frame[16] = 0xff;
                frame[17] = 0xff;
                break;
            default:
                frame[14 + (v6 ? 6 : 9)] = 6;
                frame[14 + (v6 ? 52 : 32)] = 0x10;
                break;
        }
    }

    private static (byte[] Network, int Prefix) ParseNetwork(string text)
    {
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        return (IPAddress.Parse(text[..slash]).GetAddressBytes(), int.Parse(text[(slash + 1)..], System.Globalization.CultureInfo.InvariantCulture));
    }

    private static void RandomAddress(Random random, byte[] network, int prefix, Span<byte> address)
    {
        random.NextBytes(address);
        for (var bit = 0; bit < prefix; bit++)
        {
            var mask = (byte)(0x80 >> (bit % 8));
            address[bit / 8] = (byte)((address[bit / 8] & ~mask) | (network[bit / 8] & mask));
        }
    }
}
