using BenchmarkDotNet.Attributes;
using SafeKit.Dataplane.Buckets;
using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Flows;
using SafeKit.Dataplane.Fragments;
using SafeKit.Dataplane.Parsing;

namespace SafeKit.Benchmarks;

/// <summary>Per-packet cost of the accept rule: parse + flow key + jhash + bucket lookup.</summary>
[MemoryDiagnoser]
public class DecideBenchmarks
{
    private const int Frames = 64;
    private byte[][] _frames = [];
    private PacketDecider _decider = null!;

    [GlobalSetup]
    public void Setup()
    {
        _frames = BenchmarkFrames.Mix(Frames, 42);
        var nodes = new[] { new NodeWeight("n1", 1), new NodeWeight("n2", 1), new NodeWeight("n3", 1) };
        _decider = new PacketDecider(
            new VipSet([BenchmarkFrames.Vip, BenchmarkFrames.Vip6]),
            ClusterMac.Derive(L2Mode.Unicast, [BenchmarkFrames.Vip]),
            new FlowHasher(Affinity.ClientIpPort, 0x5afe),
            BucketTable.Compute(nodes, 4096, "n1"),
            new FragmentTracker(new FragmentTrackerOptions()));
    }

    [Benchmark(OperationsPerInvoke = Frames)]
    public int ParseKeyHashDecide()
    {
        var accepted = 0;
        foreach (var frame in _frames)
        {
            if (_decider.Decide(frame, 0, out _, out _) == Verdict.Accept)
            {
                accepted++;
            }
        }

        return accepted;
    }

    [Benchmark(OperationsPerInvoke = Frames)]
    public int ParseOnly()
    {
        var ports = 0;
        foreach (var frame in _frames)
        {
            PacketParser.Parse(frame, out var packet);
            ports += packet.SourcePort;
        }

        return ports;
    }
}
