using SafeKit.Dataplane.Buckets;
using SafeKit.Dataplane.Capture;
using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Delivery;
using SafeKit.Dataplane.Flows;
using SafeKit.Dataplane.Fragments;
using SafeKit.Dataplane.Neighbors;
using SafeKit.Dataplane.Takeover;

namespace SafeKit.Dataplane.Engine;

/// <summary>
/// The per-thread packet loop body: decide each captured frame, deliver accepted datagrams to the
/// TUN, answer neighbour requests, count everything. Allocation-free in steady state.
/// </summary>
public sealed class DataplaneWorker : IFrameSink
{
    private readonly PacketDecider _decider;
    private readonly TunDelivery? _delivery;
    private readonly NeighborReplies _replies;
    private readonly ICaptureBackend _capture;
    private readonly byte[] _reply = new byte[NeighborReplies.MaxFrameLength];
    private readonly byte[] _released = new byte[FragmentTracker.SlotSize];
    private readonly RecentPackets _recent = new(16384);
    private TakeoverRequest? _takeover;
    private BucketMode[]? _lastModes;
    private long _nextSweep;
    private PinSweep? _lastSweep;
    private KernelConnections? _kernel;

    /// <param name="decider">The accept rule (its fragment tracker belongs to this worker).</param>
    /// <param name="delivery">Where accepted datagrams go; null when the kernel fast path accepts them.</param>
    /// <param name="replies">ARP/NDP reply builder.</param>
    /// <param name="capture">Frame source and the way out for replies.</param>
    public DataplaneWorker(PacketDecider decider, TunDelivery? delivery, NeighborReplies replies, ICaptureBackend capture)
    {
        _decider = decider;
        _delivery = delivery;
        _replies = replies;
        _capture = capture;
        Counters.AcceptedByVip = new long[decider.Vips.Addresses.Count];
        Counters.RejectedByVip = new long[decider.Vips.Addresses.Count];
    }

    public DataplaneCounters Counters { get; } = new();

    public PacketDecider Decider => _decider;

    public ICaptureBackend Capture => _capture;

    public void OnFrame(Span<byte> frame, in FrameInfo info)
    {
        var counters = Counters;
        counters.Frames++;
        if (info.Truncated)
        {
            counters.Oversize++;
            return;
        }

        var now = Environment.TickCount64;
        var verdict = _decider.Decide(frame, now, out var packet, out var bucket);
        switch (verdict)
        {
            case Verdict.Accept:
                if (_delivery is null)
                {
                    // The kernel fast path owns VIP traffic; this copy arrived through the neighbour filter.
                    counters.NotForUs++;
                    return;
                }

                if (packet.IsFragment)
                {
                    counters.Fragments++;
                }

                if (_delivery.Deliver(frame, packet, info))
                {
                    counters.Accepted++;
                    counters.AcceptedBytes += packet.L3Length;
                    CountVip(counters.AcceptedByVip, frame.Slice(packet.DestinationOffset, packet.AddressLength));
                }
                else
                {
                    counters.DeliveryErrors++;
                }

                DeliverReleasedFragments(counters);
                break;
            case Verdict.Reject:
                if (packet.IsFragment)
                {
                    counters.Fragments++;
                }

                counters.Rejected++;
                CountVip(counters.RejectedByVip, frame.Slice(packet.DestinationOffset, packet.AddressLength));
                if (_delivery is not null)
                {
                    _recent.Record(frame, packet, bucket, now);
                }

                break;
            case Verdict.AnswerArp:
                Answer(_replies.BuildArpReply(frame, packet, _reply), ref counters.ArpAnswered, counters);
                break;
            case Verdict.AnswerNdp:
                Answer(_replies.BuildNeighborAdvertisement(frame, packet, _reply), ref counters.NdpAnswered, counters);
                break;
            case Verdict.NeighborOther:
                counters.NeighborOther++;
                break;
            case Verdict.Malformed:
                counters.Malformed++;
                break;
            case Verdict.FragmentHeld:
                counters.Fragments++;
                counters.FragmentsHeld++;
                break;
            case Verdict.FragmentDropped:
                counters.Fragments++;
                counters.FragmentsDropped++;
                break;
            default:
                counters.NotForUs++;
                break;
        }
    }

    /// <summary>This worker's last sweep: the modes it looked at and which pinned buckets still had live flows.</summary>
    public PinSweep? LastSweep => Volatile.Read(ref _lastSweep);

