using System.Net;
using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Parsing;
using SafeKit.Tests.Infrastructure;
using static SafeKit.Tests.Infrastructure.TestFrames;

namespace SafeKit.Tests.Dataplane;

public sealed class AllocationTests
{
    [Fact]
    public void ParseAndDecide_MillionMixedFrames_AllocateNothing()
    {
        var farm = new Farm(3);
        var decider = farm.Deciders[0];
        var random = new Random(12);
        var frames = new List<byte[]>(PacketParserTests.SampleFrames());
        for (var i = 0; i < 64; i++)
        {
            var client = Farm.RandomClient(random, i % 4 == 0);
            var vip = i % 4 == 0 ? Vip6 : Vip;
            frames.Add(i % 2 == 0 ? Tcp(client, (ushort)random.Next(65536), vip, 80) : Udp(client, (ushort)random.Next(65536), vip, 53));
            frames.Add(Ethernet(VipMac, EtherTypes.IPv4, IPv4(client, Vip, IpProtocol.Udp, new byte[200], id: (ushort)i, fragmentOffset: 1480)));
            frames.Add(Ethernet(VipMac, EtherTypes.IPv4, IPv4(client, Vip, IpProtocol.Udp, Ports(7, 53, 1000), id: (ushort)i, moreFragments: true)));
        }

        frames.Add(ArpRequest(Client, Vip));
        frames.Add(Tcp(Client, 1, Vip, 80)[..25]);
        var verdicts = new int[Enum.GetValues<Verdict>().Length];

        // Warm up: JIT, tiering and the fragment tracker's free lists.
        Run(decider, frames, 50_000, verdicts);
        var before = GC.GetAllocatedBytesForCurrentThread();
        Run(decider, frames, 1_000_000, verdicts);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
        Assert.True(verdicts[(int)Verdict.Accept] > 0 && verdicts[(int)Verdict.Reject] > 0 && verdicts[(int)Verdict.Malformed] > 0);
    }

    private static readonly byte[] Released = new byte[SafeKit.Dataplane.Fragments.FragmentTracker.SlotSize];

    private static void Run(PacketDecider decider, List<byte[]> frames, int count, int[] verdicts)
    {
        for (var i = 0; i < count; i++)
        {
            var frame = frames[i % frames.Count];
            var verdict = decider.Decide(frame, i / 1000, out _, out _);
            verdicts[(int)verdict]++;
            while (decider.Fragments.TryTakeReleased(Released, out _))
            {
            }
        }
    }
}
