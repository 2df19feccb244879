using System.Net;
using Microsoft.Extensions.Logging;
using SafeKit.ControlPlane.Checkers;
using SafeKit.ControlPlane.Configuration;
using SafeKit.ControlPlane.Events;
using SafeKit.ControlPlane.Membership;
using SafeKit.ControlPlane.Modules;
using SafeKit.ControlPlane.Status;
using SafeKit.Replication.Channel;
using SafeKit.Replication.Mirror;

namespace SafeKit.Daemon;

/// <summary>
/// Runs one mirror module on this node: decides its role (STOP, WAIT, SECOND, PRIM, ALONE) from the
/// peer's heartbeats and both nodes' data generations, and moves between roles — mounts, replication,
/// VIP, application. Every transition runs under one gate, from the control loop or an
/// administrator's action. The rules (README, "Mirror roles"):
/// <list type="bullet">
/// <item>Same data, both waiting: the first node of the configuration becomes PRIM once the other is SECOND.</item>
/// <item>PRIM loses SECOND (heartbeats or link): it records a new generation, then keeps serving ALONE.</item>
/// <item>SECOND loses PRIM (every heartbeat): it takes over (ALONE) only if a witness answers; else it waits and says so.</item>
/// <item>A node whose peer went on alone from its data (older) never starts; diverged data waits for <c>prim --force</c>.</item>
/// </list>
/// </summary>
internal sealed partial class MirrorModuleHost : IAsyncDisposable
{
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan WitnessRetry = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How often PRIM starts a journal epoch and trims the ones SECOND holds durably (a path is
    /// written once per epoch; the journal keeps about the last two epochs' paths while mirroring).
    /// </summary>
    private static readonly TimeSpan JournalEpoch = TimeSpan.FromSeconds(10);

    private readonly MirrorModuleConfig _module;
    private readonly NodeConfig _self;
    private readonly NodeConfig _peer;
    private readonly bool _preferred;
    private readonly MembershipService _membership;
    private readonly ClusterConfig _cluster;
    private readonly byte[] _key;
    private readonly EventJournal _journal;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ModuleStateHistory _state;
    private readonly List<MirrorDirectory> _directories;
    private readonly VipHolder _vip;
    private readonly Witness _witness;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly SemaphoreSlim _wake = new(0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _recordGate = new();
    private readonly DateTimeOffset _started;
    private MirrorRecord _record;
    private MirrorRole _role = MirrorRole.Wait;
    private string _reason = "starting";
    private bool _peerAlive;
    private MirrorBeacon? _peerBeacon;
    private bool _administratorStopped;
    private DateTimeOffset _nextWitnessCheck;
    private ModuleSupervisor? _supervisor;
    private Task? _loop;

    private MirrorModuleHost(ClusterConfig cluster, MirrorModuleConfig module, NodeConfig self, MembershipService membership, byte[] key, EventJournal journal, TimeProvider time, ILogger logger)
    {
        _cluster = cluster;
        _module = module;
        _self = self;
        _peer = cluster.Nodes.First(n => n.Name != self.Name);
        _preferred = cluster.Nodes[0].Name == self.Name;
        _membership = membership;
        _key = key;
        _journal = journal;
        _time = time;
        _logger = logger;
        _started = time.GetUtcNow();
        _state = new ModuleStateHistory(time);
        _state.Changed += t => journal.Record(
            EventKinds.State,
            module.Name,
            t.To is ModuleStates.Prim or ModuleStates.Second ? EventSeverities.Info : t.To is ModuleStates.Alone or ModuleStates.Wait ? EventSeverities.Warning : EventSeverities.Info,
            t.From == t.To ? $"{t.To}: {t.Reason}" : $"{t.From} → {t.To}: {t.Reason}");
        _directories = module.Directories.Select(d => new MirrorDirectory(d, module.StateDirectory, logger)).ToList();
        _vip = new VipHolder(module.Interface, module.Vips);
        _witness = new Witness(module.Witnesses);
        _record = MirrorRecord.Fresh;
    }

    /// <summary>Reads the node's record, guards the paths, and starts deciding.</summary>
    /// <exception cref="InvalidDataException">The record is damaged: the node cannot tell how new its data is.</exception>
    /// <exception cref="SafeKit.Native.Interop.NativeException">A guard cannot be mounted.</exception>
    public static MirrorModuleHost Start(ClusterConfig cluster, MirrorModuleConfig module, NodeConfig self, MembershipService membership, byte[] key, EventJournal journal, TimeProvider time, ILogger logger)
    {
        var host = new MirrorModuleHost(cluster, module, self, membership, key, journal, time, logger);
        host._record = MirrorRecord.Load(module.StateDirectory);
        foreach (var directory in host._directories)
        {
            directory.Prepare();
        }

        // A crash may have left the VIP on this node's interface: only PRIM or ALONE hold it.
        host._vip.Release();
        host.SetRole(MirrorRole.Wait, $"waiting to hear {host._peer.Name}");
        membership.PeersChanged += _ => host._wake.Release();
        membership.PeerLivenessChanged += (_, _) => host._wake.Release();
        host.StartWarmup();
        host._loop = Task.Run(host.RunAsync);
        return host;
    }

    public string Name => _module.Name;

    public string NodeName => _self.Name;

    public string State => _state.Current;

    /// <summary>Whether an administrator stopped the module on this node.</summary>
    public bool Stopped => _administratorStopped;

    /// <summary>Why the module is in its state.</summary>
    public string Reason => _reason;

    /// <summary>
    /// After a start: waits for the first decision (a few seconds at most) and returns why the node
    /// refuses to serve — its data is older than the peer's or diverged — or null.
    /// </summary>
    public async Task<string?> RefusalAsync()
    {
        var deadline = _time.GetUtcNow() + TimeSpan.FromSeconds(3);
        while (_time.GetUtcNow() < deadline)
        {
            if (_peerBeacon is { } beacon && _record.CompareWith(beacon.Current, beacon.Parent) is DataRelation.Older or DataRelation.Diverged && _role == MirrorRole.Wait)
            {
                return _reason;
            }

            if (_role != MirrorRole.Wait)
            {
                return null;
            }

            await Task.Delay(Tick, _time);
        }

        return null;
    }

    public IReadOnlyList<CheckStatus> Checks() => _supervisor?.Checks() ?? [];

    private async Task RunAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await _wake.WaitAsync(Tick, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            await _gate.WaitAsync();
            try
            {
                await EvaluateAsync();
            }
#pragma warning disable CA1031 // The decision loop must survive any failure of one transition; it is logged and retried.
            catch (Exception e)
#pragma warning restore CA1031
            {
                LogTransitionFailed(_logger, _module.Name, e.Message);
                _reason = $"a transition failed: {e.Message}";
            }
            finally
            {
                _gate.Release();
            }
        }
    }

    /// <summary>One decision, from what the heartbeats say now.</summary>
    private async Task EvaluateAsync()
    {
        var peers = _membership.Snapshot().Peers.FirstOrDefault(p => p.Name == _peer.Name);
        _peerAlive = peers?.Alive == true;
        _peerBeacon = _peerAlive && _membership.PeerBeacon(_peer.Name) is { } bytes ? MirrorBeacon.Read(bytes) : null;
        var relation = _peerBeacon is { } b ? _record.CompareWith(b.Current, b.Parent) : (DataRelation?)null;
        switch (_role)
        {
            case MirrorRole.Wait when !_administratorStopped:
                await DecideFromWaitAsync(relation);
                break;
            case MirrorRole.Second:
                await FollowAsync(relation);
                break;
            case MirrorRole.Prim:
                await ServeMirroredAsync();
                break;
            case MirrorRole.Alone:
                await DescribeAloneAsync(relation);
                break;
        }

        Publish();
    }

    private async Task DecideFromWaitAsync(DataRelation? relation)
    {
        if (_peerBeacon is { } peer && relation is { } r)
        {
            if (Discarded(r))
            {
                FollowTheChosenCopy();
                return;
            }

            switch (r)
            {
                case DataRelation.Older when peer.Role == MirrorRole.Alone && !_administratorStopped:
                    MarkStale();
                    ListenForResync();
                    Wait($"{_peer.Name} holds newer data (it went on alone from this node's copy) and serves it: this node waits while {_peer.Name} resynchronises it{(_directories.Select(d => d.LastResync).FirstOrDefault(r => r is not null) is { } last ? $" (last resync: {last})" : "")}");
                    return;
                case DataRelation.Older:
                    MarkStale();
                    await StopResyncListeningAsync();
                    Wait($"{_peer.Name} holds newer data (it went on alone from this node's copy): this node does not start until it is resynchronised ({_peer.Name} does that once it serves)");
                    return;
                case DataRelation.Diverged:
                    Wait(SplitBrain());
                    return;
                case DataRelation.Newer when peer.Role is MirrorRole.Wait or MirrorRole.Stop:
                    await BecomeAloneAsync($"{_peer.Name} is back with older data; this node holds the newest copy");
                    return;
                case DataRelation.Newer:
                    Wait($"{_peer.Name} is {peer.Role} with data older than this node's");
                    return;
            }

            if (_record.Current == Guid.Empty)
            {
                // A pair's first start: neither copy has a history, and they may hold different
                // files (existing data, a replaced disk). The preferred node's copy is the
                // reference: it serves alone, its journal not trusted, and brings the other's
                // copy to it by a full block-diff resync; the other waits as older meanwhile.
                if (_preferred)
                {
                    await BecomeAloneAsync($"first start of the pair: this node's copy is the reference; {_peer.Name}'s is synchronised to it", trustJournal: false);
                }
                else
                {
                    Wait($"first start of the pair: {_peer.Name}'s copy is the reference; this node waits to be synchronised to it");
                }

                return;
            }

            // Same data.
            switch (peer.Role)
            {
                case MirrorRole.Second when peer.SecondReady:
                    await BecomePrimAsync();
                    return;
                case MirrorRole.Wait when !_preferred:
                    await BecomeSecondAsync();
                    return;
                case MirrorRole.Stop:
                    await BecomeAloneAsync($"{_peer.Name}'s module is stopped and its data is the same");
                    return;
                default:
                    Wait($"same data as {_peer.Name} ({peer.Role}); deciding who is PRIM");
                    return;
            }
        }

        if (_peerAlive)
        {
            Wait($"{_peer.Name} is heard but says nothing about this module (is it configured as a mirror there?)");
            return;
        }

        var waited = _time.GetUtcNow() - _started;
        if (waited < TimeSpan.FromMilliseconds(_module.StartupWaitMilliseconds))
        {
            Wait($"waiting to hear {_peer.Name} ({waited.TotalSeconds:0}/{_module.StartupWaitMilliseconds / 1000.0:0} s)");
            return;
        }

        if (_record.LastRole == MirrorRecord.Stale)
        {
            Wait($"{_peer.Name} is not heard, and it had gone on alone from this node's copy (older, maybe partly resynchronised): this node waits for {_peer.Name}; 'safekit prim --force {_module.Name}' keeps this copy anyway");
            return;
        }

        if (_record.LastRole is not ("PRIM" or "ALONE"))
        {
            Wait($"{_peer.Name} is not heard and this node's data may be older (its last role: {_record.LastRole}); start {_peer.Name}, or keep this copy with 'safekit prim --force {_module.Name}'");
            return;
        }

        if (await WitnessAsync($"{_peer.Name} is not heard") is { } witness)
        {
            await BecomeAloneAsync($"{_peer.Name} is not heard; this node held the newest data when it stopped ({_record.LastRole}); witness {witness} answers");
        }
    }

    /// <summary>SECOND: keeps following PRIM, or takes over when it is lost.</summary>
    private async Task FollowAsync(DataRelation? relation)
    {
        if (_peerAlive)
        {
            if (_peerBeacon is not { } peer)
            {
                return;
            }

            if (await TakeOverFromSwapAsync(peer, relation))
            {
                return;
            }

            if (peer.Role is MirrorRole.Stop && relation == DataRelation.Same)
            {
                // PRIM stopped in order: every change it acknowledged is here.
                await BecomeAloneAsync($"{_peer.Name} stopped its module; this node holds every change it made");
                return;
            }

            if (relation is DataRelation.Older)
            {
                var failure = _directories.Select(d => d.ApplyFailure is { } f ? $"{d.Config.Path}: {f}" : null).FirstOrDefault(f => f is not null);
                await StepDownAsync(failure is null
                    ? $"{_peer.Name} went on alone: this copy is behind and waits for a resync"
                    : $"{_peer.Name} went on alone because this copy failed ({failure}); it is behind and waits for a resync");
                return;
            }

            SetRole(MirrorRole.Second, _directories.Any(d => d.ReceiverLost) ? $"{_peer.Name}'s replication link closed; waiting for its heartbeats to tell why" : $"following {_peer.Name} (PRIM)");
            return;
        }

        // The replication connection is one more path between the nodes: while PRIM's keepalives
        // still arrive on it, PRIM is alive and only the heartbeat networks failed.
        if (_directories.Any(d => d.ReceiverHeardWithin(HeartbeatTimeout)))
        {
            Wait($"no heartbeat from PRIM {_peer.Name} on any network, but its replication connection is alive: not taking over");
            return;
        }

        if (await WitnessAsync($"PRIM {_peer.Name} is lost (no heartbeat on any network)") is { } witness)
        {
            await BecomeAloneAsync($"PRIM {_peer.Name} lost (no heartbeat on any network); witness {witness} answers: taking over");
        }
    }

    /// <summary>PRIM: goes ALONE when SECOND is declared dead by the heartbeats, before the link's own timeout.</summary>
    private async Task ServeMirroredAsync()
    {
        // The application keeps failing here after its restarts while SECOND is ready: the module
        // moves. An orderly stop (application, VIP, mounts, then STOP in the heartbeats) hands
        // SECOND every acknowledged change and it takes over at once; this node stays stopped.
        if (_supervisor is { GaveUp: true } && _peerAlive && _peerBeacon is { Role: MirrorRole.Second })
        {
            var reason = $"the application still failed after {_module.Restart.Max} restarts: the module moved to {_peer.Name}; 'safekit start {_module.Name}' here once it is fixed";
            LogMoved(_logger, _module.Name, reason);
            _journal.Record(EventKinds.State, _module.Name, EventSeverities.Error, reason);
            _administratorStopped = true;
            await LeaveAsync();
            SetRole(MirrorRole.Stop, reason);
            return;
        }

        // Heartbeats lost and the replication links silent too: SECOND is gone. A link still
        // hearing SECOND's keepalives means only the heartbeat networks failed: keep mirroring.
        if (!_peerAlive && _directories.All(d => d.Link is not { } l || l.SilentFor >= HeartbeatTimeout))
        {
            foreach (var directory in _directories)
            {
                if (directory.Link is { } link)
                {
                    await link.AbandonAsync($"SECOND {_peer.Name} lost (no heartbeat on any network)");
                }
            }
        }

        if (_directories.Any(d => d.Link?.State != LinkState.Mirroring))
        {
            var reason = _directories.Select(d => d.Link?.AloneReason).FirstOrDefault(r => r is not null) ?? "replication stopped";
            SetRole(MirrorRole.Alone, $"SECOND {_peer.Name} is behind from now on: {reason}");
            return;
        }

        SetRole(MirrorRole.Prim, $"replicating to {_peer.Name}");
        foreach (var directory in _directories)
        {
            directory.RotateJournalIfDue(JournalEpoch);
        }
    }

    private async Task DescribeAloneAsync(DataRelation? relation)
    {
        if (_peerAlive && Discarded(relation))
        {
            await StepDownAsDiscardedAsync();
            return;
        }

        // A peer whose copy diverged is brought to this one only once an administrator chose this copy.
        if (_peerAlive && (relation == DataRelation.Newer || (relation == DataRelation.Diverged && _record.Forced)) && _peerBeacon is { Role: MirrorRole.Wait, ResyncReady: true })
        {
            StartResyncIfDue();
        }

        var reason = !_peerAlive
            ? $"{_peer.Name} is not heard; it is behind: it misses every change since this node went alone"
            : relation switch
            {
                DataRelation.Diverged when _record.Forced => $"split brain resolved for this node's copy (prim --force): {_peer.Name} keeps its own changes aside and is resynchronised from it",
                DataRelation.Diverged => SplitBrain(),
                DataRelation.Newer => $"{_peer.Name} is behind (its data is older than this node's): it waits for a resync",
                _ => $"{_peer.Name} is {_peerBeacon?.Role.ToString().ToUpperInvariant() ?? "heard"}",
            };

        // Why this node went alone stays in the reason (SECOND's disk full, a link that stalled…).
        if (_directories.Select(d => d.Link?.AloneReason).FirstOrDefault(r => r is not null) is { } cause)
        {
            reason += $"; went alone: {cause}";
        }

        if (_resyncProgress is { } progress)
        {
            reason += $"; {progress}";
        }

        SetRole(MirrorRole.Alone, reason);
    }

    /// <summary>The reason both nodes give while their copies diverged, with the way out.</summary>
    private string SplitBrain() =>
        $"SPLIT BRAIN: this node's copy and {_peer.Name}'s diverged (both ran alone); choose the copy to keep with 'safekit prim --force {_module.Name} --on NODE' — the other node keeps its own changes aside, then is resynchronised from it";

    /// <summary>With every heartbeat lost: the witness that answers, or null (the reason says why the node waits).</summary>
    private async Task<IPAddress?> WitnessAsync(string situation)
    {
        if (!_witness.Configured)
        {
            Wait($"{situation}; no witness is configured, so this node does not take over (split-brain guard): 'safekit prim --force {_module.Name}' does");
            return null;
        }

        if (_time.GetUtcNow() < _nextWitnessCheck)
        {
            return null;
        }

        var reachable = await _witness.ReachableAsync();
        if (reachable is null)
        {
            _nextWitnessCheck = _time.GetUtcNow() + WitnessRetry;
            Wait($"{situation}; witness {_witness} does not answer: this node may be the isolated one and does not take over");
        }

        return reachable;
    }

    /// <summary>
    /// This node learnt that its peer went on alone from its copy: remembered across restarts, so
    /// that without the peer it never takes over with data it knows is old (or half resynchronised).
    /// </summary>
    private void MarkStale()
    {
        if (_record.LastRole != MirrorRecord.Stale)
        {
            SaveRecord(_record with { LastRole = MirrorRecord.Stale });
        }
    }

    /// <summary>WAIT (or SECOND still holding its copy) with a reason.</summary>
    private void Wait(string reason)
    {
        _reason = reason;
        _state.Set(ModuleStates.Wait, reason);
        Publish();
    }

    private async Task BecomePrimAsync()
    {
        var options = ChannelOptions();
        var address = _peer.Addresses[_module.ReplicationNetwork];
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            for (var i = 0; i < _directories.Count; i++)
            {
                await _directories[i].ConnectAsync(new IPEndPoint(address, _module.ReplicationPort + i), options, timeout.Token);
            }
        }
        catch (Exception e) when (e is System.Net.Sockets.SocketException or OperationCanceledException or ReplicationHandshakeException or IOException)
        {
            await CloseAllAsync();
            Wait($"cannot connect to {_peer.Name}'s replication listener: {e.Message}; retrying");
            return;
        }

        foreach (var directory in _directories)
        {
            directory.Link!.WentAlone += OnWentAlone;
        }

        SaveRecord(_record with { LastRole = "PRIM", Diverging = false });
        await RunApplicationAsync(MirrorRole.Prim, $"replicating to {_peer.Name}", completeJournal: true);
    }

