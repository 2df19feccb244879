namespace SafeKit.Replication.Channel;

/// <summary>
/// Why an end shut its socket down to take its lock back from a blocked send: the failures that
/// shutdown causes on other threads (a closed read, a failed send) then report this reason, not
/// their own.
/// </summary>
internal sealed record LinkCut(LinkLossReason Reason, string Detail, Exception? Cause);
