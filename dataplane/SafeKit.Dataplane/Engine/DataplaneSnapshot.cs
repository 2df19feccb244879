using SafeKit.Dataplane.Capture;

namespace SafeKit.Dataplane.Engine;

/// <summary>A point-in-time view of the dataplane for status, logs and tests.</summary>
public sealed record DataplaneSnapshot(
    string Mode,
    string Capture,
    string ClusterMac,
    int BucketCount,
    int OwnedBuckets,
    DataplaneCounters Counters,
    CaptureStatistics CaptureStatistics,
    int TrackedFragments)
{
    /// <summary>Buckets given away whose flows this node still serves.</summary>
    public int PinnedBuckets { get; init; }

    /// <summary>Buckets waiting for their previous owner to let go.</summary>
    public int WaitingBuckets { get; init; }

    /// <summary>Flows remembered for pinning.</summary>
    public int Flows { get; init; }

    /// <summary>TIME_WAIT sockets cleared for connections adopted from dead nodes.</summary>
    public long TimeWaitCleared { get; init; }

    /// <summary>Flows not remembered because the table was full.</summary>
    public long FlowsRefused { get; init; }
}
