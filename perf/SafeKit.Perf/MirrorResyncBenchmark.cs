using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using SafeKit.Native.Host;

namespace SafeKit.Perf;

/// <summary>
/// Failback after a change made while a node was down, against rsync on the same change. A
/// dataset is written through PRIM's mount (so both nodes hold it, with the same times); rsync's
/// target is a copy of SECOND's tree at that moment. SECOND crashes; PERCENT% of the bytes change
/// over PERCENT% of the files on the node now alone; page caches dropped; SECOND starts and is
/// resynchronised (timed by the serving node, from connecting to mirroring again). Then, caches
/// dropped again, rsync -a (daemon mode, SECOND's namespace) brings its copy to the same tree.
/// Both results are compared with the source tree. With <c>killSurvivor</c>, the node alone is
/// killed (kill -9 of everything on it) after the change and restarted alone before SECOND
/// returns: the resync then relies on what survived that crash. With <c>smallFiles</c>, the dataset
/// has no big file (dataset (b): a million files of 1-3 KiB).
/// </summary>
internal static partial class MirrorResyncBenchmark
{
    private const int RsyncPort = 8873;
    private static readonly string Script = Path.Combine(AppContext.BaseDirectory, "resync_dataset.py");

    public static void Run(string results, int files, int mib, double percent, bool killSurvivor, bool smallFiles)
    {
        // Every walk of the dataset (the copies compared, rsync's) grows with the number of files.
        var walkSeconds = Math.Max(120, files / 1000);
        using var lab = BenchLab.Up("mirror-resync", "--mirror");
        var state = Path.Combine("/run/safekit-lab", lab.Prefix);
        string Www(int node) => Path.Combine(state, $"{lab.Prefix}-m{node}", "var/mirror/data/srv/www");
        var copy = Path.Combine(state, "rsync-copy");
        Process? daemon = null;
        try
        {
            string[] make = ["make", "/srv/www/bench", files.ToString(CultureInfo.InvariantCulture), mib.ToString(CultureInfo.InvariantCulture), "1"];
            var made = Python(lab, "m1", smallFiles ? [.. make, "0"] : make);
            var madeAt = Stopwatch.StartNew();
            Wait(() => Same(Www(1), Www(2)), "SECOND holds the dataset", walkSeconds);
            CommandRunner.RunChecked("cp", ["-a", Www(2) + "/.", Directory.CreateDirectory(copy).FullName], timeout: TimeSpan.FromSeconds(walkSeconds));

            // A settled pair: PRIM's journal keeps the epochs SECOND has not yet confirmed durable
            // (up to two 10 s epochs), and a failback rightly compares what they list. Killed
            // sooner, the last directories the dataset wrote would be compared too, by chance of
            // how long the copy above took: a run measuring another case than the one it reports.
            Thread.Sleep(TimeSpan.FromSeconds(35) - madeAt.Elapsed is { Ticks: > 0 } settle ? settle : TimeSpan.Zero);
            lab.Kill("m2");
            Wait(() => State(lab, 1) == "ALONE", "m1 serves alone", 30);
            var changed = Python(lab, "m1", "change", "/srv/www/bench", percent.ToString(CultureInfo.InvariantCulture), "2", "/var/lib/safekit/mirror/data/srv/www/bench");
            if (killSurvivor)
            {
                lab.Kill("m1");
                lab.Lab("start", "m1");
                Wait(() => State(lab, 1) == "ALONE", "m1 serves alone again after its crash", 60);
            }

            DropCaches();
            var clock = Stopwatch.StartNew();
            var m1Log = Path.Combine(state, $"{lab.Prefix}-m1", "safekitd.log");
            var logged = new FileInfo(m1Log).Length;
            lab.Lab("start", "m2");

            // Watched in m1's log, not by asking the status: each `safekit lab status` is a process
            // start that would take a core of this 2-core machine from the resync it times.
            Wait(() => Logged(m1Log, logged, "resynchronised (in"), "m1 logs the resync of m2", 600, pollMs: 20);
            Wait(() => State(lab, 2) == "SECOND", "m2 resynchronised and SECOND", 60);
            var startToSecond = clock.Elapsed.TotalSeconds;
            var log = File.ReadAllText(m1Log);
            var figures = ResyncLine().Matches(log) is { Count: > 0 } found ? found[^1] : throw new InvalidOperationException("m1's log has no resync summary");
            var oursSeconds = double.Parse(figures.Groups["ms"].Value, CultureInfo.InvariantCulture) / 1000;
            var oursChanged = long.Parse(figures.Groups["changed"].Value, CultureInfo.InvariantCulture);
            var oursWire = long.Parse(figures.Groups["wire"].Value, CultureInfo.InvariantCulture);

            // /srv/www alone, the tree rsync copies too (the summary also counts /srv/pgdata, where
            // PostgreSQL writes on its own, more so in its recovery after a crash).
            var www = WwwFigures().Match(figures.Value) is { Success: true } w ? w : throw new InvalidOperationException("the resync summary has no /srv/www figures");
            var wwwWire = long.Parse(www.Groups["wire"].Value, CultureInfo.InvariantCulture);
            Wait(() => Same(Www(1), Www(2)), "m2's copy equals m1's", walkSeconds);

            // rsync, the same change: m1's tree onto the copy of the state before it.
            var config = Path.Combine(state, "rsyncd.conf");
            File.WriteAllText(config, $"[copy]\n  path = {copy}\n  read only = false\n  uid = root\n  gid = root\n  use chroot = false\n");
            daemon = Process.Start(new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "safekit"), ["lab", "exec", "--prefix", lab.Prefix, "m2", "--", "rsync", "--daemon", "--no-detach", $"--port={RsyncPort}", $"--config={config}"]) { RedirectStandardError = true, RedirectStandardOutput = true })!;
            Thread.Sleep(1000);
            DropCaches();
            clock.Restart();
            var rsync = lab.Exec(TimeSpan.FromMinutes(20), "m1", "rsync", "-a", "--stats", "/var/lib/safekit/mirror/data/srv/www/", $"rsync://198.18.0.22:{RsyncPort}/copy/");
            var rsyncSeconds = clock.Elapsed.TotalSeconds;
            if (!rsync.Succeeded)
            {
                throw new InvalidOperationException($"rsync failed: {rsync.Output}{rsync.Error}");
            }

