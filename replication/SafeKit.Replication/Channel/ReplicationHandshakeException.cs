namespace SafeKit.Replication.Channel;

/// <summary>A replication connection was refused during the handshake; the message says why and what to check.</summary>
public sealed class ReplicationHandshakeException : Exception
{
    public ReplicationHandshakeException()
        : this(HandshakeFailure.ConnectionClosed, "replication handshake failed")
    {
    }

    public ReplicationHandshakeException(string message)
        : this(HandshakeFailure.ConnectionClosed, message)
    {
    }

    public ReplicationHandshakeException(string message, Exception innerException)
        : this(HandshakeFailure.ConnectionClosed, message, innerException)
    {
    }

    public ReplicationHandshakeException(HandshakeFailure failure, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Failure = failure;
    }

    /// <summary>The kind of refusal.</summary>
    public HandshakeFailure Failure { get; }
}