    private async Task BecomeSecondAsync()
    {
        var options = ChannelOptions();
        var address = _self.Addresses[_module.ReplicationNetwork];
        for (var i = 0; i < _directories.Count; i++)
        {
            _directories[i].ListenAndView(new IPEndPoint(address, _module.ReplicationPort + i), new IPEndPoint(address, VerifyPort(i)), options);
        }

        SaveRecord(_record with { LastRole = "SECOND", Diverging = false });
        SetRole(MirrorRole.Second, $"waiting for {_peer.Name} to connect as PRIM");
    }

    /// <summary>Takes writes without the peer: a new generation first (durably), then mounts, VIP, application.</summary>
    /// <param name="trustJournal">Whether the journal started now lists every difference with the peer (null: when this copy was the shared generation's).</param>
    private async Task BecomeAloneAsync(string reason, bool? trustJournal = null)
    {
        await StopResyncListeningAsync();
        if (_role == MirrorRole.Second)
        {
            foreach (var directory in _directories)
            {
                await directory.CloseSecondAsync();
            }
        }

        var sharedBefore = !_record.Diverging;
        SaveRecord(_record.GoneAlone());
        foreach (var directory in _directories)
        {
            directory.StartAlone();
        }

        await RunApplicationAsync(MirrorRole.Alone, reason, completeJournal: trustJournal ?? sharedBefore);
    }

