using SafeKit.Api;
using SafeKit.ControlPlane.Configuration;
using SafeKit.ControlPlane.Events;

namespace SafeKit.Daemon;

/// <summary>
/// An administrator's actions on a module of this node, one at a time: <c>stop</c> leaves the farm,
/// lets the connections finish (drain timeout) and stops the application; <c>forcestop</c> does
/// the same without waiting; <c>start</c> starts the application and offers to take traffic once
/// its checks pass; <c>restart</c> runs the stop and start scripts in place; <c>stopstart</c> is
/// stop then start.
/// </summary>
internal sealed class ModuleActions : IDisposable
{
    private readonly List<FarmModuleHost> _farms;
    private readonly NodeReadiness _readiness;
    private readonly Func<ClusterConfig> _config;
    private readonly SemaphoreSlim _one = new(1, 1);

    private readonly EventJournal _journal;

    public ModuleActions(List<FarmModuleHost> farms, NodeReadiness readiness, Func<ClusterConfig> config, EventJournal journal)
    {
        _journal = journal;
        _farms = farms;
        _readiness = readiness;
        _config = config;
    }

    public async Task<ModuleActionResult> ActAsync(string module, ModuleAction action)
    {
        var index = _farms.FindIndex(f => f.Name == module);
        if (index < 0)
        {
            throw new ModuleActionException(404, $"no module '{module}' on this node");
        }

        if (!await _one.WaitAsync(0))
        {
            throw new ModuleActionException(409, "another action is running on this node; try again when it is done");
        }

        try
        {
            var farm = _farms[index];
            var verb = action.ToString().ToLowerInvariant();
            _journal.Record(EventKinds.Action, module, EventSeverities.Info, $"{verb} requested by an administrator");
            switch (action)
            {
                case ModuleAction.Stop or ModuleAction.Forcestop:
                    Require(!farm.Stopped, $"module {module} is already stopped");
                    await StopAsync(index, drain: action == ModuleAction.Stop);
                    break;
                case ModuleAction.Start:
                    Require(farm.Stopped, $"module {module} is already started (state {farm.State})");
                    await StartAsync(index);
                    break;
                case ModuleAction.Restart:
                    Require(!farm.Stopped, $"module {module} is stopped: start it");
                    await farm.RestartApplicationAsync();
                    break;
                default:
                    if (!farm.Stopped)
                    {
                        await StopAsync(index, drain: true);
                    }

                    await StartAsync(index);
                    break;
            }

            _journal.Record(EventKinds.Action, module, EventSeverities.Info, $"{verb} done (state {farm.State})");
            return new ModuleActionResult(module, verb, farm.State, $"{verb} of {module} done on {farm.NodeName}");
        }
        finally
        {
            _one.Release();
        }
    }

    private static void Require(bool condition, string message)
    {
        if (!condition)
        {
            throw new ModuleActionException(409, message);
        }
    }

    private async Task StopAsync(int index, bool drain)
    {
        var farm = _farms[index];
        _readiness.SetStopped(index, true);
        await farm.DrainAsync(_config().Heartbeat, waitForPins: drain);
        farm.MarkStopped(drain ? "stopped by an administrator (drained)" : "stopped by an administrator (forcestop)");
    }

    private async Task StartAsync(int index)
    {
        _readiness.SetHealthy(index, false);
        _readiness.SetStopped(index, false);
        await _farms[index].StartApplicationAsync(healthy => _readiness.SetHealthy(index, healthy));
    }

    public void Dispose() => _one.Dispose();
}