    /// <summary>
    /// Flow housekeeping, on the worker thread between batches: refreshes our flows in buckets
    /// that just became pinned, and once a second forgets ended flows and notes which pinned
    /// buckets still have live ones.
    /// </summary>
    public void Maintain(long now, FlowTimeouts timeouts)
    {
        var modes = _decider.State.Modes;
        if (!ReferenceEquals(modes, _lastModes))
        {
            bool[]? newlyPinned = null;
            for (var b = 0; b < modes.Length; b++)
            {
                if (modes[b] == BucketMode.Pinned && (_lastModes is null || _lastModes[b] != BucketMode.Pinned))
                {
                    (newlyPinned ??= new bool[modes.Length])[b] = true;
                }
            }

            if (newlyPinned is not null)
            {
                var refresh = new PinRefresh(newlyPinned, _decider.Flows, now);
                _decider.Flows.Sweep(ref refresh);
                _nextSweep = 0;
            }

            _lastModes = modes;
        }

        if (now < _nextSweep)
        {
            return;
        }

        var sweep = new FlowSweep(modes, now, timeouts.PinIdleMilliseconds, timeouts.IdleMilliseconds, Volatile.Read(ref _kernel));
        _decider.Flows.Sweep(ref sweep);
        Volatile.Write(ref _lastSweep, sweep.StillPinned is null ? null : new PinSweep(modes, sweep.StillPinned));
        _nextSweep = now + 1000;
    }

    /// <summary>The stack's connections, read while pinning: the next sweeps forget pinned flows it no longer has.</summary>
    public void UseKernelConnections(KernelConnections? connections) => Volatile.Write(ref _kernel, connections);

    /// <summary>Asks the worker thread to replay what dead nodes left unanswered (see <see cref="RecentPackets"/>).</summary>
    public void RequestTakeover(TakeoverRequest request) => Volatile.Write(ref _takeover, request);

    /// <summary>Runs a pending takeover; called by the worker thread between batches.</summary>
    public void ServiceTakeover()
    {
        var request = Interlocked.Exchange(ref _takeover, null);
        if (request is not null && _delivery is not null)
        {
            Replay(request, _delivery);
        }
    }

    // Separate so that the closure is only allocated when there is something to replay: this
    // runs between every two batches.
    private void Replay(TakeoverRequest request, TunDelivery delivery) =>
        Counters.TakeoverReplayed += _recent.Replay(request, datagram => delivery.DeliverDatagram(datagram.Span));

    private void CountVip(long[] byVip, ReadOnlySpan<byte> destination)
    {
        var vip = _decider.Vips.IndexOf(destination);
        if (vip >= 0)
        {
            byVip[vip]++;
        }
    }

    private void DeliverReleasedFragments(DataplaneCounters counters)
    {
        while (_decider.Fragments.TryTakeReleased(_released, out var length))
        {
            if (_delivery!.DeliverDatagram(_released.AsSpan(0, length)))
            {
                counters.Accepted++;
                counters.AcceptedBytes += length;
                // An IPv4 datagram names its destination at byte 16, an IPv6 one at byte 24.
                var datagram = _released.AsSpan(0, length);
                if (length >= 40 && datagram[0] >> 4 == 6)
                {
                    CountVip(counters.AcceptedByVip, datagram.Slice(24, 16));
                }
                else if (length >= 20)
                {
                    CountVip(counters.AcceptedByVip, datagram.Slice(16, 4));
                }
            }
            else
            {
                counters.DeliveryErrors++;
            }
        }
    }

    private void Answer(int length, ref long answered, DataplaneCounters counters)
    {
        if (_capture.Send(_reply.AsSpan(0, length)))
        {
            answered++;
        }
        else
        {
            counters.SendErrors++;
        }
    }
}

/// <summary>The result of a worker's sweep while buckets were pinned.</summary>
/// <param name="Modes">The modes the sweep looked at.</param>
/// <param name="StillPinned">Per bucket: a live flow of ours remains.</param>
public sealed record PinSweep(BucketMode[] Modes, bool[] StillPinned)
{
    /// <summary>True unless this sweep saw <paramref name="bucket"/> pinned and found no live flow in it.</summary>
    public bool Keeps(int bucket) => Modes[bucket] != BucketMode.Pinned || StillPinned[bucket];
}
