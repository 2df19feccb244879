using System.Globalization;
using SafeKit.ControlPlane.Status;
using SafeKit.Native.Host;

namespace SafeKit.Perf;

/// <summary>A lab for one benchmark variant, driven through the real CLI.</summary>
internal sealed class BenchLab : IDisposable
{
    private const string DefaultPrefix = "skbench";
    private static readonly string Safekit = Path.Combine(AppContext.BaseDirectory, "safekit");

    private BenchLab(string variant, string prefix)
    {
        Variant = variant;
        Prefix = prefix;
    }

    public string Variant { get; }

    public string Prefix { get; }

    public static string Loadgen => Path.Combine(AppContext.BaseDirectory, "sk-loadgen");

    /// <summary>Brings up a 3-node lab; <paramref name="options"/> are safekit lab up options.</summary>
    public static BenchLab Up(string variant, params string[] options)
    {
        CommandRunner.Run(Safekit, ["lab", "down", "--prefix", DefaultPrefix], timeout: TimeSpan.FromMinutes(30));
        var up = CommandRunner.Run(Safekit, ["lab", "up", "--prefix", DefaultPrefix, "--no-ipv6", .. options], timeout: TimeSpan.FromMinutes(2));
        if (!up.Succeeded)
        {
            throw new InvalidOperationException($"lab up ({variant}) failed: {up.Output}{up.Error}");
        }

        return new BenchLab(variant, DefaultPrefix);
    }

    /// <summary><c>safekit lab VERB ARGS</c> on this lab; throws when it fails.</summary>
    public void Lab(params string[] arguments)
    {
        var result = CommandRunner.Run(Safekit, ["lab", arguments[0], "--prefix", Prefix, .. arguments[1..]], timeout: TimeSpan.FromMinutes(1));
        if (!result.Succeeded)
        {
            throw new InvalidOperationException($"safekit lab {string.Join(' ', arguments)}: {result.Output}{result.Error}");
        }
    }

    /// <summary><c>safekit lab kill NODE</c>: the moment of the crash (Unix ms) as the lab prints it.</summary>
    public long Kill(string node)
    {
        var result = CommandRunner.Run(Safekit, ["lab", "kill", "--prefix", Prefix, node], timeout: TimeSpan.FromMinutes(1));
        var match = System.Text.RegularExpressions.Regex.Match(result.Output, @"\((\d+) Unix ms\)");
        return result.Succeeded && match.Success
            ? long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture)
            : throw new InvalidOperationException($"safekit lab kill {node}: {result.Output}{result.Error}");
    }

    /// <summary>safekit lab status --json of this lab.</summary>
    public System.Text.Json.JsonElement Status() =>
        System.Text.Json.JsonDocument.Parse(CommandRunner.Run(Safekit, ["lab", "status", "--json", "--prefix", Prefix]).Output).RootElement;

    public CommandResult Exec(string name, params string[] command) => Exec(TimeSpan.FromMinutes(5), name, command);

    /// <summary>A command in a lab namespace that may run up to <paramref name="timeout"/>.</summary>
    public CommandResult Exec(TimeSpan timeout, string name, params string[] command) =>
        CommandRunner.Run(Safekit, ["lab", "exec", "--prefix", Prefix, name, "--", .. command], timeout: timeout);

    /// <summary>Counters of every node, from status written after this call.</summary>
    public IReadOnlyList<(IReadOnlyDictionary<string, long> Counters, long Dropped)> Counters()
    {
        var asked = DateTimeOffset.UtcNow;
        var directories = Directory.GetDirectories(Path.Combine("/run/safekit-lab", Prefix));
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (DateTime.UtcNow < deadline && directories.Any(d => StatusFile.TryRead(d) is not { } s || s.Updated <= asked))
        {
            Thread.Sleep(100);
        }

        return directories.Order(StringComparer.Ordinal)
            .Select(StatusFile.TryRead)
            .Select(s => s!.Modules[0].Farm!)
            .Select(f => (f.Counters, f.CaptureDropped))
            .ToList();
    }

    public string ClusterMac() =>
        StatusFile.TryRead(Directory.GetDirectories(Path.Combine("/run/safekit-lab", Prefix)).First())!.Modules[0].Farm!.ClusterMac;

    /// <summary>Runs a command in a lab namespace; each line it prints lands in <paramref name="lines"/>.</summary>
    public System.Diagnostics.Process Collect(string node, List<string> lines, params string[] command)
    {
        var start = new System.Diagnostics.ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "safekit")) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[] { "lab", "exec", "--prefix", Prefix, node, "--" }.Concat(command))
        {
            start.ArgumentList.Add(argument);
        }

        var process = System.Diagnostics.Process.Start(start)!;
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is { Length: > 0 } line)
            {
                lock (lines)
                {
                    lines.Add(line);
                }
            }
        };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>What a collected command printed so far, as one text.</summary>
    public static string Joined(List<string> lines)
    {
        lock (lines)
        {
            return string.Concat(lines);
        }
    }

    public void Dispose()
    {
        // SKBENCH_LOGS=DIR keeps every node's safekitd log of the run (for a post-mortem).
        if (Environment.GetEnvironmentVariable("SKBENCH_LOGS") is { Length: > 0 } keep)
        {
            foreach (var log in Directory.GetFiles(Path.Combine("/run/safekit-lab", Prefix), "safekitd.log", SearchOption.AllDirectories))
            {
                var target = Path.Combine(keep, Variant, Path.GetFileName(Path.GetDirectoryName(log)!) + ".log");
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.Copy(log, target, overwrite: true);
            }
        }

        // Removing a dataset of a million files takes minutes: cut short, it stayed behind (7 GB).
        CommandRunner.Run(Safekit, ["lab", "down", "--prefix", Prefix], timeout: TimeSpan.FromMinutes(30));
    }

    public static double ParseWrk(string output)
    {
        foreach (var line in output.Split('\n'))
        {
            if (line.StartsWith("Requests/sec:", StringComparison.Ordinal))
            {
                return double.Parse(line["Requests/sec:".Length..].Trim(), CultureInfo.InvariantCulture);
            }
        }

        throw new InvalidOperationException("wrk printed no Requests/sec: " + output);
    }
}
