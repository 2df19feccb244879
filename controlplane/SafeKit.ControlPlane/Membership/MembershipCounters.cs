namespace SafeKit.ControlPlane.Membership;

/// <summary>Heartbeat counters of one node (updated under the membership lock).</summary>
public sealed class MembershipCounters
{
    public long Sent { get; set; }

    public long SendErrors { get; set; }

    public long Accepted { get; set; }

    public long Duplicates { get; set; }

    public long Replayed { get; set; }

    public long BadMac { get; set; }

    public long ForeignCluster { get; set; }

    public long Malformed { get; set; }

    public long WrongSource { get; set; }

    public long IdentityConflicts { get; set; }

    public long ViewChanges { get; set; }

    /// <summary>Members lost because they died (their buckets taken over), as seen from this node.</summary>
    public long Failovers { get; set; }

    public IReadOnlyDictionary<string, long> ToDictionary() => new Dictionary<string, long>(StringComparer.Ordinal)
    {
        ["heartbeats_sent"] = Sent,
        ["heartbeat_send_errors"] = SendErrors,
        ["heartbeats_accepted"] = Accepted,
        ["heartbeats_duplicate"] = Duplicates,
        ["heartbeats_replayed"] = Replayed,
        ["heartbeats_bad_mac"] = BadMac,
        ["heartbeats_foreign_cluster"] = ForeignCluster,
        ["heartbeats_malformed"] = Malformed,
        ["heartbeats_wrong_source"] = WrongSource,
        ["heartbeats_identity_conflict"] = IdentityConflicts,
        ["view_changes"] = ViewChanges,
        ["failovers"] = Failovers,
    };
}
