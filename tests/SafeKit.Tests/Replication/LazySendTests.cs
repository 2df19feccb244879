using SafeKit.Replication.Channel;
using static SafeKit.Tests.Replication.ChannelTestLimits;

namespace SafeKit.Tests.Replication;

// Real TCP on loopback, like the rest of the channel's tests; never alongside the lab tests.
[Collection(SafeKit.Tests.Infrastructure.LabCollection.Name)]
public sealed class LazySendTests
{
    /// <summary>Ticks too far apart to send anything during a test: only the sends themselves do.</summary>
    private static ReplicationChannelOptions SlowTicks(ReplicationChannelOptions o)
        => o with { KeepaliveInterval = TimeSpan.FromSeconds(20), SilenceTimeout = TimeSpan.FromSeconds(60) };

    [Fact]
    public async Task LazySends_WaitForTheNextSendThatIsNotLazy_ThenArriveFirstAndInOrder()
    {
        var applier = new RecordingApplier(_ => 0);
        await using var pair = await ChannelPair.StartAsync(applier, sender: SlowTicks, receiver: SlowTicks);

        var lazy = Enumerable.Range(1, 5).Select(i => pair.Sender.SendAsync(1, ReadOnlyMemory<byte>.Empty, Payloads.For(i, 100), lazy: true).AsTask()).ToArray();

        // Proof that they stayed on PRIM: a receiver that got them would have applied them by the
        // time a later send's round trip completes — and that send is what carries them.
        await Task.Delay(200, Ct);
        Assert.Equal(0, pair.Receiver.LastApplied);
        Assert.All(lazy, t => Assert.False(t.IsCompleted));

        Assert.Equal(0, await pair.Sender.SendAsync(2, Payloads.For(6, 100)).AsTask().WaitAsync(HangGuard, Ct));
        var statuses = await Task.WhenAll(lazy).WaitAsync(HangGuard, Ct);
        Assert.All(statuses, s => Assert.Equal(0, s));
        Assert.Equal([1L, 2, 3, 4, 5, 6], applier.Ops.Select(o => o.Sequence));
        Assert.Equal(0, applier.OutOfOrder);
        Assert.Equal(0, applier.WrongPayload);
    }

    [Fact]
    public async Task LazySends_LeaveOnFlush_OnceTheyFillTheLazyBudget_AndOnTheKeepaliveTick()
    {
        var applier = new RecordingApplier(_ => 0);
        await using var pair = await ChannelPair.StartAsync(applier, sender: SlowTicks, receiver: SlowTicks);

        var flushed = pair.Sender.SendAsync(1, ReadOnlyMemory<byte>.Empty, Payloads.For(1, 100), lazy: true).AsTask();
        pair.Sender.Flush();
        Assert.Equal(0, await flushed.WaitAsync(HangGuard, Ct));

        // 64 KiB of lazy frames: the one that reaches it sends them all.
        var chunk = ReplicationSender.LazyBytes / 8;
        var full = Enumerable.Range(2, 8).Select(i => pair.Sender.SendAsync(1, ReadOnlyMemory<byte>.Empty, Payloads.For(i, chunk), lazy: true).AsTask()).ToArray();
        Assert.All(await Task.WhenAll(full).WaitAsync(HangGuard, Ct), s => Assert.Equal(0, s));

        await using var ticking = await ChannelPair.StartAsync(new NullApplier(), sender: o => o with { KeepaliveInterval = TimeSpan.FromMilliseconds(100) });
        Assert.Equal(0, await ticking.Sender.SendAsync(1, ReadOnlyMemory<byte>.Empty, Payloads.For(1, 100), lazy: true).AsTask().WaitAsync(HangGuard, Ct));
        Assert.Equal(9, applier.Ops.Count);
    }

    [Fact]
    public async Task LargeLazyPayloads_LeaveAtOnce_AndDoNotCountTowardsTheLazyBudget()
    {
        var applier = new RecordingApplier(_ => 0);
        await using var pair = await ChannelPair.StartAsync(applier, sender: SlowTicks, receiver: SlowTicks);

        // A payload large enough to go straight to the socket: it leaves at once.
        Assert.Equal(0, await pair.Sender.SendAsync(1, ReadOnlyMemory<byte>.Empty, Payloads.For(1, ReplicationSender.DirectPayloadLength), lazy: true).AsTask().WaitAsync(HangGuard, Ct));

        // Then 48 KiB of small lazy frames: within the lazy budget only if the large one, gone already, is not counted.
        var small = Enumerable.Range(2, 12).Select(i => pair.Sender.SendAsync(1, ReadOnlyMemory<byte>.Empty, Payloads.For(i, 4096), lazy: true).AsTask()).ToArray();
        await Task.Delay(200, Ct);
        Assert.Equal(1, pair.Receiver.LastApplied);
        Assert.All(small, t => Assert.False(t.IsCompleted));

        pair.Sender.Flush();
        Assert.All(await Task.WhenAll(small).WaitAsync(HangGuard, Ct), s => Assert.Equal(0, s));
        Assert.Equal(Enumerable.Range(1, 13).Select(i => (long)i), applier.Ops.Select(o => o.Sequence));
    }
}
