using SafeKit.Api;
using SafeKit.ControlPlane.Configuration;
using SafeKit.ControlPlane.Events;
using SafeKit.ControlPlane.Status;

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
    private readonly List<MirrorModuleHost> _mirrors;
    private readonly NodeReadiness _readiness;
    private readonly Func<ClusterConfig> _config;
    private readonly SemaphoreSlim _one = new(1, 1);

    private readonly EventJournal _journal;

    public ModuleActions(List<FarmModuleHost> farms, List<MirrorModuleHost> mirrors, NodeReadiness readiness, Func<ClusterConfig> config, EventJournal journal)
    {
        _journal = journal;
        _farms = farms;
        _mirrors = mirrors;
        _readiness = readiness;
        _config = config;
    }

    public async Task<ModuleActionResult> ActAsync(string module, ModuleAction action)
    {
        if (_mirrors.FirstOrDefault(m => m.Name == module) is { } mirror)
        {
            return await OneAtATimeAsync(() => ActOnMirrorAsync(mirror, action));
        }

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
                case ModuleAction.Prim or ModuleAction.Resync or ModuleAction.Swap or ModuleAction.Verify:
                    throw new ModuleActionException(409, $"{verb} applies to mirror modules; {module} is a farm");
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

    private async Task<ModuleActionResult> OneAtATimeAsync(Func<Task<ModuleActionResult>> act)
    {
        if (!await _one.WaitAsync(0))
        {
            throw new ModuleActionException(409, "another action is running on this node; try again when it is done");
        }

        try
        {
            return await act();
        }
        finally
        {
            _one.Release();
        }
    }

    /// <summary>stop/forcestop (application, VIP, mounts; the peer takes over), start, restart, stopstart, prim --force, resync --full, swap, verify.</summary>
    private async Task<ModuleActionResult> ActOnMirrorAsync(MirrorModuleHost mirror, ModuleAction action)
    {
        var module = mirror.Name;
        var verb = action.ToString().ToLowerInvariant();
        _journal.Record(EventKinds.Action, module, EventSeverities.Info, $"{verb} requested by an administrator");
        var message = $"{verb} of {module} done on {mirror.NodeName}";
        switch (action)
        {
            case ModuleAction.Stop or ModuleAction.Forcestop:
                Require(!mirror.Stopped, $"module {module} is already stopped");
                await mirror.StopAsync("stopped by an administrator");
                break;
            case ModuleAction.Start:
                Require(mirror.Stopped, $"module {module} is already started ({mirror.State}: {mirror.Reason})");
                await mirror.StartAsync();
                if (await mirror.RefusalAsync() is { } refusal)
                {
                    throw new ModuleActionException(409, $"{module} does not start on {mirror.NodeName}: {refusal}");
                }

                break;
            case ModuleAction.Restart:
                Require(mirror.State is ModuleStates.Prim or ModuleStates.Alone, $"module {module} runs its application only as PRIM or ALONE (it is {mirror.State})");
                await mirror.RestartApplicationAsync();
                break;
            case ModuleAction.Prim:
                message = await mirror.ForcePrimAsync();
                break;
            case ModuleAction.Resync:
                message = await mirror.FullResyncAsync();
                break;
            case ModuleAction.Swap:
                message = await mirror.SwapAsync();
                break;
            case ModuleAction.Verify:
                message = await mirror.VerifyAsync();
                break;
            default:
                if (!mirror.Stopped)
                {
                    await mirror.StopAsync("stopped by an administrator (stopstart)");
                }

                await mirror.StartAsync();
                break;
        }

        _journal.Record(EventKinds.Action, module, EventSeverities.Info, $"{verb} done (state {mirror.State})");
        return new ModuleActionResult(module, verb, mirror.State, message);
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
