using System.Runtime.CompilerServices;
using System.Text;

namespace SafeKit.Dataplane.Buckets;

/// <summary>
/// Weighted rendezvous (highest random weight) hashing of buckets onto nodes. Each node of weight
/// w takes part as w replicas; a bucket goes to the replica with the highest 64-bit score
/// <c>mix(name, replica, bucket)</c>. Consequences the control plane relies on:
/// <list type="bullet">
/// <item>deterministic and integer-only: every node computes the same table from the same member list;</item>
/// <item>removing a node moves only its buckets, spread over all survivors by weight;</item>
/// <item>adding a node moves about weight/total of the buckets, all of them to the newcomer.</item>
/// </list>
/// </summary>
public static class RendezvousAssignment
{
    /// <summary>Owner index (into <paramref name="nodes"/>) of each of <paramref name="bucketCount"/> buckets.</summary>
    public static ushort[] Compute(IReadOnlyList<NodeWeight> nodes, int bucketCount)
    {
        ArgumentNullException.ThrowIfNull(nodes);
        if (nodes.Count == 0 || nodes.Count > ushort.MaxValue)
        {
            throw new ArgumentException("the assignment needs between 1 and 65535 nodes", nameof(nodes));
        }

        var nameHashes = new ulong[nodes.Count];
        for (var n = 0; n < nodes.Count; n++)
        {
            if (nodes[n].Weight <= 0)
            {
                throw new ArgumentException($"node '{nodes[n].Name}' has weight {nodes[n].Weight}; weights are positive", nameof(nodes));
            }

            nameHashes[n] = NameHash(nodes[n].Name);
        }

        var owners = new ushort[bucketCount];
        for (var bucket = 0; bucket < bucketCount; bucket++)
        {
            var bestScore = 0UL;
            var best = -1;
            for (var n = 0; n < nodes.Count; n++)
            {
                for (var replica = 0; replica < nodes[n].Weight; replica++)
                {
                    var score = Score(nameHashes[n], (uint)replica, (uint)bucket);
                    if (best < 0 || score > bestScore || (score == bestScore && string.CompareOrdinal(nodes[n].Name, nodes[best].Name) < 0))
                    {
                        bestScore = score;
                        best = n;
                    }
                }
            }

            owners[bucket] = (ushort)best;
        }

        return owners;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Score(ulong nameHash, uint replica, uint bucket) =>
        Finalize(nameHash ^ Finalize(((ulong)replica << 32) | bucket));

    // FNV-1a over the UTF-8 name: stable across runtimes and machines (string.GetHashCode is not).
    private static ulong NameHash(string name)
    {
        var hash = 0xcbf29ce484222325UL;
        foreach (var b in Encoding.UTF8.GetBytes(name))
        {
            hash = (hash ^ b) * 0x100000001b3UL;
        }

        return Finalize(hash);
    }

    // splitmix64 finaliser: a full-avalanche 64-bit mix.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Finalize(ulong x)
    {
        x ^= x >> 30;
        x *= 0xbf58476d1ce4e5b9UL;
        x ^= x >> 27;
        x *= 0x94d049bb133111ebUL;
        x ^= x >> 31;
        return x;
    }
}
