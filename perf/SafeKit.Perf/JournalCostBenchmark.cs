using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using SafeKit.Native.Fuse;
using SafeKit.Replication.Mirror;

namespace SafeKit.Perf;

/// <summary>
/// What the change journal costs on the write path: the same file workload through the FUSE
/// mount (a node alone, no network) with and without the journal, on the machine's disk. Three
/// workloads, single-threaded as an application's own loop would be: create-write-close of new
/// small files, rewrite of every one of them (first write of each path in the epoch), and
/// writes to one file again and again (the journal already holds it). A third run records the
/// changed byte ranges too, as a node alone does (its rewrite pass starts tracking afresh, so
/// every file needs its range on disk, as files changed for the first time since going alone).
/// Each run is repeated and the best kept; the mount and its data directory are fresh for each.
/// </summary>
internal static class JournalCostBenchmark
{
    public static void Run(string results, int files, int rounds)
    {
        var figures = new Dictionary<string, double>();
        foreach (var variant in new[] { "plain", "journal", "ranges" })
        {
            var best = new double[3];
            for (var round = 0; round < rounds; round++)
            {
                var rates = Measure(files, variant);
                for (var i = 0; i < best.Length; i++)
                {
                    best[i] = Math.Max(best[i], rates[i]);
                }
            }

            var suffix = variant;
            figures[$"create_per_s_{suffix}"] = Math.Round(best[0]);
            figures[$"rewrite_per_s_{suffix}"] = Math.Round(best[1]);
            figures[$"same_file_writes_per_s_{suffix}"] = Math.Round(best[2]);
        }

        Results.Report(results, "mirror-journal-cost", [
            .. figures.Select(f => (f.Key, f.Value)),
            ("create_ratio", Math.Round(figures["create_per_s_journal"] / figures["create_per_s_plain"], 3)),
            ("rewrite_ratio", Math.Round(figures["rewrite_per_s_journal"] / figures["rewrite_per_s_plain"], 3)),
            ("same_file_ratio", Math.Round(figures["same_file_writes_per_s_journal"] / figures["same_file_writes_per_s_plain"], 3)),
            ("ranges_create_ratio", Math.Round(figures["create_per_s_ranges"] / figures["create_per_s_plain"], 3)),
            ("ranges_rewrite_ratio", Math.Round(figures["rewrite_per_s_ranges"] / figures["rewrite_per_s_plain"], 3)),
            ("ranges_same_file_ratio", Math.Round(figures["same_file_writes_per_s_ranges"] / figures["same_file_writes_per_s_plain"], 3))],
            new { files, rounds });
    }

    /// <summary>Operations per second of the three workloads.</summary>
    private static double[] Measure(int files, string variant)
    {
        // On the machine's disk (/tmp may be a tmpfs, where fdatasync costs nothing).
        var root = Directory.CreateDirectory(Path.Join("/var/tmp", $"sk-journal-cost-{Guid.NewGuid():N}"));
        File.SetUnixFileMode(root.FullName, (UnixFileMode)0x1ED);
        var data = Directory.CreateDirectory(Path.Join(root.FullName, "data")).FullName;
        var mountpoint = Directory.CreateDirectory(Path.Join(root.FullName, "mnt")).FullName;
        ChangeJournal? journal = null;
        try
        {
            var link = new ReplicationLink(null, MirrorMode.Sync, NullLogger.Instance);
            using var fs = PassthroughFileSystem.Open(data, link);
            if (variant != "plain")
            {
                journal = ChangeJournal.Open(Path.Join(root.FullName, "journal"), Guid.NewGuid(), completeIfNew: true);
                fs.UseJournal(journal);
                if (variant == "ranges")
                {
                    fs.TrackChangedRanges();
                }
            }

            using var mount = FuseMount.Mount(fs, mountpoint, "safekit-journal-cost");
            var block = new byte[4096];
            Random.Shared.NextBytes(block);
            var directory = Directory.CreateDirectory(Path.Join(mountpoint, "files")).FullName;
            var clock = Stopwatch.StartNew();
            for (var i = 0; i < files; i++)
            {
                using var file = new FileStream(Path.Join(directory, $"f{i}"), FileMode.CreateNew, FileAccess.Write, FileShare.None, 1);
                file.Write(block);
            }

            var create = files / clock.Elapsed.TotalSeconds;
            if (variant == "ranges")
            {
                // Alone afresh: every path and every file's range are written again.
                journal!.Restart(Guid.NewGuid());
                fs.StopTrackingChangedRanges();
                fs.TrackChangedRanges();
            }
            else
            {
                journal?.BeginEpoch(); // A new epoch: every path is written to the journal again.
            }

            clock.Restart();
            for (var i = 0; i < files; i++)
            {
                using var file = new FileStream(Path.Join(directory, $"f{i}"), FileMode.Open, FileAccess.Write, FileShare.None, 1);
                file.Write(block);
            }

            var rewrite = files / clock.Elapsed.TotalSeconds;
            using (var one = new FileStream(Path.Join(directory, "f0"), FileMode.Open, FileAccess.Write, FileShare.None, 1))
            {
                clock.Restart();
                for (var i = 0; i < files; i++)
                {
                    one.Position = (i % 256) * 4096L;
                    one.Write(block);
                }
            }

            return [create, rewrite, files / clock.Elapsed.TotalSeconds];
        }
        finally
        {
            journal?.Dispose();
            FuseMount.DetachStale(mountpoint);
            root.Delete(recursive: true);
        }
    }
}
