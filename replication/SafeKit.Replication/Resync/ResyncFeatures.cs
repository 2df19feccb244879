namespace SafeKit.Replication.Resync;

/// <summary>
/// What a resync source offers in its first request (<see cref="ResyncMessageType.Options"/>) and
/// the target accepts. A target from before the negotiation answers the request with an error
/// (an unknown type), and both ends then go on as before: nodes of two releases still resync each
/// other during a rolling upgrade.
/// </summary>
[Flags]
internal enum ResyncFeatures
{
    None = 0,

    /// <summary>
    /// After the options request and its answer, each direction is one zstd stream
    /// (<see cref="StreamCompressor"/>); file blocks then travel raw inside it.
    /// </summary>
    CompressedStream = 1,

    /// <summary>
    /// The source may open extra connections that join this one's session (their first request
    /// is <see cref="ResyncMessageType.Stream"/> with the token the options answer carries) and
    /// send files' hashes and data on them, several files at once.
    /// </summary>
    ParallelStreams = 2,
}
