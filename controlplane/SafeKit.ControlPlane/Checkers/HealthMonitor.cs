using Microsoft.Extensions.Logging;

namespace SafeKit.ControlPlane.Checkers;

/// <summary>
/// Runs every check on its own interval. A check becomes failing after its threshold of
/// consecutive failed runs and healthy again after one success; until it has succeeded once it is
/// not healthy. <see cref="Changed"/> reports every change of the overall picture.
/// </summary>
public sealed partial class HealthMonitor : IAsyncDisposable
{
    private readonly IReadOnlyList<CheckSpec> _specs;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new();
    private readonly CheckStatus?[] _states;
    private readonly List<Task> _loops = [];

    public HealthMonitor(IReadOnlyList<CheckSpec> specs, TimeProvider time, ILogger logger)
    {
        _specs = specs;
        _time = time;
        _logger = logger;
        _states = new CheckStatus?[specs.Count];
    }

    /// <summary>Raised (on a check's task) when the health picture changes.</summary>
    public event Action<HealthReport>? Changed;

    /// <summary>Raised (on a check's task) when one check turns failing or healthy again.</summary>
    public event Action<CheckStatus>? CheckChanged;

    /// <summary>The current picture.</summary>
    public HealthReport Report()
    {
        lock (_gate)
        {
            return BuildReport();
        }
    }

    /// <summary>Last state of every check.</summary>
    public IReadOnlyList<CheckStatus> Results()
    {
        lock (_gate)
        {
            return _states.Select((s, i) => s ?? new CheckStatus(_specs[i].Check.Name, false, "not run yet", default)).ToList();
        }
    }

    /// <summary>Runs every check once (so the first report is complete), then keeps running them.</summary>
    public async Task StartAsync()
    {
        await Task.WhenAll(_specs.Select((_, i) => RunOnceAsync(i, _stop.Token)));
        Publish();
        for (var i = 0; i < _specs.Count; i++)
        {
            var index = i;
            _loops.Add(Task.Run(() => LoopAsync(index)));
        }
    }

    /// <summary>Forgets past failures and successes of the checks that restart the application (after a restart).</summary>
    public void ResetApplicationChecks()
    {
        lock (_gate)
        {
            for (var i = 0; i < _specs.Count; i++)
            {
                if (_specs[i].Restarts && _states[i] is { } state)
                {
                    _states[i] = state with { Healthy = false, ConsecutiveFailures = 0, Detail = "application restarted: waiting for a success" };
                }
            }
        }

        Publish();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_loops).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stop.Dispose();
    }

    private async Task LoopAsync(int index)
    {
        using var timer = new PeriodicTimer(_specs[index].Interval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token))
            {
                if (await RunOnceAsync(index, _stop.Token))
                {
                    Publish();
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Runs check <paramref name="index"/>; true when its healthy state changed.</summary>
    private async Task<bool> RunOnceAsync(int index, CancellationToken cancellation)
    {
        var spec = _specs[index];
        CheckResult result;
        try
        {
            result = await spec.Check.RunAsync(cancellation);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            result = new CheckResult(false, e.Message);
        }

        bool changed;
        CheckStatus now;
        lock (_gate)
        {
            var before = _states[index];
            var failures = result.Healthy ? 0 : (before?.ConsecutiveFailures ?? 0) + 1;
            var healthy = result.Healthy || (before is { Healthy: true } && failures < spec.Failures);
            now = new CheckStatus(spec.Check.Name, healthy, result.Detail, _time.GetUtcNow(), failures, (before?.Failures ?? 0) + (result.Healthy ? 0 : 1));
            _states[index] = now;
            // A change of health, or an application check reaching its failure threshold (again,
            // after a restart that did not help): both call for a decision.
            changed = before is null || before.Healthy != healthy || (spec.Restarts && failures == spec.Failures);
            if (before is null || before.Healthy == healthy)
            {
                return changed;
            }
        }

        LogChange(_logger, spec.Check.Name, now.Healthy ? "healthy" : "failing", result.Detail);
        CheckChanged?.Invoke(now);
        return changed;
    }

    private void Publish()
    {
        HealthReport report;
        lock (_gate)
        {
            report = BuildReport();
        }

        Changed?.Invoke(report);
    }

    private HealthReport BuildReport()
    {
        var failing = new List<string>();
        var applicationBroken = false;
        for (var i = 0; i < _specs.Count; i++)
        {
            if (_states[i] is not { Healthy: true })
            {
                failing.Add(_specs[i].Check.Name);
                applicationBroken |= _specs[i].Restarts && _states[i] is not null && _states[i]!.ConsecutiveFailures >= _specs[i].Failures;
            }
        }

        return new HealthReport(failing.Count == 0, applicationBroken, failing);
    }

    [LoggerMessage(EventId = 300, Level = LogLevel.Warning, Message = "check {Check} is {State}: {Detail}")]
    private static partial void LogChange(ILogger logger, string check, string state, string detail);
}

/// <summary>The health of a node's module.</summary>
/// <param name="Healthy">Every check is healthy: the node may take traffic.</param>
/// <param name="ApplicationBroken">An application check reached its failure threshold: restart the application.</param>
/// <param name="Failing">Names of the checks that are not healthy.</param>
public sealed record HealthReport(bool Healthy, bool ApplicationBroken, IReadOnlyList<string> Failing);
