using System.Text;

namespace SafeKit.Replication.Channel;

/// <summary>
/// Settings of one end of the replication link between the two nodes of a mirror pair. Both ends
/// use the same record: the sender reads the budget, both read the names, the key and the timers.
/// </summary>
public sealed record ReplicationChannelOptions
{
    /// <summary>The default budget of unacknowledged bytes: 64 MiB.</summary>
    public const long DefaultMaxBytesInFlight = 64L * 1024 * 1024;

    /// <summary>The default bound on unacknowledged operations.</summary>
    public const int DefaultMaxOpsInFlight = 65_536;

    /// <summary>The shortest cluster key accepted, as for heartbeats.</summary>
    public const int MinimumKeyLength = 16;

    /// <summary>Longest cluster or node name, in UTF-8 bytes (one length byte on the wire).</summary>
    public const int MaxNameLength = 255;

    /// <summary>The cluster both nodes belong to; a peer of another cluster is refused.</summary>
    public required string ClusterName { get; init; }

    /// <summary>This node's name, proven to the peer.</summary>
    public required string LocalNode { get; init; }

    /// <summary>The only node this end talks to; any other name is refused.</summary>
    public required string PeerNode { get; init; }

    /// <summary>The cluster key (the heartbeat key); the link derives its own key from it with HKDF.</summary>
    public required byte[] Key { get; init; }

    /// <summary>
    /// Sender only: the most bytes of frames sent and not yet acknowledged. The channel's copies
    /// of operations never exceed it; a send that would exceed it waits for acknowledgements.
    /// At least one frame of the largest operation.
    /// </summary>
    public long MaxBytesInFlight { get; init; } = DefaultMaxBytesInFlight;

    /// <summary>
    /// Sender only: the most operations sent and not yet acknowledged. Bounds the per-operation
    /// bookkeeping when operations are tiny (64 MiB of 20-byte frames would be 3 million of them).
    /// </summary>
    public int MaxOpsInFlight { get; init; } = DefaultMaxOpsInFlight;

    /// <summary>
    /// How long an end waits without receiving anything (operation, acknowledgement or keepalive)
    /// before it declares the link lost. On the sender this includes the time the receiver spends
    /// applying one operation (an fsync on a durable barrier): keep it above the slowest apply.
    /// </summary>
    public TimeSpan SilenceTimeout { get; init; } = TimeSpan.FromMilliseconds(2000);

    /// <summary>An idle end sends a keepalive after this long without sending anything; shorter than <see cref="SilenceTimeout"/>.</summary>
    public TimeSpan KeepaliveInterval { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>The whole handshake (hello and proofs both ways) must finish within this.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The clock of the timers; tests may substitute one.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Checks every setting; called by the sender and the listener before any connection.</summary>
    /// <exception cref="ArgumentException">A setting cannot work, with the reason.</exception>
    public void Validate()
    {
        CheckName(ClusterName, nameof(ClusterName));
        CheckName(LocalNode, nameof(LocalNode));
        CheckName(PeerNode, nameof(PeerNode));
        if (string.Equals(LocalNode, PeerNode, StringComparison.Ordinal))
        {
            throw new ArgumentException($"replication: the local and peer node are both '{LocalNode}'", nameof(PeerNode));
        }

        if (Key is null || Key.Length < MinimumKeyLength)
        {
            throw new ArgumentException($"replication: the cluster key holds {Key?.Length ?? 0} bytes; it needs at least {MinimumKeyLength}", nameof(Key));
        }

        if (MaxBytesInFlight < Frames.MaxOpFrameLength)
        {
            throw new ArgumentException($"replication: MaxBytesInFlight {MaxBytesInFlight} is below one frame of the largest operation ({Frames.MaxOpFrameLength} bytes)", nameof(MaxBytesInFlight));
        }

        if (MaxOpsInFlight < 1)
        {
            throw new ArgumentException("replication: MaxOpsInFlight must be at least 1", nameof(MaxOpsInFlight));
        }

        if (KeepaliveInterval <= TimeSpan.Zero || SilenceTimeout <= KeepaliveInterval)
        {
            throw new ArgumentException($"replication: the keepalive interval ({KeepaliveInterval.TotalMilliseconds} ms) must be positive and shorter than the silence timeout ({SilenceTimeout.TotalMilliseconds} ms)", nameof(KeepaliveInterval));
        }

        if (HandshakeTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("replication: HandshakeTimeout must be positive", nameof(HandshakeTimeout));
        }

        ArgumentNullException.ThrowIfNull(TimeProvider);
    }

    private static void CheckName(string value, string name)
    {
        if (string.IsNullOrEmpty(value) || Encoding.UTF8.GetByteCount(value) > MaxNameLength)
        {
            throw new ArgumentException($"replication: {name} must hold 1 to {MaxNameLength} UTF-8 bytes", name);
        }
    }
}
