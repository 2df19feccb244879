namespace SafeKit.ControlPlane.Membership;

/// <summary>
/// The membership protocol of one node, free of I/O and clocks (time is passed in, in
/// milliseconds from any monotonic origin), so every scenario is testable step by step.
///
/// <para><b>State and gossip.</b> Every node has a state versioned by (incarnation, sequence): its
/// readiness, weight, the set of nodes it considers alive, whether it leads, and the epoch of the
/// view it follows. It raises its sequence at every heartbeat; a restart raises its incarnation.
/// A heartbeat carries the newest known state of <i>every</i> node, so a state travels along any
/// path of working links, not only direct ones. A receiver keeps the newest version of each
/// node's state and the time that version last <i>progressed</i>.</para>
///
/// <para><b>Alive.</b> A node is alive for me while its state keeps progressing: its newest version
/// changed less than <c>timeout</c> ago, whichever way it came. A dead node's state stops
/// progressing everywhere at once, so everyone notices within timeout + one interval.</para>
///
/// <para><b>Leader.</b> The leader is the lowest-ranked (first in the configuration) alive node
/// that is <i>eligible</i>: a node that just started, or just became ready again, is not eligible
/// during one timeout (discovery), so that a restarting node or one whose cable was out never
/// takes the lead — or buckets — before it has heard the others, and the others keep following
/// the current leader meanwhile. When the leader dies its followers keep the last view (for at
/// most one timeout) until the next leader publishes, so they keep serving their own buckets.</para>
///
/// <para><b>View.</b> The leader publishes the view: its members are the alive, ready nodes that
/// themselves consider the leader alive (they will receive the view), with their weights, under a
/// new epoch (the highest epoch seen anywhere + 1) whenever that set or a weight changes. The
/// others follow the newest view of their leader, which reaches them through the gossip. Every
/// member computes the same bucket table from the same view; a node outside the view owns nothing.
/// Views change on different nodes at slightly different moments: a node that gains buckets from
/// a node still alive does not take them before that node has adopted the new view (its state
/// shows the new epoch, or that it claims nothing), see <c>BucketHandover</c>.</para>
///
/// <para><b>Partitions.</b> Knowledge flows along directed paths of heartbeats. With a partial
/// partition (A and B cannot hear each other, both hear C) everyone still knows everyone through C:
/// one leader, one view, B included. With an asymmetric cut (A hears B and C, they do not hear A)
/// B and C know nothing of A and follow B's view; A sees B leading a non-empty view without knowing
/// A — a <i>rival</i> — and, since B's side cannot learn of A, A yields: a leader that sees a
/// rival leader which does not know it publishes an empty view. So once the links are stable every bucket
/// has exactly one owner. The only exception is a complete split with no heartbeat path in either
/// direction: each side then serves all buckets (a farm has no quorum: it must keep serving when
/// half its nodes die). Heartbeats run on the VIP network too, so such a split normally splits
/// the clients' traffic the same way.</para>
/// </summary>
public sealed class MembershipCore
{
    private readonly NodeState[] _states;
    private readonly long[] _progress;
    private readonly (uint Incarnation, uint Sequence)[] _lastDirect;
    private readonly ClusterView?[] _leaderViews;
    private readonly byte[] _weights;
    private long _timeout;
    private long _discoveryEnds;
    private bool _ready;
    private ClusterView? _published;
    private long _lastFollowed;
    private uint _maxEpoch;

