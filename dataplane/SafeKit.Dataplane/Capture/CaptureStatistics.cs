namespace SafeKit.Dataplane.Capture;

/// <summary>Cumulative counters of a capture backend since it was opened.</summary>
/// <param name="Received">Frames the kernel handed to the backend.</param>
/// <param name="Dropped">Frames the kernel dropped because the backend's buffer was full.</param>
public readonly record struct CaptureStatistics(long Received, long Dropped);
