namespace SafeKit.ControlPlane.Checkers;

/// <summary>A check and how it is run.</summary>
/// <param name="Check">What is checked.</param>
/// <param name="Interval">Time between two runs.</param>
/// <param name="Failures">Consecutive failed runs before it counts as failing (one success heals it).</param>
/// <param name="Restarts">Whether its failure means the application is broken (restart it) rather than the node cut off.</param>
public sealed record CheckSpec(ICheck Check, TimeSpan Interval, int Failures, bool Restarts);