    /// <summary>Mounts read-write, takes the VIP, starts the application: the node serves.</summary>
    private async Task RunApplicationAsync(MirrorRole role, string reason, bool completeJournal)
    {
        // The journal lists what the peer may lack since the generation both last shared; one
        // started now lists everything only if this copy is that generation's (not after a crash alone).
        var journalBase = _record.Diverging ? _record.Parent : _record.Current;
        foreach (var directory in _directories)
        {
            directory.MountReadWrite(journalBase, completeJournal, alone: role == MirrorRole.Alone);
        }

        _vip.Take();
        SetRole(role, reason);
        _supervisor = new ModuleSupervisor(_module, _self.Name, _time, _logger, _ => { }, (_, problem) =>
        {
            if (problem is not null)
            {
                _journal.Record(EventKinds.Check, _module.Name, EventSeverities.Warning, problem);
            }
        });
        _supervisor.RecordChecks(_journal, _module.Name);
        await _supervisor.StartAsync();
    }

    /// <summary>SECOND whose PRIM went on alone: stops following (the copy is behind) and waits.</summary>
    private async Task StepDownAsync(string reason)
    {
        foreach (var directory in _directories)
        {
            await directory.CloseSecondAsync();
        }

        SetRole(MirrorRole.Wait, reason);
    }

