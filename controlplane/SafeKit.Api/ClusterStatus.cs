using SafeKit.ControlPlane.Membership;
using SafeKit.ControlPlane.Status;

namespace SafeKit.Api;

/// <summary>The whole cluster as one node sees it, with every reachable node's own status.</summary>
/// <param name="Cluster">Cluster name.</param>
/// <param name="AnsweredBy">The node that assembled this answer.</param>
/// <param name="At">When.</param>
/// <param name="Membership">The membership as the answering node sees it (leader, epoch, members, heartbeat health).</param>
/// <param name="Nodes">Every configured node.</param>
public sealed record ClusterStatus(string Cluster, string AnsweredBy, DateTimeOffset At, MembershipSnapshot? Membership, IReadOnlyList<ClusterNode> Nodes);

/// <summary>One node of the cluster.</summary>
/// <param name="Name">Node name.</param>
/// <param name="ApiUrl">Its API.</param>
/// <param name="Alive">Heartbeats from it arrive (as seen by the answering node).</param>
/// <param name="Member">It is in the current view (takes traffic).</param>
/// <param name="Reachable">Its API answered.</param>
/// <param name="Error">Why its API did not answer.</param>
/// <param name="Status">Its own status, when it answered.</param>
public sealed record ClusterNode(string Name, string ApiUrl, bool Alive, bool Member, bool Reachable, string? Error, NodeStatus? Status);

/// <summary>Recent events of every reachable node, oldest first.</summary>
/// <param name="Events">The events.</param>
/// <param name="Unreachable">Nodes whose events could not be read, with the reason.</param>
public sealed record ClusterEvents(IReadOnlyList<SafeKit.ControlPlane.Events.ClusterEvent> Events, IReadOnlyDictionary<string, string> Unreachable);

/// <summary>A page of one node's events.</summary>
/// <param name="Events">Events after the sequence asked for, oldest first.</param>
/// <param name="Last">Sequence of the newest event of the node (ask for events after it next time).</param>
public sealed record EventPage(IReadOnlyList<SafeKit.ControlPlane.Events.ClusterEvent> Events, long Last);
