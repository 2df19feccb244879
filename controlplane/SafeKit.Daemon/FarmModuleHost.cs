using Microsoft.Extensions.Logging;
using SafeKit.ControlPlane.Checkers;
using SafeKit.ControlPlane.Configuration;
using SafeKit.ControlPlane.Events;
using SafeKit.ControlPlane.Modules;
using SafeKit.ControlPlane.Membership;
using SafeKit.ControlPlane.Status;
using SafeKit.Dataplane.Buckets;
using SafeKit.Dataplane.Engine;

namespace SafeKit.Daemon;

/// <summary>
/// Runs one farm module on this node: maps its configuration onto the dataplane and every view of
/// the membership onto a bucket table.
/// </summary>
internal sealed class FarmModuleHost : IDisposable
{
    private readonly ClusterConfig _cluster;
    private FarmModuleConfig _module;
    private readonly NodeConfig _self;
    private readonly FarmDataplane _dataplane;
    private readonly ModuleStateHistory _state;
    private readonly EventJournal _journal;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _stateGate = new();
    private ModuleSupervisor? _supervisor;
    private string? _applicationProblem;
    private string _viewReason = "waiting for a view";
    private bool _draining;
    private string? _stoppedReason;
    private BucketTable? _table;

    private FarmModuleHost(ClusterConfig cluster, FarmModuleConfig module, NodeConfig self, FarmDataplane dataplane, ModuleStateHistory state, EventJournal journal, TimeProvider time, ILogger logger)
    {
        _journal = journal;
        _cluster = cluster;
        _module = module;
        _self = self;
        _dataplane = dataplane;
        _state = state;
        _time = time;
        _logger = logger;
    }

    public static FarmModuleHost Start(ClusterConfig cluster, FarmModuleConfig module, NodeConfig self, EventJournal journal, TimeProvider time, ILogger logger)
    {
        var options = new FarmDataplaneOptions
        {
            Module = module.Name,
            Interface = module.Interface,
            Vips = module.Vips,
            L2Mode = module.L2Mode,
            ClusterMacOverride = module.ClusterMac,
            Affinity = module.Affinity,
            BucketCount = module.Buckets,
            HashSeed = module.HashSeed,
            Mode = module.Dataplane,
            Capture = module.Capture,
            TunName = module.Tun,
            Workers = module.Workers,
            LocalNode = self.Name,
        };
        var state = new ModuleStateHistory(time);
        state.Changed += t => journal.Record(
            EventKinds.State,
            module.Name,
            t.To == ModuleStates.Up ? EventSeverities.Info : t.From == ModuleStates.Up ? EventSeverities.Warning : EventSeverities.Info,
            t.From == t.To ? $"{t.To}: {t.Reason}" : $"{t.From} → {t.To}: {t.Reason}");
        var dataplane = FarmDataplane.Start(options, logger);
        state.Set(ModuleStates.Wait, "dataplane started, waiting for a view");
        return new FarmModuleHost(cluster, module, self, dataplane, state, journal, time, logger);
    }

    /// <summary>Starts the application (start script) and its checkers; readiness goes to <paramref name="ready"/>.</summary>
    public async Task StartApplicationAsync(Action<bool> ready)
    {
        if (_supervisor is not null)
        {
            await _supervisor.DisposeAsync();
        }

        lock (_stateGate)
        {
            _draining = false;
            _stoppedReason = null;
            _applicationProblem = null;
            UpdateState();
        }

        _supervisor = new ModuleSupervisor(_module, _self.Name, _time, _logger, ready, (_, reason) =>
        {
            lock (_stateGate)
            {
                _applicationProblem = reason;
                UpdateState();
            }
        });
        _supervisor.RecordChecks(_journal, _module.Name);
        await _supervisor.StartAsync();
    }

    /// <summary>Applies a reloaded module configuration (only what <see cref="ReloadPlan"/> lets change at runtime).</summary>
    public Task ReconfigureAsync(FarmModuleConfig module)
    {
        _module = module;
        return _supervisor?.ReconfigureAsync(module) ?? Task.CompletedTask;
    }

    /// <summary>Stops the checkers and the application (stop script).</summary>
    public Task StopApplicationAsync() => _supervisor?.StopAsync() ?? Task.CompletedTask;

