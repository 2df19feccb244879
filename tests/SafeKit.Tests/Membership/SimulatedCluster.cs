using SafeKit.ControlPlane.Membership;
using SafeKit.Dataplane.Buckets;

namespace SafeKit.Tests.Membership;

/// <summary>
/// N membership cores exchanging real encoded heartbeats over a simulated network whose links can
/// be cut in either direction; time advances in heartbeat intervals.
/// </summary>
internal sealed class SimulatedCluster
{
    public const int Interval = 100;
    public const int Timeout = 600;
    public const int Buckets = 1024;
    private static readonly byte[] Key = [.. Enumerable.Range(0, 32).Select(i => (byte)i)];

    private readonly HeartbeatCodec _codec;
    private readonly HeartbeatMessage _outgoing;
    private readonly HeartbeatMessage _incoming;
    private readonly byte[] _wire;
    private readonly uint[] _incarnations;
    private readonly BucketHandover[] _handovers;
    private readonly ClusterView[] _applied;

    public SimulatedCluster(int nodes, byte[]? weights = null)
    {
        Count = nodes;
        _codec = new HeartbeatCodec(Key, "sim", nodes);
        _outgoing = new HeartbeatMessage(nodes);
        _incoming = new HeartbeatMessage(nodes);
        _wire = new byte[_codec.Length];
        Links = new bool[nodes, nodes];
        Up = new bool[nodes];
        Cores = new MembershipCore[nodes];
        _incarnations = new uint[nodes];
        _handovers = new BucketHandover[nodes];
        _applied = new ClusterView[nodes];
        for (var i = 0; i < nodes; i++)
        {
            for (var j = 0; j < nodes; j++)
            {
                Links[i, j] = true;
            }

            Start(i, weights?[i] ?? 1);
        }
    }

    public int Count { get; }

    public long Now { get; private set; } = 1_000;

    /// <summary>Links[i, j]: heartbeats from i reach j.</summary>
    public bool[,] Links { get; }

    public bool[] Up { get; }

    public MembershipCore[] Cores { get; }

    public int Replays { get; private set; }

    public void Start(int node, byte weight = 1)
    {
        _incarnations[node]++;
        Cores[node] = new MembershipCore(Count, node, _incarnations[node], weight, Timeout, Now) { Ready = true };
        _handovers[node] = new BucketHandover(Buckets, $"n{node}");
        _applied[node] = ClusterView.None;
        Up[node] = true;
    }

    public void Kill(int node) => Up[node] = false;

    public void Cut(int from, int to) => Links[from, to] = false;

    public void CutBoth(int a, int b)
    {
        Links[a, b] = false;
        Links[b, a] = false;
    }

    public void HealAll()
    {
        for (var i = 0; i < Count; i++)
        {
            for (var j = 0; j < Count; j++)
            {
                Links[i, j] = true;
            }
        }
    }

    /// <summary>One heartbeat round: every live node sends to every node it reaches, then all evaluate.</summary>
    public void Step()
    {
        for (var i = 0; i < Count; i++)
        {
            if (!Up[i])
            {
                continue;
            }

            Cores[i].FillHeartbeat(_outgoing);
            var length = _codec.Encode(_outgoing, _wire);
            for (var j = 0; j < Count; j++)
            {
                if (j == i || !Up[j] || !Links[i, j])
                {
                    continue;
                }

                Assert.Equal(HeartbeatVerdict.Ok, _codec.Decode(_wire.AsSpan(0, length), _incoming));
                if (Cores[j].Receive(_incoming, Now) == ReceiveOutcome.Replayed)
                {
                    Replays++;
                }
            }
        }

        Now += Interval;
        for (var i = 0; i < Count; i++)
        {
            if (Up[i])
            {
                Cores[i].Evaluate(Now);
                Handover(i);
            }
        }
    }

    /// <summary>What the dataplane of node i does with the view: the bucket handover (no flows, so pins end at once).</summary>
    private void Handover(int i)
    {
        var peers = Enumerable.Range(0, Count).Where(j => j != i).ToDictionary(
            j => $"n{j}",
            j => new PeerHandover(NodeMask.Contains(Cores[i].Alive, j), Cores[i].StateOf(j).ViewEpoch, Cores[i].StateOf(j).Claims, Cores[i].StateOf(j).Pinning));
        var view = Cores[i].View;
        if (!view.SameAs(_applied[i]))
        {
            _handovers[i].Apply(TableOf(i), view.Epoch, peers);
            _applied[i] = view;
        }
        else
        {
            _handovers[i].Update(peers, out _);
        }

        Cores[i].Pinning = _handovers[i].Pinning;
        _handovers[i].Unpin();
    }

    /// <summary>Steps and, after every step, checks that no bucket has two nodes accepting new flows.</summary>
    public void StepSafely()
    {
        Step();
        var claims = Claims();
        for (var b = 0; b < claims.Length; b++)
        {
            Assert.True(claims[b] <= 1, $"bucket {b} accepted by {claims[b]} nodes at t={Now}");
        }
    }

    /// <summary>Runs until every live node's view has not changed for <paramref name="quiet"/> rounds.</summary>
    /// <returns>Rounds it took.</returns>
    public int Settle(int quiet = 10, int limit = 400, bool safely = true)
    {
        var stable = 0;
        var previous = Snapshot();
        for (var round = 1; round <= limit; round++)
        {
            if (safely)
            {
                StepSafely();
            }
            else
            {
                Step();
            }

            var current = Snapshot();
            stable = current.SequenceEqual(previous) ? stable + 1 : 0;
            previous = current;
            if (stable >= quiet)
            {
                return round;
            }
        }

        throw new InvalidOperationException("the views never settled");
    }

    /// <summary>For every bucket, how many live nodes accept new flows in it (after the handover).</summary>
    public int[] Claims()
    {
        var claims = new int[Buckets];
        for (var i = 0; i < Count; i++)
        {
            if (!Up[i])
            {
                continue;
            }

            var modes = _handovers[i].Modes;
            for (var b = 0; b < Buckets; b++)
            {
                if (modes[b] is BucketMode.Owned or BucketMode.Shared)
                {
                    claims[b]++;
                }
            }
        }

        return claims;
    }

    /// <summary>The bucket table node <paramref name="node"/> derives from its view.</summary>
    public BucketTable TableOf(int node)
    {
        var view = Cores[node].View;
        var members = NodeMask.Members(view.Members).Select(m => new NodeWeight($"n{m}", view.Weights[m])).ToList();
        return members.Count == 0 ? BucketTable.Empty(Buckets) : BucketTable.Compute(members, Buckets, $"n{node}");
    }

    private string[] Snapshot() =>
        Enumerable.Range(0, Count).Select(i => Up[i] ? $"{Cores[i].View.Leader}/{Cores[i].View.Epoch}/{Cores[i].View.Members}/{string.Join(',', _handovers[i].Modes.Select(m => (int)m))}" : "down").ToArray();
}
