namespace SafeKit.Dataplane.Engine;

/// <summary>
/// Per-worker counters. Written by one worker thread without atomics; read by others at any time
/// (64-bit reads are atomic on x64; a reader may see a value a few frames old).
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1051", Justification = "Plain fields: the packet path increments them by ref, without property calls.")]
public sealed class DataplaneCounters
{
    public long Frames;
    public long Accepted;
    public long AcceptedBytes;
    public long Rejected;
    public long NotForUs;
    public long ArpAnswered;
    public long NdpAnswered;
    public long NeighborOther;
    public long Malformed;
    public long Oversize;
    public long Fragments;
    public long FragmentsHeld;
    public long FragmentsDropped;
    public long DeliveryErrors;
    public long SendErrors;

    /// <summary>Packets replayed to the local stack when taking over a dead node's buckets.</summary>
    public long TakeoverReplayed;

    /// <summary>Packets accepted per VIP (index as in the farm's VIP list; userspace decisions only).</summary>
    public long[] AcceptedByVip = [];

    /// <summary>Packets left to another node per VIP.</summary>
    public long[] RejectedByVip = [];

    /// <summary>Managed bytes the worker thread has allocated since it started (the hot path allocates none).</summary>
    public long WorkerAllocatedBytes;

    /// <summary>Adds every counter of <paramref name="other"/> into this one.</summary>
    public void Add(DataplaneCounters other)
    {
        ArgumentNullException.ThrowIfNull(other);
        Frames += Volatile.Read(ref other.Frames);
        Accepted += Volatile.Read(ref other.Accepted);
        AcceptedBytes += Volatile.Read(ref other.AcceptedBytes);
        Rejected += Volatile.Read(ref other.Rejected);
        NotForUs += Volatile.Read(ref other.NotForUs);
        ArpAnswered += Volatile.Read(ref other.ArpAnswered);
        NdpAnswered += Volatile.Read(ref other.NdpAnswered);
        NeighborOther += Volatile.Read(ref other.NeighborOther);
        Malformed += Volatile.Read(ref other.Malformed);
        Oversize += Volatile.Read(ref other.Oversize);
        Fragments += Volatile.Read(ref other.Fragments);
        FragmentsHeld += Volatile.Read(ref other.FragmentsHeld);
        FragmentsDropped += Volatile.Read(ref other.FragmentsDropped);
        DeliveryErrors += Volatile.Read(ref other.DeliveryErrors);
        SendErrors += Volatile.Read(ref other.SendErrors);
        TakeoverReplayed += Volatile.Read(ref other.TakeoverReplayed);
        WorkerAllocatedBytes += Volatile.Read(ref other.WorkerAllocatedBytes);
        AcceptedByVip = Sum(AcceptedByVip, other.AcceptedByVip);
        RejectedByVip = Sum(RejectedByVip, other.RejectedByVip);
    }

    private static long[] Sum(long[] into, long[] from)
    {
        var sum = into.Length >= from.Length ? into : [.. into, .. new long[from.Length - into.Length]];
        for (var i = 0; i < from.Length; i++)
        {
            sum[i] += Volatile.Read(ref from[i]);
        }

        return sum;
    }
}
