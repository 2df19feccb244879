using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using SafeKit.ControlPlane.Configuration;
using SafeKit.Native.Host;

namespace SafeKit.ControlPlane.Membership;

/// <summary>
/// Runs <see cref="MembershipCore"/> on the network: one UDP socket per heartbeat network, a
/// heartbeat to every peer address every interval, failure checks every fifth of an interval.
/// Its threads run SCHED_FIFO so that a saturated CPU cannot delay heartbeats into a false
/// failure. A view change is handed to <see cref="ViewChanged"/> at once and announced with an
/// immediate heartbeat.
/// </summary>
public sealed partial class MembershipService : IDisposable
{
    private const int RealtimePriority = 20;

    private readonly ClusterConfig _config;
    private volatile HeartbeatConfig _heartbeat;
    private readonly int _self;
    private readonly MembershipCore _core;
    private readonly HeartbeatCodec _codec;
    private readonly HeartbeatMessage _outgoing;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly List<Socket> _sockets = [];
    private readonly List<Thread> _threads = [];
    private readonly IPEndPoint[][] _peers;
    private readonly HeartbeatLinks _links;
    private readonly Lock _gate = new();
    private readonly AutoResetEvent _wake = new(false);
    private volatile bool _stopping;
    private readonly byte[] _beacon = new byte[HeartbeatMessage.BeaconLength];
    private readonly byte[][] _peerBeacons;
    private uint _reportedAlive;
    private uint _reportedMembers;

    public MembershipService(ClusterConfig config, NodeConfig self, byte[] key, uint incarnation, TimeProvider time, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(self);
        _config = config;
        _heartbeat = config.Heartbeat;
        _time = time;
        _logger = logger;
        _self = config.Nodes.ToList().FindIndex(n => n.Name == self.Name);
        var count = config.Nodes.Count;
        _codec = new HeartbeatCodec(key, config.Name, count);
        _outgoing = new HeartbeatMessage(count);
        _core = new MembershipCore(count, _self, incarnation, (byte)self.Weight, config.Heartbeat.TimeoutMilliseconds, NowMs());
        Incarnation = incarnation;
        _links = new HeartbeatLinks(self.Addresses, count);
        _peerBeacons = new byte[count][];
        _peers = new IPEndPoint[self.Addresses.Count][];
        for (var network = 0; network < self.Addresses.Count; network++)
        {
            _peers[network] = config.Nodes.Select(n => new IPEndPoint(n.Addresses[network], config.Heartbeat.Port)).ToArray();
        }
    }

    /// <summary>
    /// Raised on a membership thread whenever this node's view changes, with what is known of
    /// every other node (by index).
    /// </summary>
    public event Action<ClusterView, IReadOnlyDictionary<int, PeerState>>? ViewChanged;

    /// <summary>Raised on a membership thread when a peer dies (false) or comes back (true), as seen from here.</summary>
    public event Action<string, bool>? PeerLivenessChanged;

    /// <summary>Raised on a membership thread with every new view: who joined, left or died.</summary>
    public event Action<MembershipChange>? MembersChanged;

    /// <summary>Raised on a membership thread after news from another node (at most once per heartbeat received).</summary>
    public event Action<IReadOnlyDictionary<int, PeerState>>? PeersChanged;

    /// <summary>Whether this node still serves flows in buckets it gave away (advertised).</summary>
    public bool Pinning
    {
        set
        {
            bool changed;
            lock (_gate)
            {
                changed = _core.Pinning != value;
                _core.Pinning = value;
            }

            if (changed)
            {
                _wake.Set();
            }
        }
    }

    public uint Incarnation { get; }

    /// <summary>Sets what this node's heartbeats tell the others about its modules (sent at once).</summary>
    public void SetBeacon(ReadOnlySpan<byte> beacon)
    {
        bool changed;
        lock (_gate)
        {
            changed = !beacon.SequenceEqual(_beacon.AsSpan(0, beacon.Length));
            _beacon.AsSpan().Clear();
            beacon.CopyTo(_beacon);
        }

        if (changed)
        {
            _wake.Set();
        }
    }

    /// <summary>The beacon of the last heartbeat accepted from <paramref name="node"/> (null: none heard since start).</summary>
    public byte[]? PeerBeacon(string node)
    {
        var index = _config.Nodes.ToList().FindIndex(n => n.Name == node);
        lock (_gate)
        {
            return index < 0 || _peerBeacons[index] is not { } beacon ? null : (byte[])beacon.Clone();
        }
    }

