using System.Net;
using SafeKit.Dataplane.Buckets;
using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Flows;
using SafeKit.Dataplane.Fragments;

namespace SafeKit.Tests.Infrastructure;

/// <summary>The deciders of a whole farm in one process: what every node would do with a frame.</summary>
internal sealed class Farm
{
    public Farm(int nodes, Affinity affinity = Affinity.ClientIpPort, uint seed = 0x5afe, L2Mode mode = L2Mode.Unicast, FragmentTrackerOptions? fragments = null)
    {
        var members = Enumerable.Range(1, nodes).Select(i => new NodeWeight($"n{i}", 1)).ToList();
        Mac = ClusterMac.Derive(mode, [TestFrames.Vip, TestFrames.Vip6]);
        Deciders = members.Select(m => new PacketDecider(
            new VipSet([TestFrames.Vip, TestFrames.Vip6]),
            Mac,
            new FlowHasher(affinity, seed),
            ForwardingState.Owning(BucketTable.Compute(members, 4096, m.Name)),
            new FragmentTracker(fragments ?? new FragmentTrackerOptions()),
            new FlowTable(65_536))).ToList();
    }

    public ClusterMac Mac { get; }

    public IReadOnlyList<PacketDecider> Deciders { get; }

    /// <summary>Verdict of every node for one frame (each decides its own copy, as on the wire).</summary>
    public Verdict[] Decide(byte[] frame, long now = 0) =>
        Deciders.Select(d => d.Decide((byte[])frame.Clone(), now, out _, out _)).ToArray();

    /// <summary>Index of the single node that accepts, asserting exactly one does.</summary>
    public int SingleAcceptor(byte[] frame, Verdict accept = Verdict.Accept, Verdict other = Verdict.Reject)
    {
        var verdicts = Decide(frame);
        Assert.Equal(1, verdicts.Count(v => v == accept));
        Assert.All(verdicts, v => Assert.True(v == accept || v == other, $"unexpected verdict {v}"));
        return Array.IndexOf(verdicts, accept);
    }

    public static IPAddress RandomClient(Random random, bool v6)
    {
        var bytes = v6 ? IPAddress.Parse("2001:2::").GetAddressBytes() : [198, 18, 0, 0];
        if (v6)
        {
            random.NextBytes(bytes.AsSpan(6));
        }
        else
        {
            bytes[1] = (byte)(18 + random.Next(2));
            bytes[2] = (byte)random.Next(256);
            bytes[3] = (byte)random.Next(1, 255);
        }

        return new IPAddress(bytes);
    }
}
