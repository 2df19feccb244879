namespace SafeKit.Dataplane.Buckets;

/// <summary>
/// The local node's mode for every bucket across view changes. Views reach the nodes at slightly
/// different moments; this makes a change of owner safe and connection-preserving:
/// <list type="bullet">
/// <item>a node that loses a bucket keeps serving the flows it accepted there (<see cref="BucketMode.Pinned"/>)
/// and stops accepting new ones;</item>
/// <item>a node that gains a bucket from a node that is alive takes nothing until that node has
/// adopted the new view (<see cref="BucketMode.Awaiting"/>): new flows are never accepted by two
/// nodes. Then it accepts new flows and its own, and leaves the pinned flows alone
/// (<see cref="BucketMode.Shared"/>), until no node pins any more (<see cref="BucketMode.Owned"/>);</item>
/// <item>a bucket gained from a dead node is owned at once.</item>
/// </list>
/// Every bucket remembers the nodes that owned it before and may still pin flows there (with the
/// epoch they lost it at). A shared bucket becomes owned once each of them is dead or, having adopted
/// that epoch, pins nothing: a pinner that dies hands its pinned flows to the bucket's owner at once,
/// whatever other nodes still pin elsewhere. A node without a previous view presumes the bucket's
/// previous owner is the one the table gives among the other members.
/// Pure logic; the dataplane reads <see cref="Modes"/> on the packet path (a new array per change).
/// </summary>
public sealed class BucketHandover
{
    /// <summary>Holder of a bucket whose previous owner is unknown: every node that claims buckets.</summary>
    private const string Anyone = "*";

    private readonly string?[] _holder;
    private readonly uint[] _awaitEpoch;
    private readonly string?[] _owner;
    private readonly List<Pinner>?[] _mayPin;
    private BucketMode[] _modes;
    private bool _hadView;

    public BucketHandover(int bucketCount, string localNode)
    {
        LocalNode = localNode;
        _modes = new BucketMode[bucketCount];
        _holder = new string?[bucketCount];
        _awaitEpoch = new uint[bucketCount];
        _owner = new string?[bucketCount];
        _mayPin = new List<Pinner>?[bucketCount];
    }

    public string LocalNode { get; }

    /// <summary>The current mode of every bucket (replaced, never modified, on a change).</summary>
    public BucketMode[] Modes => _modes;

    /// <summary>True while some bucket is <see cref="BucketMode.Pinned"/>.</summary>
    public bool Pinning => Array.IndexOf(_modes, BucketMode.Pinned) >= 0;

    /// <summary>Applies a new view's table.</summary>
    /// <param name="table">Owners in the new view.</param>
    /// <param name="epoch">Its epoch.</param>
    /// <param name="peers">What is known of every other node, by name.</param>
    /// <returns>Buckets taken over from dead nodes (for the takeover replay), or null when none.</returns>
    public bool[]? Apply(BucketTable table, uint epoch, IReadOnlyDictionary<string, PeerHandover> peers)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(peers);
        var modes = (BucketMode[])_modes.Clone();
        bool[]? fromDead = null;
        var withoutMe = _hadView ? null : TableWithoutMe(table);
        for (var b = 0; b < modes.Length; b++)
        {
            var owner = table.OwnerOf(b);
            var newOwner = owner < 0 ? null : table.Nodes[owner].Name;
            var mine = newOwner == LocalNode;
            RecordOwnerChange(b, newOwner, withoutMe, epoch);
            switch (modes[b])
            {
                case BucketMode.Owned when mine:
                    break;
                case BucketMode.Awaiting when mine:
                case BucketMode.Shared when mine:
                    break;
                case BucketMode.Foreign when mine:
                case BucketMode.Pinned when mine:
                {
                    // Unknown previous holder (no view before, or an empty one): whoever claims
                    // buckets must have adopted the new view first.
                    var from = _holder[b] ?? Anyone;
                    if (from == LocalNode || (from == Anyone && !AnyoneClaims(peers)))
                    {
                        PrunePinners(b, peers);
                        modes[b] = _mayPin[b] is { Count: > 0 } ? BucketMode.Shared : BucketMode.Owned;
                    }
                    else if (from != Anyone && (!peers.TryGetValue(from, out var peer) || !peer.Alive))
                    {
                        PrunePinners(b, peers);
                        modes[b] = _mayPin[b] is { Count: > 0 } ? BucketMode.Shared : BucketMode.Owned;
                        (fromDead ??= new bool[modes.Length])[b] = true;
                    }
                    else
                    {
                        modes[b] = BucketMode.Awaiting;
                        _holder[b] = from;
                        _awaitEpoch[b] = epoch;
                    }

                    break;
                }

                case BucketMode.Owned:
                case BucketMode.Shared:
                case BucketMode.Pinned:
                    modes[b] = BucketMode.Pinned;
                    _holder[b] = newOwner;
                    break;
                default:
                    modes[b] = BucketMode.Foreign;
                    _holder[b] = newOwner;
                    break;
            }

            if (mine && modes[b] is BucketMode.Owned or BucketMode.Shared)
            {
                _holder[b] = LocalNode;
            }
        }