    /// <summary>Applies a reloaded weight for this node and heartbeat timings (the port needs a restart).</summary>
    public void Retune(int weight, HeartbeatConfig heartbeat)
    {
        ArgumentNullException.ThrowIfNull(heartbeat);
        lock (_gate)
        {
            _core.Weight = (byte)weight;
            _core.TimeoutMilliseconds = heartbeat.TimeoutMilliseconds;
            _heartbeat = heartbeat;
        }

        _wake.Set();
    }

    public MembershipCounters Counters { get; } = new();

    /// <summary>Whether this node offers to take traffic.</summary>
    public bool Ready
    {
        get
        {
            lock (_gate)
            {
                return _core.Ready;
            }
        }

        set
        {
            lock (_gate)
            {
                _core.Ready = value;
            }

            _wake.Set();
        }
    }

    /// <summary>
    /// The heartbeat socket on <paramref name="address"/>. A daemon restarted right after a crash
    /// may find the port still held while the dead process is torn down: it retries for a while.
    /// </summary>
    private Socket Bind(IPAddress address)
    {
        var deadline = Environment.TickCount64 + 10_000;
        while (true)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            try
            {
                socket.Bind(new IPEndPoint(address, _config.Heartbeat.Port));
                return socket;
            }
            catch (SocketException e)
            {
                socket.Dispose();
                if (e.SocketErrorCode != SocketError.AddressAlreadyInUse || Environment.TickCount64 > deadline)
                {
                    throw new InvalidOperationException($"cannot listen for heartbeats on {address}:{_config.Heartbeat.Port}: {e.Message}", e);
                }

                Thread.Sleep(200);
            }
        }
    }

    /// <summary>Binds the sockets and starts the threads.</summary>
    public void Start()
    {
        var self = _config.Nodes[_self];
        for (var network = 0; network < self.Addresses.Count; network++)
        {
            var address = self.Addresses[network];
            _sockets.Add(Bind(address));
        }

        for (var network = 0; network < _sockets.Count; network++)
        {
            var socket = _sockets[network];
            var index = network;
            _threads.Add(new Thread(() => ReceiveLoop(socket, index)) { IsBackground = true, Name = $"sk-hb-rx{network}" });
        }

        _threads.Add(new Thread(TickLoop) { IsBackground = true, Name = "sk-hb-tick" });
        foreach (var thread in _threads)
        {
            thread.Start();
        }
    }

    /// <summary>A consistent copy of what the membership knows, for status and logs.</summary>
    public MembershipSnapshot Snapshot()
    {
        lock (_gate)
        {
            var now = NowMs();
            var peers = new List<PeerStatus>();
            for (var i = 0; i < _config.Nodes.Count; i++)
            {
                var state = _core.StateOf(i);
                var heard = _core.LastProgress(i);
                peers.Add(new PeerStatus(
                    _config.Nodes[i].Name,
                    NodeMask.Contains(_core.Alive, i),
                    i == _self ? 0 : heard == 0 ? null : now - heard,
                    state.Incarnation,
                    state.Ready || (i == _self && _core.Ready),
                    i == _self ? [] : _links.Of(i, now)));
            }

            var view = _core.View;
            return new MembershipSnapshot(
                view.Leader >= 0 ? _config.Nodes[view.Leader].Name : null,
                view.Epoch,
                NodeMask.Members(view.Members).Select(i => _config.Nodes[i].Name).ToList(),
                _core.Yielding,
                Incarnation,
                peers,
                Counters.ToDictionary());
        }
    }

    public void Dispose()
    {
        _stopping = true;
        _wake.Set();
        foreach (var socket in _sockets)
        {
            socket.Dispose();
        }

        foreach (var thread in _threads)
        {
            thread.Join(TimeSpan.FromSeconds(2));
        }

        _wake.Dispose();
    }

    private long NowMs() => (long)_time.GetElapsedTime(0).TotalMilliseconds;

    private void TickLoop()
    {
        MakeRealtime();
        var nextSend = NowMs();
        var buffer = new byte[_codec.Length];
        while (!_stopping)
        {
            var interval = _heartbeat.IntervalMilliseconds;
            var check = Math.Max(5, interval / 5);
            var now = NowMs();
            bool changed;
            lock (_gate)
            {
                changed = EvaluateLocked(now);
            }

            if (changed || now >= nextSend)
            {
                Send(buffer);
                nextSend = now + interval;
            }

            var wait = (int)Math.Clamp(Math.Min(nextSend - NowMs(), check), 1, check);
            if (_wake.WaitOne(wait))
            {
                // Woken by a view change or a readiness change: announce it now.
                lock (_gate)
                {
                    EvaluateLocked(NowMs());
                }

                Send(buffer);
                nextSend = NowMs() + interval;
            }
        }
    }

    private void ReceiveLoop(Socket socket, int network)
    {
        MakeRealtime();
        var buffer = new byte[2048];
        var incoming = new HeartbeatMessage(_config.Nodes.Count);
        EndPoint from = new IPEndPoint(socket.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
        while (!_stopping)
        {
            int length;
            try
            {
                length = socket.ReceiveFrom(buffer, ref from);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                if (_stopping)
                {
                    return;
                }

                continue;
            }

            var verdict = _codec.Decode(buffer.AsSpan(0, length), incoming);
            var changed = false;
            lock (_gate)
            {
                if (verdict != HeartbeatVerdict.Ok)
                {
                    Count(verdict);
                    continue;
                }

                var source = ((IPEndPoint)from).Address;
                if (!_config.Nodes[incoming.Sender].Addresses.Contains(source))
                {
                    Counters.WrongSource++;
                    continue;
                }

                _links.Received(network, incoming.Sender, incoming.Incarnation, incoming.Sequence, NowMs());

                switch (_core.Receive(incoming, NowMs()))
                {
                    case ReceiveOutcome.Accepted:
                        Counters.Accepted++;
                        incoming.Beacon.CopyTo(_peerBeacons[incoming.Sender] ??= new byte[HeartbeatMessage.BeaconLength], 0);
                        changed = EvaluateLocked(NowMs());
                        PeersChanged?.Invoke(PeersLocked(NowMs()));
                        break;
                    case ReceiveOutcome.Duplicate:
                        Counters.Duplicates++;
                        break;
                    case ReceiveOutcome.Replayed:
                        Counters.Replayed++;
                        break;
                    case ReceiveOutcome.IdentityConflict:
                        Counters.IdentityConflicts++;
                        break;
                    default:
                        Counters.Malformed++;
                        break;
                }
            }

            if (changed)
            {
                _wake.Set();
            }
        }
    }

    private bool EvaluateLocked(long now)
    {
        var changed = _core.Evaluate(now);
        ReportLivenessLocked();
        if (!changed)
        {
            return false;
        }

        Counters.ViewChanges++;
        var view = _core.View;
        ReportMembersLocked(view);
        var leader = view.Leader >= 0 ? _config.Nodes[view.Leader].Name : "none";
        var members = string.Join(',', NodeMask.Members(view.Members).Select(i => _config.Nodes[i].Name));
        LogView(_logger, leader, view.Epoch, members);
        ViewChanged?.Invoke(view, PeersLocked(now));
        return true;
    }

    /// <summary>Tells <see cref="PeerLivenessChanged"/> which peers died or came back since the last evaluation.</summary>
    private void ReportLivenessLocked()
    {
        var alive = _core.Alive;
        var flipped = (alive ^ _reportedAlive) & ~NodeMask.Of(_self);
        _reportedAlive = alive;
        foreach (var i in NodeMask.Members(flipped))
        {
            PeerLivenessChanged?.Invoke(_config.Nodes[i].Name, NodeMask.Contains(alive, i));
        }
    }

    /// <summary>Counts failovers (a member lost because it died, not because it left) and raises <see cref="MembersChanged"/>.</summary>
    private void ReportMembersLocked(ClusterView view)
    {
        var previous = _reportedMembers;
        _reportedMembers = view.Members;
        var lost = previous & ~view.Members;
        var died = lost & ~_core.Alive;
        Counters.Failovers += NodeMask.Count(died);
        MembersChanged?.Invoke(new MembershipChange(
            view.Epoch,
            view.Leader >= 0 ? _config.Nodes[view.Leader].Name : null,
            Names(view.Members),
            Names(view.Members & ~previous),
            Names(lost & ~died),
            Names(died)));
    }

    private List<string> Names(uint mask) => NodeMask.Members(mask).Select(i => _config.Nodes[i].Name).ToList();

    /// <summary>What is known of every other node. A node silent for more than two intervals counts
    /// as dead here already: a follower may adopt the leader's new view a moment before its own
    /// timeout expires, and must then take the dead node's buckets at once.</summary>
    private Dictionary<int, PeerState> PeersLocked(long now)
    {
        var peers = new Dictionary<int, PeerState>();
        for (var i = 0; i < _config.Nodes.Count; i++)
        {
            if (i == _self)
            {
                continue;
            }

            var state = _core.StateOf(i);
            var silent = state.IsKnown ? now - _core.LastProgress(i) : long.MaxValue / 2;
            var alive = NodeMask.Contains(_core.Alive, i) && silent <= 2 * _heartbeat.IntervalMilliseconds;
            peers[i] = new PeerState(alive, state.ViewEpoch, state.Claims, state.Pinning, silent);
        }

        return peers;
    }

    private void Send(byte[] buffer)
    {
        int length;
        lock (_gate)
        {
            _core.FillHeartbeat(_outgoing);
            _beacon.CopyTo(_outgoing.Beacon, 0);
            length = _codec.Encode(_outgoing, buffer);
        }

        for (var network = 0; network < _sockets.Count; network++)
        {
            for (var peer = 0; peer < _peers[network].Length; peer++)
            {
                if (peer == _self)
                {
                    continue;
                }

                try
                {
                    _sockets[network].SendTo(buffer.AsSpan(0, length), SocketFlags.None, _peers[network][peer]);
                    lock (_gate)
                    {
                        Counters.Sent++;
                    }
                }
                catch (SocketException)
                {
                    // A peer network down (unreachable route, no neighbour): the other networks carry on.
                    lock (_gate)
                    {
                        Counters.SendErrors++;
                    }
                }
                catch (ObjectDisposedException) when (_stopping)
                {
                    return;
                }
            }
        }
    }

    private void Count(HeartbeatVerdict verdict)
    {
        switch (verdict)
        {
            case HeartbeatVerdict.BadMac:
                Counters.BadMac++;
                break;
            case HeartbeatVerdict.ForeignCluster:
                Counters.ForeignCluster++;
                break;
            default:
                Counters.Malformed++;
                break;
        }
    }

    private void MakeRealtime()
    {
        if (ThreadScheduling.TryMakeRealtime(RealtimePriority) is { } error)
        {
            LogNoRealtime(_logger, Thread.CurrentThread.Name ?? "?", error);
        }
    }

    [LoggerMessage(EventId = 200, Level = LogLevel.Information, Message = "view: leader {Leader}, epoch {Epoch}, members [{Members}]")]
    private static partial void LogView(ILogger logger, string leader, uint epoch, string members);

    [LoggerMessage(EventId = 201, Level = LogLevel.Warning, Message = "membership thread {Thread} stays at normal priority ({Error}): CPU saturation may delay heartbeats")]
    private static partial void LogNoRealtime(ILogger logger, string thread, string error);
}