    /// <summary>PRIM's link lost SECOND: runs before any write returns without it (see <see cref="ReplicationLink.WentAlone"/>).</summary>
    private void OnWentAlone(string reason)
    {
        SaveRecord(_record.GoneAlone());
        foreach (var directory in _directories)
        {
            directory.FileSystem?.TrackChangedRanges();
        }

        _journal.Record(EventKinds.State, _module.Name, EventSeverities.Warning, $"SECOND {_peer.Name} is behind from now on: {reason}");
        _wake.Release();
    }

    private void SaveRecord(MirrorRecord record)
    {
        lock (_recordGate)
        {
            if (record == _record && File.Exists(Path.Combine(_module.StateDirectory, MirrorRecord.FileName)))
            {
                return;
            }

            record.Save(_module.StateDirectory);
            _record = record;
        }

        Publish();
    }

    private TimeSpan HeartbeatTimeout => TimeSpan.FromMilliseconds(_cluster.Heartbeat.TimeoutMilliseconds);

    private ReplicationChannelOptions ChannelOptions() => new()
    {
        ClusterName = _cluster.Name,
        LocalNode = _self.Name,
        PeerNode = _peer.Name,
        Key = _key,
        SilenceTimeout = TimeSpan.FromMilliseconds(_module.StallTimeoutMilliseconds),
    };

