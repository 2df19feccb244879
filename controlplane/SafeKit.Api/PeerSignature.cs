using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace SafeKit.Api;

/// <summary>
/// How one safekitd calls another's API on behalf of an operator (the cluster view, a forwarded
/// action): the request carries <c>Authorization: SafeKit-Peer node=…, ts=…, nonce=…, sig=…</c>, an
/// HMAC-SHA256 with a key derived from the cluster key over the method, path, both node names,
/// the time, a nonce and the body's digest. The receiver accepts it within
/// <see cref="Skew"/> of its clock, once per nonce. No operator token ever leaves the node it
/// was given to, and a captured request can be neither altered nor replayed.
/// </summary>
public sealed class PeerSignature
{
    /// <summary>The authorization scheme.</summary>
    public const string Scheme = "SafeKit-Peer";

    /// <summary>How far apart the two clocks may be.</summary>
    public static readonly TimeSpan Skew = TimeSpan.FromSeconds(30);

    private readonly byte[] _key;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, long> _seen = new(StringComparer.Ordinal);

    /// <param name="clusterKey">The cluster key (the heartbeat key); a separate key is derived from it.</param>
    /// <param name="node">This node's name.</param>
    public PeerSignature(ReadOnlySpan<byte> clusterKey, string node, TimeProvider time)
    {
        _key = HKDF.DeriveKey(HashAlgorithmName.SHA256, clusterKey.ToArray(), 32, info: Encoding.ASCII.GetBytes("safekit api peer v1"));
        Node = node;
        _time = time;
    }

    /// <summary>This node's name.</summary>
    public string Node { get; }

    /// <summary>The Authorization header value for a request from this node to <paramref name="target"/>.</summary>
    public string Sign(string method, string pathAndQuery, string target, ReadOnlySpan<byte> body)
    {
        var ts = _time.GetUtcNow().ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture);
        var nonce = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var sig = Convert.ToHexStringLower(Mac(method, pathAndQuery, Node, target, ts, nonce, body));
        return $"{Scheme} node={Node}, ts={ts}, nonce={nonce}, sig={sig}";
    }

    /// <summary>Checks a signed request addressed to this node; null when valid, else why not.</summary>
    public string? Verify(string header, string method, string pathAndQuery, ReadOnlySpan<byte> body)
    {
        ArgumentNullException.ThrowIfNull(header);
        var fields = header[Scheme.Length..].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(f => f.Split('=', 2))
            .Where(f => f.Length == 2)
            .GroupBy(f => f[0], StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.First()[1], StringComparer.Ordinal);
        if (!fields.TryGetValue("node", out var from) || !fields.TryGetValue("ts", out var ts) || !fields.TryGetValue("nonce", out var nonce) || !fields.TryGetValue("sig", out var sig))
        {
            return "malformed peer signature";
        }

        if (!long.TryParse(ts, NumberStyles.None, CultureInfo.InvariantCulture, out var sent) || Math.Abs(_time.GetUtcNow().ToUnixTimeMilliseconds() - sent) > Skew.TotalMilliseconds)
        {
            return "peer signature outside the allowed clock skew";
        }

        byte[] given;
        try
        {
            given = Convert.FromHexString(sig);
        }
        catch (FormatException)
        {
            return "malformed peer signature";
        }

        if (!CryptographicOperations.FixedTimeEquals(given, Mac(method, pathAndQuery, from, Node, ts, nonce, body)))
        {
            return "bad peer signature";
        }

        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        if (!_seen.TryAdd(nonce, now))
        {
            return "peer request replayed";
        }

        if (_seen.Count > 4096)
        {
            foreach (var old in _seen.Where(e => now - e.Value > 2 * Skew.TotalMilliseconds).ToList())
            {
                _seen.TryRemove(old.Key, out _);
            }
        }

        return null;
    }

    private byte[] Mac(string method, string pathAndQuery, string from, string to, string ts, string nonce, ReadOnlySpan<byte> body)
    {
        var text = $"{method}\n{pathAndQuery}\n{from}\n{to}\n{ts}\n{nonce}\n{Convert.ToHexStringLower(SHA256.HashData(body))}";
        return HMACSHA256.HashData(_key, Encoding.UTF8.GetBytes(text));
    }
}
