namespace SafeKit.Replication.Channel;

/// <summary>
/// Why a replication connection was refused before any operation crossed it. The values of the
/// refusals an end can send (wrong cluster, unexpected node, wrong role) are also their wire codes.
/// </summary>
public enum HandshakeFailure
{
    /// <summary>The peer could not prove the cluster key: the two nodes hold different keys.</summary>
    WrongKey = 0,

    /// <summary>The peer belongs to another cluster.</summary>
    WrongCluster = 1,

    /// <summary>The peer's node name is not the one configured (or the peer does not expect ours).</summary>
    UnexpectedNode = 2,

    /// <summary>Both ends play the same role (two senders or two receivers).</summary>
    WrongRole = 3,

    /// <summary>The peer does not speak this protocol or this version of it.</summary>
    ProtocolMismatch = 4,

    /// <summary>The handshake did not finish within the handshake timeout.</summary>
    Timeout = 5,

    /// <summary>The connection closed or failed during the handshake.</summary>
    ConnectionClosed = 6,
}
