namespace SafeKit.Dataplane.Flows;

/// <summary>How long flows are remembered and kept pinned.</summary>
/// <param name="PinIdleMilliseconds">A pinned flow idle this long no longer holds its bucket.</param>
/// <param name="IdleMilliseconds">Any flow idle this long is forgotten.</param>
/// <param name="MaxPinMilliseconds">A bucket is never pinned longer than this (the drain limit).</param>
public sealed record FlowTimeouts(long PinIdleMilliseconds = 120_000, long IdleMilliseconds = 3_600_000, long MaxPinMilliseconds = 300_000);
