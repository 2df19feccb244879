using System.Net;

namespace SafeKit.ControlPlane.Membership;

/// <summary>
/// Heartbeat health of every (network, peer) pair: heartbeats received and lost. A node sends the
/// same heartbeat (one sequence number) on each of its networks, one sequence per heartbeat, so a
/// gap in the sequence received on one network is heartbeats lost on that network. Not
/// thread-safe (used under the membership lock).
/// </summary>
public sealed class HeartbeatLinks
{
    private readonly Link[][] _links;
    private readonly IPAddress[] _networks;

    /// <param name="networks">This node's address on each heartbeat network.</param>
    /// <param name="nodes">Nodes in the cluster.</param>
    public HeartbeatLinks(IReadOnlyList<IPAddress> networks, int nodes)
    {
        ArgumentNullException.ThrowIfNull(networks);
        _networks = [.. networks];
        _links = networks.Select(_ => new Link[nodes]).ToArray();
    }

    /// <summary>Records an authenticated heartbeat of <paramref name="peer"/> received on <paramref name="network"/>.</summary>
    public void Received(int network, int peer, uint incarnation, uint sequence, long now)
    {
        ref var link = ref _links[network][peer];
        if (link.Received > 0 && incarnation == link.Incarnation && sequence > link.Sequence)
        {
            link.Lost += sequence - link.Sequence - 1;
        }

        if (link.Received == 0 || incarnation != link.Incarnation || sequence > link.Sequence)
        {
            link.Incarnation = incarnation;
            link.Sequence = sequence;
        }

        link.Received++;
        link.LastHeard = now;
    }

    /// <summary>Every network's figures for <paramref name="peer"/>.</summary>
    public IReadOnlyList<LinkStatus> Of(int peer, long now) =>
        _links.Select((links, network) => new LinkStatus(
            _networks[network].ToString(),
            links[peer].Received,
            links[peer].Lost,
            links[peer].Received == 0 ? null : now - links[peer].LastHeard)).ToList();

    private struct Link
    {
        public uint Incarnation;
        public uint Sequence;
        public long Received;
        public long Lost;
        public long LastHeard;
    }
}

/// <summary>Heartbeats from one peer on one network.</summary>
/// <param name="Network">This node's address on that network.</param>
/// <param name="Received">Heartbeats received (authenticated).</param>
/// <param name="Lost">Heartbeats missing from the sequence (lost on the way).</param>
/// <param name="LastHeardMilliseconds">Since the last one (null: none yet).</param>
public sealed record LinkStatus(string Network, long Received, long Lost, long? LastHeardMilliseconds);
