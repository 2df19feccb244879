using System.Buffers.Binary;
using PacketDotNet;
using SafeKit.Dataplane.Parsing;
using SafeKit.Dataplane.Takeover;
using static SafeKit.Tests.Infrastructure.TestFrames;

namespace SafeKit.Tests.Dataplane;

public sealed class RecentPacketsTests
{
    [Fact]
    public void Replay_GainedBuckets_SynAsItCameAndOtherPacketsAsBareAcks_WithValidChecksums()
    {
        var ring = new RecentPackets(64);
        var syn = Tcp(Client, 40000, Vip, 80);
        MakeChecksumPartial(syn);
        var data = DataSegment(40001, seq: 1000, ack: 2000, payload: 300);
        var older = DataSegment(40001, seq: 900, ack: 2000, payload: 100);
        var elsewhere = DataSegment(40002, seq: 5, ack: 6, payload: 10);
        // Too old: recorded before the dead node went silent.
        Record(ring, DataSegment(40003, 1, 1, 10), bucket: 5, now: 10);
        Record(ring, older, bucket: 5, now: 100);
        Record(ring, syn, bucket: 5, now: 110);
        Record(ring, data, bucket: 5, now: 120);
        Record(ring, elsewhere, bucket: 6, now: 130);
        var gained = new bool[8];
        gained[5] = true;
        var delivered = new List<byte[]>();

        var count = ring.Replay(new TakeoverRequest(gained, 50), d => { delivered.Add(d.ToArray()); return true; });

        Assert.Equal(2, count);
        var packets = delivered.Select(d => (TcpPacket)new IPv4Packet(new PacketDotNet.Utils.ByteArraySegment(d)).PayloadPacket).ToList();
        Assert.All(delivered, d => Assert.True(TcpChecksumValid(d), "a replayed packet has a wrong TCP checksum: " + Convert.ToHexString(d)));
        Assert.All(delivered, d => Assert.True(new IPv4Packet(new PacketDotNet.Utils.ByteArraySegment(d)).ValidIPChecksum));
        var synOut = Assert.Single(packets, p => p.Synchronize);
        Assert.Equal(40000, synOut.SourcePort);
        var ack = Assert.Single(packets, p => !p.Synchronize);
        Assert.Equal(40001, ack.SourcePort);
        Assert.Equal(1000u, ack.SequenceNumber);
        Assert.Equal(2000u, ack.AcknowledgmentNumber);
        Assert.True(ack.Acknowledgment && !ack.Push && !ack.Finished && !ack.Reset);
        Assert.Empty(ack.PayloadData ?? []);
    }

    [Fact]
    public void Record_RingFull_KeepsTheNewest()
    {
        var ring = new RecentPackets(4);
        for (ushort port = 1; port <= 10; port++)
        {
            Record(ring, DataSegment((ushort)(1000 + port), 1, 1, 10), bucket: 0, now: port);
        }

        var delivered = new List<int>();
        ring.Replay(new TakeoverRequest([true], 0), d => { delivered.Add(BinaryPrimitives.ReadUInt16BigEndian(d.Span[20..])); return true; });

        Assert.Equal([1010, 1009, 1008, 1007], delivered);
    }

    private static bool TcpChecksumValid(byte[] datagram)
    {
        var headerLength = (datagram[0] & 0x0f) * 4;
        var segment = datagram.AsSpan(headerLength);
        var sum = InternetChecksum.Add(InternetChecksum.PseudoHeader(datagram.AsSpan(12, 4), datagram.AsSpan(16, 4), IpProtocol.Tcp, segment.Length), segment);
        return InternetChecksum.Fold(sum) == 0xffff;
    }

    private static void Record(RecentPackets ring, byte[] frame, int bucket, long now)
    {
        Assert.Equal(ParseStatus.Ok, PacketParser.Parse(frame, out var packet));
        ring.Record(frame, packet, bucket, now);
    }

    private static byte[] DataSegment(ushort sourcePort, uint seq, uint ack, int payload)
    {
        var tcp = new TcpPacket(sourcePort, 80) { Acknowledgment = true, Push = true, SequenceNumber = seq, AcknowledgmentNumber = ack, WindowSize = 500, PayloadData = new byte[payload] };
        return Wrap(Client, Vip, tcp);
    }

    private static void MakeChecksumPartial(byte[] frame)
    {
        PacketParser.Parse(frame, out var p);
        var pseudo = InternetChecksum.PseudoHeader(frame.AsSpan(p.SourceOffset, 4), frame.AsSpan(p.DestinationOffset, 4), IpProtocol.Tcp, p.L3End - p.L4Offset);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(p.L4Offset + 16), InternetChecksum.Fold(pseudo));
    }
}
