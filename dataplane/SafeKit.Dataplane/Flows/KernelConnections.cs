namespace SafeKit.Dataplane.Flows;

/// <summary>
/// The TCP connections to the VIPs the node's stack had at one moment (from sock_diag). A pinned
/// flow seen last before that moment (with a margin for packets still on their way to the stack)
/// and absent from it has ended.
/// </summary>
public sealed class KernelConnections
{
    /// <summary>Packets accepted this recently may not have reached the stack yet.</summary>
    public const long Margin = 1_000;

    private readonly HashSet<FlowKey> _live;

    /// <param name="live">Connections as flow keys (client, VIP, ports, TCP).</param>
    /// <param name="takenAt">When they were read (Environment.TickCount64).</param>
    public KernelConnections(HashSet<FlowKey> live, long takenAt)
    {
        _live = live;
        TakenAt = takenAt;
    }

    public long TakenAt { get; }

    public int Count => _live.Count;

    /// <summary>True when the flow, last seen at <paramref name="lastSeen"/>, is not in the stack any more.</summary>
    public bool Ended(in FlowKey key, long lastSeen) => lastSeen < TakenAt - Margin && !_live.Contains(key);
}