    public MembershipCore(int nodeCount, int self, uint incarnation, byte weight, long timeoutMilliseconds, long now)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(nodeCount, 32);
        ArgumentOutOfRangeException.ThrowIfNegative(self);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(self, nodeCount);
        ArgumentOutOfRangeException.ThrowIfZero(incarnation);
        NodeCount = nodeCount;
        Self = self;
        _states = new NodeState[nodeCount];
        _progress = new long[nodeCount];
        _lastDirect = new (uint, uint)[nodeCount];
        _leaderViews = new ClusterView?[nodeCount];
        _weights = new byte[nodeCount];
        _timeout = timeoutMilliseconds;
        _discoveryEnds = now + timeoutMilliseconds;
        _states[self] = new NodeState { Incarnation = incarnation, Weight = weight, Alive = NodeMask.Of(self) };
    }

    public int NodeCount { get; }

    public int Self { get; }

    /// <summary>
    /// Whether this node can take traffic (module started, checkers healthy, not draining). Becoming
    /// ready starts a new discovery period: a node back from a cut cable must hear the others
    /// before it may lead.
    /// </summary>
    public bool Ready
    {
        get => _ready;
        set
        {
            if (value && !_ready)
            {
                _restartDiscovery = true;
            }

            _ready = value;
        }
    }

    private bool _restartDiscovery;

    /// <summary>Whether this node still serves flows in buckets it gave away (advertised).</summary>
    public bool Pinning { get; set; }

    /// <summary>This node's weight (advertised; the leader puts it in the view).</summary>
    public byte Weight
    {
        get => _states[Self].Weight;
        set => _states[Self].Weight = value;
    }

    /// <summary>Silence after which a node is dead (reloadable).</summary>
    public long TimeoutMilliseconds
    {
        get => _timeout;
        set => _timeout = value;
    }

    /// <summary>The view this node follows (or publishes); <see cref="ClusterView.None"/> when it has none.</summary>
    public ClusterView View { get; private set; } = ClusterView.None;

    /// <summary>Nodes this node considers alive.</summary>
    public uint Alive { get; private set; }

    /// <summary>The leader this node follows (itself included), -1 during discovery.</summary>
    public int Leader { get; private set; } = -1;

    /// <summary>True while this node leads but yields to a rival that cannot see it.</summary>
    public bool Yielding { get; private set; }

    /// <summary>Newest known state of node <paramref name="index"/>.</summary>
    public NodeState StateOf(int index) => _states[index];

    /// <summary>When the state of <paramref name="index"/> last progressed (ms; 0 = never).</summary>
    public long LastProgress(int index) => _progress[index];

    /// <summary>Merges an authenticated heartbeat received at <paramref name="now"/>.</summary>
    public ReceiveOutcome Receive(HeartbeatMessage message, long now)
    {
        ArgumentNullException.ThrowIfNull(message);
        var sender = message.Sender;
        if (sender == Self)
        {
            return ReceiveOutcome.IdentityConflict;
        }

        ref readonly var own = ref message.States[sender];
        if (own.Incarnation != message.Incarnation || own.Sequence != message.Sequence || message.Incarnation == 0)
        {
            return ReceiveOutcome.Inconsistent;
        }

        var last = _lastDirect[sender];
        if (message.Incarnation < last.Incarnation || (message.Incarnation == last.Incarnation && message.Sequence < last.Sequence))
        {
            return ReceiveOutcome.Replayed;
        }

        if (message.Incarnation == last.Incarnation && message.Sequence == last.Sequence)
        {
            return ReceiveOutcome.Duplicate;
        }

        _lastDirect[sender] = (message.Incarnation, message.Sequence);
        var conflict = message.States[Self].Incarnation > _states[Self].Incarnation;
        for (var i = 0; i < NodeCount; i++)
        {
            if (i == Self)
            {
                continue;
            }

            ref readonly var state = ref message.States[i];
            if (state.IsNewerThan(_states[i]))
            {
                _states[i] = state;
                _progress[i] = now;
            }

            _maxEpoch = Math.Max(_maxEpoch, state.ViewEpoch);
        }

        if (message.ViewLeader >= 0 && (_leaderViews[message.ViewLeader] is not { } known || message.ViewEpoch > known.Epoch))
        {
            _leaderViews[message.ViewLeader] = message.View();
        }

        _maxEpoch = Math.Max(_maxEpoch, message.ViewEpoch);
        return conflict ? ReceiveOutcome.IdentityConflict : ReceiveOutcome.Accepted;
    }

    /// <summary>Recomputes who is alive, who leads and which view applies.</summary>
    /// <returns>True when the view changed.</returns>
    public bool Evaluate(long now)
    {
        if (_restartDiscovery)
        {
            _restartDiscovery = false;
            _discoveryEnds = Math.Max(_discoveryEnds, now + _timeout);
        }

        var alive = NodeMask.Of(Self);
        var eligible = now >= _discoveryEnds ? NodeMask.Of(Self) : 0u;
        for (var i = 0; i < NodeCount; i++)
        {
            if (i != Self && _states[i].IsKnown && now - _progress[i] < _timeout)
            {
                alive |= NodeMask.Of(i);
                if (_states[i].Eligible)
                {
                    eligible |= NodeMask.Of(i);
                }
            }
        }

        var leader = NodeMask.Lowest(eligible);
        ref var self = ref _states[Self];
        self.Alive = alive;
        self.Flags = (byte)((Ready ? NodeState.FlagReady : 0) | (now >= _discoveryEnds ? NodeState.FlagEligible : 0) | (Pinning ? NodeState.FlagPinning : 0));
        ClusterView view;
        Yielding = false;
        if (leader == Self)
        {
            view = Publish(alive);
            if (view.Members != 0)
            {
                // Only a leader whose view gives buckets to someone leads in the others' eyes:
                // an empty view (not ready, cable out, yielding) is no rival to anyone.
                self.Flags |= NodeState.FlagLeader;
            }
        }
        else if (leader >= 0 && _states[leader].Leads && _leaderViews[leader] is { } followed)
        {
            view = followed;
            _lastFollowed = now;
        }
        else if (View.Leader >= 0 && View.Leader != Self && now - _lastFollowed < _timeout)
        {
            // The leader died and the next one has not published yet (it is still detecting the
            // death): keep the buckets of the last view meanwhile. Nodes that gain buckets wait
            // for their previous owner to adopt the new view, so holding on is safe.
            view = View;
        }
        else
        {
            view = ClusterView.None;
        }

        if (NodeMask.Contains(view.Members, Self))
        {
            self.Flags |= NodeState.FlagClaims;
        }

        self.ViewEpoch = view.Epoch;
        Alive = alive;
        Leader = leader;
        var changed = !view.SameAs(View);
        View = view;
        return changed;
    }

    /// <summary>Fills <paramref name="message"/> with this node's next heartbeat.</summary>
    public void FillHeartbeat(HeartbeatMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        ref var self = ref _states[Self];
        // The pinning flag is set by the dataplane while it applies a view, after Evaluate chose
        // that view: a heartbeat that advertises an epoch must say whether this node pins flows
        // under it, or the nodes taking its buckets would think it pins nothing and take its flows.
        self.Flags = (byte)((self.Flags & ~NodeState.FlagPinning) | (Pinning ? NodeState.FlagPinning : 0));
        self.Sequence++;
        message.Sender = Self;
        message.Incarnation = self.Incarnation;
        message.Sequence = self.Sequence;
        _states.AsSpan().CopyTo(message.States);
        var view = View;
        message.ViewLeader = view.Leader;
        message.ViewEpoch = view.Epoch;
        message.ViewMembers = view.Members;
        message.ViewWeights.AsSpan().Clear();
        view.Weights.AsSpan(0, Math.Min(view.Weights.Length, message.ViewWeights.Length)).CopyTo(message.ViewWeights);
    }

    private ClusterView Publish(uint alive)
    {
        var rival = false;
        foreach (var i in NodeMask.Members(alive))
        {
            // A rival leads a non-empty view (Leads is only set then) without knowing this node.
            if (i != Self && _states[i].Leads && !NodeMask.Contains(_states[i].Alive, Self))
            {
                rival = true;
            }
        }

        Yielding = rival;
        var members = 0u;
        if (!rival)
        {
            foreach (var i in NodeMask.Members(alive))
            {
                var ready = i == Self ? Ready : _states[i].Ready;
                var knowsMe = i == Self || NodeMask.Contains(_states[i].Alive, Self);
                if (ready && knowsMe)
                {
                    members |= NodeMask.Of(i);
                }
            }
        }

        for (var i = 0; i < NodeCount; i++)
        {
            _weights[i] = NodeMask.Contains(members, i) ? _states[i].Weight : (byte)0;
        }

        if (_published is null || !_published.SameMembership(members, _weights))
        {
            _maxEpoch++;
            _published = new ClusterView(Self, _maxEpoch, members, (byte[])_weights.Clone());
            _leaderViews[Self] = _published;
        }

        return _published;
    }
}
