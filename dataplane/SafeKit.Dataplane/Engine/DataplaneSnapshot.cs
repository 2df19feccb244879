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
    int TrackedFragments);
