using System.Numerics;
using System.Runtime.CompilerServices;
using SafeKit.Dataplane.Flows;

namespace SafeKit.Dataplane.Buckets;

/// <summary>
/// Which node owns each bucket, and whether the local node does. Immutable: a new view builds a
/// new table and the dataplane swaps the reference, so the packet path never sees a half-written one.
/// </summary>
public sealed class BucketTable
{
    private readonly ushort[] _owners;
    private readonly bool[] _local;

    private BucketTable(IReadOnlyList<NodeWeight> nodes, ushort[] owners, int localIndex)
    {
        Nodes = nodes;
        _owners = owners;
        LocalIndex = localIndex;
        _local = new bool[owners.Length];
        for (var i = 0; i < owners.Length; i++)
        {
            _local[i] = owners[i] == localIndex;
            if (_local[i])
            {
                LocalCount++;
            }
        }
    }

    /// <summary>Number of buckets (a power of two).</summary>
    public int Count => _owners.Length;

    /// <summary>Members the table was computed from.</summary>
    public IReadOnlyList<NodeWeight> Nodes { get; }

    /// <summary>Index of the local node in <see cref="Nodes"/> (-1 when it is not a member).</summary>
    public int LocalIndex { get; }

    /// <summary>Buckets the local node owns.</summary>
    public int LocalCount { get; }

    /// <summary>Builds the table for <paramref name="nodes"/> with weighted rendezvous hashing.</summary>
    public static BucketTable Compute(IReadOnlyList<NodeWeight> nodes, int bucketCount, string localNode)
    {
        ArgumentNullException.ThrowIfNull(nodes);
        if (bucketCount < 1 || bucketCount > 65536 || !BitOperations.IsPow2(bucketCount))
        {
            throw new ArgumentOutOfRangeException(nameof(bucketCount), bucketCount, "the bucket count is a power of two between 1 and 65536");
        }

        var localIndex = -1;
        for (var i = 0; i < nodes.Count; i++)
        {
            if (string.Equals(nodes[i].Name, localNode, StringComparison.Ordinal))
            {
                localIndex = i;
            }
        }

        return new BucketTable(nodes, RendezvousAssignment.Compute(nodes, bucketCount), localIndex);
    }

    /// <summary>A table where nobody owns anything (no view yet, or this node is not a member).</summary>
    public static BucketTable Empty(int bucketCount)
    {
        if (bucketCount < 1 || bucketCount > 65536 || !BitOperations.IsPow2(bucketCount))
        {
            throw new ArgumentOutOfRangeException(nameof(bucketCount), bucketCount, "the bucket count is a power of two between 1 and 65536");
        }

        return new BucketTable([], new ushort[bucketCount], -1);
    }

    /// <summary>The bucket of a flow hash (nftables: <c>jhash ... mod Count</c>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int BucketOf(uint hash) => (int)JHash.Scale(hash, (uint)_owners.Length);

    /// <summary>True when the local node owns <paramref name="bucket"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsLocal(int bucket) => _local[bucket];

    /// <summary>Index in <see cref="Nodes"/> of the owner of <paramref name="bucket"/> (-1 in an empty table).</summary>
    public int OwnerOf(int bucket) => Nodes.Count == 0 ? -1 : _owners[bucket];

    /// <summary>Buckets owned by the local node, as ascending inclusive ranges (for nftables sets).</summary>
    public IReadOnlyList<(int First, int Last)> LocalRanges()
    {
        var ranges = new List<(int, int)>();
        var start = -1;
        for (var i = 0; i <= _local.Length; i++)
        {
            var local = i < _local.Length && _local[i];
            if (local && start < 0)
            {
                start = i;
            }
            else if (!local && start >= 0)
            {
                ranges.Add((start, i - 1));
                start = -1;
            }
        }

        return ranges;
    }
}
