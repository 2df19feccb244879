using System.Buffers;
using System.IO.Pipelines;
using System.Security.Cryptography;
using System.Text;

namespace SafeKit.Replication.Channel;

/// <summary>
/// The mutual challenge–response at connect. Both ends send a hello at once, then a verdict,
/// then check the peer's (big-endian, fixed order, no round trip wasted):
/// <code>
/// hello     0 "SKRP"  4 version=1  5 role (1 sender, 2 receiver)  6 cluster name length C
///           7 node name length N  8 32-byte random nonce  40 C bytes cluster, N bytes node (UTF-8)
/// verdict   0 kind (1 proof, 2 refusal)  1 refusal code  2 32 bytes: the proof (zeros in a refusal)
/// proof     HMAC-SHA256(K, label ‖ C ‖ cluster ‖ len ‖ sender node ‖ len ‖ receiver node
///                          ‖ sender nonce ‖ receiver nonce)
///           K = HKDF-SHA256(cluster key, info "safekit replication v1"), label "sender" or
///           "receiver" (the prover's role, so a proof cannot be reflected back)
/// </code>
/// An end refuses (sends a refusal code instead of a proof) when the peer's hello names another
/// cluster, another node or the same role, so the peer can say why it was refused; a wrong key is
/// found by both ends on their own, since neither proof verifies. Each end reads the peer's verdict
/// before closing and lets its own verdict leave first, so neither side's explanation is lost to a
/// reset. Fresh nonces on both sides make an old proof useless. Nothing after the handshake is
/// authenticated per frame.
/// </summary>
internal static class Handshake
{
    public const byte Version = 1;
    private const int HelloFixedLength = 40;
    private const int NonceLength = 32;
    private const int VerdictLength = 34;
    private const byte VerdictProof = 1;
    private const byte VerdictRefusal = 2;
    private static readonly byte[] Magic = "SKRP"u8.ToArray();
    private static readonly byte[] KeyInfo = "safekit replication v1"u8.ToArray();

    /// <summary>The channel's own key, derived so a leak of it reveals nothing of the heartbeat key.</summary>
    public static byte[] DeriveKey(byte[] clusterKey) => HKDF.DeriveKey(HashAlgorithmName.SHA256, clusterKey, 32, info: KeyInfo);

