using System.Net.Sockets;
using SafeKit.Replication.Channel;

namespace SafeKit.Tests.Replication;

// Heavy on both cores: never alongside the lab tests, whose heartbeats it would starve.
[Collection(SafeKit.Tests.Infrastructure.LabCollection.Name)]
public sealed class HandshakeTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Connect_SameKeyAndNames_BothEndsKnowTheirPeerAndAnOpGoesThrough()
    {
        await using var pair = await ChannelPair.StartAsync(new RecordingApplier());

        Assert.Equal("n2", pair.Sender.PeerNode);
        Assert.Equal("n1", pair.Receiver.PeerNode);
        Assert.Equal(0, await pair.Sender.SendAsync(1, Payloads.For(1, 8)));
        Assert.Equal(1, pair.Sender.LastAcked);
    }

    [Fact]
    public async Task Connect_WrongKey_RefusedOnBothSidesWithTheReason()
    {
        var wrongKey = Enumerable.Repeat((byte)7, 32).ToArray();
        var (sender, receiver) = await AttemptAsync(ChannelPair.Options("n1", "n2") with { Key = wrongKey }, ChannelPair.Options("n2", "n1"));

        Assert.Equal(HandshakeFailure.WrongKey, sender.Failure);
        Assert.Equal(HandshakeFailure.WrongKey, receiver.Failure);
        Assert.Contains("different cluster keys", sender.Message, StringComparison.Ordinal);
        Assert.Contains("different cluster keys", receiver.Message, StringComparison.Ordinal);
        Assert.Contains("'n2'", sender.Message, StringComparison.Ordinal);
        Assert.Contains("'n1'", receiver.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Connect_WrongClusterName_RefusedOnBothSidesNamingBothClusters()
    {
        var (sender, receiver) = await AttemptAsync(ChannelPair.Options("n1", "n2") with { ClusterName = "other" }, ChannelPair.Options("n2", "n1"));

        Assert.Equal(HandshakeFailure.WrongCluster, sender.Failure);
        Assert.Equal(HandshakeFailure.WrongCluster, receiver.Failure);
        Assert.Contains("'lab'", sender.Message, StringComparison.Ordinal);
        Assert.Contains("'other'", sender.Message, StringComparison.Ordinal);
        Assert.Contains("'other'", receiver.Message, StringComparison.Ordinal);
        Assert.Contains("'lab'", receiver.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Connect_SenderIsAnUnexpectedNode_ReceiverRefusesAndSenderIsToldWhy()
    {
        var (sender, receiver) = await AttemptAsync(ChannelPair.Options("n3", "n2"), ChannelPair.Options("n2", "n1"));

        Assert.Equal(HandshakeFailure.UnexpectedNode, receiver.Failure);
        Assert.Contains("says it is node 'n3'", receiver.Message, StringComparison.Ordinal);
        Assert.Contains("with 'n1' only", receiver.Message, StringComparison.Ordinal);
        Assert.Equal(HandshakeFailure.UnexpectedNode, sender.Failure);
        Assert.Contains("refused this node 'n3'", sender.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Connect_ReceiverIsNotTheExpectedPeer_SenderRefuses()
    {
        var (sender, receiver) = await AttemptAsync(ChannelPair.Options("n1", "n9"), ChannelPair.Options("n2", "n1"));

        Assert.Equal(HandshakeFailure.UnexpectedNode, sender.Failure);
        Assert.Contains("says it is node 'n2'", sender.Message, StringComparison.Ordinal);
        Assert.Equal(HandshakeFailure.UnexpectedNode, receiver.Failure);
        Assert.Contains("refused this node 'n2'", receiver.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Accept_AfterARefusedPeer_TheListenerAcceptsTheRightOne()
    {
        using var listener = ChannelPair.Listen(ChannelPair.Options("n2", "n1"));
        var first = listener.AcceptAsync(new NullApplier(), Ct);
        await Assert.ThrowsAsync<ReplicationHandshakeException>(() => ReplicationSender.ConnectAsync(listener.LocalEndPoint, ChannelPair.Options("n1", "n2") with { Key = new byte[16] }, cancellationToken: Ct));
        await Assert.ThrowsAsync<ReplicationHandshakeException>(() => first);

        var second = listener.AcceptAsync(new NullApplier(), Ct);
        await using var sender = await ReplicationSender.ConnectAsync(listener.LocalEndPoint, ChannelPair.Options("n1", "n2"), cancellationToken: Ct);
        await using var receiver = await second;
        Assert.Equal(0, await sender.SendAsync(1, new byte[16]));
    }

    [Fact]
    public async Task Accept_PeerSpeaksAnotherProtocol_RefusedAsProtocolMismatch()
    {
        using var listener = ChannelPair.Listen(ChannelPair.Options("n2", "n1"));
        var accepting = listener.AcceptAsync(new NullApplier(), Ct);
        using var client = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.LocalEndPoint, Ct);
        await client.SendAsync("GET / HTTP/1.1\r\nHost: sk\r\n\r\n\r\n\r\n\r\n\r\n"u8.ToArray(), Ct);

        var refused = await Assert.ThrowsAsync<ReplicationHandshakeException>(() => accepting);
        Assert.Equal(HandshakeFailure.ProtocolMismatch, refused.Failure);
        Assert.Contains("does not speak the SafeKit replication protocol", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Accept_PeerSaysNothing_TimesOutWithTheReason()
    {
        using var listener = ChannelPair.Listen(ChannelPair.Options("n2", "n1") with { HandshakeTimeout = TimeSpan.FromMilliseconds(300) });
        var accepting = listener.AcceptAsync(new NullApplier(), Ct);
        using var client = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.LocalEndPoint, Ct);

        var refused = await Assert.ThrowsAsync<ReplicationHandshakeException>(() => accepting);
        Assert.Equal(HandshakeFailure.Timeout, refused.Failure);
        Assert.Contains("did not finish within 300 ms", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_ShortKey_RefusedWithTheLength()
    {
        var error = Assert.Throws<ArgumentException>(() => (ChannelPair.Options("n1", "n2") with { Key = new byte[8] }).Validate());
        Assert.Contains("holds 8 bytes", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_BudgetBelowOneLargestFrame_Refused()
    {
        var error = Assert.Throws<ArgumentException>(() => (ChannelPair.Options("n1", "n2") with { MaxBytesInFlight = 4096 }).Validate());
        Assert.Contains("below one frame of the largest operation", error.Message, StringComparison.Ordinal);
    }

    /// <summary>Runs one connection attempt; both ends must refuse it.</summary>
    private static async Task<(ReplicationHandshakeException Sender, ReplicationHandshakeException Receiver)> AttemptAsync(ReplicationChannelOptions sender, ReplicationChannelOptions receiver)
    {
        using var listener = ChannelPair.Listen(receiver);
        var accepting = listener.AcceptAsync(new NullApplier(), Ct);
        var senderError = await Assert.ThrowsAsync<ReplicationHandshakeException>(() => ReplicationSender.ConnectAsync(listener.LocalEndPoint, sender, cancellationToken: Ct));
        var receiverError = await Assert.ThrowsAsync<ReplicationHandshakeException>(() => accepting);
        return (senderError, receiverError);
    }
}
