namespace SafeKit.ControlPlane.Checkers;

/// <summary>The outcome of one check.</summary>
/// <param name="Healthy">True when what is checked works.</param>
/// <param name="Detail">What was seen (shown in status and logs).</param>
public sealed record CheckResult(bool Healthy, string Detail);

/// <summary>Something that decides whether this node may take traffic.</summary>
public interface ICheck
{
    /// <summary>Name shown in status (link:eth0, tcp:80...).</summary>
    string Name { get; }

    /// <summary>Runs the check; never throws (a failure is an unhealthy result).</summary>
    Task<CheckResult> RunAsync(CancellationToken cancellation);
}
