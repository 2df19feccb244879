using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace SafeKit.ControlPlane.Membership;

/// <summary>Why a received datagram was not accepted as a heartbeat.</summary>
public enum HeartbeatVerdict
{
    Ok,
    Malformed,
    BadVersion,
    ForeignCluster,
    NodeCountMismatch,
    BadMac,
    UnknownSender,
}

/// <summary>
/// The heartbeat wire format (version 1, big-endian), authenticated with HMAC-SHA256 under the
/// cluster key, truncated to 128 bits:
/// <code>
///  0  "SKHB"  4  version  5  node count N  6  sender  7  0
///  8  cluster id (FNV-1a of "safekit:" + name)  12 incarnation  16 sequence
/// 20  view: leader (0xff none), epoch u32, members u32, N weights
///     N node states: incarnation u32, sequence u32, flags u8, weight u8, alive u32, view epoch u32
///     16-byte MAC over everything before it
/// </code>
/// </summary>
public sealed class HeartbeatCodec
{
    public const byte Version = 2;
    public const int MacLength = 16;
    private const int HeaderLength = 20;
    private const int StateLength = 18;
    private static readonly byte[] Magic = "SKHB"u8.ToArray();

    private readonly byte[] _key;
    private readonly uint _clusterId;
    private readonly int _nodeCount;

    public HeartbeatCodec(byte[] key, string clusterName, int nodeCount)
    {
        ArgumentNullException.ThrowIfNull(key);
        _key = key;
        _clusterId = ClusterId(clusterName);
        _nodeCount = nodeCount;
    }

    /// <summary>Bytes of one heartbeat for this cluster.</summary>
    public int Length => HeaderLength + 9 + _nodeCount + (_nodeCount * StateLength) + HeartbeatMessage.BeaconLength + MacLength;

    public uint Id => _clusterId;

    /// <summary>FNV-1a of "safekit:" + the cluster name: tells clusters sharing a network apart.</summary>
    public static uint ClusterId(string clusterName)
    {
        var hash = 2166136261u;
        foreach (var b in Encoding.UTF8.GetBytes("safekit:" + clusterName))
        {
            hash = (hash ^ b) * 16777619u;
        }

        return hash;
    }

    /// <summary>Writes <paramref name="message"/> and its MAC into <paramref name="output"/>; returns the length.</summary>
    public int Encode(HeartbeatMessage message, Span<byte> output)
    {
        ArgumentNullException.ThrowIfNull(message);
        var n = _nodeCount;
        Magic.CopyTo(output);
        output[4] = Version;
        output[5] = (byte)n;
        output[6] = (byte)message.Sender;
        output[7] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(output[8..], _clusterId);
        BinaryPrimitives.WriteUInt32BigEndian(output[12..], message.Incarnation);
        BinaryPrimitives.WriteUInt32BigEndian(output[16..], message.Sequence);
        var at = HeaderLength;
        output[at] = message.ViewLeader < 0 ? (byte)0xff : (byte)message.ViewLeader;
        BinaryPrimitives.WriteUInt32BigEndian(output[(at + 1)..], message.ViewEpoch);
        BinaryPrimitives.WriteUInt32BigEndian(output[(at + 5)..], message.ViewMembers);
        message.ViewWeights.AsSpan(0, n).CopyTo(output[(at + 9)..]);
        at += 9 + n;
        for (var i = 0; i < n; i++)
        {
            ref readonly var state = ref message.States[i];
            BinaryPrimitives.WriteUInt32BigEndian(output[at..], state.Incarnation);
            BinaryPrimitives.WriteUInt32BigEndian(output[(at + 4)..], state.Sequence);
            output[at + 8] = state.Flags;
            output[at + 9] = state.Weight;
            BinaryPrimitives.WriteUInt32BigEndian(output[(at + 10)..], state.Alive);
            BinaryPrimitives.WriteUInt32BigEndian(output[(at + 14)..], state.ViewEpoch);
            at += StateLength;
        }

        message.Beacon.CopyTo(output[at..]);
        at += HeartbeatMessage.BeaconLength;
        Span<byte> mac = stackalloc byte[32];
        HMACSHA256.HashData(_key, output[..at], mac);
        mac[..MacLength].CopyTo(output[at..]);
        return at + MacLength;
    }

    /// <summary>Checks and decodes a datagram into <paramref name="message"/> (overwritten).</summary>
    public HeartbeatVerdict Decode(ReadOnlySpan<byte> datagram, HeartbeatMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (datagram.Length < HeaderLength || !datagram.StartsWith(Magic))
        {
            return HeartbeatVerdict.Malformed;
        }

        if (datagram[4] != Version)
        {
            return HeartbeatVerdict.BadVersion;
        }

        if (BinaryPrimitives.ReadUInt32BigEndian(datagram[8..]) != _clusterId)
        {
            return HeartbeatVerdict.ForeignCluster;
        }

        if (datagram[5] != _nodeCount)
        {
            return HeartbeatVerdict.NodeCountMismatch;
        }

        if (datagram.Length != Length)
        {
            return HeartbeatVerdict.Malformed;
        }

        var body = datagram[..^MacLength];
        Span<byte> mac = stackalloc byte[32];
        HMACSHA256.HashData(_key, body, mac);
        if (!CryptographicOperations.FixedTimeEquals(mac[..MacLength], datagram[^MacLength..]))
        {
            return HeartbeatVerdict.BadMac;
        }

        var sender = datagram[6];
        if (sender >= _nodeCount)
        {
            return HeartbeatVerdict.UnknownSender;
        }

        var n = _nodeCount;
        message.ClusterId = _clusterId;
        message.Sender = sender;
        message.Incarnation = BinaryPrimitives.ReadUInt32BigEndian(datagram[12..]);
        message.Sequence = BinaryPrimitives.ReadUInt32BigEndian(datagram[16..]);
        var at = HeaderLength;
        var leader = datagram[at];
        message.ViewLeader = leader == 0xff || leader >= n ? -1 : leader;
        message.ViewEpoch = BinaryPrimitives.ReadUInt32BigEndian(datagram[(at + 1)..]);
        message.ViewMembers = BinaryPrimitives.ReadUInt32BigEndian(datagram[(at + 5)..]);
        datagram.Slice(at + 9, n).CopyTo(message.ViewWeights);
        at += 9 + n;
        for (var i = 0; i < n; i++)
        {
            ref var state = ref message.States[i];
            state.Incarnation = BinaryPrimitives.ReadUInt32BigEndian(datagram[at..]);
            state.Sequence = BinaryPrimitives.ReadUInt32BigEndian(datagram[(at + 4)..]);
            state.Flags = datagram[at + 8];
            state.Weight = datagram[at + 9];
            state.Alive = BinaryPrimitives.ReadUInt32BigEndian(datagram[(at + 10)..]);
            state.ViewEpoch = BinaryPrimitives.ReadUInt32BigEndian(datagram[(at + 14)..]);
            at += StateLength;
        }

        datagram.Slice(at, HeartbeatMessage.BeaconLength).CopyTo(message.Beacon);
        return HeartbeatVerdict.Ok;
    }
}
