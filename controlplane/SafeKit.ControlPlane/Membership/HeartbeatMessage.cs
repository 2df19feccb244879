namespace SafeKit.ControlPlane.Membership;

/// <summary>One heartbeat, decoded or to encode. Reused: it owns fixed-size arrays.</summary>
public sealed class HeartbeatMessage
{
    public HeartbeatMessage(int nodeCount)
    {
        NodeCount = nodeCount;
        States = new NodeState[nodeCount];
        ViewWeights = new byte[nodeCount];
    }

    /// <summary>Bytes of the sender's module beacon (what its modules tell the others: a mirror's role and data generation).</summary>
    public const int BeaconLength = 40;

    public int NodeCount { get; }

    /// <summary>The sender's module beacon (zeros when its modules say nothing).</summary>
    public byte[] Beacon { get; } = new byte[BeaconLength];

    public uint ClusterId { get; set; }

    /// <summary>Index of the sending node.</summary>
    public int Sender { get; set; }

    /// <summary>The sender's incarnation and sequence: the identity of this heartbeat (anti-replay).</summary>
    public uint Incarnation { get; set; }

    public uint Sequence { get; set; }

    /// <summary>The view the sender follows (or publishes): leader -1 when none.</summary>
    public int ViewLeader { get; set; } = -1;

    public uint ViewEpoch { get; set; }

    public uint ViewMembers { get; set; }

    public byte[] ViewWeights { get; }

    /// <summary>Latest known state of every node, the sender's own included.</summary>
    public NodeState[] States { get; }

    public ClusterView View() => ViewLeader < 0 ? ClusterView.None : new ClusterView(ViewLeader, ViewEpoch, ViewMembers, (byte[])ViewWeights.Clone());
}
