namespace SafeKit.ControlPlane.Checkers;

/// <summary>The state of a check, for status.</summary>
/// <param name="Name">Check name.</param>
/// <param name="Healthy">Counts as healthy (a failure below the threshold still does).</param>
/// <param name="Detail">What the last run saw.</param>
/// <param name="At">When it last ran.</param>
/// <param name="ConsecutiveFailures">Failed runs in a row.</param>
/// <param name="Failures">Failed runs since the checker started.</param>
public sealed record CheckStatus(string Name, bool Healthy, string Detail, DateTimeOffset At, int ConsecutiveFailures = 0, long Failures = 0);
