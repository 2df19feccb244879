using Microsoft.Extensions.Logging;
using SafeKit.ControlPlane.Configuration;
using SafeKit.ControlPlane.Status;
using SafeKit.Dataplane.Buckets;
using SafeKit.Dataplane.Engine;

namespace SafeKit.Daemon;

/// <summary>Runs one farm module on this node: maps its configuration onto the dataplane.</summary>
internal sealed class FarmModuleHost : IDisposable
{
    private readonly FarmModuleConfig _module;
    private readonly FarmDataplane _dataplane;

    private FarmModuleHost(FarmModuleConfig module, FarmDataplane dataplane)
    {
        _module = module;
        _dataplane = dataplane;
    }

    public static FarmModuleHost Start(ClusterConfig cluster, FarmModuleConfig module, NodeConfig self, ILogger logger)
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
            Nodes = cluster.Nodes.Select(n => new NodeWeight(n.Name, n.Weight)).ToList(),
            LocalNode = self.Name,
            Mode = module.Dataplane,
            Capture = module.Capture,
            TunName = module.Tun,
            Workers = module.Workers,
        };
        return new FarmModuleHost(module, FarmDataplane.Start(options, logger));
    }

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
        return new ModuleStatus(_module.Name, "farm", "UP", farm);
    }

    public void Dispose() => _dataplane.Dispose();
}
