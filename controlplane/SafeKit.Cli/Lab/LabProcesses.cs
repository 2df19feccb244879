using System.Diagnostics;
using SafeKit.Native.Host;

namespace SafeKit.Cli.Lab;

/// <summary>Starts lab processes detached from the CLI and stops them by PID.</summary>
internal static class LabProcesses
{
    /// <summary>
    /// Starts <paramref name="command"/> inside namespace <paramref name="ns"/> (or with the
    /// <paramref name="enter"/> prefix: nsenter into a mirror node's namespaces) in its own session,
    /// output appended to <paramref name="log"/>. The shell, setsid and ip netns exec all exec in
    /// place, so the PID returned is the command's own.
    /// </summary>
    public static LabProcess Start(string role, string ns, IReadOnlyList<string> command, string log, IReadOnlyList<string>? enter = null)
    {
        var line = "exec setsid " + string.Join(' ', (enter ?? ["ip", "netns", "exec", ns]).Select(Quote)) + " " + string.Join(' ', command.Select(Quote))
            + " >>" + Quote(log) + " 2>&1 </dev/null";
        var start = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(line);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"cannot start {command[0]}");
        var pid = process.Id;
        long? startTime = null;
        for (var i = 0; i < 50 && startTime is null; i++)
        {
            startTime = ProcessControl.StartTime(pid);
            if (startTime is null)
            {
                Thread.Sleep(10);
            }
        }

        return new LabProcess(role, ns, pid, startTime ?? 0, log);
    }

    public static bool IsRunning(LabProcess process) =>
        ProcessControl.IsSame(process.Pid, process.StartTime) && !ProcessControl.IsDead(process.Pid);

    public static void Stop(LabProcess process) =>
        ProcessControl.Stop(process.Pid, process.StartTime, TimeSpan.FromSeconds(5));

    /// <summary>Last lines of a log, for error messages.</summary>
    public static string Tail(string log, int lines = 15)
    {
        try
        {
            var all = File.ReadAllLines(log);
            return string.Join(Environment.NewLine, all.Skip(Math.Max(0, all.Length - lines)));
        }
        catch (IOException)
        {
            return "(no log)";
        }
    }

    private static string Quote(string text) => "'" + text.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
