using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using SafeKit.Native.Fuse;
using SafeKit.Native.Host;
using SafeKit.Replication.Channel;
using SafeKit.Replication.Mirror;

namespace SafeKit.Perf;

/// <summary>
/// The mirror's write path under fio, against its peers in the same run: a plain directory,
/// libfuse's own passthrough_ll (the fastest FUSE pass-through, no replication; compiled here from
/// libfuse3-dev's examples), our pass-through without a SECOND, and our mount replicating to a
/// SECOND over TCP (loopback, SECOND in this process) in sync and in fsync mode, SECOND's copy on the
/// same disk or on a device of its own. Jobs: sequential
/// 1 MiB writes (MB/s) and 4 KiB random writes each followed by fsync (IOPS, p99 latency).
/// </summary>
internal static class MirrorBenchmark
{
    private const string Example = "/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c";

    public static void Run(string results, int seconds, int sizeMiB, string? only = null)
    {
        // --only keeps the named configurations (e.g. "passthrough_ll,sync"): a quicker loop while tuning.
        var wanted = only?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var root = Directory.CreateTempSubdirectory("sk-mirror-bench-");
        var figures = new Dictionary<string, FioFigures>(StringComparer.Ordinal);
        void Run(string name, Func<string, FioFigures> with)
        {
            if (wanted is null || wanted.Contains(name, StringComparer.Ordinal))
            {
                figures[name] = with(name);
            }
        }

        FioFigures Measure(string directory) => MirrorBenchmark.Measure(directory, seconds, sizeMiB);
        try
        {
            File.SetUnixFileMode(root.FullName, (UnixFileMode)0x1ED);
            var passthrough = Path.Combine(root.FullName, "passthrough_ll");
            CommandRunner.RunChecked("gcc", ["-O2", "-o", passthrough, Example, "-I/usr/include/fuse3", "-lfuse3", "-lpthread"]);
            Run("plain", name => Measure(Directory.CreateDirectory(Path.Combine(root.FullName, name)).FullName));
            Run("passthrough_ll", _ => WithPassthroughLl(root.FullName, passthrough, Measure));
            Run("alone", name => WithMount(root.FullName, name, null, Measure));
            Run("sync", name => WithMount(root.FullName, name, MirrorMode.Sync, Measure));
            Run("fsync", name => WithMount(root.FullName, name, MirrorMode.Fsync, Measure));

            // Two servers have two disks. Here SECOND's copy shares PRIM's one disk (above: every
            // byte written back twice by one device) — or sits on a device of its own, a RAM-backed
            // file system standing in for the second server's disk (its fsync costs nothing, so
            // this bound is the optimistic one).
            var ownDisk = Directory.CreateDirectory(Path.Combine(root.FullName, "second-disk")).FullName;
            CommandRunner.RunChecked("mount", ["-t", "tmpfs", "-o", $"size={(2 * sizeMiB) + 256}m", "sk-bench-second", ownDisk]);
            try
            {
                Run("sync_own_disk", name => WithMount(root.FullName, name, MirrorMode.Sync, Measure, ownDisk));
                Run("fsync_own_disk", name => WithMount(root.FullName, name, MirrorMode.Fsync, Measure, ownDisk));
            }
            finally
            {
                CommandRunner.Run("umount", ["-l", ownDisk]);
            }

            if (!figures.TryGetValue("passthrough_ll", out var baseline))
            {
                foreach (var (name, value) in figures)
                {
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"sk-bench mirror {name}: {value.Mbps:F0} MB/s, overwriting {value.OverwriteMbps:F0} MB/s, {value.Iops:F0} IOPS, p99 {value.P99Us:F0} us"));
                }

                return;
            }

