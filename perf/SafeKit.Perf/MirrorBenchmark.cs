using System.Globalization;
using System.Text.Json;
using SafeKit.Native.Files;
using SafeKit.Native.Host;
using SafeKit.Replication.Mirror;

namespace SafeKit.Perf;

/// <summary>
/// The mirror's write path under fio, against its peers in the same run: a plain directory (also
/// with two writers at once: this disk writing every byte twice, as a mirror whose copies share it
/// must), libfuse's own passthrough_ll (the fastest FUSE pass-through, no replication; compiled
/// here from libfuse3-dev's examples), our pass-through without a SECOND, and our mount
/// replicating to a SECOND over TCP (loopback, SECOND in this process) in sync and in fsync mode,
/// SECOND's copy on the same disk or on a device of its own. Jobs: sequential 1 MiB writes (MB/s)
/// and 4 KiB random writes each followed by fsync (IOPS, p99 latency).
/// Every configuration stays ready for the whole run and they take turns, round after round, each
/// round in a rotated order: this VM's disk drifts by a third within minutes (passthrough_ll gave
/// 1,330 and 2,300 IOPS ten minutes apart), so a ratio is taken within each round, between runs
/// a minute apart, and the figures reported are the medians over the rounds.
/// </summary>
internal static class MirrorBenchmark
{
    private const string Example = "/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c";

    public static void Run(string results, int rounds, int seconds, int sizeMiB, string? only = null)
    {
        // --only keeps the named configurations (e.g. "passthrough_ll,sync"): a quicker loop while tuning.
        var wanted = only?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        bool Wanted(string name) => wanted is null || wanted.Contains(name, StringComparer.Ordinal);
        var root = Directory.CreateTempSubdirectory("sk-mirror-bench-");
        var targets = new List<MirrorBenchTarget>();
        string? ownDisk = null;
        try
        {
            File.SetUnixFileMode(root.FullName, (UnixFileMode)0x1ED);
            if (Wanted("plain"))
            {
                targets.Add(MirrorBenchTarget.Plain(root.FullName, "plain"));
            }

            if (Wanted("plain_twice"))
            {
                targets.Add(MirrorBenchTarget.Plain(root.FullName, "plain_twice", writers: 2));
            }

            if (Wanted("passthrough_ll"))
            {
                var passthrough = Path.Combine(root.FullName, "passthrough_ll");
                CommandRunner.RunChecked("gcc", ["-O2", "-o", passthrough, Example, "-I/usr/include/fuse3", "-lfuse3", "-lpthread"]);
                targets.Add(MirrorBenchTarget.PassthroughLl(root.FullName, passthrough));
            }

            foreach (var (name, mode) in new (string, MirrorMode?)[] { ("alone", null), ("sync", MirrorMode.Sync), ("fsync", MirrorMode.Fsync) })
            {
                if (Wanted(name))
                {
                    targets.Add(MirrorBenchTarget.Mount(root.FullName, name, mode));
                }
            }

            if (Wanted("sync_own_disk") || Wanted("fsync_own_disk"))
            {
                // Two servers have two disks. Above, SECOND's copy shares PRIM's one disk (every
                // byte written back twice by one device); here it sits on a device of its own, a
                // RAM-backed file system standing in for the second server's disk (its fsync costs
                // nothing, so this bound is the optimistic one).
                ownDisk = Directory.CreateDirectory(Path.Combine(root.FullName, "second-disk")).FullName;
                CommandRunner.RunChecked("mount", ["-t", "tmpfs", "-o", $"size={(2 * sizeMiB) + 256}m", "sk-bench-second", ownDisk]);
                foreach (var (name, mode) in new[] { ("sync_own_disk", MirrorMode.Sync), ("fsync_own_disk", MirrorMode.Fsync) })
                {
                    if (Wanted(name))
                    {
                        targets.Add(MirrorBenchTarget.Mount(root.FullName, name, mode, ownDisk));
                    }
                }
            }

            var figures = targets.ToDictionary(t => t.Name, _ => new List<FioFigures>(), StringComparer.Ordinal);
            for (var round = 0; round < rounds; round++)
            {
                var first = round % targets.Count;
                foreach (var target in targets.Skip(first).Concat(targets.Take(first)))
                {
                    var measured = Measure(target, seconds, sizeMiB);
                    target.EnsureStillMirroring();
                    figures[target.Name].Add(measured);
                    Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"sk-bench mirror round {round + 1} {target.Name}: {measured.Mbps:F0} MB/s, overwriting {measured.OverwriteMbps:F0} MB/s, {measured.Iops:F0} IOPS, p99 {measured.P99Us:F0} us"));
                }
            }

            foreach (var target in targets)
            {
                if (target.Summary is { } summary)
                {
                    Console.Error.WriteLine($"sk-bench mirror {target.Name}: {summary}");
                }
            }

