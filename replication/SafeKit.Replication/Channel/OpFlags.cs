namespace SafeKit.Replication.Channel;

/// <summary>Flags of one operation, carried to the applier untouched.</summary>
[Flags]
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1711", Justification = "A bit field on the wire: the flags byte of an operation frame.")]
public enum OpFlags : byte
{
    None = 0,

    /// <summary>
    /// The sender asks the receiver to make this operation (and everything before it) durable
    /// before acknowledging it, e.g. for an fsync on PRIM. The channel only passes the bit on; the
    /// applier decides what durable means.
    /// </summary>
    DurableBarrier = 1,
}