            var versus = figures.Keys.Where(k => k is not ("plain" or "passthrough_ll" or "alone")).ToArray();
            Results.Report(results, "mirror-fio-seq1m", [.. figures.Select(f => ($"{f.Key}_mbps", Math.Round(f.Value.Mbps))),
                .. versus.Select(k => ($"{k}_vs_passthrough_ll", Math.Round(figures[k].Mbps / baseline.Mbps, 3)))], figures.ToDictionary(f => f.Key, f => f.Value.Mbps));
            Results.Report(results, "mirror-fio-seq1m-overwrite", [.. figures.Select(f => ($"{f.Key}_mbps", Math.Round(f.Value.OverwriteMbps))),
                .. versus.Select(k => ($"{k}_vs_passthrough_ll", Math.Round(figures[k].OverwriteMbps / baseline.OverwriteMbps, 3)))], figures.ToDictionary(f => f.Key, f => f.Value.OverwriteMbps));
            Results.Report(results, "mirror-fio-randwrite4k-fsync", [.. figures.Select(f => ($"{f.Key}_iops", Math.Round(f.Value.Iops))),
                .. figures.Select(f => ($"{f.Key}_p99_us", Math.Round(f.Value.P99Us))),
                .. versus.Select(k => ($"{k}_vs_passthrough_ll", Math.Round(figures[k].Iops / baseline.Iops, 3)))], figures.ToDictionary(f => f.Key, f => new { f.Value.Iops, f.Value.P99Us }));
        }
        finally
        {
            root.Delete(recursive: true);
        }
    }

    private static FioFigures Measure(string directory, int seconds, int sizeMiB)
    {
        string[] sequentialJob = ["--rw=write", "--bs=1M", $"--size={sizeMiB}M", "--end_fsync=1"];
        var mbps = Bandwidth(Fio(directory, "seq", sequentialJob));

        // The same job again over the file it left, every page of it still cached on both sides:
        // what the write path costs without the page allocations a new file needs. On this VM
        // those dominate and vary: freed RAM goes back to the host (free page reporting), so a
        // new page costs a host fault (dd into a new file: about 1 GB/s; into freed pages just
        // reused: 8-9 GB/s), and a mirror allocates one copy more than a pass-through.
        var overwriteMbps = Bandwidth(Fio(directory, "seq", sequentialJob));
        var random = Fio(directory, "rand", ["--rw=randwrite", "--bs=4k", "--size=64M", "--fsync=1", "--time_based", $"--runtime={seconds}"]);
        var job = random.GetProperty("jobs")[0];
        var iops = job.GetProperty("write").GetProperty("iops").GetDouble();
        // Each write is followed by an fsync: the latency that matters is the pair; fio reports the fsync's.
        var p99 = job.GetProperty("sync").GetProperty("lat_ns").GetProperty("percentile").GetProperty("99.000000").GetDouble() / 1000;
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"sk-bench mirror {directory}: 4 KiB write {job.GetProperty("write").GetProperty("clat_ns").GetProperty("mean").GetDouble() / 1000:F0} us, fsync {job.GetProperty("sync").GetProperty("lat_ns").GetProperty("mean").GetDouble() / 1000:F0} us (means)"));
        foreach (var file in Directory.GetFiles(directory))
        {
            File.Delete(file);
        }

        return new FioFigures(mbps, overwriteMbps, iops, p99);
    }

    private static double Bandwidth(JsonElement fio) => fio.GetProperty("jobs")[0].GetProperty("write").GetProperty("bw_bytes").GetDouble() / 1e6;

    private static JsonElement Fio(string directory, string name, string[] job)
    {
        // Each job starts with nothing left to write back from the one before.
        CommandRunner.Run("sync", []);
        var result = CommandRunner.Run("fio", [$"--name={name}", $"--directory={directory}", "--ioengine=psync", "--output-format=json", .. job], timeout: TimeSpan.FromMinutes(5));
        if (!result.Succeeded)
        {
            throw new InvalidOperationException($"fio {name} in {directory}: {result.Error}");
        }

        return JsonDocument.Parse(result.Output[result.Output.IndexOf('{', StringComparison.Ordinal)..]).RootElement;
    }

    private static FioFigures WithPassthroughLl(string root, string binary, Func<string, FioFigures> measure)
    {
        var data = Directory.CreateDirectory(Path.Combine(root, "pll-data")).FullName;
        var mountpoint = Directory.CreateDirectory(Path.Combine(root, "pll-mnt")).FullName;
        using var process = Process.Start(binary, ["-f", "-o", $"source={data}", mountpoint])!;
        try
        {
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (!File.ReadAllLines("/proc/self/mountinfo").Any(l => l.Split(' ')[4] == mountpoint))
            {
                if (DateTime.UtcNow > deadline || process.HasExited)
                {
                    throw new InvalidOperationException("passthrough_ll did not mount");
                }

                Thread.Sleep(50);
            }

            return measure(mountpoint);
        }
        finally
        {
            FuseMount.DetachStale(mountpoint);
            process.WaitForExit(5000);
        }
    }

    private static FioFigures WithMount(string root, string name, MirrorMode? mode, Func<string, FioFigures> measure, string? secondRoot = null)
    {
        var data = Directory.CreateDirectory(Path.Combine(root, name + "-data")).FullName;
        var mountpoint = Directory.CreateDirectory(Path.Combine(root, name + "-mnt")).FullName;
        if (mode is null)
        {
            using var alone = PassthroughFileSystem.Open(data);
            using var mounted = FuseMount.Mount(alone, mountpoint, "safekit-bench");
            return measure(mountpoint);
        }

        var second = Directory.CreateDirectory(Path.Combine(secondRoot ?? root, name + "-second")).FullName;
        var key = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        ReplicationChannelOptions Options(string local, string peer) => new() { ClusterName = "bench", LocalNode = local, PeerNode = peer, Key = key };
        using var applier = new SecondApplier(MirrorApplier.Open(second), NullLogger.Instance);
        using var listener = ReplicationListener.Listen(new IPEndPoint(IPAddress.Loopback, 0), Options("second", "prim"));
        var accepted = listener.AcceptAsync(applier);
        var sender = ReplicationSender.ConnectAsync(listener.LocalEndPoint, Options("prim", "second")).GetAwaiter().GetResult();
        var receiver = accepted.GetAwaiter().GetResult();
        try
        {
            var link = new ReplicationLink(sender, mode.Value, NullLogger.Instance);
            using var fs = PassthroughFileSystem.Open(data, link);
            FioFigures figures;
            using (FuseMount.Mount(fs, mountpoint, "safekit-bench"))
            {
                figures = measure(mountpoint);
            }

            if (link.State != LinkState.Mirroring || applier.Failure is not null)
            {
                throw new InvalidOperationException($"replication failed during the benchmark: {link.AloneReason ?? applier.Failure}");
            }

            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"sk-bench mirror {name}: {applier.Applied} changes applied on SECOND"));
            return figures;
        }
        finally
        {
            sender.DisposeAsync().AsTask().GetAwaiter().GetResult();
            receiver.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }
}

/// <summary>One configuration's fio figures: 1 MiB writes into a new file and over it again, 4 KiB write+fsync.</summary>
internal readonly record struct FioFigures(double Mbps, double OverwriteMbps, double Iops, double P99Us);