            Report(results, figures, rounds);
        }
        finally
        {
            for (var i = targets.Count - 1; i >= 0; i--)
            {
                targets[i].Dispose();
            }

            if (ownDisk is not null)
            {
                CommandRunner.Run("umount", ["-l", ownDisk]);
            }

            root.Delete(recursive: true);
        }
    }

    private static void Report(string results, Dictionary<string, List<FioFigures>> figures, int rounds)
    {
        var medians = figures.ToDictionary(
            f => f.Key,
            f => new FioFigures(Results.Median(f.Value.Select(v => v.Mbps)), Results.Median(f.Value.Select(v => v.OverwriteMbps)), Results.Median(f.Value.Select(v => v.Iops)), Results.Median(f.Value.Select(v => v.P99Us))),
            StringComparer.Ordinal);
        if (!figures.TryGetValue("passthrough_ll", out var baseline))
        {
            foreach (var (name, value) in medians)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"sk-bench mirror {name}: {value.Mbps:F0} MB/s, overwriting {value.OverwriteMbps:F0} MB/s, {value.Iops:F0} IOPS, p99 {value.P99Us:F0} us (medians of {rounds} rounds)"));
            }

            return;
        }

        // Each configuration against passthrough_ll in the same round, then the median of those.
        var versus = figures.Keys.Where(k => k is not ("plain" or "passthrough_ll" or "alone")).ToArray();
        (string, double) Versus(string name, Func<FioFigures, double> figure) =>
            ($"{name}_vs_passthrough_ll", Math.Round(Results.Median(figures[name].Zip(baseline, (ours, peer) => figure(ours) / figure(peer))), 3));
        Results.Report(results, "mirror-fio-seq1m", [.. medians.Select(f => ($"{f.Key}_mbps", Math.Round(f.Value.Mbps))),
            .. versus.Select(k => Versus(k, f => f.Mbps)), ("rounds", rounds)], figures.ToDictionary(f => f.Key, f => f.Value.Select(v => v.Mbps)));
        Results.Report(results, "mirror-fio-seq1m-overwrite", [.. medians.Select(f => ($"{f.Key}_mbps", Math.Round(f.Value.OverwriteMbps))),
            .. versus.Select(k => Versus(k, f => f.OverwriteMbps)), ("rounds", rounds)], figures.ToDictionary(f => f.Key, f => f.Value.Select(v => v.OverwriteMbps)));
        Results.Report(results, "mirror-fio-randwrite4k-fsync", [.. medians.Select(f => ($"{f.Key}_iops", Math.Round(f.Value.Iops))),
            .. medians.Select(f => ($"{f.Key}_p99_us", Math.Round(f.Value.P99Us))),
            .. versus.Select(k => Versus(k, f => f.Iops)), ("rounds", rounds)], figures.ToDictionary(f => f.Key, f => f.Value.Select(v => new { v.Iops, v.P99Us })));
    }

    private static FioFigures Measure(MirrorBenchTarget target, int seconds, int sizeMiB)
    {
        var directory = target.Directory;
        string[] writers = ["--numjobs=" + target.Writers.ToString(CultureInfo.InvariantCulture), "--group_reporting"];
        string[] sequentialJob = ["--rw=write", "--bs=1M", $"--size={sizeMiB}M", "--end_fsync=1", .. writers];
        var mbps = Bandwidth(Fio(directory, "seq", sequentialJob)) / target.Writers;

        // The same job again over the file it left, every page of it still cached on both sides:
        // what the write path costs without the page allocations a new file needs. On this VM
        // those dominate and vary: freed RAM goes back to the host (free page reporting), so a
        // new page costs a host fault (dd into a new file: about 1 GB/s; into freed pages just
        // reused: 8-9 GB/s), and a mirror allocates one copy more than a pass-through.
        var overwriteMbps = Bandwidth(Fio(directory, "seq", sequentialJob)) / target.Writers;
        var random = Fio(directory, "rand", ["--rw=randwrite", "--bs=4k", "--size=64M", "--fsync=1", "--time_based", $"--runtime={seconds}", .. writers]);
        var job = random.GetProperty("jobs")[0];
        var iops = job.GetProperty("write").GetProperty("iops").GetDouble() / target.Writers;
        // Each write is followed by an fsync: the latency that matters is the pair; fio reports the fsync's.
        var p99 = job.GetProperty("sync").GetProperty("lat_ns").GetProperty("percentile").GetProperty("99.000000").GetDouble() / 1000;
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"sk-bench mirror {target.Name}: 4 KiB write {job.GetProperty("write").GetProperty("clat_ns").GetProperty("mean").GetDouble() / 1000:F0} us, fsync {job.GetProperty("sync").GetProperty("lat_ns").GetProperty("mean").GetDouble() / 1000:F0} us (means)"));
        foreach (var file in Directory.GetFiles(directory))
        {
            File.Delete(file);
        }

        // The deleted files are freed at their last close, which the pass-throughs make off the
        // caller's thread once the kernel forgets them (ours: DeferredClose, on PRIM and SECOND):
        // let that end here, not in the next configuration's run.
        Thread.Sleep(1000);
        DeferredClose.WaitIdle(TimeSpan.FromSeconds(30));
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
}

/// <summary>One configuration's fio figures: 1 MiB writes into a new file and over it again, 4 KiB write+fsync.</summary>
internal readonly record struct FioFigures(double Mbps, double OverwriteMbps, double Iops, double P99Us);
