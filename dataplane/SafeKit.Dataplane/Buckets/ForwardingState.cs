namespace SafeKit.Dataplane.Buckets;

/// <summary>
/// What the packet path reads for every frame: the bucket table of the view and the local mode of
/// every bucket. Immutable; replaced whole so a frame never sees half of a change.
/// </summary>
public sealed record ForwardingState(BucketTable Table, BucketMode[] Modes)
{
    /// <summary>Nothing owned (before the first view).</summary>
    public static ForwardingState Empty(int bucketCount) => new(BucketTable.Empty(bucketCount), new BucketMode[bucketCount]);

    /// <summary>Every bucket the table gives the local node is owned outright (no handover).</summary>
    public static ForwardingState Owning(BucketTable table)
    {
        ArgumentNullException.ThrowIfNull(table);
        var modes = new BucketMode[table.Count];
        for (var b = 0; b < modes.Length; b++)
        {
            modes[b] = table.IsLocal(b) ? BucketMode.Owned : BucketMode.Foreign;
        }

        return new ForwardingState(table, modes);
    }
}
