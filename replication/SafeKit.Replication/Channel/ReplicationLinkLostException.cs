namespace SafeKit.Replication.Channel;

/// <summary>
/// The replication link ended before an operation was acknowledged. The operation may or may not
/// have been applied on the receiver: everything after the last acknowledged sequence must be
/// treated as unknown (the mirror resynchronizes from there).
/// </summary>
public sealed class ReplicationLinkLostException : Exception
{
    public ReplicationLinkLostException()
        : this(LinkLossReason.Closed, "replication link lost")
    {
    }

    public ReplicationLinkLostException(string message)
        : this(LinkLossReason.Closed, message)
    {
    }

    public ReplicationLinkLostException(string message, Exception innerException)
        : this(LinkLossReason.Closed, message, innerException)
    {
    }

    public ReplicationLinkLostException(LinkLossReason reason, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Reason = reason;
    }

    /// <summary>Why the link ended.</summary>
    public LinkLossReason Reason { get; }
}
