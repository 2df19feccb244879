namespace SafeKit.Dataplane.Buckets;

/// <summary>What the handover needs to know about another node (from its heartbeats).</summary>
/// <param name="Alive">It is alive.</param>
/// <param name="Epoch">Epoch of the view it follows.</param>
/// <param name="Claims">The view it follows counts it as a member (it may own buckets).</param>
/// <param name="Pinning">It still serves flows of buckets it gave away.</param>
/// <param name="SilentMilliseconds">Since it was last heard of (for a dead node: what it may have left unanswered).</param>
public readonly record struct PeerHandover(bool Alive, uint Epoch, bool Claims, bool Pinning, long SilentMilliseconds = 0);
