using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using SafeKit.Native.Fuse;
using SafeKit.Native.Host;
using SafeKit.Replication.Channel;
using SafeKit.Replication.Mirror;
using SafeKit.Replication.Resync;
using SafeKit.Tests.Infrastructure;
using SafeKit.Tests.Replication;

namespace SafeKit.Tests.Resync;

/// <summary>
/// Failback with the application running: a node serving alone (its mount live, a writer busy in
/// it — an append log, a file it unlinked but keeps writing, files created, renamed, removed) brings
/// a stale copy up to date and starts mirroring to it without stopping the writer. Afterwards the
/// copy equals the original and every record the writer wrote is on it.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class OnlineResyncTests
{
    private static readonly string Writer = Path.Combine(AppContext.BaseDirectory, "Resync", "writer.py");

    [Theory]
    [InlineData(MirrorMode.Sync)]
    [InlineData(MirrorMode.Fsync)]
    public async Task StaleCopy_CaughtUpWhileTheWriterRuns_ThenMirrored(MirrorMode mode)
    {
        Tools.RequireFuse();
        var ct = TestContext.Current.CancellationToken;
        var root = Directory.CreateTempSubdirectory("sk-online-resync-");
        File.SetUnixFileMode(root.FullName, (UnixFileMode)0x1ED);
        var data = Directory.CreateDirectory(Path.Join(root.FullName, "data")).FullName;
        var second = Directory.CreateDirectory(Path.Join(root.FullName, "second")).FullName;
        var mountpoint = Directory.CreateDirectory(Path.Join(root.FullName, "mnt")).FullName;
        var stop = Path.Join(root.FullName, "stop");
        Process? writer = null;
        try
        {
            // A shared past: both copies hold the same tree; then this node ran alone and changed it.
            for (var i = 0; i < 40; i++)
            {
                Directory.CreateDirectory(Path.Join(data, "base", $"d{i % 5}"));
                File.WriteAllBytes(Path.Join(data, "base", $"d{i % 5}", $"file{i}.bin"), Enumerable.Range(0, 70_000 + i).Select(b => (byte)(b * i)).ToArray());
            }

            CommandRunner.RunChecked("cp", ["-a", data + "/.", second]);
            File.Delete(Path.Join(data, "base/d1/file1.bin"));
            File.WriteAllText(Path.Join(data, "base/d2/new.txt"), "made while alone");

            var link = new ReplicationLink(null, mode, NullLogger.Instance);
            using var fs = PassthroughFileSystem.Open(data, link);
            using var mount = FuseMount.Mount(fs, mountpoint, "safekit-online-resync-test");
            writer = Process.Start(new ProcessStartInfo("/usr/bin/python3", [Writer, mountpoint, stop]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            await Task.Delay(700, ct);

            // SECOND's side: a resync target whose handover starts the replication listener.
            using var applier = new SecondApplier(MirrorApplier.Open(second), NullLogger.Instance);
            using var resyncListener = ResyncListener.Listen(new IPEndPoint(IPAddress.Loopback, 0), ChannelPair.Options("n2", "n1"));
            var resyncPort = ((IPEndPoint)resyncListener.LocalEndPoint).Port;
            ReplicationListener? replication = null;
            Task<ReplicationReceiver>? receiving = null;
            var target = new ResyncTarget(second)
            {
                Handover = _ =>
                {
                    replication = ReplicationListener.Listen(new IPEndPoint(IPAddress.Loopback, 0), ChannelPair.Options("n2", "n1"));
                    receiving = replication.AcceptAsync(applier, ct);
                },
            };
            var accepting = resyncListener.AcceptAsync(ct);
            await using var resync = await DirectoryResync.ConnectAsync(fs, new IPEndPoint(IPAddress.Loopback, resyncPort), ChannelPair.Options("n1", "n2"), ct);
            await using var targetConnection = await accepting;
            var serving = target.ServeAsync(targetConnection, ct);

            await resync.PrecopyAsync(null, ct);
            await resync.FreezeAndCatchUpAsync(ct);
            await resync.FinishAsync([1], ct);
            var sender = await ReplicationSender.ConnectAsync(replication!.LocalEndPoint, ChannelPair.Options("n1", "n2"), cancellationToken: ct);
            await resync.AttachAsync(link, sender);
            resync.Thaw();
            var receiver = await receiving!;
            Assert.Equal(LinkState.Mirroring, link.State);

            // The writer goes on, now mirrored, until it wrote 500 records in all (however loaded
            // the machine); then it stops and everything settles.
            await Task.Delay(700, ct);
            LabInstance.WaitUntil(() => File.ReadAllText(Path.Join(data, "log.txt")).Count(static c => c == '\n') > 500, "the writer wrote 500 records", 60);
            await File.WriteAllTextAsync(stop, "", ct);
            Assert.True(writer.WaitForExit(20_000), "the writer did not stop");
            Assert.True(writer.ExitCode == 0, $"the writer failed: {writer.StandardError.ReadToEnd()}");
            var records = int.Parse(writer.StandardOutput.ReadToEnd().Trim(), System.Globalization.CultureInfo.InvariantCulture);
            mount.Dispose();
            LabInstance.WaitUntil(() => sender.BytesInFlight == 0, "every change acknowledged", 10);

            Assert.Null(applier.Failure);
            Assert.Equal(LinkState.Mirroring, link.State);
            Assert.True(resync.Passes >= 1);
            Assert.Equal(TreeSnapshot.Of(data, withTimes: false), TreeSnapshot.Of(second, withTimes: false));
            var lines = await File.ReadAllLinesAsync(Path.Join(second, "log.txt"), ct);
            Assert.Equal(Enumerable.Range(0, records).Select(i => $"record {i}"), lines);
            Assert.True(records > 500, $"only {records} records");

            await sender.DisposeAsync();
            await receiver.DisposeAsync();
            replication.Dispose();
            await targetConnection.DisposeAsync();
            await serving.WaitAsync(TimeSpan.FromSeconds(5), ct);
            target.Dispose();
        }
        finally
        {
            File.WriteAllText(stop, "");
            if (writer is { HasExited: false })
            {
                writer.Kill();
            }

            writer?.Dispose();
            FuseMount.DetachStale(mountpoint);
            root.Delete(recursive: true);
        }
    }
}
