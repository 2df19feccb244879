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

    // The file counters are added to by every stream of the resync at once.
    private long _filesCompared;
    private long _hashRequests;
    private long _filesByRanges;
    private long _bytesCompared;
    private long _blocksSent;
    private long _bytesSent;

    /// <summary>Regular files whose size or time differed, so their blocks were compared or sent.</summary>
    public long FilesCompared => Interlocked.Read(ref _filesCompared);

    /// <summary>Requests for the target's block hashes (none for a journaled one-block file whose copy is stale).</summary>
    public long HashRequests => Interlocked.Read(ref _hashRequests);

    /// <summary>Of those, files whose changed bytes were known exactly (while the node was alone): only those were sent, no hashes asked.</summary>
    public long FilesByRanges => Interlocked.Read(ref _filesByRanges);

    /// <summary>Bytes of those files read on the source.</summary>
    public long BytesCompared => Interlocked.Read(ref _bytesCompared);

    /// <summary>Blocks sent (they differed, or the target had nothing there).</summary>
    public long BlocksSent => Interlocked.Read(ref _blocksSent);

    /// <summary>Uncompressed bytes of the blocks sent: what changed, at block granularity.</summary>
    public long BytesSent => Interlocked.Read(ref _bytesSent);

    /// <summary>Bytes on the connection, both ways, headers included.</summary>
    public long WireBytes { get; internal set; }

    /// <summary>Directories the current pass will look at, when it knows (a pass over changed paths); 0 for a walk.</summary>
    public long PassPlanned { get; internal set; }

    /// <summary>Of those, the ones done.</summary>
    public long PassDone { get; internal set; }

    internal void FileCompared() => Interlocked.Increment(ref _filesCompared);

    internal void HashesAsked() => Interlocked.Increment(ref _hashRequests);

    internal void FileByRanges() => Interlocked.Increment(ref _filesByRanges);

    internal void Read(long bytes) => Interlocked.Add(ref _bytesCompared, bytes);

    internal void BlockSent(long bytes)
    {
        Interlocked.Increment(ref _blocksSent);
        Interlocked.Add(ref _bytesSent, bytes);
    }

    public override string ToString() =>
        $"{Directories} directories ({DirectoriesListed} differing), {Entries} entries, {FilesCompared} files compared ({FilesByRanges} by changed ranges, {BytesCompared} bytes, {HashRequests} hash requests), {BlocksSent} blocks sent ({BytesSent} bytes), {WireBytes} bytes on the wire";
}
