namespace SafeKit.Dataplane.Buckets;

/// <summary>What the local node does with a bucket during and after a change of owner.</summary>
public enum BucketMode : byte
{
    /// <summary>Another node's: nothing is accepted.</summary>
    Foreign,

    /// <summary>Ours, alone: everything is accepted.</summary>
    Owned,

    /// <summary>
    /// Ours in the new view, but its previous owner is alive and has not adopted that view yet:
    /// nothing is accepted (a SYN is retransmitted by its client), so no flow is ever accepted twice.
    /// </summary>
    Awaiting,

    /// <summary>
    /// Ours; nodes that owned it before may still serve their established flows (pinned): we
    /// accept new flows and our own, not the others'.
    /// </summary>
    Shared,

    /// <summary>Another node's now, but we keep serving the flows we accepted before, until they end.</summary>
    Pinned,
}