    /// <summary>Runs the handshake as <paramref name="role"/>; returns normally only when the peer is proven.</summary>
    /// <exception cref="ReplicationHandshakeException">Refused, timed out or closed, with the reason.</exception>
    public static async Task RunAsync(IDuplexPipe pipe, ReplicationChannelOptions options, ChannelRole role, string remote, CancellationToken cancellationToken)
    {
        using var timeout = new CancellationTokenSource(options.HandshakeTimeout, options.TimeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        var ct = linked.Token;
        try
        {
            var nonce = RandomNumberGenerator.GetBytes(NonceLength);
            await pipe.Output.WriteAsync(EncodeHello(role, options.ClusterName, options.LocalNode, nonce), ct);

            // The first 8 bytes say whether the peer speaks this protocol at all: refuse early.
            var start = await ReadExactlyAsync(pipe.Input, 8, remote, ct);
            var peer = ParseHello(start, remote);
            var rest = await ReadExactlyAsync(pipe.Input, NonceLength + start[6] + start[7], remote, ct);
            peer.Nonce = rest[..NonceLength];
            peer.Cluster = Encoding.UTF8.GetString(rest, NonceLength, start[6]);
            peer.Node = Encoding.UTF8.GetString(rest, NonceLength + start[6], start[7]);

            var key = DeriveKey(options.Key);
            var (senderNode, receiverNode) = role.Connects() ? (options.LocalNode, peer.Node) : (peer.Node, options.LocalNode);
            var (senderNonce, receiverNonce) = role.Connects() ? (nonce, peer.Nonce) : (peer.Nonce, nonce);
            var refusal = Check(options, role, peer);
            var verdict = new byte[VerdictLength];
            if (refusal is { } code)
            {
                verdict[0] = VerdictRefusal;
                verdict[1] = (byte)code;
            }
            else
            {
                verdict[0] = VerdictProof;
                Proof(key, role, options.ClusterName, senderNode, receiverNode, senderNonce, receiverNonce).CopyTo(verdict, 2);
            }

            await pipe.Output.WriteAsync(verdict, ct);
            var theirs = await ReadExactlyAsync(pipe.Input, VerdictLength, remote, ct);

            if (refusal is { } mine)
            {
                throw Refused(mine, options, peer, remote, byPeer: false);
            }

            if (theirs[0] == VerdictRefusal)
            {
                throw Refused((HandshakeFailure)theirs[1], options, peer, remote, byPeer: true);
            }

            var peerRole = role.Counterpart();
            var expected = Proof(key, peerRole, options.ClusterName, senderNode, receiverNode, senderNonce, receiverNonce);
            if (theirs[0] != VerdictProof || !CryptographicOperations.FixedTimeEquals(expected, theirs.AsSpan(2, 32)))
            {
                throw new ReplicationHandshakeException(
                    HandshakeFailure.WrongKey,
                    $"replication peer '{peer.Node}' at {remote} failed to prove the cluster key: the two nodes hold different cluster keys (copy the same key file to both nodes); connection refused");
            }
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new ReplicationHandshakeException(
                HandshakeFailure.Timeout,
                $"replication handshake with {remote} did not finish within {options.HandshakeTimeout.TotalMilliseconds} ms (is the peer a SafeKit replication endpoint, and alive?)");
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or System.Net.Sockets.SocketException or Pipelines.Sockets.Unofficial.ConnectionAbortedException)
        {
            throw new ReplicationHandshakeException(HandshakeFailure.ConnectionClosed, $"replication handshake with {remote} failed: {ex.Message}", ex);
        }
    }

    /// <summary>The proof that <paramref name="prover"/> holds the key, bound to this connection's nonces and names.</summary>
    public static byte[] Proof(byte[] key, ChannelRole prover, string cluster, string senderNode, string receiverNode, ReadOnlySpan<byte> senderNonce, ReadOnlySpan<byte> receiverNonce)
    {
        var data = new ArrayBufferWriter<byte>(256);
        Append(data, prover.Label());
        Append(data, cluster);
        Append(data, senderNode);
        Append(data, receiverNode);
        data.Write(senderNonce);
        data.Write(receiverNonce);
        return HMACSHA256.HashData(key, data.WrittenSpan);
    }

    private static void Append(ArrayBufferWriter<byte> data, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        data.Write([(byte)bytes.Length]);
        data.Write(bytes);
    }

    private static byte[] EncodeHello(ChannelRole role, string cluster, string node, byte[] nonce)
    {
        var c = Encoding.UTF8.GetBytes(cluster);
        var n = Encoding.UTF8.GetBytes(node);
        var hello = new byte[HelloFixedLength + c.Length + n.Length];
        Magic.CopyTo(hello, 0);
        hello[4] = Version;
        hello[5] = (byte)role;
        hello[6] = (byte)c.Length;
        hello[7] = (byte)n.Length;
        nonce.CopyTo(hello, 8);
        c.CopyTo(hello, HelloFixedLength);
        n.CopyTo(hello, HelloFixedLength + c.Length);
        return hello;
    }

    private static PeerHello ParseHello(byte[] hello, string remote)
    {
        if (!hello.AsSpan(0, 4).SequenceEqual(Magic))
        {
            throw new ReplicationHandshakeException(HandshakeFailure.ProtocolMismatch, $"the peer at {remote} does not speak the SafeKit replication protocol; connection refused");
        }

        if (hello[4] != Version)
        {
            throw new ReplicationHandshakeException(HandshakeFailure.ProtocolMismatch, $"the peer at {remote} speaks replication protocol version {hello[4]}, this node version {Version} (upgrade both nodes to the same release); connection refused");
        }

        return new PeerHello { Role = (ChannelRole)hello[5] };
    }

    private static HandshakeFailure? Check(ReplicationChannelOptions options, ChannelRole role, PeerHello peer)
    {
        if (!string.Equals(peer.Cluster, options.ClusterName, StringComparison.Ordinal))
        {
            return HandshakeFailure.WrongCluster;
        }

        if (peer.Role != role.Counterpart())
        {
            return HandshakeFailure.WrongRole;
        }

        return string.Equals(peer.Node, options.PeerNode, StringComparison.Ordinal) ? null : HandshakeFailure.UnexpectedNode;
    }

    private static ReplicationHandshakeException Refused(HandshakeFailure code, ReplicationChannelOptions options, PeerHello peer, string remote, bool byPeer)
    {
        var message = (code, byPeer) switch
        {
            (HandshakeFailure.WrongCluster, false) => $"replication peer '{peer.Node}' at {remote} belongs to cluster '{peer.Cluster}', this node '{options.LocalNode}' to cluster '{options.ClusterName}'; connection refused",
            (HandshakeFailure.WrongCluster, true) => $"replication peer '{peer.Node}' at {remote} refused this node: it belongs to cluster '{peer.Cluster}', this node to '{options.ClusterName}'",
            (HandshakeFailure.UnexpectedNode, false) => $"replication peer at {remote} says it is node '{peer.Node}', but this node '{options.LocalNode}' replicates with '{options.PeerNode}' only; connection refused",
            (HandshakeFailure.UnexpectedNode, true) => $"replication peer '{peer.Node}' at {remote} refused this node '{options.LocalNode}': it expects another peer name (check the mirror's node names on both nodes)",
            (HandshakeFailure.WrongRole, _) => $"replication peer '{peer.Node}' at {remote} came as a {(Enum.IsDefined(peer.Role) ? peer.Role.Label() : $"role {(int)peer.Role}")}, which this end does not pair with (two senders or receivers, or a resync meeting a replication link); connection refused",
            (_, true) => $"replication peer '{peer.Node}' at {remote} refused this node (code {(int)code})",
            _ => $"replication peer '{peer.Node}' at {remote} refused ({code})",
        };
        var failure = Enum.IsDefined(code) ? code : HandshakeFailure.ProtocolMismatch;
        return new ReplicationHandshakeException(failure, message);
    }

    private static async Task<byte[]> ReadExactlyAsync(PipeReader input, int count, string remote, CancellationToken ct)
    {
        while (true)
        {
            var result = await input.ReadAsync(ct);
            var buffer = result.Buffer;
            if (buffer.Length >= count)
            {
                var bytes = buffer.Slice(0, count).ToArray();
                input.AdvanceTo(buffer.GetPosition(count));
                return bytes;
            }

            if (result.IsCompleted || result.IsCanceled)
            {
                input.AdvanceTo(buffer.Start, buffer.End);
                throw new ReplicationHandshakeException(
                    HandshakeFailure.ConnectionClosed,
                    $"the replication peer at {remote} closed the connection during the handshake (it may have refused this node: see its log)");
            }

            input.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private sealed class PeerHello
    {
        public ChannelRole Role { get; init; }

        public byte[] Nonce { get; set; } = [];

        public string Cluster { get; set; } = "";

        public string Node { get; set; } = "";
    }
}
