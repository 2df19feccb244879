using System.Buffers.Binary;
using SafeKit.Dataplane.Delivery;
using SafeKit.Dataplane.Parsing;
using static SafeKit.Tests.Infrastructure.TestFrames;

namespace SafeKit.Tests.Dataplane;

public sealed class ChecksumRepairTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Complete_PartialChecksum_IsCompletedToTheTrueValue(bool v6)
    {
        var frame = Tcp(v6 ? Client6 : Client, 40000, v6 ? Vip6 : Vip, 80, payload: 33);
        PacketParser.Parse(frame, out var p);
        var field = p.L4Offset + 16;
        var expected = BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(field));
        // What a veth peer hands over with CHECKSUM_PARTIAL: the folded pseudo-header sum only.
        var pseudo = InternetChecksum.PseudoHeader(frame.AsSpan(p.SourceOffset, p.AddressLength), frame.AsSpan(p.DestinationOffset, p.AddressLength), IpProtocol.Tcp, p.L3End - p.L4Offset);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(field), InternetChecksum.Fold(pseudo));

        var result = ChecksumRepair.Complete(frame.AsSpan(p.L3Offset, p.L3Length), p);

        Assert.Equal(ChecksumRepair.Result.Completed, result);
        Assert.Equal(expected, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(field)));
    }

    [Fact]
    public void Complete_ValidChecksum_IsLeftAlone()
    {
        var frame = Udp(Client, 5000, Vip, 53, payload: 17);
        var copy = (byte[])frame.Clone();
        PacketParser.Parse(frame, out var p);

        Assert.Equal(ChecksumRepair.Result.Valid, ChecksumRepair.Complete(frame.AsSpan(p.L3Offset, p.L3Length), p));
        Assert.Equal(copy, frame);
    }

    [Fact]
    public void Complete_CorruptChecksum_IsNotHidden()
    {
        var frame = Tcp(Client, 40000, Vip, 80, payload: 5);
        PacketParser.Parse(frame, out var p);
        frame[p.L4Offset + 16] ^= 0x55;
        var copy = (byte[])frame.Clone();

        Assert.Equal(ChecksumRepair.Result.Corrupt, ChecksumRepair.Complete(frame.AsSpan(p.L3Offset, p.L3Length), p));
        Assert.Equal(copy, frame);
    }
}
