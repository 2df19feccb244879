using System.Net;
using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Fragments;
using SafeKit.Dataplane.Parsing;
using SafeKit.Tests.Infrastructure;
using static SafeKit.Tests.Infrastructure.TestFrames;

namespace SafeKit.Tests.Dataplane;

public sealed class FragmentTrackerTests
{
    private static byte[] First(IPAddress client, ushort port, ushort id) =>
        Ethernet(VipMac, EtherTypes.IPv4, IPv4(client, Vip, IpProtocol.Udp, Ports(port, 53, 1480), id: id, moreFragments: true));

    private static byte[] Later(IPAddress client, ushort id, int offset, bool more) =>
        Ethernet(VipMac, EtherTypes.IPv4, IPv4(client, Vip, IpProtocol.Udp, new byte[more ? 1480 : 300], id: id, moreFragments: more, fragmentOffset: offset));

    [Fact]
    public void Fragments_InOrder_AllGoToTheNodeOfTheFirst()
    {
        var farm = new Farm(3);
        var random = new Random(10);
        for (var i = 0; i < 300; i++)
        {
            var client = Farm.RandomClient(random, false);
            var id = (ushort)i;
            var owner = farm.SingleAcceptor(First(client, (ushort)random.Next(1024, 65536), id));
            Assert.Equal(owner, farm.SingleAcceptor(Later(client, id, 1480, true)));
            Assert.Equal(owner, farm.SingleAcceptor(Later(client, id, 2960, false)));
        }
    }

    [Fact]
    public void Fragments_LaterBeforeFirst_AreHeldThenReleasedByTheOwnerOnly()
    {
        var farm = new Farm(3);
        var client = IPAddress.Parse("198.19.4.5");
        Assert.All(farm.Decide(Later(client, 9, 1480, true)), v => Assert.Equal(Verdict.FragmentHeld, v));
        Assert.All(farm.Decide(Later(client, 9, 2960, false)), v => Assert.Equal(Verdict.FragmentHeld, v));

        var verdicts = farm.Deciders.Select(d => d.Decide(First(client, 4444, 9), 0, out _, out _)).ToArray();
        var released = farm.Deciders.Select(d =>
        {
            var list = new List<int>();
            var buffer = new byte[FragmentTracker.SlotSize];
            while (d.Fragments.TryTakeReleased(buffer, out var length))
            {
                Assert.Equal(ParseStatus.Ok, PacketParser.Parse(Ethernet(VipMac, EtherTypes.IPv4, buffer[..length]), out var p));
                list.Add(p.FragmentOffset);
            }

            return list;
        }).ToArray();

        var owner = Array.IndexOf(verdicts, Verdict.Accept);
        Assert.Equal(1, verdicts.Count(v => v == Verdict.Accept));
        Assert.Equal([1480, 2960], released[owner].Order());
        Assert.All(released.Where((_, i) => i != owner), r => Assert.Empty(r));
        Assert.All(farm.Deciders, d => Assert.Equal(0, d.Fragments.HeldCount));
    }

    [Fact]
    public void Fragments_ClientIpAffinity_NeedNoTracking()
    {
        var farm = new Farm(3, SafeKit.Dataplane.Flows.Affinity.ClientIp);
        var owner = farm.SingleAcceptor(Later(Client, 5, 1480, false));
        Assert.Equal(owner, farm.SingleAcceptor(First(Client, 1, 5)));
        Assert.All(farm.Deciders, d => Assert.Equal(0, d.Fragments.TrackedCount));
    }

    [Fact]
    public void Fragments_Flood_StaysWithinLimitsAndRealDatagramsStillWork()
    {
        var options = new FragmentTrackerOptions(MaxDatagrams: 256, MaxHeldBytes: 64 * 2048, TimeoutMilliseconds: 5000);
        var farm = new Farm(2, fragments: options);
        var random = new Random(11);
        for (var i = 0; i < 20_000; i++)
        {
            // Non-first fragments whose first fragment never comes.
            var bogus = Later(Farm.RandomClient(random, false), (ushort)random.Next(65536), 1480 * random.Next(1, 40), true);
            var verdicts = farm.Decide(bogus, now: i);
            Assert.All(verdicts, v => Assert.True(v is Verdict.FragmentHeld or Verdict.FragmentDropped));
        }

        Assert.All(farm.Deciders, d =>
        {
            Assert.InRange(d.Fragments.TrackedCount, 1, 256);
            Assert.InRange(d.Fragments.HeldCount, 1, 64);
            Assert.True(d.Fragments.Evictions > 0);
        });

        // While the flood's entries are still fresh, a real datagram is decided as a whole.
        var owner = farm.SingleAcceptor(First(Client, 3333, 4242));
        Assert.Equal(owner, farm.SingleAcceptor(Later(Client, 4242, 1480, false)));
    }

    [Fact]
    public void Fragments_Expired_DecisionIsForgotten()
    {
        var tracker = new FragmentTracker(new FragmentTrackerOptions(TimeoutMilliseconds: 100));
        var first = First(Client, 1, 7);
        PacketParser.Parse(first, out var p1);
        tracker.OnFirstFragment(first, p1, accept: true, now: 0);
        var later = Later(Client, 7, 1480, false);
        PacketParser.Parse(later, out var p2);

        Assert.Equal(Verdict.Accept, tracker.OnLaterFragment(later, p2, now: 50));
        Assert.Equal(Verdict.FragmentHeld, tracker.OnLaterFragment(later, p2, now: 500));
    }
}
