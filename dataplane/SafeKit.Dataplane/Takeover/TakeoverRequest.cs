namespace SafeKit.Dataplane.Takeover;

/// <summary>
/// Buckets this node just took over from nodes that died, and since when those nodes were
/// silent: what they received after that was never answered.
/// </summary>
/// <param name="Gained">Per bucket: taken over from a dead node.</param>
/// <param name="SinceTick">Environment.TickCount64 value from which recorded packets are replayed.</param>
public sealed record TakeoverRequest(bool[] Gained, long SinceTick);
