using System.Net;
using Microsoft.Extensions.Logging;
using SafeKit.ControlPlane.Checkers;
using SafeKit.ControlPlane.Configuration;

namespace SafeKit.ControlPlane.Modules;

/// <summary>
/// Keeps the application of a module healthy on this node: runs its start script, runs its
/// checkers, and tells whether the node may take traffic (readiness gating). When an application
/// checker fails the application is restarted with its own scripts — at most a number of times in
/// a window; past that the node stays out of the farm until the checks pass again. A failing link
/// check only takes the node out (a cut cable is not a broken application).
/// </summary>
public sealed partial class ModuleSupervisor : IAsyncDisposable
{
    private volatile IApplicationModule _module;
    private readonly string _node;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Action<bool> _ready;
    private readonly Action<string, string?> _state;
    private readonly SemaphoreSlim _restarting = new(1, 1);
    private readonly Queue<DateTimeOffset> _restarts = new();
    private readonly Lock _gate = new();
    private volatile HealthMonitor? _monitor;
    private volatile bool _stopping;
    private volatile bool _gaveUp;

    // The checkers' latest verdict (under _gate): a restart asked for by a failing report that a
    // healthy one has overtaken since is stale, and must neither restart nor give up.
    private bool _healthy;

    // Kept while given up: the checkers' next "not ready" must not hide why the node left.
    private volatile string? _gaveUpReason;
    private ScriptResult? _lastStart;
    private ScriptResult? _lastStop;

    /// <param name="module">The module.</param>
    /// <param name="node">This node's name: replaces <c>{node}</c> in scripts and checkers, and is in SAFEKIT_NODE.</param>
    /// <param name="time">Clock.</param>
    /// <param name="logger">Where script output and decisions go.</param>
    /// <param name="ready">Receives readiness changes (take traffic or not).</param>
    /// <param name="state">Receives what is wrong with the application (state, reason), or (UP, null) when nothing is.</param>
    public ModuleSupervisor(IApplicationModule module, string node, TimeProvider time, ILogger logger, Action<bool> ready, Action<string, string?> state)
    {
        _module = module;
        _node = node;
        _time = time;
        _logger = logger;
        _ready = ready;
        _state = state;
    }

    /// <summary>Raised when one of the module's checks turns failing or healthy again.</summary>
    public event Action<SafeKit.ControlPlane.Checkers.CheckStatus>? CheckChanged;

    /// <summary>Restarts done in the current window.</summary>
    public int RecentRestarts
    {
        get
        {
            lock (_gate)
            {
                return _restarts.Count;
            }
        }
    }

    /// <summary>True after the restart limit was reached (until the checks pass again).</summary>
    public bool GaveUp => _gaveUp;

    public IReadOnlyList<CheckStatus> Checks() => _monitor?.Results() ?? [];

    public ScriptResult? LastStart => _lastStart;

    public ScriptResult? LastStop => _lastStop;

    /// <summary>Starts the application and the checkers.</summary>
    public async Task StartAsync()
    {
        await RunScriptAsync("start", _module.Scripts.Start);
        await StartMonitorAsync();
    }

    /// <summary>
    /// Applies a reloaded module configuration: scripts and the restart policy from the next use on;
    /// new checkers replace the old ones without touching the running application (readiness follows
    /// the new checkers' first results).
    /// </summary>
    public async Task ReconfigureAsync(IApplicationModule module)
    {
        ArgumentNullException.ThrowIfNull(module);
        var checkersChanged = !module.Checkers.SequenceEqual(_module.Checkers);
        _module = module;
        if (checkersChanged && !_stopping && _monitor is not null)
        {
            var old = _monitor;
            await StartMonitorAsync();
            await old.DisposeAsync();
        }
    }

    private async Task StartMonitorAsync()
    {
        var monitor = new HealthMonitor(BuildChecks(), _time, _logger);
        // Only the current monitor decides (an old one may still report while it stops).
        monitor.Changed += report =>
        {
            if (ReferenceEquals(monitor, _monitor))
            {
                OnHealth(report);
            }
        };
        monitor.CheckChanged += check =>
        {
            if (ReferenceEquals(monitor, _monitor) && !_stopping)
            {
                CheckChanged?.Invoke(check);
            }
        };
        _monitor = monitor;
        await monitor.StartAsync();
    }

    /// <summary>Stops the checkers and the application (its stop script: a graceful stop).</summary>
    public async Task StopAsync()
    {
        _stopping = true;
        if (_monitor is not null)
        {
            await _monitor.DisposeAsync();
            _monitor = null;
        }

        await RunScriptAsync("stop", _module.Scripts.Stop);
    }

    public async ValueTask DisposeAsync()
    {
        _stopping = true;
        if (_monitor is not null)
        {
            await _monitor.DisposeAsync();
        }

        _restarting.Dispose();
    }

    private void OnHealth(HealthReport report)
    {
        if (_stopping)
        {
            return;
        }

        bool recovered;
        lock (_gate)
        {
            _healthy = report.Healthy;
            recovered = report.Healthy && _gaveUp;
            if (recovered)
            {
                _gaveUp = false;
                _gaveUpReason = null;
            }
        }

        if (report.Healthy)
        {
            if (recovered)
            {
                LogRecovered(_logger, _module.Name);
            }

            _state(Status.ModuleStates.Up, null);
            _ready(true);
            return;
        }

        _ready(false);
        if (report.ApplicationBroken && !_gaveUp)
        {
            _ = Task.Run(() => RestartAsync(string.Join(", ", report.Failing), counted: true));
        }
        else
        {
            _state(Status.ModuleStates.Wait, _gaveUpReason ?? $"not ready: {string.Join(", ", report.Failing)}");
        }
    }

