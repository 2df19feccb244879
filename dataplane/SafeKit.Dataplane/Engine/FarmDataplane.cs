using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using SafeKit.Dataplane.Buckets;
using SafeKit.Dataplane.Capture;
using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Delivery;
using SafeKit.Dataplane.Flows;
using SafeKit.Dataplane.Fragments;
using SafeKit.Dataplane.Kernel;
using SafeKit.Dataplane.Neighbors;
using SafeKit.Dataplane.Preflight;
using SafeKit.Dataplane.Takeover;
using SafeKit.Native.Host;
using SafeKit.Native.PacketSockets;
using SafeKit.Native.Tun;

namespace SafeKit.Dataplane.Engine;

/// <summary>
/// The farm dataplane of one node: preflight, the VIP TUN, the capture workers (or the nftables
/// fast path), the announcements. It starts owning no bucket; the control plane hands it a table
/// for every view (<see cref="UseTable"/>). Start it once; dispose it to leave the node as it was.
/// </summary>
public sealed partial class FarmDataplane : IDisposable
{
    private const int PacketFanoutHash = 0;

    private readonly FarmDataplaneOptions _options;
    private readonly ILogger _logger;
    private readonly ClusterMac _mac;
    private readonly string _macText;
    private readonly List<DataplaneWorker> _workers = [];
    private readonly List<Thread> _threads = [];
    private readonly TunDevice _tun;
    private readonly NftFastPath? _nft;
    private volatile bool _stopping;
    private BucketTable _table;

    private FarmDataplane(FarmDataplaneOptions options, ILogger logger, ClusterMac mac, BucketTable table, TunDevice tun, NftFastPath? nft)
    {
        _options = options;
        _logger = logger;
        _mac = mac;
        _macText = ClusterMac.Format(mac.IPv4Mac);
        _table = table;
        _tun = tun;
        _nft = nft;
    }

    /// <summary>The cluster MACs the VIPs resolve to.</summary>
    public ClusterMac ClusterMac => _mac;

    /// <summary>The bucket table in force.</summary>
    public BucketTable Table => Volatile.Read(ref _table);

    /// <summary>Checks the node, configures it and starts the workers.</summary>
    /// <exception cref="PreflightException">The node is not fit; nothing was changed.</exception>
    public static FarmDataplane Start(FarmDataplaneOptions options, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        var problems = FarmPreflight.Check(options);
        if (problems.Count > 0)
        {
            throw new PreflightException(problems);
        }

        var nic = NetworkInterfaceInfo.TryRead(options.Interface)!;
        var mac = ClusterMac.Derive(options.L2Mode, options.Vips, options.ClusterMacOverride);
        // Nothing is owned until the membership hands over a view (UseTable).
        var table = BucketTable.Empty(options.BucketCount);
        var tun = TunDevice.Open(options.TunName, vnetHeader: true);
        NftFastPath? nft = null;
        FarmDataplane? dataplane = null;
        try
        {
            FarmPreflight.ApplySysctls(options);
            TunInterface.Configure(tun.Name, options.Vips, nic.Mtu);
            if (options.Mode == DataplaneMode.Kernel)
            {
                nft = new NftFastPath(options, mac);
                nft.Apply(table);
            }

            dataplane = new FarmDataplane(options, logger, mac, table, tun, nft);
            dataplane.StartWorkers(nic);
            return dataplane;
        }
        catch
        {
            if (dataplane is not null)
            {
                dataplane.Dispose();
            }
            else
            {
                nft?.Dispose();
                tun.Dispose();
            }

            throw;
        }
    }

    /// <summary>Switches every worker (and the kernel rules) to a new bucket table.</summary>
    /// <param name="table">The new table.</param>
    /// <param name="dead">Nodes that died since the previous table, with how long ago they were last heard of:
    /// the buckets taken over from them get what they left unanswered replayed.</param>
    public void UseTable(BucketTable table, IReadOnlyDictionary<string, long>? dead = null)
    {
        ArgumentNullException.ThrowIfNull(table);
        var previous = Interlocked.Exchange(ref _table, table);
        _nft?.Apply(table);
        foreach (var worker in _workers)
        {
            worker.Decider.UseTable(table);
        }

        if (dead is not { Count: > 0 } || table.LocalIndex < 0)
        {
            return;
        }

        var gained = new bool[table.Count];
        var any = false;
        for (var b = 0; b < table.Count && previous.Count == table.Count; b++)
        {
            var owner = previous.OwnerOf(b);
            if (table.IsLocal(b) && owner >= 0 && dead.ContainsKey(previous.Nodes[owner].Name))
            {
                gained[b] = true;
                any = true;
            }
        }

        if (any)
        {
            // Everything received since the oldest of them went silent (one interval of margin).
            var since = Environment.TickCount64 - dead.Values.Max() - 100;
            foreach (var worker in _workers)
            {
                worker.RequestTakeover(new TakeoverRequest(gained, since));
            }
        }
    }

    /// <summary>Counters of all workers and the capture, summed.</summary>
    public DataplaneSnapshot Snapshot()
    {
        var counters = new DataplaneCounters();
        long received = 0;
        long dropped = 0;
        var tracked = 0;
        foreach (var worker in _workers)
        {
            counters.Add(worker.Counters);
            var stats = worker.Capture.ReadStatistics();
            received += stats.Received;
            dropped += stats.Dropped;
            tracked += worker.Decider.Fragments.TrackedCount;
        }

        if (_nft is not null)
        {
            // The kernel fast path decides VIP traffic; its rule counters are the verdicts.
            var (accepted, rejected) = _nft.ReadCounters();
            counters.Accepted += accepted;
            counters.Rejected += rejected;
            counters.Frames += accepted + rejected;
        }

        var table = Table;
        return new DataplaneSnapshot(
            _options.Mode == DataplaneMode.Kernel ? "kernel" : "userspace",
            _workers.Count > 0 ? _workers[0].Capture.Name : "none",
            _macText,
            table.Count,
            table.LocalCount,
            counters,
            new CaptureStatistics(received, dropped),
            tracked);
    }

