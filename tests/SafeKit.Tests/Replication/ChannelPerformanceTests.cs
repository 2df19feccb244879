using System.Diagnostics;
using SafeKit.Replication.Channel;

namespace SafeKit.Tests.Replication;

/// <summary>
/// Allocation gate and loopback throughput figures. Throughput is printed, never asserted (tests do
/// not assert wall-clock timings); the allocation bound is asserted.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA2012", Justification = "Pipelining keeps many sends in flight: their ValueTasks are stored, then each awaited exactly once.")]
[Collection(PerformanceCollection.Name)]
public sealed class ChannelPerformanceTests(ITestOutputHelper output)
{
    private const int Window = 256;

    [Fact]
    public async Task SendAsync_SteadyState_AllocatesNothingPerOpOnTheSenderThread()
    {
        await using var pair = await ChannelPair.StartAsync(new NullApplier());
        const int ops = 100_000;

        // One dedicated thread sends a window, then spins until each send completes and takes its
        // result: everything the send path allocates lands on this thread's counter.
        var allocated = await Task.Factory.StartNew(
            () =>
            {
                var payload = new byte[64];
                var window = new ValueTask<int>[Window];
                SendWindows(pair.Sender, payload, window, 20_000);
                var before = GC.GetAllocatedBytesForCurrentThread();
                SendWindows(pair.Sender, payload, window, ops);
                return GC.GetAllocatedBytesForCurrentThread() - before;
            },
            TestContext.Current.CancellationToken,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);

        output.WriteLine($"sender thread: {allocated} bytes allocated for {ops} ops of 64 bytes ({(double)allocated / ops:F3} bytes/op)");
        Assert.True(allocated <= ops / 10, $"{allocated} bytes for {ops} sends: the send path allocates per operation");
    }

    [Fact]
    public async Task SendAsync_SteadyStateAwaited_ProcessWideAllocationPerOpIsSmall()
    {
        await using var pair = await ChannelPair.StartAsync(new NullApplier());
        const int ops = 100_000;
        var payload = new byte[64];
        var window = new ValueTask<int>[Window];
        await SendWindowsAsync(pair.Sender, payload, window, 20_000);

        // Both ends run in this process: this counts the receiver, the socket loops and the
        // awaiting caller too (and whatever else the test host does meanwhile).
        var before = GC.GetTotalAllocatedBytes(precise: true);
        await SendWindowsAsync(pair.Sender, payload, window, ops);
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;

        output.WriteLine($"whole process (sender + receiver + sockets + awaits): {allocated} bytes for {ops} ops ({(double)allocated / ops:F2} bytes/op)");
        Assert.True(allocated / ops < 64, $"{allocated} bytes for {ops} ops");
    }

    [Fact]
    public async Task Throughput_4KiBAnd1MiBOpsOverLoopback_Printed()
    {
        await using var pair = await ChannelPair.StartAsync(new NullApplier());

        await MeasureAsync(pair.Sender, 64, 200_000, 4096, "64 B");
        await MeasureAsync(pair.Sender, 4096, 150_000, 4096, "4 KiB");
        await MeasureAsync(pair.Sender, ReplicationOp.MaxPayloadLength, 1500, 48, "1 MiB");
    }

    private async Task MeasureAsync(ReplicationSender sender, int size, int count, int window, string label)
    {
        var payload = new byte[size];
        var ring = new ValueTask<int>[window];
        await SendWindowsAsync(sender, payload, ring, Math.Min(count / 10, window * 4));
        var before = GC.GetTotalAllocatedBytes(precise: true);
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < count; i++)
        {
            var slot = i % window;
            if (i >= window)
            {
                await ring[slot];
            }

            ring[slot] = sender.SendAsync(1, payload);
        }

        for (var i = Math.Max(0, count - window); i < count; i++)
        {
            await ring[i % window];
        }

        var seconds = clock.Elapsed.TotalSeconds;
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        output.WriteLine(
            $"{label,6} ops: {count / seconds,12:N0} ops/s  {(double)count * size / seconds / (1024 * 1024),8:N0} MiB/s  ({count} ops in {seconds:F2} s, up to {window} in flight, {(double)allocated / count:F1} B/op allocated process-wide)");
    }

    private static void SendWindows(ReplicationSender sender, byte[] payload, ValueTask<int>[] window, int ops)
    {
        for (var sent = 0; sent < ops; sent += window.Length)
        {
            for (var i = 0; i < window.Length; i++)
            {
                window[i] = sender.SendAsync(1, payload);
            }

            for (var i = 0; i < window.Length; i++)
            {
                var send = window[i];
                var spin = default(SpinWait);
                while (!send.IsCompleted)
                {
                    spin.SpinOnce();
                }

                if (send.Result != 0)
                {
                    throw new InvalidOperationException("an op failed");
                }
            }
        }
    }

    private static async Task SendWindowsAsync(ReplicationSender sender, byte[] payload, ValueTask<int>[] window, int ops)
    {
        for (var sent = 0; sent < ops; sent += window.Length)
        {
            for (var i = 0; i < window.Length; i++)
            {
                window[i] = sender.SendAsync(1, payload);
            }

            for (var i = 0; i < window.Length; i++)
            {
                if (await window[i] != 0)
                {
                    Assert.Fail("an op failed");
                }
            }
        }
    }
}
