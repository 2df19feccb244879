using SafeKit.Dataplane.Buckets;
using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Flows;
using SafeKit.Dataplane.Parsing;
using static SafeKit.Tests.Infrastructure.TestFrames;

namespace SafeKit.Tests.Dataplane;

public sealed class FlowTableTests
{
    private static FlowKey Key(int i) => new((UInt128)(0xc6120000u + (uint)(i / 1000)), 0xc6120064u, (ushort)(i % 60000), 80, 6);

    [Fact]
    public void InsertFindSweep_AgreeWithADictionary()
    {
        var table = new FlowTable(1000);
        var reference = new Dictionary<FlowKey, long>();
        var random = new Random(5);
        for (var step = 0; step < 100_000; step++)
        {
            var key = Key(random.Next(8000));
            if (random.Next(3) == 0)
            {
                var slot = table.Insert(key, 1, mine: true, now: step);
                if (slot >= 0)
                {
                    reference[key] = step;
                }
                else
                {
                    Assert.False(reference.ContainsKey(key));
                    Assert.Equal(1000, table.Count);
                }
            }
            else
            {
                var slot = table.Find(key);
                Assert.Equal(reference.ContainsKey(key), slot >= 0);
                if (slot >= 0)
                {
                    Assert.Equal(reference[key], table.LastSeen(slot));
                }
            }

            if (step % 5000 == 4999)
            {
                // Forget everything older than 3000 steps, as a sweep would.
                var sweep = new OlderThan(step - 3000);
                table.Sweep(ref sweep);
                foreach (var old in reference.Where(p => p.Value < step - 3000).Select(p => p.Key).ToList())
                {
                    reference.Remove(old);
                }

                Assert.Equal(reference.Count, table.Count);
                Assert.All(reference.Keys, k => Assert.True(table.Find(k) >= 0));
            }
        }

        Assert.True(table.Refused > 0);
    }

    [Fact]
    public void Pinned_AcceptsOnlyOurFlows_SharedAcceptsNewFlowsAndOurs()
    {
        var table = new FlowTable(100);
        var ours = Tcp(Client, 40000, Vip, 80);
        var synOfAnother = Tcp(Client, 40001, Vip, 80);
        Judge(BucketMode.Owned, table, ours);

        Assert.Equal(Verdict.Accept, Judge(BucketMode.Pinned, table, Data(40000)));
        Assert.Equal(Verdict.Reject, Judge(BucketMode.Pinned, table, Data(40002)));
        Assert.Equal(Verdict.Reject, Judge(BucketMode.Pinned, table, synOfAnother));

        var sharedTable = new FlowTable(100);
        Assert.Equal(Verdict.Accept, Judge(BucketMode.Shared, sharedTable, synOfAnother));
        Assert.Equal(Verdict.Accept, Judge(BucketMode.Shared, sharedTable, Data(40001)));
        Assert.Equal(Verdict.Reject, Judge(BucketMode.Shared, sharedTable, Data(40000)));
        Assert.Equal(Verdict.Reject, Judge(BucketMode.Awaiting, sharedTable, Tcp(Client, 40003, Vip, 80)));
    }

    [Fact]
    public void UdpFlows_SeenBeforeAHandoverStayWithTheirNode()
    {
        var giver = new FlowTable(100);
        var taker = new FlowTable(100);
        var old = Udp(Client, 5000, Vip, 53);
        Assert.Equal(Verdict.Accept, Judge(BucketMode.Owned, giver, old));
        Assert.Equal(Verdict.Reject, Judge(BucketMode.Foreign, taker, old));

        // The bucket moves: the giver pins, the taker shares.
        var fresh = Udp(Client, 5001, Vip, 53);
        Assert.Equal(Verdict.Accept, Judge(BucketMode.Pinned, giver, old));
        Assert.Equal(Verdict.Reject, Judge(BucketMode.Shared, taker, old));
        Assert.Equal(Verdict.Reject, Judge(BucketMode.Pinned, giver, fresh));
        Assert.Equal(Verdict.Accept, Judge(BucketMode.Shared, taker, fresh));
    }

