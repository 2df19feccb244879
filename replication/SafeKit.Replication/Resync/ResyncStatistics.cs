namespace SafeKit.Replication.Resync;

/// <summary>What one resync pass did, as the source counts it.</summary>
public sealed class ResyncStatistics
{
    /// <summary>Directories compared.</summary>
    public long Directories { get; internal set; }

    /// <summary>Directories whose listing differed from the target's, so their entries were sent.</summary>
    public long DirectoriesListed { get; internal set; }

    /// <summary>Entries (files, links, directories…) the source listed.</summary>
    public long Entries { get; internal set; }

    /// <summary>Regular files whose size or time differed, so their blocks were compared or sent.</summary>
    public long FilesCompared { get; internal set; }

    /// <summary>Requests for the target's block hashes (none for a journaled one-block file whose copy is stale).</summary>
    public long HashRequests { get; internal set; }

    /// <summary>Of those, files whose changed bytes were known exactly (while the node was alone): only those were sent, no hashes asked.</summary>
    public long FilesByRanges { get; internal set; }

    /// <summary>Bytes of those files read on the source.</summary>
    public long BytesCompared { get; internal set; }

    /// <summary>Blocks sent (they differed, or the target had nothing there).</summary>
    public long BlocksSent { get; internal set; }

    /// <summary>Uncompressed bytes of the blocks sent: what changed, at block granularity.</summary>
    public long BytesSent { get; internal set; }

    /// <summary>Bytes on the connection, both ways, headers included.</summary>
    public long WireBytes { get; internal set; }

    /// <summary>Directories the current pass will look at, when it knows (a pass over changed paths); 0 for a walk.</summary>
    public long PassPlanned { get; internal set; }

    /// <summary>Of those, the ones done.</summary>
    public long PassDone { get; internal set; }

    public override string ToString() =>
        $"{Directories} directories ({DirectoriesListed} differing), {Entries} entries, {FilesCompared} files compared ({FilesByRanges} by changed ranges, {BytesCompared} bytes, {HashRequests} hash requests), {BlocksSent} blocks sent ({BytesSent} bytes), {WireBytes} bytes on the wire";
}
