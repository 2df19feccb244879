using SafeKit.Dataplane.Buckets;

namespace SafeKit.Dataplane.Flows;

/// <summary>
/// One maintenance pass over a flow table: forgets ended and idle flows, and notes which pinned
/// buckets still hold a live flow of ours.
/// </summary>
public struct FlowSweep : IFlowVisitor
{
    /// <summary>A flow whose client closed it is forgotten after this (ms).</summary>
    public const long ClosingLinger = 5_000;

    private readonly BucketMode[] _modes;
    private readonly long _now;
    private readonly long _pinIdle;
    private readonly long _idle;
    private readonly KernelConnections? _kernel;

    /// <param name="kernel">The connections the node's stack still has (taken while pinning), or null.</param>
    public FlowSweep(BucketMode[] modes, long now, long pinIdleMilliseconds, long idleMilliseconds, KernelConnections? kernel = null)
    {
        _modes = modes;
        _now = now;
        _pinIdle = pinIdleMilliseconds;
        _idle = idleMilliseconds;
        _kernel = kernel;
        // Only allocated while something is pinned: the steady state allocates nothing.
        StillPinned = Array.IndexOf(modes, BucketMode.Pinned) >= 0 ? new bool[modes.Length] : null;
    }

    /// <summary>Per bucket: a live flow of ours keeps it pinned (null when nothing is pinned).</summary>
    public bool[]? StillPinned { get; }

    public readonly bool Keep(int slot, in FlowKey key, int bucket, byte flags, long lastSeen)
    {
        var protocol = key.Protocol;
        var age = _now - lastSeen;
        var closing = (flags & FlowTable.Closing) != 0;
        // TCP flows are only seen at their SYN and FIN on an owned bucket: they get the long
        // limit; datagram flows are seen at every packet.
        var idle = protocol == Parsing.IpProtocol.Tcp ? _idle : Math.Min(_idle, _pinIdle);
        if ((closing && age > ClosingLinger) || age > idle)
        {
            return false;
        }

        // A pinned connection the stack no longer has is over, even if its end was never seen
        // (the application reset it, or closed it and the client went quiet).
        if (_kernel is not null && protocol == Parsing.IpProtocol.Tcp && (flags & FlowTable.Mine) != 0 && bucket < _modes.Length
            && _modes[bucket] == BucketMode.Pinned && _kernel.Ended(key, lastSeen))
        {
            return false;
        }

        if (StillPinned is not null && (flags & FlowTable.Mine) != 0 && bucket < _modes.Length && _modes[bucket] == BucketMode.Pinned && !closing && age <= _pinIdle)
        {
            StillPinned[bucket] = true;
        }

        return true;
    }
}

/// <summary>Refreshes our flows in buckets that just became pinned: they get a full idle period.</summary>
public readonly struct PinRefresh : IFlowVisitor
{
    private readonly bool[] _newlyPinned;
    private readonly FlowTable _table;
    private readonly long _now;

    public PinRefresh(bool[] newlyPinned, FlowTable table, long now)
    {
        _newlyPinned = newlyPinned;
        _table = table;
        _now = now;
    }

    public bool Keep(int slot, in FlowKey key, int bucket, byte flags, long lastSeen)
    {
        if ((flags & FlowTable.Mine) != 0 && bucket < _newlyPinned.Length && _newlyPinned[bucket])
        {
            _table.Touch(slot, _now);
        }

        return true;
    }
}
