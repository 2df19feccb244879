namespace SafeKit.Dataplane.Decisions;

/// <summary>What the local node does with one frame.</summary>
public enum Verdict : byte
{
    /// <summary>Not VIP traffic (another address, another EtherType): left to the kernel.</summary>
    NotForUs,

    /// <summary>VIP traffic in a bucket this node owns: delivered to the local stack.</summary>
    Accept,

    /// <summary>VIP traffic in a bucket another node owns: dropped here.</summary>
    Reject,

    /// <summary>An ARP request for a VIP that this node answers.</summary>
    AnswerArp,

    /// <summary>An IPv6 neighbour solicitation for a VIP that this node answers.</summary>
    AnswerNdp,

    /// <summary>A neighbour request for a VIP that another node answers.</summary>
    NeighborOther,

    /// <summary>Truncated or inconsistent headers: dropped and counted.</summary>
    Malformed,

    /// <summary>A fragment kept until the first fragment of its datagram decides it.</summary>
    FragmentHeld,

    /// <summary>A fragment dropped because fragment tracking was out of memory.</summary>
    FragmentDropped,
}
