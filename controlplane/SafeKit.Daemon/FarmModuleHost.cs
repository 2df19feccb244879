using Microsoft.Extensions.Logging;
using SafeKit.ControlPlane.Configuration;
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
    private readonly FarmModuleConfig _module;
    private readonly NodeConfig _self;
    private readonly FarmDataplane _dataplane;
    private readonly ModuleStateHistory _state;

    private FarmModuleHost(ClusterConfig cluster, FarmModuleConfig module, NodeConfig self, FarmDataplane dataplane, ModuleStateHistory state)
    {
        _cluster = cluster;
        _module = module;
        _self = self;
        _dataplane = dataplane;
        _state = state;
    }

    public static FarmModuleHost Start(ClusterConfig cluster, FarmModuleConfig module, NodeConfig self, TimeProvider time, ILogger logger)
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
        var dataplane = FarmDataplane.Start(options, logger);
        state.Set(ModuleStates.Wait, "dataplane started, waiting for a view");
        return new FarmModuleHost(cluster, module, self, dataplane, state);
    }

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
        Member = table.LocalIndex >= 0;
        _state.Set(
            table.LocalIndex >= 0 ? ModuleStates.Up : ModuleStates.Wait,
            table.LocalIndex >= 0 ? $"member of view {view.Epoch} ({members.Count} nodes, {table.LocalCount} buckets)" : $"not a member of view {view.Epoch}");
    }

    /// <summary>The node is stopping: it only finishes the connections it still serves.</summary>
    public void Draining() => _state.Set(ModuleStates.Wait, "draining: finishing the connections it still serves");

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
            snapshot.TrackedFragments);
        return new ModuleStatus(_module.Name, "farm", _state.Current, farm, _state.Transitions());
    }

    private Dictionary<string, PeerHandover> Names(IReadOnlyDictionary<int, PeerState> peers) =>
        peers.ToDictionary(
            p => _cluster.Nodes[p.Key].Name,
            p => new PeerHandover(p.Value.Alive, p.Value.Epoch, p.Value.Claims, p.Value.Pinning, p.Value.SilentMilliseconds),
            StringComparer.Ordinal);

    public void Dispose()
    {
        _dataplane.Dispose();
        _state.Set(ModuleStates.Stop, "safekitd stopping");
    }
}