    private void SetRole(MirrorRole role, string reason)
    {
        _role = role;
        _reason = reason;
        _state.Set(
            role switch
            {
                MirrorRole.Stop => ModuleStates.Stop,
                MirrorRole.Second => ModuleStates.Second,
                MirrorRole.Prim => ModuleStates.Prim,
                MirrorRole.Alone => ModuleStates.Alone,
                _ => ModuleStates.Wait,
            },
            reason);
        Publish();
    }

    /// <summary>Tells the peer, in every heartbeat from now on, this node's role and generations.</summary>
    private void Publish()
    {
        Span<byte> beacon = stackalloc byte[MirrorBeacon.Length];
        var record = _record;
        new MirrorBeacon(_role, _role == MirrorRole.Second, record.Current, record.Parent, _role == MirrorRole.Wait && _directories.All(d => d.ResyncListening), record.Forced).Write(beacon);
        _membership.SetBeacon(beacon);
    }

    /// <summary>An administrator's stop (or safekitd stopping): application, VIP, mounts, then STOP in the heartbeats.</summary>
    public async Task StopAsync(string reason)
    {
        await _gate.WaitAsync();
        try
        {
            _administratorStopped = true;
            await LeaveAsync();
            SetRole(MirrorRole.Stop, reason);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Starts deciding again after an administrator's stop.</summary>
    public async Task StartAsync()
    {
        await _gate.WaitAsync();
        try
        {
            _administratorStopped = false;
            SetRole(MirrorRole.Wait, $"started by an administrator; waiting to hear {_peer.Name}");
        }
        finally
        {
            _gate.Release();
        }

        _wake.Release();
    }

    /// <summary>
    /// <c>prim --force</c>: this node's copy becomes the reference and it serves ALONE, whatever the
    /// peer holds. Refused while the node already serves.
    /// </summary>
    public async Task<string> ForcePrimAsync()
    {
        await _gate.WaitAsync();
        try
        {
            var relation = _peerBeacon is { } b ? _record.CompareWith(b.Current, b.Parent) : (DataRelation?)null;
            if (_peerAlive && relation == DataRelation.Diverged && _peerBeacon is { Forced: true })
            {
                throw new SafeKit.Api.ModuleActionException(409, $"{_peer.Name}'s copy was already chosen with prim --force: this node's changes are kept aside and it is resynchronised from {_peer.Name}");
            }

            if (_role == MirrorRole.Alone && _peerAlive && relation == DataRelation.Diverged)
            {
                // Split brain with both serving: this copy is chosen; the peer steps down on its own.
                var chosen = $"prim --force: {_self.Name}'s copy is kept; {_peer.Name} stops serving, keeps its own changes aside and is resynchronised from {_self.Name}";
                LogForced(_logger, _module.Name, chosen);
                _journal.Record(EventKinds.Action, _module.Name, EventSeverities.Error, chosen);
                SaveRecord(_record with { Forced = true });
                return chosen;
            }

            if (_role is MirrorRole.Prim or MirrorRole.Alone)
            {
                throw new SafeKit.Api.ModuleActionException(409, $"module {_module.Name} already serves on {_self.Name} ({_state.Current})");
            }

            if (_peerAlive && _peerBeacon is { Role: MirrorRole.Prim or MirrorRole.Alone })
            {
                throw new SafeKit.Api.ModuleActionException(409, $"{_peer.Name} serves the module ({_peerBeacon.Value.Role}): stop it there first, or two nodes would serve");
            }

            _administratorStopped = false;
            var warning = $"prim --force: {_self.Name}'s copy becomes the reference; changes {_peer.Name} made that this node lacks are not taken";
            LogForced(_logger, _module.Name, warning);
            _journal.Record(EventKinds.Action, _module.Name, EventSeverities.Error, warning);
            _record = _record with { Diverging = false, Forced = true };
            await BecomeAloneAsync("forced PRIM by an administrator (prim --force)");
            return warning;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// <c>resync --full</c> on the serving node: its journals are no longer trusted and it stops
    /// mirroring (a new generation: the peer is older); the failback that follows compares every
    /// file of both copies, block by block, while the application keeps running.
    /// </summary>
    public async Task<string> FullResyncAsync()
    {
        await _gate.WaitAsync();
        try
        {
            if (_role is not (MirrorRole.Prim or MirrorRole.Alone))
            {
                throw new SafeKit.Api.ModuleActionException(409, $"module {_module.Name} is {_state.Current} on {_self.Name}: run resync --full on the node that serves it{(_peerBeacon is { Role: MirrorRole.Prim or MirrorRole.Alone } ? $" ({_peer.Name})" : "")}");
            }

            foreach (var directory in _directories)
            {
                directory.FileSystem?.Journal?.Distrust();
            }

            var message = $"resync --full: {_peer.Name}'s copy is compared with {_self.Name}'s, every file, while the application runs";
            _journal.Record(EventKinds.Action, _module.Name, EventSeverities.Warning, message);
            foreach (var directory in _directories)
            {
                if (directory.Link is { State: LinkState.Mirroring } link)
                {
                    await link.AbandonAsync("a full resync was requested (resync --full)");
                }
            }

            _nextResync = default;
            _wake.Release();
            return message;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Restarts the application in place (PRIM or ALONE only).</summary>
    public Task RestartApplicationAsync() => _supervisor?.RestartAsync("restart requested by an administrator", counted: false) ?? Task.CompletedTask;

    private async Task LeaveAsync()
    {
        await StopResyncAsync();
        await StopResyncListeningAsync();
        if (_supervisor is { } supervisor)
        {
            await supervisor.StopAsync();
            await supervisor.DisposeAsync();
            _supervisor = null;
        }

        _vip.Release();
        await CloseAllAsync();
    }

    private async Task CloseAllAsync()
    {
        foreach (var directory in _directories)
        {
            await directory.CloseAsync();
        }
    }

    public ModuleStatus Status()
    {
        var beacon = _peerBeacon;
        var record = _record;
        var directories = _directories.Select(d => d.Status(_role)).ToList();
        var mirror = new MirrorStatus(
            _peer.Name,
            _peerAlive,
            beacon?.Role.ToString().ToUpperInvariant(),
            record.Current.ToString(),
            record.Parent.ToString(),
            beacon is { } b ? record.CompareWith(b.Current, b.Parent).ToString().ToLowerInvariant() : null,
            _reason,
            directories,
            ResyncStatus(),
            _lastVerify);
        var application = _supervisor is null ? null : new ApplicationStatus(_supervisor.RecentRestarts, _supervisor.GaveUp, _supervisor.LastStart?.Summary, _supervisor.LastStop?.Summary);
        return new ModuleStatus(_module.Name, "mirror", _state.Current, null, _state.Transitions(), application, mirror);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_loop is not null)
        {
            await _loop;
        }

        await _warmedUp; // Never fails; it removes its scratch directories.

        await _gate.WaitAsync();
        try
        {
            await LeaveAsync();
            SetRole(MirrorRole.Stop, "safekitd stopping");
        }
        finally
        {
            _gate.Release();
        }

        _stop.Dispose();
    }

    [LoggerMessage(EventId = 702, Level = LogLevel.Error, Message = "mirror {Module}: {Reason}")]
    private static partial void LogMoved(ILogger logger, string module, string reason);

    [LoggerMessage(EventId = 700, Level = LogLevel.Error, Message = "mirror {Module}: a role transition failed: {Message}")]
    private static partial void LogTransitionFailed(ILogger logger, string module, string message);

    [LoggerMessage(EventId = 701, Level = LogLevel.Critical, Message = "mirror {Module}: {Warning}")]
    private static partial void LogForced(ILogger logger, string module, string warning);
}
