using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using SafeKit.Native.Fuse;
using SafeKit.Replication.Mirror;
using SafeKit.Replication.Resync;
using SafeKit.Tests.Infrastructure;
using SafeKit.Tests.Replication;

namespace SafeKit.Tests.Resync;

/// <summary>
/// A resync under a bandwidth cap, cut in the middle (the target's connection closed as a
/// crashed target's would be), then run again: the second run sends only what the first had not
/// delivered, and the copies end equal. And the cap's own arithmetic, on a clock the test moves.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class ResyncResumeTests
{
    private sealed class Clock : TimeProvider
    {
        public long Ticks { get; set; }

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Ticks;
    }

    [Fact]
    public void TheCap_LetsABurstThrough_ThenMakesTheWriterWaitForTheRate()
    {
        var clock = new Clock();
        var cap = new BandwidthCap(1_000_000, clock); // 1 MB/s: a burst of 100 KB.
        Assert.Equal(TimeSpan.Zero, cap.Take(100_000));
        Assert.Equal(TimeSpan.FromMilliseconds(50), cap.Take(50_000));
        clock.Ticks += TimeSpan.TicksPerSecond; // Refilled, up to the burst only.
        Assert.Equal(TimeSpan.Zero, cap.Take(100_000));
        Assert.Equal(TimeSpan.FromMilliseconds(100), cap.Take(100_000));
        Assert.Equal(TimeSpan.Zero, new BandwidthCap(0, clock).Take(long.MaxValue / 2));
    }

    [Fact]
    public async Task AResyncCutInTheMiddle_RunAgain_SendsOnlyWhatWasNotDelivered()
    {
        Tools.RequireFuse();
        var ct = TestContext.Current.CancellationToken;
        var root = Directory.CreateTempSubdirectory("sk-resync-resume-");
        File.SetUnixFileMode(root.FullName, (UnixFileMode)0x1ED);
        var data = Directory.CreateDirectory(Path.Join(root.FullName, "data")).FullName;
        var second = Directory.CreateDirectory(Path.Join(root.FullName, "second")).FullName;
        var mountpoint = Directory.CreateDirectory(Path.Join(root.FullName, "mnt")).FullName;
        const int Files = 64;
        const long FileBytes = 1 << 20;
        try
        {
            // The target holds the same names with other contents: every block differs.
            for (var i = 0; i < Files; i++)
            {
                var bytes = new byte[FileBytes];
                Random.Shared.NextBytes(bytes);
                File.WriteAllBytes(Path.Join(data, $"f{i:D2}"), bytes);
                File.WriteAllBytes(Path.Join(second, $"f{i:D2}"), new byte[FileBytes]);

                // An older copy (file times are coarse: two files written in the same tick share one).
                File.SetLastWriteTimeUtc(Path.Join(second, $"f{i:D2}"), DateTime.UtcNow.AddHours(-1));
            }

            var link = new ReplicationLink(null, MirrorMode.Sync, NullLogger.Instance);
            using var fs = PassthroughFileSystem.Open(data, link);
            using var mount = FuseMount.Mount(fs, mountpoint, "safekit-resume-test");
            using var listener = ResyncListener.Listen(new IPEndPoint(IPAddress.Loopback, 0), ChannelPair.Options("n2", "n1"));
            var endpoint = (IPEndPoint)listener.LocalEndPoint;

            // First run, capped at 32 MB/s (about 2 s for 64 MiB), cut once 24 MiB were sent.
            long firstSent;
            {
                var accepting = listener.AcceptAsync(ct);
                await using var resync = await DirectoryResync.ConnectAsync(fs, endpoint, ChannelPair.Options("n1", "n2"), ct, new BandwidthCap(32_000_000));
                var connection = await accepting;
                using var target = new ResyncTarget(second);
                var serving = target.ServeAsync(connection, ct);
                var precopy = Task.Run(() => resync.PrecopyAsync(null, ct), ct);
                for (var waited = 0; resync.Statistics.BytesSent < 24L << 20 && !precopy.IsCompleted && waited < 3000; waited++)
                {
                    await Task.Delay(10, ct);
                }

                Assert.False(precopy.IsCompleted, $"the capped resync ended before it could be cut ({precopy.Status}: {precopy.Exception?.GetBaseException()}; {resync.Statistics})");
                await connection.DisposeAsync();
                await Assert.ThrowsAnyAsync<Exception>(() => precopy);
                await serving.ContinueWith(_ => { }, TaskScheduler.Default);
                firstSent = resync.Statistics.BytesSent;
            }

            // Second run, no cap: what the target already holds is not sent again.
            {
                var accepting = listener.AcceptAsync(ct);
                await using var resync = await DirectoryResync.ConnectAsync(fs, endpoint, ChannelPair.Options("n1", "n2"), ct);
                await using var connection = await accepting;
                using var target = new ResyncTarget(second);
                var serving = target.ServeAsync(connection, ct);
                await resync.PrecopyAsync(null, ct);
                await resync.FreezeAndCatchUpAsync(ct);
                await resync.FinishAsync(null, ct);
                resync.Thaw();
                Assert.Equal(TreeSnapshot.Of(data), TreeSnapshot.Of(second));
                var total = Files * FileBytes;
                Assert.True(
                    resync.Statistics.BytesSent <= total - firstSent + (8L << 20),
                    $"the second run sent {resync.Statistics.BytesSent} bytes of {total} after the first had sent {firstSent}");
                await connection.DisposeAsync();
                await serving.ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }
        finally
        {
            FuseMount.DetachStale(mountpoint);
            root.Delete(recursive: true);
        }
    }
}
