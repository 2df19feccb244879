namespace SafeKit.Replication.Mirror;

/// <summary>
/// When the application's calls return, for a replicated directory. In both modes SECOND applies
/// PRIM's changes in order, so it always holds a prefix of PRIM's history.
/// </summary>
public enum MirrorMode
{
    /// <summary>
    /// Every change returns once SECOND has applied it; fsync, fdatasync and O_SYNC writes once it is
    /// durable on both. No acknowledged write is lost when PRIM fails.
    /// </summary>
    Sync,

    /// <summary>
    /// Changes return once queued, in order, to SECOND; fsync, fdatasync and O_SYNC writes wait until
    /// everything before them is applied on SECOND and the file is durable on both — what a local
    /// disk promises after a crash. Acknowledged but unsynced writes may be lost when PRIM fails.
    /// </summary>
    Fsync,
}
