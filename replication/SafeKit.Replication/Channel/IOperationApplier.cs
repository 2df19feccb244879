namespace SafeKit.Replication.Channel;

/// <summary>
/// What the receiver (SECOND) does with each operation. Called from the connection's receive loop,
/// one operation at a time, strictly in sequence order; while it runs, nothing else is read, so a
/// slow apply slows the sender down through the byte budget (and an apply longer than the
/// silence timeout loses the link).
/// </summary>
public interface IOperationApplier
{
    /// <summary>
    /// Applies <paramref name="op"/>; returns 0 when applied or a positive errno, delivered to that
    /// operation's send on PRIM. An exception breaks the link: acknowledging an operation whose
    /// outcome is unknown would lie to PRIM.
    /// </summary>
    int Apply(in ReplicationOp op);
}
