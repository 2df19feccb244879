namespace SafeKit.Replication.Channel;

/// <summary>
/// Which end of a connection between the two daemons, and what for: the replication link (PRIM's
/// sender connects, SECOND's receiver listens) or a resync (the node with the newest data
/// connects as source, the node being brought up to date listens as target).
/// </summary>
internal enum ChannelRole : byte
{
    Sender = 1,
    Receiver = 2,
    ResyncSource = 3,
    ResyncTarget = 4,
}

internal static class ChannelRoles
{
    /// <summary>The role the other end must play.</summary>
    public static ChannelRole Counterpart(this ChannelRole role) => role switch
    {
        ChannelRole.Sender => ChannelRole.Receiver,
        ChannelRole.Receiver => ChannelRole.Sender,
        ChannelRole.ResyncSource => ChannelRole.ResyncTarget,
        _ => ChannelRole.ResyncSource,
    };

    /// <summary>Whether this end connects (and its data flows out): the sender or the resync source.</summary>
    public static bool Connects(this ChannelRole role) => role is ChannelRole.Sender or ChannelRole.ResyncSource;

    public static string Label(this ChannelRole role) => role switch
    {
        ChannelRole.Sender => "sender",
        ChannelRole.Receiver => "receiver",
        ChannelRole.ResyncSource => "resync source",
        _ => "resync target",
    };
}
