using System.Text.RegularExpressions;
using SafeKit.Native.Host;
using SafeKit.Tests.Infrastructure;

[assembly: AssemblyFixture(typeof(StaleRunSweeper))]

namespace SafeKit.Tests.Infrastructure;

/// <summary>
/// Before any test: removes what an earlier, killed test run left behind — labs and namespaces
/// named with a test run tag (t + 7 hex digits) — stopping their processes by PID.
/// </summary>
public sealed partial class StaleRunSweeper
{
    public StaleRunSweeper()
    {
        if (Tools.LabUnavailableReason() is not null)
        {
            return;
        }

        if (Directory.Exists("/run/safekit-lab"))
        {
            foreach (var lab in Directory.GetDirectories("/run/safekit-lab").Select(Path.GetFileName).Where(n => n is not null && Tag().IsMatch(n)))
            {
                Tools.Run(Tools.Safekit, "lab", "down", "--prefix", lab!);
            }
        }

        foreach (var ns in CommandRunner.Run("ip", ["netns", "list"]).Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')[0]))
        {
            if (!TaggedNamespace().IsMatch(ns))
            {
                continue;
            }

            foreach (var line in CommandRunner.Run("ip", ["netns", "pids", ns]).Output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                if (int.TryParse(line.Trim(), out var pid) && ProcessControl.StartTime(pid) is { } start)
                {
                    ProcessControl.Stop(pid, start, TimeSpan.FromSeconds(2));
                }
            }

            CommandRunner.Run("ip", ["netns", "delete", ns]);
        }
    }

    [GeneratedRegex("^t[0-9a-f]{7}$")]
    private static partial Regex Tag();

    [GeneratedRegex("^t[0-9a-f]{7}-")]
    private static partial Regex TaggedNamespace();
}