    public void Dispose()
    {
        _stopping = true;
        foreach (var thread in _threads)
        {
            thread.Join(TimeSpan.FromSeconds(2));
        }

        foreach (var worker in _workers)
        {
            worker.Capture.Dispose();
        }

        _nft?.Dispose();
        _tun.Dispose();
    }

    private void StartWorkers(NetworkInterfaceInfo nic)
    {
        var o = _options;
        var neighborOnly = o.Mode == DataplaneMode.Kernel;
        var workers = neighborOnly ? 1 : Math.Max(1, o.Workers);
        var memberships = Memberships();
        var replies = new NeighborReplies(nic.MacAddress, _mac);
        var delivery = neighborOnly ? null : new TunDelivery(_tun);
        var fanoutGroup = (ushort)(Environment.ProcessId & 0xffff);
        var fragments = new FragmentTracker(o.Fragments);
        for (var i = 0; i < workers; i++)
        {
            ICaptureBackend capture = o.Capture == CaptureKind.Pcap
                ? new PcapCapture(o.Interface, CaptureFilter.BuildPcapExpression(_mac, neighborOnly), o.Ring.BlockSize * o.Ring.BlockCount)
                : new RingCapture(new PacketSocketOptions
                {
                    Interface = o.Interface,
                    Filter = CaptureFilter.Build(_mac, neighborOnly),
                    Ring = o.Ring,
                    Memberships = memberships,
                    FanoutGroup = workers > 1 ? fanoutGroup : (ushort)0,
                    // Flow hash; the fragments of one datagram may still reach different workers,
                    // which is why the workers share one fragment tracker.
                    FanoutMode = PacketFanoutHash,
                });
            var decider = new PacketDecider(
                new VipSet(o.Vips),
                _mac,
                new FlowHasher(o.Affinity, o.HashSeed),
                Table,
                fragments);
            _workers.Add(new DataplaneWorker(decider, delivery, replies, capture));
        }

        Announce(replies);
        for (var i = 0; i < _workers.Count; i++)
        {
            var worker = _workers[i];
            var thread = new Thread(() => Run(worker)) { IsBackground = true, Name = $"sk-dataplane-{i}" };
            _threads.Add(thread);
            thread.Start();
        }

        var table = Table;
        LogStarted(_logger, o.Mode, _workers[0].Capture.Name, workers, _macText, table.LocalCount, table.Count);
    }

    private List<LinkMembership> Memberships()
    {
        // Real NICs filter unknown destination MACs: ask for the cluster MAC (and the
        // solicited-node groups of IPv6 VIPs) explicitly. Dropped when the socket closes.
        var list = new List<LinkMembership>
        {
            new(_options.L2Mode == L2Mode.Unicast ? LinkMembershipKind.Unicast : LinkMembershipKind.Multicast, _mac.IPv4Mac),
        };
        if (!_mac.IPv6Mac.AsSpan().SequenceEqual(_mac.IPv4Mac))
        {
            list.Add(new(LinkMembershipKind.Multicast, _mac.IPv6Mac));
        }

        foreach (var vip in _options.Vips.Where(v => v.AddressFamily == AddressFamily.InterNetworkV6))
        {
            var bytes = vip.GetAddressBytes();
            list.Add(new(LinkMembershipKind.Multicast, [0x33, 0x33, 0xff, bytes[13], bytes[14], bytes[15]]));
        }

        return list;
    }

    private void Announce(NeighborReplies replies)
    {
        var frame = new byte[NeighborReplies.MaxFrameLength];
        var capture = _workers[0].Capture;
        for (var round = 0; round < _options.AnnounceCount; round++)
        {
            foreach (var vip in _options.Vips)
            {
                var length = vip.AddressFamily == AddressFamily.InterNetwork
                    ? replies.BuildGratuitousArp(vip.GetAddressBytes(), frame)
                    : replies.BuildUnsolicitedAdvertisement(vip.GetAddressBytes(), frame);
                _ = capture.Send(frame.AsSpan(0, length));
            }

            if (round + 1 < _options.AnnounceCount)
            {
                Thread.Sleep(50);
            }
        }
    }

    private void Run(DataplaneWorker worker)
    {
        var capture = worker.Capture;
        var counters = worker.Counters;
        var baseline = GC.GetAllocatedBytesForCurrentThread();
        while (!_stopping)
        {
            try
            {
                worker.ServiceTakeover();
                capture.Dispatch(worker, 20);
                Volatile.Write(ref counters.WorkerAllocatedBytes, GC.GetAllocatedBytesForCurrentThread() - baseline);
            }
            catch (Exception e) when (!_stopping)
            {
                LogWorkerError(_logger, e);
                Thread.Sleep(100);
            }
        }
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "farm dataplane started: mode {Mode}, capture {Capture} x{Workers}, cluster MAC {Mac}, owns {Owned}/{Buckets} buckets")]
    private static partial void LogStarted(ILogger logger, DataplaneMode mode, string capture, int workers, string mac, int owned, int buckets);

    [LoggerMessage(EventId = 101, Level = LogLevel.Error, Message = "dataplane worker error; continuing")]
    private static partial void LogWorkerError(ILogger logger, Exception exception);
}
