using SafeKit.Native.Host;

namespace SafeKit.Daemon;

/// <summary>
/// safekitd under systemd (Type=notify): READY=1 once the node runs and its API listens, a STATUS
/// line with the modules' states, WATCHDOG=1 at half the watchdog interval from the daemon's main
/// loop (so a hung loop gets the service restarted), STOPPING=1 when it drains.
/// </summary>
internal sealed class ServiceManager : IDisposable
{
    private readonly SystemdNotifier _notifier = SystemdNotifier.FromEnvironment();
    private readonly TimeProvider _time;
    private DateTimeOffset _nextWatchdog;
    private string? _status;

    public ServiceManager(TimeProvider time)
    {
        _time = time;
    }

    /// <summary>How often the main loop must call <see cref="Tick"/> at the least.</summary>
    public TimeSpan LoopInterval => _notifier.WatchdogInterval is { } interval ? TimeSpan.FromTicks(Math.Min(TimeSpan.FromSeconds(1).Ticks, interval.Ticks / 4)) : TimeSpan.FromSeconds(1);

    public void Ready(string status)
    {
        _status = status;
        _notifier.Notify($"READY=1\nSTATUS={status}\nMAINPID={Environment.ProcessId}");
    }

    /// <summary>Called by every round of the main loop: pets the watchdog and updates the status line.</summary>
    public void Tick(string status)
    {
        if (status != _status)
        {
            _status = status;
            _notifier.Notify($"STATUS={status}");
        }

        if (_notifier.WatchdogInterval is { } interval && _time.GetUtcNow() >= _nextWatchdog)
        {
            _notifier.Notify("WATCHDOG=1");
            _nextWatchdog = _time.GetUtcNow() + interval / 2;
        }
    }

    public void Reloading() => _notifier.Notify("RELOADING=1\nSTATUS=reloading the configuration");

    public void Reloaded() => _notifier.Notify("READY=1");

    public void Stopping() => _notifier.Notify("STOPPING=1\nSTATUS=draining: finishing the connections this node serves");

    public void Dispose() => _notifier.Dispose();
}
