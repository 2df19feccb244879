using System.Runtime.CompilerServices;
using SafeKit.Dataplane.Buckets;
using SafeKit.Dataplane.Flows;
using SafeKit.Dataplane.Fragments;
using SafeKit.Dataplane.Parsing;

namespace SafeKit.Dataplane.Decisions;

/// <summary>
/// The accept rule of the farm, free of I/O: parse a frame, find the client it belongs to, hash
/// it into a bucket and compare the bucket's owner with the local node.
/// <list type="bullet">
/// <item>The client is the source of a packet sent to a VIP, or the destination of the packet an
/// ICMP error quotes (we sent that packet), so errors such as "fragmentation needed" reach the node
/// that owns the connection.</item>
/// <item>A fragmented datagram whose key needs ports is decided by its first fragment
/// (<see cref="FragmentTracker"/>); with client-ip affinity every fragment carries the key itself.</item>
/// <item>ARP and NDP requests for a VIP are answered by the owner of the requester's own bucket, so
/// the requester gets exactly one reply.</item>
/// </list>
/// Only frames sent to the cluster MAC are VIP traffic: anything else is the kernel's business.
/// </summary>
[SkipLocalsInit]
public sealed class PacketDecider
{
    private readonly VipSet _vips;
    private readonly ClusterMac _clusterMac;
    private readonly FlowHasher _hasher;
    private readonly FragmentTracker _fragments;
    private readonly FlowTable _flows;
    private ForwardingState _state;

    public PacketDecider(VipSet vips, ClusterMac clusterMac, FlowHasher hasher, ForwardingState state, FragmentTracker fragments, FlowTable flows)
    {
        _vips = vips;
        _clusterMac = clusterMac;
        _hasher = hasher;
        _state = state;
        _fragments = fragments;
        _flows = flows;
    }

    /// <summary>The table and bucket modes in force. Replaced whole by <see cref="UseState"/>.</summary>
    public ForwardingState State => Volatile.Read(ref _state);

    /// <summary>Fragment state shared with the worker that releases held fragments.</summary>
    public FragmentTracker Fragments => _fragments;

    /// <summary>The flows this decider has seen (its worker's).</summary>
    public FlowTable Flows => _flows;

    /// <summary>The farm's virtual addresses.</summary>
    public VipSet Vips => _vips;

    /// <summary>Atomically switches to new buckets and modes (the next packet sees them).</summary>
    public void UseState(ForwardingState state) => Volatile.Write(ref _state, state);

    /// <summary>Decides one frame. <paramref name="packet"/> holds the parse for the caller's delivery.</summary>
    public Verdict Decide(ReadOnlySpan<byte> frame, long nowMilliseconds, out ParsedPacket packet, out int bucket)
    {
        bucket = -1;
        var status = PacketParser.Parse(frame, out packet);
        if (status != ParseStatus.Ok)
        {
            return status == ParseStatus.Unsupported ? Verdict.NotForUs : Verdict.Malformed;
        }

        var state = Volatile.Read(ref _state);
        var table = state.Table;
        switch (packet.Network)
        {
            case NetworkLayer.Arp:
                return DecideArp(frame, packet, table, out bucket);
            case NetworkLayer.IPv4:
            case NetworkLayer.IPv6:
                break;
            default:
                return Verdict.NotForUs;
        }

        if (packet.NdpTargetOffset >= 0)
        {
            return DecideSolicitation(frame, packet, table, out bucket);
        }

        if (!_clusterMac.Matches(frame) || !_vips.Contains(frame.Slice(packet.DestinationOffset, packet.AddressLength)))
        {
            return Verdict.NotForUs;
        }

        ReadOnlySpan<byte> client;
        bool withPort;
        ushort port;
        if (packet.Embedded.Present)
        {
            ref readonly var embedded = ref packet.Embedded;
            client = frame.Slice(embedded.DestinationOffset, embedded.AddressLength);
            withPort = embedded.HasPorts && _hasher.KeyUsesPort(embedded.Protocol);
            port = embedded.DestinationPort;
        }
        else
        {
            client = frame.Slice(packet.SourceOffset, packet.AddressLength);
            withPort = _hasher.KeyUsesPort(packet.Protocol);
            port = packet.SourcePort;
            if (withPort && packet.IsFragment && !packet.HasPorts)
            {
                return _fragments.OnLaterFragment(frame, packet, nowMilliseconds);
            }
        }

        bucket = table.BucketOf(_hasher.Hash(client, withPort, port));
        var verdict = FlowPolicy.Judge(state.Modes[bucket], _flows, frame, packet, bucket, nowMilliseconds);
        if (withPort && packet.IsFragment)
        {
            _fragments.OnFirstFragment(frame, packet, verdict == Verdict.Accept, nowMilliseconds);
        }

        return verdict;
    }

    private Verdict DecideArp(ReadOnlySpan<byte> frame, in ParsedPacket packet, BucketTable table, out int bucket)
    {
        bucket = -1;
        if (packet.ArpOperation != 1 || !_vips.Contains(frame.Slice(packet.DestinationOffset, 4)))
        {
            return Verdict.NotForUs;
        }

        bucket = table.BucketOf(_hasher.Hash(frame.Slice(packet.SourceOffset, 4), false, 0));
        return table.IsLocal(bucket) ? Verdict.AnswerArp : Verdict.NeighborOther;
    }

    private Verdict DecideSolicitation(ReadOnlySpan<byte> frame, in ParsedPacket packet, BucketTable table, out int bucket)
    {
        bucket = -1;
        if (!_vips.Contains(frame.Slice(packet.NdpTargetOffset, 16)))
        {
            return Verdict.NotForUs;
        }

        bucket = table.BucketOf(_hasher.Hash(frame.Slice(packet.SourceOffset, 16), false, 0));
        return table.IsLocal(bucket) ? Verdict.AnswerNdp : Verdict.NeighborOther;
    }
}
