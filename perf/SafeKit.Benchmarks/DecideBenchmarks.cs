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
    private byte[][] _tcp = [];
    private byte[][] _udp = [];
    private PacketDecider _decider = null!;

    [GlobalSetup]
    public void Setup()
    {
        _frames = BenchmarkFrames.Mix(Frames, 42);
        _tcp = _frames.Where((_, i) => i % 2 == 0).ToArray();
        _udp = _frames.Where((_, i) => i % 2 == 1).ToArray();
        var nodes = new[] { new NodeWeight("n1", 1), new NodeWeight("n2", 1), new NodeWeight("n3", 1) };
        _decider = new PacketDecider(
            new VipSet([BenchmarkFrames.Vip, BenchmarkFrames.Vip6]),
            ClusterMac.Derive(L2Mode.Unicast, [BenchmarkFrames.Vip]),
            new FlowHasher(Affinity.ClientIpPort, 0x5afe),
            ForwardingState.Owning(BucketTable.Compute(nodes, 4096, "n1")),
            new FragmentTracker(new FragmentTrackerOptions()),
            new FlowTable(131_072));
    }

    [Benchmark(OperationsPerInvoke = Frames)]
    public int ParseKeyHashDecide() => Run(_frames);

    private int Run(byte[][] frames)
    {
        var accepted = 0;
        foreach (var frame in frames)
        {
            if (_decider.Decide(frame, 0, out _, out _) == Verdict.Accept)
            {
                accepted++;
            }
        }

        return accepted;
    }

    /// <summary>TCP segments of established connections: the bulk of web traffic.</summary>
    [Benchmark(OperationsPerInvoke = Frames / 2)]
    public int DecideTcp() => Run(_tcp);

    /// <summary>UDP datagrams: every one also looks its flow up for pinning.</summary>
    [Benchmark(OperationsPerInvoke = Frames / 2)]
    public int DecideUdp() => Run(_udp);

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
