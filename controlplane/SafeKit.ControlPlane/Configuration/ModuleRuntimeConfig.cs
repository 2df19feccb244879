namespace SafeKit.ControlPlane.Configuration;

/// <summary>The application hooks of a module (SafeKit's start_both / stop_both).</summary>
/// <param name="Start">Shell command that starts the application (must return; daemons fork).</param>
/// <param name="Stop">Shell command that stops it gracefully (after the node left the farm).</param>
/// <param name="TimeoutMilliseconds">A script running longer is killed and counts as failed.</param>
public sealed record ScriptsConfig(string? Start, string? Stop, int TimeoutMilliseconds = 30_000);

/// <summary>Kinds of checkers.</summary>
public enum CheckerKind
{
    Tcp,
    Http,
    Process,
    Command,
    Link,
}

/// <summary>One checker of a module.</summary>
/// <param name="Kind">What it checks.</param>
/// <param name="Target">tcp: host:port (default host: the first VIP); http: URL; process: pid file; command: shell command; link: interface.</param>
/// <param name="ExpectedStatus">http: the status that means healthy.</param>
/// <param name="IntervalMilliseconds">Time between checks.</param>
/// <param name="TimeoutMilliseconds">A check taking longer fails.</param>
/// <param name="Failures">Consecutive failures before the checker is failing.</param>
public sealed record CheckerConfig(CheckerKind Kind, string Target, int ExpectedStatus = 200, int IntervalMilliseconds = 1000, int TimeoutMilliseconds = 2000, int Failures = 3);

/// <summary>What happens when a checker fails: restart, at most <paramref name="Max"/> times per window, then leave the farm.</summary>
public sealed record RestartConfig(int Max = 3, int WindowMilliseconds = 300_000);
