namespace SafeKit.Replication.Channel;

/// <summary>Why an established replication link ended.</summary>
public enum LinkLossReason
{
    /// <summary>This end closed it (dispose).</summary>
    Closed,

    /// <summary>The peer closed the connection (FIN): it stopped or crashed.</summary>
    PeerClosed,

    /// <summary>The connection failed (RST, unreachable, a socket error).</summary>
    ConnectionFailed,

    /// <summary>Nothing arrived for the silence timeout: the peer or the path is dead or stuck.</summary>
    SilenceTimeout,

    /// <summary>The peer sent something the protocol does not allow; the stream cannot be trusted.</summary>
    ProtocolViolation,

    /// <summary>The receiver's applier threw: the outcome of the operation is unknown.</summary>
    ApplierFailed,
}
