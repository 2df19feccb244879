namespace SafeKit.ControlPlane.Membership;

/// <summary>
/// What a node says about itself, versioned by (incarnation, sequence). Heartbeats carry the
/// latest known state of every node, so states travel further than direct links.
/// </summary>
public struct NodeState
{
    /// <summary>Set when the node can take traffic (its module is started and healthy).</summary>
    public const byte FlagReady = 1;

    /// <summary>Set while the node leads and its published view has members.</summary>
    public const byte FlagLeader = 2;

    /// <summary>Set once the node's discovery period is over: it may lead.</summary>
    public const byte FlagEligible = 4;

    /// <summary>Set while the view the node follows counts it as a member: it may own buckets.</summary>
    public const byte FlagClaims = 8;

    /// <summary>Set while the node still serves flows in buckets it gave away.</summary>
    public const byte FlagPinning = 16;

    /// <summary>Restart counter of the node: a restart always has a higher one.</summary>
    public uint Incarnation;

    /// <summary>Heartbeat number within the incarnation.</summary>
    public uint Sequence;

    public byte Flags;

    public byte Weight;

    /// <summary>Nodes this node considers alive (itself included).</summary>
    public uint Alive;

    /// <summary>Epoch of the view this node follows.</summary>
    public uint ViewEpoch;

    public readonly bool IsKnown => Incarnation != 0;

    public readonly bool Ready => (Flags & FlagReady) != 0;

    public readonly bool Leads => (Flags & FlagLeader) != 0;

    public readonly bool Eligible => (Flags & FlagEligible) != 0;

    public readonly bool Claims => (Flags & FlagClaims) != 0;

    public readonly bool Pinning => (Flags & FlagPinning) != 0;

    /// <summary>True when this state is newer than <paramref name="other"/>.</summary>
    public readonly bool IsNewerThan(in NodeState other) =>
        Incarnation > other.Incarnation || (Incarnation == other.Incarnation && Sequence > other.Sequence);
}