    /// <summary>How long a leaving node lets its application accept the last handshakes before stopping it.</summary>
    internal static readonly TimeSpan AcceptSettle = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Takes the module out of service once the node no longer offers to take traffic: waits
    /// (bounded) until a view without this node is applied, stops the application gracefully and,
    /// when <paramref name="waitForPins"/>, lets the pinned flows finish up to the drain timeout.
    /// </summary>
    public async Task DrainAsync(HeartbeatConfig heartbeat, bool waitForPins)
    {
        ArgumentNullException.ThrowIfNull(heartbeat);
        // Out of the view first, so the others take the buckets at once (then the pins are known).
        var left = _time.GetUtcNow().AddMilliseconds(3 * heartbeat.IntervalMilliseconds + heartbeat.TimeoutMilliseconds);
        while (_time.GetUtcNow() < left && Member)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(20), _time);
        }

        var drained = _time.GetUtcNow().AddMilliseconds(_module.DrainTimeoutMilliseconds);
        Draining();
        // Handshakes completed just before the view changed may still wait in the application's
        // accept queue: a listener that closes now would reset them. Let them be accepted first.
        await Task.Delay(AcceptSettle, _time);
        // The application stops gracefully now that no new flow comes: it finishes its requests
        // and closes idle keep-alive connections, so the pinned flows end.
        await StopApplicationAsync();
        while (waitForPins && _time.GetUtcNow() < drained && Pinning)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(100), _time);
        }
    }

    /// <summary>Restarts the application with its scripts (an administrator's restart: not counted against the restart limit).</summary>
    public Task RestartApplicationAsync() => _supervisor?.RestartAsync("restart requested by an administrator", counted: false) ?? Task.CompletedTask;

    /// <summary>Whether an administrator stopped the module on this node.</summary>
    public bool Stopped
    {
        get
        {
            lock (_stateGate)
            {
                return _stoppedReason is not null;
            }
        }
    }

    /// <summary>The module is stopped on this node (STOP) until started again.</summary>
    public void MarkStopped(string reason)
    {
        lock (_stateGate)
        {
            _stoppedReason = reason;
            UpdateState();
        }
    }

    public string Name => _module.Name;

    public string NodeName => _self.Name;

    /// <summary>The current state (STOP, WAIT, UP).</summary>
    public string State => _state.Current;

    /// <summary>Owners of the buckets in the last view applied, as ranges.</summary>
    public IReadOnlyList<(int First, int Last, string? Owner)> BucketRanges()
    {
        var table = _table;
        var ranges = new List<(int, int, string?)>();
        if (table is null)
        {
            return [(0, _module.Buckets - 1, null)];
        }

        var start = 0;
        for (var b = 1; b <= table.Count; b++)
        {
            if (b == table.Count || table.OwnerOf(b) != table.OwnerOf(start))
            {
                var owner = table.OwnerOf(start);
                ranges.Add((start, b - 1, owner < 0 ? null : table.Nodes[owner].Name));
                start = b;
            }
        }

        return ranges;
    }

    /// <summary>Last results of this module's checks.</summary>
    public IReadOnlyList<CheckStatus> Checks() => _supervisor?.Checks() ?? [];

    /// <summary>Raised when the dataplane may have started or stopped pinning flows.</summary>
    public event Action? PinningChanged
    {
        add => _dataplane.PinningChanged += value;
        remove => _dataplane.PinningChanged -= value;
    }

    /// <summary>Whether the dataplane still serves flows in buckets it gave away.</summary>
    public bool Pinning => _dataplane.Pinning;

    /// <summary>Whether the last view applied counts this node as a member.</summary>
    public bool Member { get; private set; }

    /// <summary>Applies a view: the buckets this node owns from now on, handed over safely.</summary>
    public void ApplyView(ClusterView view, IReadOnlyDictionary<int, PeerState> peers)
    {
        var members = NodeMask.Members(view.Members)
            .Select(i => new NodeWeight(_cluster.Nodes[i].Name, Math.Max((byte)1, view.Weights.Length > i ? view.Weights[i] : (byte)1)))
            .ToList();
        var table = members.Count == 0 ? BucketTable.Empty(_module.Buckets) : BucketTable.Compute(members, _module.Buckets, _self.Name);
        _dataplane.ApplyView(table, view.Epoch, Names(peers));
        _table = table;
        lock (_stateGate)
        {
            Member = table.LocalIndex >= 0;
            _viewReason = Member ? $"member of view {view.Epoch} ({members.Count} nodes, {table.LocalCount} buckets)" : $"not a member of view {view.Epoch}";
            UpdateState();
        }
    }

    /// <summary>The node is stopping: it only finishes the connections it still serves.</summary>
    public void Draining()
    {
        lock (_stateGate)
        {
            _draining = true;
            UpdateState();
        }
    }

    /// <summary>UP while a member of the view; otherwise WAIT, with the most telling reason.</summary>
    private void UpdateState()
    {
        if (_stoppedReason is not null)
        {
            _state.Set(ModuleStates.Stop, _stoppedReason);
        }
        else if (_draining)
        {
            _state.Set(ModuleStates.Wait, "draining: finishing the connections it still serves");
        }
        else if (Member)
        {
            _state.Set(ModuleStates.Up, _viewReason);
        }
        else
        {
            _state.Set(ModuleStates.Wait, _applicationProblem ?? _viewReason);
        }
    }

    /// <summary>News from the other nodes (releases, pins, deaths).</summary>
    public void UpdatePeers(IReadOnlyDictionary<int, PeerState> peers) => _dataplane.UpdatePeers(Names(peers));

    public ModuleStatus Status()
    {
        var snapshot = _dataplane.Snapshot();
        var c = snapshot.Counters;
        var counters = new Dictionary<string, long>(StringComparer.Ordinal)
        {
            ["frames"] = c.Frames,
            ["accepted"] = c.Accepted,
            ["accepted_bytes"] = c.AcceptedBytes,
            ["rejected"] = c.Rejected,
            ["not_for_us"] = c.NotForUs,
            ["arp_answered"] = c.ArpAnswered,
            ["ndp_answered"] = c.NdpAnswered,
            ["neighbor_other"] = c.NeighborOther,
            ["malformed"] = c.Malformed,
            ["oversize"] = c.Oversize,
            ["fragments"] = c.Fragments,
            ["fragments_held"] = c.FragmentsHeld,
            ["fragments_dropped"] = c.FragmentsDropped,
            ["delivery_errors"] = c.DeliveryErrors,
            ["send_errors"] = c.SendErrors,
            ["worker_allocated_bytes"] = c.WorkerAllocatedBytes,
            ["takeover_replayed"] = c.TakeoverReplayed,
            ["pinned_buckets"] = snapshot.PinnedBuckets,
            ["waiting_buckets"] = snapshot.WaitingBuckets,
            ["flows"] = snapshot.Flows,
            ["flows_refused"] = snapshot.FlowsRefused,
            ["time_wait_cleared"] = snapshot.TimeWaitCleared,
        };
        var farm = new FarmStatus(
            snapshot.Mode,
            snapshot.Capture,
            snapshot.ClusterMac,
            snapshot.BucketCount,
            snapshot.OwnedBuckets,
            counters,
            snapshot.CaptureStatistics.Received,
            snapshot.CaptureStatistics.Dropped,
            snapshot.TrackedFragments,
            _module.Vips.Select((vip, i) => new VipCounters(
                vip.ToString(),
                i < c.AcceptedByVip.Length ? c.AcceptedByVip[i] : 0,
                i < c.RejectedByVip.Length ? c.RejectedByVip[i] : 0)).ToList());
        var application = _supervisor is null
            ? null
            : new ApplicationStatus(_supervisor.RecentRestarts, _supervisor.GaveUp, _supervisor.LastStart?.Summary, _supervisor.LastStop?.Summary);
        return new ModuleStatus(_module.Name, "farm", _state.Current, farm, _state.Transitions(), application);
    }

    private Dictionary<string, PeerHandover> Names(IReadOnlyDictionary<int, PeerState> peers) =>
        peers.ToDictionary(
            p => _cluster.Nodes[p.Key].Name,
            p => new PeerHandover(p.Value.Alive, p.Value.Epoch, p.Value.Claims, p.Value.Pinning, p.Value.SilentMilliseconds),
            StringComparer.Ordinal);

    public void Dispose()
    {
        _supervisor?.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(5));
        _dataplane.Dispose();
        _state.Set(ModuleStates.Stop, "safekitd stopping");
    }
}