        _modes = modes;
        _hadView = true;
        var advanced = Advance(peers);
        fromDead = Merge(fromDead, advanced);
        return fromDead;
    }

    /// <summary>Re-evaluates waiting buckets after news from the other nodes.</summary>
    /// <returns>True when a mode changed; <paramref name="fromDead"/> lists buckets whose previous owner died meanwhile.</returns>
    public bool Update(IReadOnlyDictionary<string, PeerHandover> peers, out bool[]? fromDead)
    {
        ArgumentNullException.ThrowIfNull(peers);
        var before = _modes;
        fromDead = Advance(peers);
        return !ReferenceEquals(before, _modes);
    }

    /// <summary>Stops pinning every bucket (its last flow ended).</summary>
    public bool Unpin() => Unpin(_ => false);

    /// <summary>Stops pinning the buckets where <paramref name="stillPinned"/> says no live flow of ours remains.</summary>
    /// <returns>True when a mode changed.</returns>
    public bool Unpin(Func<int, bool> stillPinned)
    {
        ArgumentNullException.ThrowIfNull(stillPinned);
        BucketMode[]? modes = null;
        for (var b = 0; b < _modes.Length; b++)
        {
            if (_modes[b] == BucketMode.Pinned && !stillPinned(b))
            {
                modes ??= (BucketMode[])_modes.Clone();
                modes[b] = BucketMode.Foreign;
            }
        }

        if (modes is null)
        {
            return false;
        }

        _modes = modes;
        return true;
    }

    private bool[]? Advance(IReadOnlyDictionary<string, PeerHandover> peers)
    {
        BucketMode[]? modes = null;
        bool[]? fromDead = null;
        for (var b = 0; b < _modes.Length; b++)
        {
            var mode = _modes[b];
            if (mode == BucketMode.Awaiting)
            {
                var from = _holder[b]!;
                PeerHandover peer = default;
                var released = from == Anyone
                    ? AllReleased(peers, _awaitEpoch[b])
                    : !peers.TryGetValue(from, out peer) || !peer.Alive || !peer.Claims || peer.Epoch >= _awaitEpoch[b];
                if (!released)
                {
                    continue;
                }

                if (from != Anyone && !peer.Alive)
                {
                    (fromDead ??= new bool[_modes.Length])[b] = true;
                }

                if (PrunePinners(b, peers))
                {
                    (fromDead ??= new bool[_modes.Length])[b] = true;
                }

                modes ??= (BucketMode[])_modes.Clone();
                modes[b] = _mayPin[b] is { Count: > 0 } ? BucketMode.Shared : BucketMode.Owned;
                _holder[b] = LocalNode;
            }
            else if (mode == BucketMode.Shared)
            {
                if (PrunePinners(b, peers))
                {
                    // Its pinned flows are nobody's now: answer them (a reset) instead of leaving them unanswered.
                    (fromDead ??= new bool[_modes.Length])[b] = true;
                }

                if (_mayPin[b] is not { Count: > 0 })
                {
                    modes ??= (BucketMode[])_modes.Clone();
                    modes[b] = BucketMode.Owned;
                }
            }
        }

        if (modes is not null)
        {
            _modes = modes;
        }

        return fromDead;
    }

    /// <summary>Remembers that the bucket's previous owner may pin flows there from this epoch on.</summary>
    private void RecordOwnerChange(int bucket, string? newOwner, BucketTable? withoutMe, uint epoch)
    {
        var previous = _owner[bucket];
        if (previous is null && withoutMe is not null && withoutMe.OwnerOf(bucket) is var presumed and >= 0)
        {
            previous = withoutMe.Nodes[presumed].Name;
        }

        var pinners = _mayPin[bucket];
        if (previous is not null && previous != newOwner && previous != LocalNode)
        {
            pinners ??= _mayPin[bucket] = [];
            pinners.RemoveAll(p => p.Node == previous);
            pinners.Add(new Pinner(previous, epoch));
        }

        pinners?.RemoveAll(p => p.Node == newOwner);
        _owner[bucket] = newOwner;
    }

    /// <summary>Forgets the previous owners that pin nothing any more.</summary>
    /// <returns>True when one of them died (its pinned flows are orphans).</returns>
    private bool PrunePinners(int bucket, IReadOnlyDictionary<string, PeerHandover> peers)
    {
        var pinners = _mayPin[bucket];
        if (pinners is null)
        {
            return false;
        }

        var died = false;
        for (var i = pinners.Count - 1; i >= 0; i--)
        {
            var pinner = pinners[i];
            var known = peers.TryGetValue(pinner.Node, out var peer);
            if (!known || !peer.Alive)
            {
                died = true;
                pinners.RemoveAt(i);
            }
            else if (!peer.Pinning && peer.Epoch >= pinner.Since)
            {
                pinners.RemoveAt(i);
            }
        }

        return died;
    }

    private BucketTable? TableWithoutMe(BucketTable table)
    {
        var others = table.Nodes.Where(n => n.Name != LocalNode).ToList();
        return others.Count == 0 || others.Count == table.Nodes.Count ? null : BucketTable.Compute(others, table.Count, LocalNode);
    }

    private bool AnyoneClaims(IReadOnlyDictionary<string, PeerHandover> peers)
    {
        foreach (var (name, peer) in peers)
        {
            if (name != LocalNode && peer.Alive && peer.Claims)
            {
                return true;
            }
        }

        return false;
    }

    private bool AllReleased(IReadOnlyDictionary<string, PeerHandover> peers, uint epoch)
    {
        foreach (var (name, peer) in peers)
        {
            if (name != LocalNode && peer.Alive && peer.Claims && peer.Epoch < epoch)
            {
                return false;
            }
        }

        return true;
    }

    private static bool[]? Merge(bool[]? a, bool[]? b)
    {
        if (a is null)
        {
            return b;
        }

        if (b is not null)
        {
            for (var i = 0; i < a.Length; i++)
            {
                a[i] |= b[i];
            }
        }

        return a;
    }

    /// <summary>A node that owned a bucket before <paramref name="Since"/> and may still serve flows there.</summary>
    private readonly record struct Pinner(string Node, uint Since);
}
