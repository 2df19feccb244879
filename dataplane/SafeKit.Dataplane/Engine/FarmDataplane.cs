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
/// fast path), the announcements. It starts owning no bucket; the control plane hands it every
/// view (<see cref="ApplyView"/>) and news of the other nodes (<see cref="UpdatePeers"/>), and the
/// handover decides, bucket by bucket, what this node accepts (FarmDataplane.Handover.cs).
/// Start it once; dispose it to leave the node as it was.
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
    private readonly NftUpdater? _nftUpdater;
    private volatile bool _stopping;

    private FarmDataplane(FarmDataplaneOptions options, ILogger logger, ClusterMac mac, TunDevice tun, NftFastPath? nft)
    {
        _options = options;
        _logger = logger;
        _mac = mac;
        _macText = ClusterMac.Format(mac.IPv4Mac);
        _tun = tun;
        _nft = nft;
        _nftUpdater = nft is null ? null : new NftUpdater(nft, logger);
        _handover = new BucketHandover(options.BucketCount, options.LocalNode);
        _state = ForwardingState.Empty(options.BucketCount);
    }

    /// <summary>The cluster MACs the VIPs resolve to.</summary>
    public ClusterMac ClusterMac => _mac;

    /// <summary>The bucket table in force.</summary>
    public BucketTable Table => Volatile.Read(ref _state).Table;

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
                nft.Apply(ForwardingState.Empty(options.BucketCount));
            }

            dataplane = new FarmDataplane(options, logger, mac, tun, nft);
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

        var modes = Volatile.Read(ref _state).Modes;
        var flows = 0;
        long refused = 0;
        foreach (var worker in _workers)
        {
            flows += worker.Decider.Flows.Count;
            refused += worker.Decider.Flows.Refused;
        }

        return new DataplaneSnapshot(
            _options.Mode == DataplaneMode.Kernel ? "kernel" : "userspace",
            _workers.Count > 0 ? _workers[0].Capture.Name : "none",
            _macText,
            modes.Length,
            modes.Count(m => m is BucketMode.Owned or BucketMode.Shared),
            counters,
            new CaptureStatistics(received, dropped),
            tracked)
        {
            PinnedBuckets = modes.Count(m => m == BucketMode.Pinned),
            WaitingBuckets = modes.Count(m => m == BucketMode.Awaiting),
            Flows = flows,
            FlowsRefused = refused,
            TimeWaitCleared = Interlocked.Read(ref _timeWaitCleared),
        };
    }

    public void Dispose()
    {
        _stopping = true;
        _maintenance?.Dispose();
        foreach (var thread in _threads)
        {
            thread.Join(TimeSpan.FromSeconds(2));
        }

        foreach (var worker in _workers)
        {
            worker.Capture.Dispose();
        }

        _nftUpdater?.Dispose();
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
                Volatile.Read(ref _state),
                fragments,
                new FlowTable(o.FlowTableSize));
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
        _maintenance = new Timer(_ => Maintain(), null, TimeSpan.FromMilliseconds(500), TimeSpan.FromMilliseconds(500));
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
                worker.Maintain(Environment.TickCount64, _options.FlowTimeouts);
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
