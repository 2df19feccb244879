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
/// <c>safekit verify</c>'s engine on a real mirrored mount: while a writer keeps changing the files
/// (appends, in-place writes, creates, renames, removes), comparing PRIM's copy with SECOND's finds
/// nothing — what differs while writes are on their way is rechecked frozen — and differences
/// planted on SECOND's real files (one byte with size and time kept, permissions, a stray file, a
/// missing file) are each found, and only they. Neither copy is changed.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class VerifyTests
{
    private static readonly string Writer = Path.Combine(AppContext.BaseDirectory, "Resync", "writer.py");

    [Theory]
    [InlineData(MirrorMode.Sync)]
    [InlineData(MirrorMode.Fsync)]
    public async Task UnderAWritingLoad_NoFalseDifference_AndEveryPlantedOneIsFound(MirrorMode mode)
    {
        Tools.RequireFuse();
        var ct = TestContext.Current.CancellationToken;
        var root = Directory.CreateTempSubdirectory("sk-verify-");
        File.SetUnixFileMode(root.FullName, (UnixFileMode)0x1ED);
        var data = Directory.CreateDirectory(Path.Join(root.FullName, "data")).FullName;
        var second = Directory.CreateDirectory(Path.Join(root.FullName, "second")).FullName;
        var mountpoint = Directory.CreateDirectory(Path.Join(root.FullName, "mnt")).FullName;
        var stop = Path.Join(root.FullName, "stop");
        Process? writer = null;
        try
        {
            for (var i = 0; i < 40; i++)
            {
                Directory.CreateDirectory(Path.Join(data, "base", $"d{i % 5}"));
                File.WriteAllBytes(Path.Join(data, "base", $"d{i % 5}", $"file{i}.bin"), Enumerable.Range(0, 70_000 + (i * 1000)).Select(b => (byte)(b * i)).ToArray());
            }

            CommandRunner.RunChecked("cp", ["-a", data + "/.", second]);

            // Mirroring: SECOND's applier behind its replication listener, its copy served compare-only.
            using var applier = new SecondApplier(MirrorApplier.Open(second), NullLogger.Instance);
            using var replication = ReplicationListener.Listen(new IPEndPoint(IPAddress.Loopback, 0), ChannelPair.Options("n2", "n1"));
            var receiving = replication.AcceptAsync(applier, ct);
            var sender = await ReplicationSender.ConnectAsync(replication.LocalEndPoint, ChannelPair.Options("n1", "n2"), cancellationToken: ct);
            await using var receiver = await receiving;
            var link = new ReplicationLink(sender, mode, NullLogger.Instance);
            using var verifyListener = ResyncListener.Listen(new IPEndPoint(IPAddress.Loopback, 0), ChannelPair.Options("n2", "n1"));
            var compareOnly = Task.Run(
                async () =>
                {
                    while (true)
                    {
                        await using var connection = await verifyListener.AcceptAsync(ct);
                        using var target = new ResyncTarget(second) { CompareOnly = true };
                        await target.ServeAsync(connection, ct);
                    }
                },
                ct);

            using var fs = PassthroughFileSystem.Open(data, link);
            using var mount = FuseMount.Mount(fs, mountpoint, "safekit-verify-test");
            writer = Process.Start(new ProcessStartInfo("/usr/bin/python3", [Writer, mountpoint, stop]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            await Task.Delay(700, ct);

            async Task<VerifyReport> VerifyAsync()
            {
                await using var verify = await DirectoryVerify.ConnectAsync(fs, link, (IPEndPoint)verifyListener.LocalEndPoint, ChannelPair.Options("n1", "n2"), ct);
                return await verify.RunAsync(ct);
            }

            var clean = await VerifyAsync();
            Assert.Empty(clean.Differences);
            Assert.Empty(clean.Unconfirmed);
            Assert.True(clean.Files >= 40, $"{clean.Files} files compared");
            Assert.True(clean.Bytes >= 40 * 70_000, $"{clean.Bytes} bytes compared");

            // Damage behind the mirror's back on SECOND's real files.
            var damaged = Path.Join(second, "base/d3/file8.bin");
            var time = File.GetLastWriteTimeUtc(damaged);
            using (var file = File.OpenHandle(damaged, FileMode.Open, FileAccess.ReadWrite))
            {
                RandomAccess.Write(file, new byte[] { 0xFF, 0xFE }, 70_000);
            }

            File.SetLastWriteTimeUtc(damaged, time);
            File.SetUnixFileMode(Path.Join(second, "base/d1/file6.bin"), (UnixFileMode)0x180);
            File.WriteAllText(Path.Join(second, "base/d2/stray.txt"), "not on PRIM");
            File.Delete(Path.Join(second, "base/d4/file9.bin"));
            var before = TreeSnapshot.Of(second, withTimes: false);

            var planted = await VerifyAsync();
            Assert.Empty(planted.Unconfirmed);
            var found = planted.Differences.ToDictionary(d => d.Path, d => d.What);
            Assert.Equal(["base/d1/file6.bin", "base/d2/stray.txt", "base/d3/file8.bin", "base/d4/file9.bin"], found.Keys.Order(StringComparer.Ordinal));
            Assert.StartsWith("content: 1 of 2 blocks", found["base/d3/file8.bin"], StringComparison.Ordinal);
            Assert.Contains("offset 65536", found["base/d3/file8.bin"], StringComparison.Ordinal);
            Assert.Equal("mode 600 in the copy, 644 here", found["base/d1/file6.bin"]);
            Assert.Equal("only in the copy", found["base/d2/stray.txt"]);
            Assert.Equal("missing from the copy", found["base/d4/file9.bin"]);

            await File.WriteAllTextAsync(stop, "", ct);
            Assert.True(writer.WaitForExit(20_000), "the writer did not stop");
            Assert.True(writer.ExitCode == 0, $"the writer failed: {writer.StandardError.ReadToEnd()}");
            mount.Dispose();
            LabInstance.WaitUntil(() => link.BytesInFlight == 0, "every change acknowledged", 10);
            Assert.Null(applier.Failure);
            Assert.Equal(LinkState.Mirroring, link.State);

            // A verify changes nothing: the planted damage is still there (only the writer's files moved on).
            var after = TreeSnapshot.Of(second, withTimes: false);
            Assert.Equal(before.Where(l => l.Contains("base/", StringComparison.Ordinal)), after.Where(l => l.Contains("base/", StringComparison.Ordinal)));
            await sender.DisposeAsync();
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
