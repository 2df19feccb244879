using SafeKit.ControlPlane.Events;
using SafeKit.ControlPlane.Membership;

namespace SafeKit.Daemon;

/// <summary>Puts what the membership sees on the node's timeline: views, failovers, peers dying and coming back.</summary>
internal static class MembershipEventFeed
{
    public static void Attach(MembershipService membership, EventJournal journal)
    {
        membership.MembersChanged += change =>
        {
            foreach (var node in change.Died)
            {
                journal.Record(EventKinds.Failover, null, EventSeverities.Error, $"{node} died: its buckets go to the survivors (view {change.Epoch})");
            }

            var parts = new List<string> { $"view {change.Epoch}: leader {change.Leader ?? "none"}, members [{string.Join(", ", change.Members)}]" };
            if (change.Joined.Count > 0)
            {
                parts.Add($"joined {string.Join(", ", change.Joined)}");
            }

            if (change.Left.Count > 0)
            {
                parts.Add($"left {string.Join(", ", change.Left)}");
            }

            journal.Record(EventKinds.View, null, change.Died.Count > 0 || change.Left.Count > 0 ? EventSeverities.Warning : EventSeverities.Info, string.Join("; ", parts));
        };
        membership.PeerLivenessChanged += (node, alive) => journal.Record(
            EventKinds.Peer,
            null,
            alive ? EventSeverities.Info : EventSeverities.Error,
            alive ? $"{node} is alive (heartbeats received)" : $"{node} is dead (no heartbeat within the timeout)");
    }
}
