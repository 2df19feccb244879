namespace SafeKit.ControlPlane.Events;

/// <summary>Something an operator wants to see on a timeline.</summary>
/// <param name="Sequence">Position in the node's journal (1, 2, …; restarts at 1 with safekitd).</param>
/// <param name="At">When it happened.</param>
/// <param name="Node">The node that recorded it.</param>
/// <param name="Kind">What kind of event (see <see cref="EventKinds"/>).</param>
/// <param name="Module">The module concerned, if any.</param>
/// <param name="Severity">info, warning or error.</param>
/// <param name="Message">One line, for people.</param>
public sealed record ClusterEvent(long Sequence, DateTimeOffset At, string Node, string Kind, string? Module, string Severity, string Message);

/// <summary>The kinds of events a node records.</summary>
public static class EventKinds
{
    /// <summary>A module changed state (STOP, WAIT, UP) or reason.</summary>
    public const string State = "state";

    /// <summary>A new view was agreed (members, leader, epoch).</summary>
    public const string View = "view";

    /// <summary>A peer died or came back, as seen from this node.</summary>
    public const string Peer = "peer";

    /// <summary>A dead node's buckets were taken over.</summary>
    public const string Failover = "failover";

    /// <summary>A checker started or stopped failing.</summary>
    public const string Check = "check";

    /// <summary>An administrator's action on a module.</summary>
    public const string Action = "action";

    /// <summary>A configuration reload (applied or refused).</summary>
    public const string Config = "config";

    /// <summary>safekitd started or is stopping.</summary>
    public const string Daemon = "daemon";
}

/// <summary>Severities of events.</summary>
public static class EventSeverities
{
    public const string Info = "info";
    public const string Warning = "warning";
    public const string Error = "error";
}