    /// <summary>
    /// Restarts the application (stop script, then start script). A restart a failing checker asks
    /// for is <paramref name="counted"/> against the restart limit; an administrator's is not.
    /// </summary>
    public async Task RestartAsync(string reason, bool counted)
    {
        if (!await _restarting.WaitAsync(counted ? TimeSpan.Zero : Timeout.InfiniteTimeSpan))
        {
            return;
        }

        try
        {
            if (counted && !CountRestart())
            {
                return;
            }

            if (counted && _gaveUp)
            {
                LogGaveUp(_logger, _module.Name, _module.Restart.Max, reason);
                _gaveUpReason = $"left the farm: {_module.Restart.Max} restarts did not fix {reason}; back when the checks pass";
                _state(Status.ModuleStates.Wait, _gaveUpReason);
                return;
            }

            LogRestart(_logger, _module.Name, reason);
            _state(Status.ModuleStates.Wait, $"restarting the application: {reason}");
            await RunScriptAsync("stop", _module.Scripts.Stop);
            await RunScriptAsync("start", _module.Scripts.Start);
            _monitor?.ResetApplicationChecks();
        }
        finally
        {
            _restarting.Release();
        }
    }

    /// <summary>
    /// Records a restart in the window, or gives up when the window is full. False when the
    /// application is healthy again: the failing report that asked for it is stale.
    /// </summary>
    private bool CountRestart()
    {
        var now = _time.GetUtcNow();
        lock (_gate)
        {
            if (_healthy)
            {
                return false;
            }

            while (_restarts.Count > 0 && now - _restarts.Peek() > TimeSpan.FromMilliseconds(_module.Restart.WindowMilliseconds))
            {
                _restarts.Dequeue();
            }

            if (_restarts.Count >= _module.Restart.Max)
            {
                _gaveUp = true;
            }
            else
            {
                _restarts.Enqueue(now);
            }

            return true;
        }
    }

    private async Task RunScriptAsync(string name, string? command)
    {
        if (command is null)
        {
            return;
        }

        var environment = new Dictionary<string, string>(StringComparer.Ordinal) { ["SAFEKIT_NODE"] = _node, ["SAFEKIT_MODULE"] = _module.Name, ["SAFEKIT_SCRIPT"] = name };
        var result = await ScriptRunner.RunAsync(Expand(command), TimeSpan.FromMilliseconds(_module.Scripts.TimeoutMilliseconds), CancellationToken.None, environment);
        if (name == "start")
        {
            _lastStart = result;
        }
        else
        {
            _lastStop = result;
        }

        var output = result.Output.TrimEnd();
        LogScript(_logger, _module.Name, name, result.Summary, output.Length == 0 ? "(no output)" : output);
    }

    private List<CheckSpec> BuildChecks()
    {
        var checks = new List<CheckSpec>
        {
            // The farm interface's carrier: always checked, never a reason to restart the application.
            new(new LinkCheck(_module.Interface), TimeSpan.FromMilliseconds(100), 1, Restarts: false),
        };
        foreach (var c in _module.Checkers)
        {
            var timeout = TimeSpan.FromMilliseconds(c.TimeoutMilliseconds);
            var target = Expand(c.Target);
            ICheck check = c.Kind switch
            {
                CheckerKind.Tcp => new TcpCheck(TcpTarget(target), timeout),
                CheckerKind.Http => new HttpCheck(new Uri(target), c.ExpectedStatus, timeout),
                CheckerKind.Process => new ProcessCheck(target),
                CheckerKind.Command => new CommandCheck(target, timeout),
                _ => new LinkCheck(target),
            };
            checks.Add(new CheckSpec(check, TimeSpan.FromMilliseconds(c.IntervalMilliseconds), c.Failures, Restarts: c.Kind != CheckerKind.Link));
        }

        return checks;
    }

    private string Expand(string text) => text.Replace("{node}", _node, StringComparison.Ordinal);

    private IPEndPoint TcpTarget(string target)
    {
        // "port" alone means the first VIP.
        return int.TryParse(target, System.Globalization.CultureInfo.InvariantCulture, out var port)
            ? new IPEndPoint(_module.Vips[0], port)
            : IPEndPoint.Parse(target);
    }

    [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "module {Module}: {Script} script {Summary}; output: {Output}")]
    private static partial void LogScript(ILogger logger, string module, string script, string summary, string output);

    [LoggerMessage(EventId = 401, Level = LogLevel.Warning, Message = "module {Module}: restarting the application ({Reason})")]
    private static partial void LogRestart(ILogger logger, string module, string reason);

    [LoggerMessage(EventId = 402, Level = LogLevel.Error, Message = "module {Module}: {Max} restarts did not help ({Reason}); the node leaves the farm until the checks pass")]
    private static partial void LogGaveUp(ILogger logger, string module, int max, string reason);

    [LoggerMessage(EventId = 403, Level = LogLevel.Information, Message = "module {Module}: checks pass again, back in the farm")]
    private static partial void LogRecovered(ILogger logger, string module);
}