    [Fact]
    public void Sweep_NotesPinnedBucketsWithLiveFlowsAndForgetsClosedOnes()
    {
        var table = new FlowTable(100);
        Judge(BucketMode.Owned, table, Tcp(Client, 40000, Vip, 80), bucket: 3, now: 0);
        Judge(BucketMode.Owned, table, Tcp(Client, 40001, Vip, 80), bucket: 4, now: 0);
        var fin = Tcp(Client, 40001, Vip, 80);
        fin[14 + 20 + 13] = 0x11;
        Judge(BucketMode.Owned, table, fin, bucket: 4, now: 10);
        var modes = new BucketMode[8];
        modes[3] = BucketMode.Pinned;
        modes[4] = BucketMode.Pinned;

        var sweep = new FlowSweep(modes, now: 100, pinIdleMilliseconds: 1000, idleMilliseconds: 100_000);
        table.Sweep(ref sweep);
        Assert.True(sweep.StillPinned![3]);
        Assert.False(sweep.StillPinned[4]);

        var later = new FlowSweep(modes, now: 10 + FlowSweep.ClosingLinger + 1, pinIdleMilliseconds: 100_000, idleMilliseconds: 100_000);
        table.Sweep(ref later);
        Assert.Equal(1, table.Count);
    }

    [Fact]
    public void Sweep_WithTheStacksConnections_ForgetsPinnedFlowsTheStackNoLongerHas()
    {
        var table = new FlowTable(100);
        var frames = new[] { Tcp(Client, 41000, Vip, 80), Tcp(Client, 41001, Vip, 80), Tcp(Client, 41002, Vip, 80) };
        Judge(BucketMode.Owned, table, frames[0], bucket: 3, now: 0);
        Judge(BucketMode.Owned, table, frames[1], bucket: 3, now: 0);
        Judge(BucketMode.Owned, table, frames[2], bucket: 3, now: 4_500);
        var keys = frames.Select(f =>
        {
            Assert.Equal(ParseStatus.Ok, PacketParser.Parse(f, out var packet));
            return FlowKey.FromClient(f, packet);
        }).ToList();
        var modes = new BucketMode[8];
        modes[3] = BucketMode.Pinned;

        // The stack still has the first connection; the second ended unseen; the third was
        // accepted too recently to be in the stack's list for sure.
        var kernel = new KernelConnections([keys[0]], takenAt: 5_000);
        var sweep = new FlowSweep(modes, now: 5_000, pinIdleMilliseconds: 100_000, idleMilliseconds: 100_000, kernel);
        table.Sweep(ref sweep);

        Assert.True(table.Find(keys[0]) >= 0);
        Assert.True(table.Find(keys[1]) < 0);
        Assert.True(table.Find(keys[2]) >= 0);
        Assert.True(sweep.StillPinned![3]);

        // Not pinned: the stack's list is not consulted (owned flows are not tracked per packet).
        modes[3] = BucketMode.Owned;
        var owned = new FlowSweep(modes, now: 9_000, pinIdleMilliseconds: 100_000, idleMilliseconds: 100_000, new KernelConnections([], takenAt: 9_000));
        table.Sweep(ref owned);
        Assert.Equal(2, table.Count);
    }

    private static byte[] Data(ushort port)
    {
        var frame = Tcp(Client, port, Vip, 80, payload: 10);
        frame[14 + 20 + 13] = 0x18;
        return frame;
    }

    private static Verdict Judge(BucketMode mode, FlowTable table, byte[] frame, int bucket = 1, long now = 0)
    {
        Assert.Equal(ParseStatus.Ok, PacketParser.Parse(frame, out var packet));
        return FlowPolicy.Judge(mode, table, frame, packet, bucket, now);
    }

    private readonly struct OlderThan(long limit) : IFlowVisitor
    {
        public bool Keep(int slot, in FlowKey key, int bucket, byte flags, long lastSeen) => lastSeen >= limit;
    }
}
