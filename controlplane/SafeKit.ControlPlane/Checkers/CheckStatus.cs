namespace SafeKit.ControlPlane.Checkers;

/// <summary>The last result of a check, for status.</summary>
public sealed record CheckStatus(string Name, bool Healthy, string Detail, DateTimeOffset At);
