using System.Buffers;
using System.Buffers.Binary;
using SafeKit.Replication.Channel;

namespace SafeKit.Tests.Replication;

[System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA2012", Justification = "Pipelining keeps many sends in flight: their ValueTasks are stored, then each awaited exactly once.")]
// Heavy on both cores: never alongside the lab tests, whose heartbeats it would starve.
[Collection(SafeKit.Tests.Infrastructure.LabCollection.Name)]
public sealed class ReplicationChannelTests
{
    [Fact]
    public async Task SendAsync_100000SmallOpsPipelined_ArriveInOrderAndEachSendGetsItsOwnStatus()
    {
        const int count = 100_000;
        static int StatusOf(long sequence) => sequence % 97 == 0 ? (int)(sequence % 50) + 1 : 0;
        var applier = new RecordingApplier(StatusOf);
        await using var pair = await ChannelPair.StartAsync(applier);

        var sends = new ValueTask<int>[count];
        var payload = new byte[24];
        for (var i = 0; i < count; i++)
        {
            // Each payload is copied at once unless the budget is full; give each its own bytes.
            var bytes = Payloads.For(i + 1, payload.Length);
            sends[i] = pair.Sender.SendAsync((byte)(i % 7), bytes);
        }

        for (var i = 0; i < count; i++)
        {
            Assert.Equal(StatusOf(i + 1), await sends[i]);
        }

        Assert.Equal(0, applier.OutOfOrder);
        Assert.Equal(0, applier.WrongPayload);
        Assert.Equal(count, applier.Ops.Count);
        Assert.Equal(count, pair.Sender.LastAcked);
        Assert.Equal(count, pair.Receiver.LastApplied);
        Assert.Equal((byte)(12344 % 7), applier.Ops[12344].Type); // op 12345 was sent with i = 12344
        Assert.Equal(0, pair.Sender.BytesInFlight);
    }

    [Fact]
    public async Task SendAsync_ApplierReturnsAnErrno_OnlyThatOpFailsWithIt()
    {
        const int enospc = 28;
        await using var pair = await ChannelPair.StartAsync(new RecordingApplier(s => s == 5 ? enospc : 0));

        var sends = Enumerable.Range(1, 10).Select(i => pair.Sender.SendAsync(2, Payloads.For(i, 8)).AsTask()).ToArray();
        var statuses = await Task.WhenAll(sends);

        Assert.Equal([0, 0, 0, 0, enospc, 0, 0, 0, 0, 0], statuses);
    }

    [Fact]
    public async Task SendAsync_1MiBPayloadsWithHeaders_ArriveIntact()
    {
        const int count = 24;
        var received = new List<(long Sequence, byte[] Header, byte[] Payload)>();
        await using var pair = await ChannelPair.StartAsync(new CopyingApplier(received));

        var random = new Random(42);
        var payloads = new byte[count][];
        var headers = new byte[count][];
        var sends = new ValueTask<int>[count];
        for (var i = 0; i < count; i++)
        {
            payloads[i] = new byte[ReplicationOp.MaxPayloadLength - i];
            random.NextBytes(payloads[i]);
            headers[i] = new byte[i == 0 ? ReplicationOp.MaxHeaderLength : 100 + i];
            random.NextBytes(headers[i]);
            sends[i] = pair.Sender.SendAsync(9, headers[i], payloads[i]);
        }

        for (var i = 0; i < count; i++)
        {
            Assert.Equal(0, await sends[i]);
        }

        Assert.Equal(count, received.Count);
        for (var i = 0; i < count; i++)
        {
            Assert.Equal(i + 1, received[i].Sequence);
            Assert.True(headers[i].AsSpan().SequenceEqual(received[i].Header), $"header of op {i + 1}");
            Assert.True(payloads[i].AsSpan().SequenceEqual(received[i].Payload), $"payload of op {i + 1}");
        }
    }

    [Fact]
    public async Task SendAsync_DurableBarrierFlag_ReachesTheApplierWithTheSequence()
    {
        var applier = new RecordingApplier();
        await using var pair = await ChannelPair.StartAsync(applier);

        await pair.Sender.SendAsync(1, Payloads.For(1, 8));
        await pair.Sender.SendAsync(3, Payloads.For(2, 8), OpFlags.DurableBarrier);
        await pair.Sender.SendAsync(1, Payloads.For(3, 8));

        Assert.Equal([(1L, (byte)1, OpFlags.None), (2L, (byte)3, OpFlags.DurableBarrier), (3L, (byte)1, OpFlags.None)], applier.Ops);
    }

    [Fact]
    public async Task SendAsync_TooLargeOrUnknownFlags_RefusedBeforeSending()
    {
        await using var pair = await ChannelPair.StartAsync(new NullApplier());

        Assert.Throws<ArgumentOutOfRangeException>(() => pair.Sender.SendAsync(1, new byte[ReplicationOp.MaxPayloadLength + 1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => pair.Sender.SendAsync(1, new byte[ReplicationOp.MaxHeaderLength + 1], new byte[1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => pair.Sender.SendAsync(1, new byte[1], (OpFlags)0x80));
        Assert.Equal(0, await pair.Sender.SendAsync(1, new byte[ReplicationOp.MaxPayloadLength]));
        Assert.Equal(1, pair.Sender.LastAcked);
    }

    [Fact]
    public async Task SendAsync_TinyBudgetAndSlowApplier_BytesInFlightStayWithinTheBudgetAndAllArrive()
    {
        var budget = (long)ReplicationOp.MaxPayloadLength + ReplicationOp.MaxHeaderLength + 20;
        const int count = 200;
        const int size = 64 * 1024;
        var applier = new SlowApplier(TimeSpan.FromMilliseconds(1));
        await using var pair = await ChannelPair.StartAsync(applier, sender: o => o with { MaxBytesInFlight = budget });

        var sends = new ValueTask<int>[count];
        var maxWaiting = 0;
        for (var i = 0; i < count; i++)
        {
            sends[i] = pair.Sender.SendAsync(1, Payloads.For(i + 1, size));
            maxWaiting = Math.Max(maxWaiting, pair.Sender.WaitingSends);
            Assert.InRange(pair.Sender.BytesInFlight, 0, budget);
        }

        for (var i = 0; i < count; i++)
        {
            Assert.Equal(0, await sends[i]);
        }

        Assert.Equal(count, applier.Applied);
        Assert.InRange(pair.Sender.PeakBytesInFlight, size, budget);
        Assert.True(maxWaiting > 100, $"sends should have waited for room; at most {maxWaiting} did");
    }

    [Fact]
    public async Task SendAsync_MaxOpsInFlight_BoundsUnacknowledgedOps()
    {
        const int count = 2000;
        var applier = new RecordingApplier();
        await using var pair = await ChannelPair.StartAsync(applier, sender: o => o with { MaxOpsInFlight = 8 });

        var sends = new ValueTask<int>[count];
        for (var i = 0; i < count; i++)
        {
            sends[i] = pair.Sender.SendAsync(1, Payloads.For(i + 1, 8));
            Assert.InRange(pair.Sender.BytesInFlight, 0, 8 * 28);
        }

        for (var i = 0; i < count; i++)
        {
            Assert.Equal(0, await sends[i]);
        }

        Assert.Equal(0, applier.OutOfOrder);
        Assert.InRange(pair.Sender.PeakBytesInFlight, 28, 8 * 28);
    }

    [Fact]
    public async Task SendAsync_FromFourThreadsAtOnce_EveryThreadsOrderIsKeptAndFramesStayWhole()
    {
        const int threads = 4;
        const int perThread = 10_000;
        var applier = new PerThreadOrderApplier(threads);
        await using var pair = await ChannelPair.StartAsync(applier);

        var workers = Enumerable.Range(0, threads).Select(t => Task.Run(async () =>
        {
            var sends = new ValueTask<int>[perThread];
            for (var i = 0; i < perThread; i++)
            {
                var payload = new byte[8 + (i % 200)];
                BinaryPrimitives.WriteInt32BigEndian(payload, t);
                BinaryPrimitives.WriteInt32BigEndian(payload.AsSpan(4), i);
                sends[i] = pair.Sender.SendAsync((byte)t, payload);
            }

            for (var i = 0; i < perThread; i++)
            {
                Assert.Equal(0, await sends[i]);
            }
        })).ToArray();
        await Task.WhenAll(workers);

        Assert.Equal(threads * perThread, pair.Receiver.LastApplied);
        Assert.Equal(0, applier.Disorders);
        Assert.All(applier.Next, n => Assert.Equal(perThread, n));
    }

    /// <summary>Checks that each thread's operations arrive in the order that thread sent them.</summary>
    private sealed class PerThreadOrderApplier(int threads) : IOperationApplier
    {
        public int[] Next { get; } = new int[threads];

        public int Disorders { get; private set; }

        public int Apply(in ReplicationOp op)
        {
            Span<byte> head = stackalloc byte[8];
            op.Payload.Slice(0, 8).CopyTo(head);
            var thread = BinaryPrimitives.ReadInt32BigEndian(head);
            var index = BinaryPrimitives.ReadInt32BigEndian(head[4..]);
            if (thread != op.Type || index != Next[thread] || op.Payload.Length != 8 + (index % 200))
            {
                Disorders++;
            }

            Next[thread] = index + 1;
            return 0;
        }
    }

    /// <summary>Copies header and payload (they are only valid during the call).</summary>
    private sealed class CopyingApplier(List<(long Sequence, byte[] Header, byte[] Payload)> received) : IOperationApplier
    {
        public int Apply(in ReplicationOp op)
        {
            received.Add((op.Sequence, op.Header.ToArray(), Payloads.Copy(op.Payload)));
            return 0;
        }
    }
}
