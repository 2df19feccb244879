namespace SafeKit.ControlPlane.Membership;

/// <summary>
/// The membership a leader published: who shares the buckets, with which weights, under which
/// epoch. Every node derives the same bucket table from the same view.
/// </summary>
/// <param name="Leader">Index of the node that published it (-1: no view).</param>
/// <param name="Epoch">Cluster-wide increasing number; a newer view has a higher one.</param>
/// <param name="Members">Nodes that own buckets.</param>
/// <param name="Weights">Weight of every configured node (index = node index) as the leader saw it.</param>
public sealed record ClusterView(int Leader, uint Epoch, uint Members, byte[] Weights)
{
    /// <summary>No view: nobody owns anything.</summary>
    public static ClusterView None { get; } = new(-1, 0, 0, []);

    /// <summary>Same leader, epoch and members (weights follow the epoch).</summary>
    public bool SameAs(ClusterView other) =>
        other is not null && Leader == other.Leader && Epoch == other.Epoch && Members == other.Members;

    /// <summary>Same members with the same weights (an epoch change is not needed).</summary>
    public bool SameMembership(uint members, ReadOnlySpan<byte> weights)
    {
        if (members != Members)
        {
            return false;
        }

        foreach (var i in NodeMask.Members(members))
        {
            if (i >= Weights.Length || i >= weights.Length || Weights[i] != weights[i])
            {
                return false;
            }
        }

        return true;
    }
}
