using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using SafeKit.Native.Fuse;
using SafeKit.Native.Host;
using SafeKit.Replication.Channel;
using SafeKit.Replication.Mirror;
using SafeKit.Tests.Infrastructure;

namespace SafeKit.Tests.Mirror;

/// <summary>
/// PRIM's mount replicated to SECOND over the real replication channel (TCP on loopback, both ends
/// in this process): identical copies in both modes; every write acknowledged to the application
/// is already on SECOND (sync); SECOND lost or failing sends PRIM ALONE without an error or a
/// stall for the application.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class MirrorLinkTests
{
    private static readonly string Workload = Path.Combine(AppContext.BaseDirectory, "Mirror", "fs_workload.py");
    private static readonly byte[] Key = Enumerable.Range(0, 32).Select(i => (byte)(i * 7)).ToArray();

    private sealed class Pair : IAsyncDisposable
    {
        private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("sk-link-");
        private readonly ReplicationListener _listener;
        private readonly PassthroughFileSystem _fs;
        private FuseMount? _mount;

        private readonly bool _smallDisk;

        private Pair(MirrorMode mode, TimeSpan silence, int dataMiB = 0)
        {
            File.SetUnixFileMode(_root.FullName, (UnixFileMode)0x1ED);
            Data = Directory.CreateDirectory(Path.Combine(_root.FullName, "data")).FullName;
            if (dataMiB > 0)
            {
                // PRIM's own disk, small enough to fill.
                CommandRunner.RunChecked("mount", ["-t", "tmpfs", "-o", $"size={dataMiB}m", "sk-link-data", Data]);
                _smallDisk = true;
            }

            Second = Directory.CreateDirectory(Path.Combine(_root.FullName, "second")).FullName;
            Mountpoint = Directory.CreateDirectory(Path.Combine(_root.FullName, "mnt")).FullName;
            Applier = new SecondApplier(MirrorApplier.Open(Second), Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
            Holding = new SafeKit.Tests.Replication.HoldingApplier(Applier);
            _listener = ReplicationListener.Listen(new IPEndPoint(IPAddress.Loopback, 0), Options("m2", "m1", silence));
            var accepted = _listener.AcceptAsync(Holding);
            Sender = ReplicationSender.ConnectAsync(_listener.LocalEndPoint, Options("m1", "m2", silence)).GetAwaiter().GetResult();
            Receiver = accepted.GetAwaiter().GetResult();
            Link = new ReplicationLink(Sender, mode, NullLogger.Instance);
            _fs = PassthroughFileSystem.Open(Data, Link);
            _mount = FuseMount.Mount(_fs, Mountpoint, "safekit-link-test");
        }

        public string Data { get; }

        public string Second { get; }

        public string Mountpoint { get; }

        public SecondApplier Applier { get; }

        /// <summary>Holds SECOND's stream on demand (open unless held).</summary>
        public SafeKit.Tests.Replication.HoldingApplier Holding { get; }

        public ReplicationSender Sender { get; }

        public ReplicationReceiver Receiver { get; }

        public ReplicationLink Link { get; }

        public static Pair Start(MirrorMode mode, TimeSpan? silence = null) => new(mode, silence ?? TimeSpan.FromSeconds(2));

        /// <summary>A pair whose PRIM keeps its real files on a file system of <paramref name="dataMiB"/> MiB.</summary>
        public static Pair WithSmallPrimDisk(MirrorMode mode, int dataMiB) => new(mode, TimeSpan.FromSeconds(2), dataMiB);

        private static ReplicationChannelOptions Options(string local, string peer, TimeSpan silence) =>
            new() { ClusterName = "links", LocalNode = local, PeerNode = peer, Key = Key, SilenceTimeout = silence };

        public void Unmount()
        {
            _mount?.Dispose();
            _mount = null;
        }

        public async ValueTask DisposeAsync()
        {
            Unmount();
            _fs.Dispose();
            await Sender.DisposeAsync();
            await Receiver.DisposeAsync();
            _listener.Dispose();
            Holding.Dispose();
            Applier.Dispose();
            if (_smallDisk)
            {
                CommandRunner.Run("umount", ["-l", Data]);
            }

            _root.Delete(recursive: true);
        }
    }

    private static string Python(params string[] arguments)
    {
        var result = CommandRunner.Run("/usr/bin/python3", arguments, timeout: TimeSpan.FromMinutes(3));
        Assert.True(result.Succeeded, $"python3 {string.Join(' ', arguments)}: {result.Output}{result.Error}");
        return result.Output;
    }

    [Theory]
    [InlineData(MirrorMode.Sync)]
    [InlineData(MirrorMode.Fsync)]
    public async Task Workload_OverTheChannel_LeavesSecondIdentical(MirrorMode mode)
    {
        Tools.RequireFuse();
        await using var pair = Pair.Start(mode);
        Python(Workload, pair.Mountpoint);
        pair.Unmount();
        // In fsync mode the last changes may still be on their way: wait until all are acknowledged.
        LabInstance.WaitUntil(() => pair.Sender.BytesInFlight == 0, "every change acknowledged", 10);
        Assert.Null(pair.Applier.Failure);
        Assert.Equal(LinkState.Mirroring, pair.Link.State);
        Assert.Equal(Python(Workload, pair.Data, "dump"), Python(Workload, pair.Second, "dump"));
        Assert.True(pair.Applier.Applied > 1000, $"{pair.Applier.Applied} changes applied");
    }

    [Fact]
    public async Task ClosedFile_CarriesItsModificationTimeToSecond_SoAResyncSeesItUnchanged()
    {
        Tools.RequireFuse();
        await using var pair = Pair.Start(MirrorMode.Sync);
        var path = Path.Combine(pair.Mountpoint, "timed.txt");
        await File.WriteAllTextAsync(path, "first", TestContext.Current.CancellationToken);
        await Task.Delay(20, TestContext.Current.CancellationToken);
        await File.AppendAllTextAsync(path, " second", TestContext.Current.CancellationToken);
        _ = await File.ReadAllTextAsync(path, TestContext.Current.CancellationToken); // A read-only handle changes nothing.

        LabInstance.WaitUntil(() => pair.Applier.Applied > 0 && pair.Sender.BytesInFlight == 0, "every change acknowledged", 10);
        Assert.True(SafeKit.Native.Files.FileTree.TryLstat(Path.Combine(pair.Data, "timed.txt"), out var prim));
        Assert.True(SafeKit.Native.Files.FileTree.TryLstat(Path.Combine(pair.Second, "timed.txt"), out var second));
        Assert.Equal(prim.Size, second.Size);
        Assert.Equal(prim.MtimeNs, second.MtimeNs);
    }

    [Fact]
    public async Task LargeWrites_SpanningManyChannelBlocks_LandWholeOnSecond()
    {
        Tools.RequireFuse();
        await using var pair = Pair.Start(MirrorMode.Sync);
        var data = new byte[(3 << 20) + 12345];
        Random.Shared.NextBytes(data);
        var path = Path.Combine(pair.Mountpoint, "large.bin");
        await using (var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0))
        {
            // 1 MiB writes at an unaligned offset: each arrives on SECOND in many 64 KiB blocks.
            file.Seek(777, SeekOrigin.Begin);
            for (var done = 0; done < data.Length; done += 1 << 20)
            {
                await file.WriteAsync(data.AsMemory(done, Math.Min(1 << 20, data.Length - done)), TestContext.Current.CancellationToken);
            }
        }

        var second = await File.ReadAllBytesAsync(Path.Combine(pair.Second, "large.bin"), TestContext.Current.CancellationToken);
        Assert.Equal(777 + data.Length, second.Length);
        Assert.True(second.AsSpan(777).SequenceEqual(data), "SECOND's copy differs");
        Assert.Equal(LinkState.Mirroring, pair.Link.State);
    }

    [Fact]
    public async Task WriteSentAheadThatFailsOnPrim_TheApplicationGetsTheError_AndSecondIsMarkedBehind()
    {
        Tools.RequireFuse();
        await using var pair = Pair.WithSmallPrimDisk(MirrorMode.Sync, 2);
        var wentAlone = new List<string>();
        pair.Link.WentAlone += reason => wentAlone.Add(reason);
        var path = Path.Combine(pair.Mountpoint, "fill.bin");
        var error = await Assert.ThrowsAsync<IOException>(async () =>
        {
            await using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0);
            var chunk = new byte[1 << 20];
            for (var i = 0; i < 4; i++)
            {
                await file.WriteAsync(chunk, TestContext.Current.CancellationToken);
            }
        });
        Assert.Contains("space", error.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(LinkState.Alone, pair.Link.State);
        Assert.Contains("failed on PRIM", Assert.Single(wentAlone), StringComparison.Ordinal);
    }

    [Fact]
    public async Task OrderlyClose_WaitsForEveryChange_AndDoesNotGoAlone()
    {
        Tools.RequireFuse();
        await using var pair = Pair.Start(MirrorMode.Fsync);
        var wentAlone = 0;
        pair.Link.WentAlone += _ => Interlocked.Increment(ref wentAlone);
        // fsync mode: these return before SECOND applied them.
        var file = Path.Combine(pair.Mountpoint, "lines.txt");
        for (var i = 0; i < 500; i++)
        {
            await File.AppendAllTextAsync(file, $"line {i}\n", TestContext.Current.CancellationToken);
        }

        pair.Unmount();
        Assert.True(await pair.Link.CloseInOrderAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(0, wentAlone);
        Assert.Equal(LinkState.Alone, pair.Link.State);
        Assert.Contains("in order", pair.Link.AloneReason, StringComparison.Ordinal);
        Assert.Equal(File.ReadAllText(Path.Combine(pair.Data, "lines.txt")), File.ReadAllText(Path.Combine(pair.Second, "lines.txt")));
    }

    [Fact]
    public async Task OrderlyClose_WithSecondGone_GoesAlone()
    {
        Tools.RequireFuse();
        await using var pair = Pair.Start(MirrorMode.Sync);
        var wentAlone = 0;
        pair.Link.WentAlone += _ => Interlocked.Increment(ref wentAlone);
        await File.WriteAllTextAsync(Path.Combine(pair.Mountpoint, "a.txt"), "a", TestContext.Current.CancellationToken);
        pair.Unmount();
        await pair.Receiver.DisposeAsync();
        LabInstance.WaitUntil(() => pair.Sender.Lost.IsCompleted, "PRIM notices SECOND is gone", 10);
        Assert.False(await pair.Link.CloseInOrderAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(1, wentAlone);
    }

    [Fact]
    public async Task Sync_EveryRecordAcknowledgedToTheApplication_IsAlreadyOnSecond()
    {
        Tools.RequireFuse();
        await using var pair = Pair.Start(MirrorMode.Sync);
        var log = Path.Combine(pair.Mountpoint, "journal.log");
        using var writer = Process.Start(new ProcessStartInfo("/usr/bin/python3", ["-u", "-c", $$"""
            import os
            fd = os.open("{{log}}", os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
            for i in range(3000):
                os.write(fd, b"record %06d\n" % i)
                if i % 10 == 0:
                    os.fsync(fd)
                print(i, flush=True)
            os.close(fd)
            """]) { RedirectStandardOutput = true })!;
        var acknowledged = -1;
        var checks = 0;
        string? line;
        while ((line = await writer.StandardOutput.ReadLineAsync(TestContext.Current.CancellationToken)) is not null)
        {
            acknowledged = int.Parse(line, System.Globalization.CultureInfo.InvariantCulture);
            if (acknowledged % 500 == 250)
            {
                // Right now: every record the application was told is written is in SECOND's copy,
                // in order. The writer has gone on meanwhile: a later record may be half-applied as
                // this reads (a write that crosses a page boundary shows its first page first).
                var second = File.ReadAllText(Path.Combine(pair.Second, "journal.log"));
                Assert.True(second.Length / 14 >= acknowledged + 1, $"SECOND has {second.Length / 14} whole records, {acknowledged + 1} acknowledged");
                Assert.Equal(string.Concat(Enumerable.Range(0, acknowledged + 1).Select(i => $"record {i:D6}\n")), second[..((acknowledged + 1) * 14)]);
                checks++;
            }
        }

        await writer.WaitForExitAsync(TestContext.Current.CancellationToken);
        Assert.Equal(0, writer.ExitCode);
        Assert.Equal(2999, acknowledged);
        Assert.Equal(6, checks);
        Assert.Equal(File.ReadAllText(Path.Combine(pair.Data, "journal.log")), File.ReadAllText(Path.Combine(pair.Second, "journal.log")));
    }

    [Fact]
    public async Task LargeWrites_AreOnTheirWayToSecondsDisk_BeforeAnyFsync_SmallOnesWaitForIt()
    {
        Tools.RequireFuse();
        await using var pair = Pair.Start(MirrorMode.Sync);
        var large = new byte[MirrorApplier.EarlyWritebackBytes * 8];
        Random.Shared.NextBytes(large);
        using (var stream = new FileStream(Path.Combine(pair.Mountpoint, "large.bin"), FileMode.CreateNew, FileAccess.Write, FileShare.Read, 1))
        {
            stream.Write(large);
        }

        using (var small = new FileStream(Path.Combine(pair.Mountpoint, "small.bin"), FileMode.Create, FileAccess.Write, FileShare.Read, 1))
        {
            for (var i = 0; i < 64; i++)
            {
                small.Write(large.AsSpan(i * 4096, 4096));
            }
        }

        // Sync mode: the writes returned, so SECOND applied them. Nothing asked for an fsync, and
        // this machine's dirty-page thresholds are gigabytes: only SECOND's own request writes back.
        var second = PageCacheState.Of(Path.Combine(pair.Second, "large.bin"));
        var pages = (ulong)large.Length / 4096;
        Assert.True(second.Dirty < pages / 4, $"SECOND's copy of a 1 MiB file: {second.Dirty} of {pages} pages still dirty, {second.Writeback} under writeback");
        var smallSecond = PageCacheState.Of(Path.Combine(pair.Second, "small.bin"));
        TestContext.Current.TestOutputHelper?.WriteLine($"large: cached {second.Cached} dirty {second.Dirty} writeback {second.Writeback}; small: cached {smallSecond.Cached} dirty {smallSecond.Dirty}");
        Assert.True(smallSecond.Dirty > 0, "4 KiB writes are left to the fsync (the kernel's writeback)");
        Assert.Equal(large, await File.ReadAllBytesAsync(Path.Combine(pair.Second, "large.bin"), TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task WritesWaitingForSecond_DoNotHoldLibfusesWorkers_OtherRequestsAreServed()
    {
        Tools.RequireFuse();
        var writers = (int)FuseMount.MaxThreads + 4;
        await using var pair = Pair.Start(MirrorMode.Sync, TimeSpan.FromSeconds(30));
        File.WriteAllText(Path.Combine(pair.Mountpoint, "served.txt"), "still served");
        var streams = Enumerable.Range(0, writers).Select(i => new FileStream(Path.Combine(pair.Mountpoint, $"w{i}.bin"), FileMode.Create, FileAccess.Write, FileShare.Read, 1)).ToArray();
        try
        {
            // SECOND stops applying: every write now waits for an acknowledgement that does not come.
            pair.Holding.Hold();
            var writes = streams.Select(s => Task.Factory.StartNew(() => s.Write(new byte[4096]), TestContext.Current.CancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();

            // As many writes waiting as libfuse has workers: a worker blocked in each would leave none.
            LabInstance.WaitUntil(() => pair.Sender.BytesInFlight >= FuseMount.MaxThreads * 4096, "a write per libfuse worker waiting for SECOND", 10);
            Assert.All(writes, w => Assert.False(w.IsCompleted));

            // A lookup and an open need a worker (neither is cached): they are answered meanwhile.
            var served = Task.Run(() => (File.Exists(Path.Combine(pair.Mountpoint, "never-there")), File.ReadAllText(Path.Combine(pair.Mountpoint, "served.txt"))), TestContext.Current.CancellationToken);
            var (exists, text) = await served.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
            Assert.False(exists);
            Assert.Equal("still served", text);
            Assert.All(writes, w => Assert.False(w.IsCompleted));

            pair.Holding.Release();
            await Task.WhenAll(writes).WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
            Assert.Equal(LinkState.Mirroring, pair.Link.State);
            Assert.All(Enumerable.Range(0, writers), i => Assert.Equal(4096, new FileInfo(Path.Combine(pair.Second, $"w{i}.bin")).Length));
        }
        finally
        {
            pair.Holding.Release();
            foreach (var stream in streams)
            {
                stream.Dispose();
            }
        }
    }

    [Fact]
    public async Task SecondLost_PrimGoesAlone_TheApplicationNeverSeesAnError()
    {
        Tools.RequireFuse();
        await using var pair = Pair.Start(MirrorMode.Sync, TimeSpan.FromSeconds(2));
        var file = Path.Combine(pair.Mountpoint, "data.bin");
        var written = 0;
        var writer = Task.Run(() =>
        {
            using var stream = new FileStream(file, FileMode.Create, FileAccess.Write, FileShare.Read, 1);
            for (var i = 0; i < 400; i++)
            {
                stream.Write(new byte[4096]);
                stream.Flush(flushToDisk: i % 50 == 0);
                Interlocked.Increment(ref written);
                Thread.Sleep(2);
            }
        }, TestContext.Current.CancellationToken);
        LabInstance.WaitUntil(() => Volatile.Read(ref written) > 100, "the writer is under way", 10);
        Assert.Equal(LinkState.Mirroring, pair.Link.State);
        Assert.True(new FileInfo(Path.Combine(pair.Second, "data.bin")).Length > 0, "SECOND follows before it is lost");
        await pair.Receiver.DisposeAsync(); // SECOND is gone
        await writer.WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);

        Assert.Equal(LinkState.Alone, pair.Link.State);
        Assert.False(string.IsNullOrEmpty(pair.Link.AloneReason));
        Assert.True(pair.Link.ChangesSinceAlone > 0, "the changes SECOND missed are counted");
        Assert.Equal(400 * 4096, new FileInfo(Path.Combine(pair.Data, "data.bin")).Length);
        Assert.True(new FileInfo(Path.Combine(pair.Second, "data.bin")).Length < 400 * 4096);
    }

    [Fact]
    public async Task SecondFailingToApply_IsReportedLoudly_AndPrimKeepsEverything()
    {
        Tools.RequireFuse();
        await using var pair = Pair.Start(MirrorMode.Sync);
        Directory.CreateDirectory(Path.Combine(pair.Mountpoint, "sub"));
        // SECOND's disk "loses" the directory behind the applier's back: the next change there fails.
        Directory.Delete(Path.Combine(pair.Second, "sub"));
        File.WriteAllText(Path.Combine(pair.Mountpoint, "sub", "file.txt"), "kept on PRIM");
        File.WriteAllText(Path.Combine(pair.Mountpoint, "after.txt"), "also kept");

        Assert.Equal(LinkState.Alone, pair.Link.State);
        Assert.Contains("SECOND could not apply", pair.Link.AloneReason, StringComparison.Ordinal);
        Assert.NotNull(pair.Applier.Failure);
        Assert.Equal("kept on PRIM", File.ReadAllText(Path.Combine(pair.Data, "sub", "file.txt")));
        Assert.Equal("also kept", File.ReadAllText(Path.Combine(pair.Data, "after.txt")));
    }

    [Fact]
    public async Task ACreateMeetingANameSecondAlreadyHolds_SendsPrimAlone_InsteadOfWritingIntoThatFile()
    {
        Tools.RequireFuse();
        await using var pair = Pair.Start(MirrorMode.Sync);
        // SECOND's copy diverged behind the applier's back: it holds a name PRIM's copy does not.
        var stray = Path.Combine(pair.Second, "new.txt");
        File.WriteAllText(stray, "a file PRIM never made, longer than what PRIM writes");
        File.WriteAllText(Path.Combine(pair.Mountpoint, "new.txt"), "PRIM's file");
        File.WriteAllText(Path.Combine(pair.Mountpoint, "after.txt"), "also kept");

        Assert.Equal(LinkState.Alone, pair.Link.State);
        Assert.Contains("could not apply a Create", pair.Link.AloneReason, StringComparison.Ordinal);
        Assert.Contains("errno 17", pair.Link.AloneReason, StringComparison.Ordinal);
        Assert.Equal("a file PRIM never made, longer than what PRIM writes", File.ReadAllText(stray));
        Assert.Equal("PRIM's file", File.ReadAllText(Path.Combine(pair.Data, "new.txt")));
        Assert.Equal("also kept", File.ReadAllText(Path.Combine(pair.Data, "after.txt")));
    }
}
