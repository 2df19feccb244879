using System.Diagnostics;
using System.Net.Sockets;
using SafeKit.Replication.Channel;
using static SafeKit.Tests.Replication.ChannelTestLimits;

namespace SafeKit.Tests.Replication;

// Heavy on both cores: never alongside the lab tests, whose heartbeats it would starve.
[Collection(SafeKit.Tests.Infrastructure.LabCollection.Name)]
public sealed class LinkFailureTests(ITestOutputHelper output)
{
    private static ReplicationChannelOptions FastTimers(ReplicationChannelOptions o)
        => o with { SilenceTimeout = TimeSpan.FromMilliseconds(600), KeepaliveInterval = TimeSpan.FromMilliseconds(100) };

    [Fact]
    public async Task ReceiverConnectionReset_EveryPendingSendFailsWithLinkLost_AndLostCompletes()
    {
        using var gate = new GateApplier();
        await using var pair = await ChannelPair.StartAsync(gate);
        var sends = Enumerable.Range(1, 50).Select(i => pair.Sender.SendAsync(1, Payloads.For(i, 100)).AsTask()).ToArray();
        await gate.Entered.WaitAsync(HangGuard, Ct);

        var clock = Stopwatch.StartNew();
        pair.Receiver.ResetConnection();

        foreach (var send in sends)
        {
            var error = await Assert.ThrowsAsync<ReplicationLinkLostException>(() => send.WaitAsync(HangGuard, Ct));
            Assert.Equal(LinkLossReason.ConnectionFailed, error.Reason);
        }

        var lost = await pair.Sender.Lost.WaitAsync(HangGuard, Ct);
        output.WriteLine($"50 pending sends failed {clock.ElapsedMilliseconds} ms after the RST: {lost.Message}");
        Assert.Equal(LinkLossReason.ConnectionFailed, lost.Reason);
        Assert.Contains("50 operation(s) pending", lost.Message, StringComparison.Ordinal);
        gate.Release();
    }

    [Fact]
    public async Task ReceiverClosed_PendingSendsFailWithPeerClosed()
    {
        using var gate = new GateApplier();
        await using var pair = await ChannelPair.StartAsync(gate);
        var send = pair.Sender.SendAsync(1, Payloads.For(1, 8)).AsTask();
        await gate.Entered.WaitAsync(HangGuard, Ct);

        var closing = pair.Receiver.DisposeAsync().AsTask();

        var error = await Assert.ThrowsAsync<ReplicationLinkLostException>(() => send.WaitAsync(HangGuard, Ct));
        Assert.Equal(LinkLossReason.PeerClosed, error.Reason);
        Assert.Equal(0, pair.Sender.LastAcked);
        gate.Release();
        await closing.WaitAsync(HangGuard, Ct);
        Assert.Equal(LinkLossReason.Closed, (await pair.Receiver.Lost).Reason);
    }

    [Fact]
    public async Task SenderDisposed_PendingSendsFailWithClosed_AndTheReceiverSeesPeerClosed()
    {
        using var gate = new GateApplier();
        await using var pair = await ChannelPair.StartAsync(gate);
        var send = pair.Sender.SendAsync(1, Payloads.For(1, 8)).AsTask();
        await gate.Entered.WaitAsync(HangGuard, Ct);

        await pair.Sender.DisposeAsync();

        var error = await Assert.ThrowsAsync<ReplicationLinkLostException>(() => send.WaitAsync(HangGuard, Ct));
        Assert.Equal(LinkLossReason.Closed, error.Reason);
        await Assert.ThrowsAsync<ReplicationLinkLostException>(async () => await pair.Sender.SendAsync(1, new byte[8]));
        gate.Release();
        var lost = await pair.Receiver.Lost.WaitAsync(HangGuard, Ct);
        Assert.Equal(LinkLossReason.PeerClosed, lost.Reason);
    }

    [Fact]
    public async Task ApplierStuck_SenderDeclaresSilenceTimeout_AndThePendingSendFails()
    {
        using var gate = new GateApplier();
        await using var pair = await ChannelPair.StartAsync(gate, sender: FastTimers, receiver: FastTimers);
        var clock = Stopwatch.StartNew();
        var send = pair.Sender.SendAsync(1, Payloads.For(1, 8)).AsTask();

        var error = await Assert.ThrowsAsync<ReplicationLinkLostException>(() => send.WaitAsync(HangGuard, Ct));
        output.WriteLine($"silence timeout 600 ms: link declared lost after {clock.ElapsedMilliseconds} ms: {error.Message}");
        Assert.Equal(LinkLossReason.SilenceTimeout, error.Reason);
        Assert.Same(error, await pair.Sender.Lost);
        gate.Release();
    }

