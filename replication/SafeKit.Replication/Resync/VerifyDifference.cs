namespace SafeKit.Replication.Resync;

/// <summary>A difference a verify found between the two copies.</summary>
/// <param name="Path">Relative to the replicated directory ("" is the directory itself).</param>
/// <param name="What">In words, the copy's side first: "missing from the copy", "mode 600 in the copy, 644 here", "content: 1 of 16 blocks of 64 KiB differ…".</param>
public sealed record VerifyDifference(string Path, string What);
