using System.Diagnostics;
using SafeKit.Api;
using SafeKit.ControlPlane.Events;
using SafeKit.Replication.Mirror;

namespace SafeKit.Daemon;

/// <summary>
/// <c>safekit swap</c>: PRIM hands its role to SECOND with every acknowledged change and without a
/// new generation, so neither copy needs a resync. PRIM stops the application, gives up the VIP,
/// unmounts and closes each link in order (it returns once SECOND acknowledged everything it was
/// sent), then becomes SECOND itself, listening. SECOND sees its link closed and its peer SECOND
/// with the same data: it becomes PRIM (connects, mounts, takes the VIP, starts the application).
/// </summary>
internal sealed partial class MirrorModuleHost
{
    private static readonly TimeSpan SwapTimeout = TimeSpan.FromSeconds(60);

    /// <summary>On PRIM: swaps roles with SECOND and waits until the peer serves; the message gives the measured phases.</summary>
    public async Task<string> SwapAsync()
    {
        var started = Stopwatch.GetTimestamp();
        TimeSpan applicationStopped;
        await _gate.WaitAsync();
        try
        {
            RequireSwappable();
            _journal.Record(EventKinds.Action, _module.Name, EventSeverities.Info, $"swap: {_self.Name} stops the application and hands PRIM to {_peer.Name}");
            if (_supervisor is { } supervisor)
            {
                await supervisor.StopAsync();
                await supervisor.DisposeAsync();
                _supervisor = null;
            }

            applicationStopped = Stopwatch.GetElapsedTime(started);
            _vip.Release();

            // Unmounted first, then each link waits for SECOND's acknowledgement of everything sent.
            await CloseAllAsync();
            if (_record.Diverging)
            {
                // SECOND did not confirm every change (lost meanwhile): this copy is the newest, it serves again.
                await BecomeAloneAsync($"swap abandoned: {_peer.Name} did not acknowledge every change before the handover; this node serves alone");
                throw new ModuleActionException(409, $"swap of {_module.Name} abandoned: {_peer.Name} did not acknowledge every change; {_self.Name} serves again (ALONE) and resynchronises it");
            }

            await BecomeSecondAsync();
            SetRole(MirrorRole.Second, $"swap: handed PRIM to {_peer.Name}; waiting for it to connect");
        }
        finally
        {
            _gate.Release();
        }

        var handedOver = Stopwatch.GetElapsedTime(started);
        while (Stopwatch.GetElapsedTime(started) < SwapTimeout)
        {
            if (_membership.PeerBeacon(_peer.Name) is { } bytes && MirrorBeacon.Read(bytes) is { Role: MirrorRole.Prim })
            {
                var total = Stopwatch.GetElapsedTime(started);
                var message = FormattableString.Invariant(
                    $"swap of {_module.Name} done: {_peer.Name} is PRIM, {_self.Name} SECOND; application stopped in {applicationStopped.TotalMilliseconds:0} ms, handed over in {(handedOver - applicationStopped).TotalMilliseconds:0} ms, {_peer.Name} serving after {total.TotalMilliseconds:0} ms");
                _journal.Record(EventKinds.Action, _module.Name, EventSeverities.Info, message);
                return message;
            }

            await Task.Delay(Tick);
        }

        throw new ModuleActionException(409, $"swap of {_module.Name}: {_self.Name} handed PRIM over, but {_peer.Name} did not become PRIM within {SwapTimeout.TotalSeconds:0} s (state here: {_state.Current}: {_reason})");
    }

    /// <summary>Refuses a swap that would not keep both copies equal and one node serving.</summary>
    private void RequireSwappable()
    {
        var served = _peerBeacon is { Role: MirrorRole.Prim } ? $" ({_peer.Name} is PRIM: run it there, e.g. 'safekit swap {_module.Name} --on {_peer.Name}')" : "";
        if (_role != MirrorRole.Prim)
        {
            throw new ModuleActionException(409, _role == MirrorRole.Alone
                ? $"module {_module.Name} is ALONE on {_self.Name}: {_peer.Name}'s copy is behind; it becomes SECOND once resynchronised, then swap"
                : $"swap runs on the PRIM node; {_module.Name} is {_state.Current} on {_self.Name}{served}");
        }

        if (!_peerAlive || _peerBeacon is not { Role: MirrorRole.Second, SecondReady: true })
        {
            throw new ModuleActionException(409, $"{_peer.Name} is not SECOND ({(_peerAlive ? _peerBeacon?.Role.ToString().ToUpperInvariant() ?? "heard" : "not heard")}): nothing to swap with");
        }

        if (_directories.Any(d => d.Link?.State != LinkState.Mirroring))
        {
            throw new ModuleActionException(409, $"{_module.Name} is not mirroring every directory to {_peer.Name}: nothing to swap with");
        }
    }

    /// <summary>
    /// SECOND: the peer handed PRIM over (<see cref="SwapAsync"/>): its links to this node closed in
    /// order and it now waits as SECOND with the same data.
    /// </summary>
    private async Task<bool> TakeOverFromSwapAsync(MirrorBeacon peer, DataRelation? relation)
    {
        if (peer is not { Role: MirrorRole.Second, SecondReady: true } || relation != DataRelation.Same || !_directories.Any(d => d.ReceiverLost))
        {
            return false;
        }

        foreach (var directory in _directories)
        {
            await directory.CloseSecondAsync();
        }

        SetRole(MirrorRole.Wait, $"swap: {_peer.Name} handed PRIM to this node");
        await BecomePrimAsync();
        return true;
    }
}
