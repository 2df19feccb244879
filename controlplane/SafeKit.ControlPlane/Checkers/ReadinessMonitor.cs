using Microsoft.Extensions.Logging;

namespace SafeKit.ControlPlane.Checkers;

/// <summary>
/// Runs the checks of this node every period and reports readiness (all healthy) through
/// <paramref name="onReadiness"/> whenever it changes, starting with the first round.
/// </summary>
public sealed partial class ReadinessMonitor : IAsyncDisposable
{
    private readonly IReadOnlyList<ICheck> _checks;
    private readonly Action<bool> _onReadiness;
    private readonly TimeSpan _period;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new();
    private Dictionary<string, CheckStatus> _last = [];
    private Task? _loop;
    private bool? _ready;

    public ReadinessMonitor(IReadOnlyList<ICheck> checks, Action<bool> onReadiness, TimeSpan period, TimeProvider time, ILogger logger)
    {
        _checks = checks;
        _onReadiness = onReadiness;
        _period = period;
        _time = time;
        _logger = logger;
    }

    /// <summary>Runs one round now, then keeps running in the background.</summary>
    public async Task StartAsync()
    {
        await RoundAsync(_stop.Token);
        _loop = Task.Run(LoopAsync);
    }

    /// <summary>Last result of every check.</summary>
    public IReadOnlyList<CheckStatus> Results()
    {
        lock (_gate)
        {
            return [.. _last.Values];
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        _stop.Dispose();
    }

    private async Task LoopAsync()
    {
        using var timer = new PeriodicTimer(_period, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token))
            {
                await RoundAsync(_stop.Token);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task RoundAsync(CancellationToken cancellation)
    {
        var results = new Dictionary<string, CheckStatus>(StringComparer.Ordinal);
        foreach (var check in _checks)
        {
            CheckResult result;
            try
            {
                result = await check.RunAsync(cancellation);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                result = new CheckResult(false, e.Message);
            }

            results[check.Name] = new CheckStatus(check.Name, result.Healthy, result.Detail, _time.GetUtcNow());
            lock (_gate)
            {
                if (_last.TryGetValue(check.Name, out var before) && before.Healthy != result.Healthy)
                {
                    LogChange(_logger, check.Name, result.Healthy ? "healthy" : "failing", result.Detail);
                }
            }
        }

        var ready = results.Values.All(r => r.Healthy);
        lock (_gate)
        {
            _last = results;
        }

        if (_ready != ready)
        {
            _ready = ready;
            _onReadiness(ready);
        }
    }

    [LoggerMessage(EventId = 300, Level = LogLevel.Warning, Message = "check {Check} is {State}: {Detail}")]
    private static partial void LogChange(ILogger logger, string check, string state, string detail);
}
