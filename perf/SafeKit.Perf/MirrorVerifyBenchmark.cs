using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using SafeKit.Native.Host;

namespace SafeKit.Perf;

/// <summary>
/// <c>safekit verify</c> under a writing load, against <c>rsync -rn --checksum</c> (what one would
/// run by hand to compare two copies: every file read and hashed on both sides) in the same run.
/// rsync pulls SECOND's copy (its daemon, read only) onto PRIM's data directory as a dry run.
/// A dataset is written through PRIM's mount; then, while an fsync'd appender and an in-place
/// writer run on PRIM, each tool compares the copies with cold caches (and ours once more warm).
/// Reported: bytes compared per second, and the differences each reports although the copies are
/// equal (false positives: files written while they were compared).
/// </summary>
internal static partial class MirrorVerifyBenchmark
{
    private const int RsyncPort = 8874;
    private static readonly string Script = Path.Combine(AppContext.BaseDirectory, "resync_dataset.py");

    /// <summary>Appends fsync'd records and rewrites 4 KiB blocks of a 64 MiB file in place, until killed.</summary>
    private const string Load = """
        import os, random, sys
        log = os.open(sys.argv[1] + "/load.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        big = os.open(sys.argv[1] + "/inplace.bin", os.O_RDWR | os.O_CREAT, 0o644)
        os.ftruncate(big, 64 << 20)
        i = 0
        while True:
            os.write(log, b"record %d\n" % i)
            os.fsync(log)
            os.pwrite(big, os.urandom(4096), random.randrange(0, (64 << 20) // 4096) * 4096)
            i += 1
        """;

    public static void Run(string results, int files, int mib)
    {
        using var lab = BenchLab.Up("mirror-verify", "--mirror");
        var state = Path.Combine("/run/safekit-lab", lab.Prefix);
        Process? daemon = null;
        try
        {
            var made = lab.Exec(TimeSpan.FromMinutes(30), "m1", "python3", Script, "make", "/srv/www/bench", files.ToString(CultureInfo.InvariantCulture), mib.ToString(CultureInfo.InvariantCulture), "1");
            if (!made.Succeeded)
            {
                throw new InvalidOperationException("dataset: " + made.Error);
            }

            using var load = lab.Collect("m1", [], "python3", "-c", Load, "/srv/www");
            Thread.Sleep(2000);

            var cold = Verify(lab, dropCaches: true);
            var warm = Verify(lab, dropCaches: false);

            // rsync's comparison: a dry run with checksums, m1's data directory against m2's (read only).
            var config = Path.Combine(state, "rsyncd-verify.conf");
            File.WriteAllText(config, "[copy]\n  path = /var/lib/safekit/mirror/data/srv/www\n  read only = true\n  uid = root\n  gid = root\n  use chroot = false\n");
            daemon = Process.Start(new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "safekit"), ["lab", "exec", "--prefix", lab.Prefix, "m2", "--", "rsync", "--daemon", "--no-detach", $"--port={RsyncPort}", $"--config={config}"]) { RedirectStandardError = true, RedirectStandardOutput = true })!;
            Thread.Sleep(1000);
            DropCaches();
            var clock = Stopwatch.StartNew();
            // Pulled from m2's daemon into m1's directory, as a dry run: rsync reads and hashes every file on both sides.
            var rsync = lab.Exec(TimeSpan.FromMinutes(30), "m1", "rsync", "-rn", "--checksum", "--itemize-changes", "--stats", $"rsync://198.18.0.22:{RsyncPort}/copy/", "/var/lib/safekit/mirror/data/srv/www/");
            var rsyncSeconds = clock.Elapsed.TotalSeconds;
            if (!rsync.Succeeded)
            {
                throw new InvalidOperationException($"rsync failed: {rsync.Output}{rsync.Error}");
            }

            var rsyncBytes = Stat(rsync.Output, "Total file size");
            var rsyncDifferences = rsync.Output.Split('\n').Count(l => l.StartsWith(">f", StringComparison.Ordinal) || l.StartsWith("cd", StringComparison.Ordinal) || l.StartsWith("*deleting", StringComparison.Ordinal));
            load.Kill();

            Results.Report(results, "mirror-verify", [
                ("files", files),
                ("bytes", cold.Bytes),
                ("ours_cold_gbps", cold.GigabytesPerSecond),
                ("ours_warm_gbps", warm.GigabytesPerSecond),
                ("rsync_checksum_cold_gbps", Math.Round(rsyncBytes / rsyncSeconds / 1e9, 3)),
                ("speedup_vs_rsync", Math.Round(cold.GigabytesPerSecond / (rsyncBytes / rsyncSeconds / 1e9), 2)),
                ("ours_false_positives", cold.Differences + warm.Differences),
                ("rsync_false_positives", rsyncDifferences),
                ("ours_writes_held_ms", Math.Max(cold.HeldMs, warm.HeldMs)),
                ("ours_in_flight_dismissed", cold.Dismissed + warm.Dismissed),
            ], new { cold = cold.Message, warm = warm.Message, rsync = rsync.Output[Math.Max(0, rsync.Output.Length - 2000)..] });
        }
        finally
        {
            if (daemon is { HasExited: false })
            {
                daemon.Kill(entireProcessTree: true);
            }
        }
    }

    private sealed record Outcome(long Bytes, double GigabytesPerSecond, int Differences, double HeldMs, int Dismissed, string Message);

    private static Outcome Verify(BenchLab lab, bool dropCaches)
    {
        if (dropCaches)
        {
            DropCaches();
        }

        var result = lab.Exec(TimeSpan.FromMinutes(30), "client", Path.Combine(AppContext.BaseDirectory, "safekit"), "verify", "mirror", "--timeout", "1800");
        var text = result.Output + result.Error;
        var figures = Figures().Match(text);
        if (!figures.Success)
        {
            throw new InvalidOperationException("verify: " + text);
        }

        var differences = result.Succeeded ? 0 : text.Split('\n').Count(l => l.StartsWith("  ", StringComparison.Ordinal));
        Console.WriteLine($"mirror-verify ({(dropCaches ? "cold" : "warm")}): {text.Trim()}");
        return new Outcome(
            (long)(double.Parse(figures.Groups["mb"].Value, CultureInfo.InvariantCulture) * 1e6),
            double.Parse(figures.Groups["gbps"].Value, CultureInfo.InvariantCulture),
            differences,
            double.Parse(figures.Groups["held"].Value, CultureInfo.InvariantCulture),
            int.Parse(figures.Groups["dismissed"].Value, CultureInfo.InvariantCulture),
            text.Trim());
    }

    private static void DropCaches()
    {
        CommandRunner.Run("sync", []);
        File.WriteAllText("/proc/sys/vm/drop_caches", "3");
    }

    private static long Stat(string output, string label) =>
        Regex.Match(output, label + @": ([\d,]+)") is { Success: true } m ? long.Parse(m.Groups[1].Value.Replace(",", "", StringComparison.Ordinal), CultureInfo.InvariantCulture) : 0;

    [GeneratedRegex(@"(?<mb>[\d.]+) MB compared .*? \((?<gbps>[\d.]+) GB/s; writes held back (?<held>\d+) ms; (?<dismissed>\d+) differences were writes in flight\)")]
    private static partial Regex Figures();
}
