using SafeKit.ControlPlane.Events;
using SafeKit.Replication.Mirror;

namespace SafeKit.Daemon;

/// <summary>
/// Resolving a split brain (both nodes ran alone: diverged copies). Nothing happens on its own:
/// both say SPLIT BRAIN until an administrator runs <c>prim --force</c> on the node whose copy to
/// keep. That node's record (and heartbeats) then say <c>forced</c>; the other node, seeing a
/// forced peer serving a copy that diverged from its own, stops serving if it did, keeps its own
/// changes aside (<see cref="SplitBrainKeeper"/>), and waits to be resynchronised from the chosen
/// copy like any returning node; once it follows, the mark is cleared.
/// </summary>
internal sealed partial class MirrorModuleHost
{
    private Task<string>? _keepingAside;

    /// <summary>
    /// Whether this node is the discarded side: its copy diverged from a peer that serves a copy
    /// chosen by <c>prim --force</c> (and this node's own copy was not forced).
    /// </summary>
    private bool Discarded(DataRelation? relation) =>
        relation == DataRelation.Diverged && !_record.Forced && _peerBeacon is { Forced: true, Role: MirrorRole.Alone or MirrorRole.Prim };

    /// <summary>ALONE on the discarded side: stops serving (application, VIP, mounts); the next decisions keep its changes aside.</summary>
    private async Task StepDownAsDiscardedAsync()
    {
        var reason = $"split brain resolved for {_peer.Name}'s copy (prim --force there): this node stops serving, keeps its own changes aside and is resynchronised from {_peer.Name}";
        _journal.Record(EventKinds.State, _module.Name, EventSeverities.Warning, reason);
        await LeaveAsync();
        SetRole(MirrorRole.Wait, reason);
    }

    /// <summary>WAIT on the discarded side: keeps its changes aside (once, in the background), then listens for the resync.</summary>
    private void FollowTheChosenCopy()
    {
        if (_record.KeptAside is { } kept)
        {
            MarkStale();
            ListenForResync();
            Wait($"split brain resolved for {_peer.Name}'s copy (prim --force there); this node's own changes are kept in {kept}; it waits while {_peer.Name} resynchronises it");
            return;
        }

        if (_keepingAside is null)
        {
            var (current, shared, state) = (_record.Current, _record.Parent, _module.StateDirectory);
            _keepingAside = Task.Run(() => SplitBrainKeeper.Keep(state, current, shared, _directories));
        }

        if (!_keepingAside.IsCompleted)
        {
            Wait($"split brain resolved for {_peer.Name}'s copy (prim --force there): keeping this node's own changes aside before it is resynchronised");
            return;
        }

        var keeping = _keepingAside;
        _keepingAside = null;
        if (keeping.IsCompletedSuccessfully)
        {
            SaveRecord(_record with { KeptAside = keeping.Result });
            _journal.Record(EventKinds.State, _module.Name, EventSeverities.Warning, $"split brain: this node's own changes were kept aside in {keeping.Result} before it is resynchronised from {_peer.Name}");
            return;
        }

        var failure = keeping.Exception?.GetBaseException().Message ?? "cancelled";
        Wait($"split brain resolved for {_peer.Name}'s copy, but this node's own changes could not be kept aside ({failure}): it is not resynchronised; retrying");
    }
}
