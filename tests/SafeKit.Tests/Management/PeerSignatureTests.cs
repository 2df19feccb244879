using System.Text;
using SafeKit.Api;

namespace SafeKit.Tests.Management;

/// <summary>Requests one node signs for another with the cluster key: accepted once, unaltered, in time, from the same cluster.</summary>
public sealed class PeerSignatureTests
{
    private static readonly byte[] Key = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();

    private sealed class Clock : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = new(2026, 11, 25, 12, 0, 0, TimeSpan.Zero);

        public override DateTimeOffset GetUtcNow() => Now;
    }

    [Fact]
    public void SignedRequest_IsAcceptedOnce_ByTheNodeItIsFor()
    {
        var clock = new Clock();
        var n1 = new PeerSignature(Key, "n1", clock);
        var n2 = new PeerSignature(Key, "n2", clock);
        var body = Encoding.UTF8.GetBytes("""{"action":"stop"}""");
        var header = n1.Sign("POST", "/api/v1/modules/web/actions", "n2", body);

        Assert.Null(n2.Verify(header, "POST", "/api/v1/modules/web/actions", body));
        Assert.Equal("peer request replayed", n2.Verify(header, "POST", "/api/v1/modules/web/actions", body));
    }

    [Fact]
    public void AlteredRequest_WrongTarget_WrongKey_OrOldRequest_AreRefused()
    {
        var clock = new Clock();
        var n1 = new PeerSignature(Key, "n1", clock);
        var n2 = new PeerSignature(Key, "n2", clock);
        var n3 = new PeerSignature(Key, "n3", clock);
        var stranger = new PeerSignature(new byte[32], "n2", clock);
        var body = Encoding.UTF8.GetBytes("""{"action":"stop"}""");
        string Fresh() => n1.Sign("POST", "/api/v1/modules/web/actions", "n2", body);

        Assert.Equal("bad peer signature", n2.Verify(Fresh(), "POST", "/api/v1/modules/web/actions", Encoding.UTF8.GetBytes("""{"action":"forcestop"}""")));
        Assert.Equal("bad peer signature", n2.Verify(Fresh(), "POST", "/api/v1/modules/db/actions", body));
        Assert.Equal("bad peer signature", n2.Verify(Fresh(), "GET", "/api/v1/modules/web/actions", body));
        Assert.Equal("bad peer signature", n3.Verify(Fresh(), "POST", "/api/v1/modules/web/actions", body));
        Assert.Equal("bad peer signature", stranger.Verify(Fresh(), "POST", "/api/v1/modules/web/actions", body));
        Assert.Equal("malformed peer signature", n2.Verify("SafeKit-Peer node=n1", "POST", "/", body));
        Assert.Equal("malformed peer signature", n2.Verify(Fresh().Replace("sig=", "sig=zz", StringComparison.Ordinal), "POST", "/api/v1/modules/web/actions", body));

        var old = Fresh();
        clock.Now += PeerSignature.Skew + TimeSpan.FromSeconds(1);
        Assert.Equal("peer signature outside the allowed clock skew", n2.Verify(old, "POST", "/api/v1/modules/web/actions", body));
        Assert.Null(n2.Verify(Fresh(), "POST", "/api/v1/modules/web/actions", body));
    }
}