/// <summary>What one node knows of the cluster.</summary>
public sealed record MembershipSnapshot(
    string? Leader,
    uint Epoch,
    IReadOnlyList<string> Members,
    bool Yielding,
    uint Incarnation,
    IReadOnlyList<PeerStatus> Peers,
    IReadOnlyDictionary<string, long> Counters);

/// <summary>A new view compared with the one before it.</summary>
/// <param name="Epoch">The new view's epoch.</param>
/// <param name="Leader">Its leader.</param>
/// <param name="Members">Its members.</param>
/// <param name="Joined">Members that were not in the view before.</param>
/// <param name="Left">Former members still alive (they drained or stopped offering).</param>
/// <param name="Died">Former members lost because they stopped answering: a failover.</param>
public sealed record MembershipChange(uint Epoch, string? Leader, IReadOnlyList<string> Members, IReadOnlyList<string> Joined, IReadOnlyList<string> Left, IReadOnlyList<string> Died);

/// <summary>One node as seen from here.</summary>
/// <param name="Name">Node name.</param>
/// <param name="Alive">Considered alive.</param>
/// <param name="LastHeardMilliseconds">Since its state last progressed (null: never heard).</param>
/// <param name="Incarnation">Its incarnation as known.</param>
/// <param name="Ready">It offers to take traffic.</param>
/// <param name="Links">Heartbeats received and lost from it on each network (empty for this node).</param>
public sealed record PeerStatus(string Name, bool Alive, long? LastHeardMilliseconds, uint Incarnation, bool Ready, IReadOnlyList<LinkStatus> Links);

/// <summary>What this node knows of another node, for the bucket handover.</summary>
/// <param name="Alive">Heard of recently.</param>
/// <param name="Epoch">Epoch of the view it follows.</param>
/// <param name="Claims">Its view counts it as a member.</param>
/// <param name="Pinning">It still serves flows of buckets it gave away.</param>
/// <param name="SilentMilliseconds">Since its state last progressed.</param>
public readonly record struct PeerState(bool Alive, uint Epoch, bool Claims, bool Pinning, long SilentMilliseconds);