            var rsyncWire = Stat(rsync.Output, "Total bytes sent") + Stat(rsync.Output, "Total bytes received");
            if (!Same(Www(1), copy))
            {
                throw new InvalidOperationException("rsync's copy differs from the source tree");
            }

            Results.Report(results, (smallFiles ? "mirror-resync-small-files" : "mirror-resync") + (killSurvivor ? "-survivor-killed" : ""), [
                ("files", files), ("dataset_mib", Math.Round(long.Parse(made, CultureInfo.InvariantCulture) / 1048576.0)), ("changed_bytes", long.Parse(changed, CultureInfo.InvariantCulture)),
                ("ours_s", Math.Round(oursSeconds, 3)), ("ours_wire_bytes", wwwWire), ("ours_changed_blocks_bytes", long.Parse(www.Groups["changed"].Value, CultureInfo.InvariantCulture)),
                ("ours_files_by_ranges", long.Parse(www.Groups["ranges"].Value, CultureInfo.InvariantCulture)),
                ("ours_all_directories_wire_bytes", oursWire), ("ours_all_directories_changed_blocks_bytes", oursChanged), ("ours_start_to_second_s", Math.Round(startToSecond, 3)),
                ("rsync_s", Math.Round(rsyncSeconds, 3)), ("rsync_wire_bytes", rsyncWire),
                ("speedup_vs_rsync", Math.Round(rsyncSeconds / oursSeconds, 2)),
                ("wire_vs_changed", Math.Round(wwwWire / double.Parse(changed, CultureInfo.InvariantCulture), 3))],
                new { files, mib, percent, smallFiles, log = figures.Value, rsync = rsync.Output });
        }
        finally
        {
            if (daemon is { HasExited: false })
            {
                daemon.Kill(entireProcessTree: true);
            }

            daemon?.Dispose();
            Directory.Delete(copy, recursive: true);
        }
    }

    private static string Python(BenchLab lab, string node, params string[] arguments)
    {
        var result = lab.Exec(TimeSpan.FromMinutes(30), node, ["python3", Script, .. arguments]);
        return result.Succeeded ? result.Output.Trim() : throw new InvalidOperationException($"resync_dataset.py {arguments[0]} on {node}: {result.Output}{result.Error}");
    }

    private static string State(BenchLab lab, int node)
    {
        foreach (var entry in lab.Status().GetProperty("nodes").EnumerateArray())
        {
            if (entry.GetProperty("name").GetString()!.EndsWith($"-m{node}", StringComparison.Ordinal))
            {
                return entry.TryGetProperty("state", out var state) ? state.GetString() ?? "" : "";
            }
        }

        return "";
    }

    /// <summary>Two trees with the same paths and contents (diff -r; special files compared by name).</summary>
    private static bool Same(string a, string b) => CommandRunner.Run("diff", ["-rq", "--no-dereference", a, b], timeout: TimeSpan.FromMinutes(10)).Succeeded;

    private static void DropCaches()
    {
        CommandRunner.Run("sync", []);
        File.WriteAllText("/proc/sys/vm/drop_caches", "3");
    }

    /// <summary>Whether <paramref name="log"/> holds <paramref name="marker"/> past its first <paramref name="from"/> bytes.</summary>
    private static bool Logged(string log, long from, string marker)
    {
        using var stream = new FileStream(log, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        stream.Position = Math.Min(from, stream.Length);
        return new StreamReader(stream).ReadToEnd().Contains(marker, StringComparison.Ordinal);
    }

    private static void Wait(Func<bool> condition, string what, int seconds, int pollMs = 200)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"timed out waiting until {what}");
            }

            Thread.Sleep(pollMs);
        }
    }

    private static long Stat(string output, string label) =>
        Regex.Match(output, label + @": ([\d,]+)") is { Success: true } m ? long.Parse(m.Groups[1].Value.Replace(",", "", StringComparison.Ordinal), CultureInfo.InvariantCulture) : 0;

    [GeneratedRegex(@"resynchronised \(in (?<ms>\d+) ms: .*?, (?<changed>\d+) bytes changed, (?<wire>\d+) bytes on the wire[^)]*")]
    private static partial Regex ResyncLine();

    [GeneratedRegex(@"/srv/www: (?<ranges>\d+) files by changed ranges, (?<changed>\d+) bytes changed, (?<wire>\d+) bytes on the wire")]
    private static partial Regex WwwFigures();
}