    [Fact]
    public async Task ApplierStuck_ASendBlockedOnTheFullSocket_ReturnsWhenTheLinkIsDeclaredLost()
    {
        using var gate = new GateApplier();
        await using var pair = await ChannelPair.StartAsync(gate, sender: FastTimers, receiver: FastTimers);
        var payload = new byte[ReplicationOp.MaxPayloadLength];

        // SECOND reads no more once its receive pipe holds four frames; the kernel's buffers take
        // a few more; then a send blocks in the kernel, on this thread, until the link is lost
        // (far below the byte budget, where TrySend would have stopped on its own).
        var sending = Task.Run(() =>
        {
            var sent = 0;
            while (pair.Sender.TrySend(1, [], payload, OpFlags.None, out var completion))
            {
                var failedAtOnce = completion.IsCompleted; // Sent after the loss.
                _ = completion.AsTask().ContinueWith(static t => _ = t.Exception, TaskScheduler.Default);
                if (failedAtOnce)
                {
                    break;
                }

                sent++;
            }

            return sent;
        });
        await gate.Entered.WaitAsync(HangGuard, Ct);

        var sent = await sending.WaitAsync(HangGuard, Ct);
        var lost = await pair.Sender.Lost.WaitAsync(HangGuard, Ct);
        output.WriteLine($"{sent} frames of 1 MiB went out before the send blocked; then: {lost.Message}");
        gate.Release();
        Assert.Equal(LinkLossReason.SilenceTimeout, lost.Reason);
        Assert.InRange(sent, 1, (int)(ReplicationChannelOptions.DefaultMaxBytesInFlight / ReplicationOp.MaxPayloadLength) - 1);
    }

    [Fact]
    public async Task IdleLink_KeepalivesKeepItUpPastTheSilenceTimeout()
    {
        await using var pair = await ChannelPair.StartAsync(new NullApplier(), sender: FastTimers, receiver: FastTimers);

        await Task.Delay(TimeSpan.FromMilliseconds(2000), Ct);

        Assert.False(pair.Sender.Lost.IsCompleted);
        Assert.False(pair.Receiver.Lost.IsCompleted);
        Assert.Equal(0, await pair.Sender.SendAsync(1, new byte[8]));
    }

    [Fact]
    public async Task SilentSender_ReceiverDeclaresSilenceTimeout()
    {
        await using var fake = await FakeSender.ConnectAsync(FastTimers);

        var lost = await fake.Receiver.Lost.WaitAsync(HangGuard, Ct);
        Assert.Equal(LinkLossReason.SilenceTimeout, lost.Reason);
        Assert.Contains("the sender is dead, stuck or unreachable", lost.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OperationOutOfSequence_ReceiverDeclaresProtocolViolation_WithoutApplyingIt()
    {
        var applier = new RecordingApplier();
        await using var fake = await FakeSender.ConnectAsync(o => o, applier);
        var frame = new byte[28];
        FramesForTests.Op(frame, sequence: 2, payloadLength: 8);

        await fake.Connection.Output.WriteAsync(frame, Ct);

        var lost = await fake.Receiver.Lost.WaitAsync(HangGuard, Ct);
        Assert.Equal(LinkLossReason.ProtocolViolation, lost.Reason);
        Assert.Contains("operation 2 arrived after 0", lost.Message, StringComparison.Ordinal);
        Assert.Empty(applier.Ops);
    }

    [Fact]
    public async Task ApplierThrows_LinkLostWithApplierFailed_EarlierOpsStillAcknowledged()
    {
        await using var pair = await ChannelPair.StartAsync(new ThrowingApplier(failAt: 3));
        var sends = Enumerable.Range(1, 5).Select(i => pair.Sender.SendAsync(1, Payloads.For(i, 8)).AsTask()).ToArray();

        Assert.Equal(0, await sends[0].WaitAsync(HangGuard, Ct));
        Assert.Equal(0, await sends[1].WaitAsync(HangGuard, Ct));
        for (var i = 2; i < 5; i++)
        {
            await Assert.ThrowsAsync<ReplicationLinkLostException>(() => sends[i].WaitAsync(HangGuard, Ct));
        }

        var lost = await pair.Receiver.Lost.WaitAsync(HangGuard, Ct);
        Assert.Equal(LinkLossReason.ApplierFailed, lost.Reason);
        Assert.Contains("the applier failed on operation 3: disk on fire", lost.Message, StringComparison.Ordinal);
        Assert.IsType<IOException>(lost.InnerException);
        Assert.Equal(2, pair.Sender.LastAcked);
    }

    private sealed class ThrowingApplier(long failAt) : IOperationApplier
    {
        public int Apply(in ReplicationOp op) => op.Sequence == failAt ? throw new IOException("disk on fire") : 0;
    }

    /// <summary>A sender made of the handshake alone: it sends only what the test writes, and no keepalives.</summary>
    private sealed class FakeSender : IAsyncDisposable
    {
        private FakeSender(ReplicationListener listener, ChannelConnection connection, ReplicationReceiver receiver)
        {
            Listener = listener;
            Connection = connection;
            Receiver = receiver;
        }

        public ReplicationListener Listener { get; }

        public ChannelConnection Connection { get; }

        public ReplicationReceiver Receiver { get; }

        public static async Task<FakeSender> ConnectAsync(Func<ReplicationChannelOptions, ReplicationChannelOptions> receiverOptions, IOperationApplier? applier = null)
        {
            var listener = ChannelPair.Listen(receiverOptions(ChannelPair.Options("n2", "n1")));
            var accepting = listener.AcceptAsync(applier ?? new NullApplier(), Ct);
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            await ChannelConnection.ConnectAsync(socket, listener.LocalEndPoint, Ct);
            var connection = ChannelSocket.Open(socket, ChannelPair.Options("n1", "n2"), "fake sender");
            await Handshake.RunAsync(connection, ChannelPair.Options("n1", "n2"), ChannelRole.Sender, "listener", Ct);
            return new FakeSender(listener, connection, await accepting);
        }

        public async ValueTask DisposeAsync()
        {
            Connection.Dispose();
            await Receiver.DisposeAsync();
            Listener.Dispose();
        }
    }
}
