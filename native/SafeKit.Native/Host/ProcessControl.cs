using System.Globalization;
using System.Runtime.InteropServices;
using SafeKit.Native.Interop;

namespace SafeKit.Native.Host;

/// <summary>
/// Signals and identity of processes by PID. A PID is only trusted together with the start time
/// the kernel recorded for it, so a recycled PID is never signalled by mistake.
/// </summary>
public static class ProcessControl
{
    public const int SigTerm = 15;
    public const int SigKill = 9;
    public const int SigHup = 1;
    private const int ESrch = 3;

    /// <summary>Start time of <paramref name="pid"/> in clock ticks since boot, or null if it is gone.</summary>
    public static long? StartTime(int pid)
    {
        string stat;
        try
        {
            stat = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        // The command name (field 2) may contain spaces and parentheses: count from its end.
        var close = stat.LastIndexOf(')');
        if (close < 0)
        {
            return null;
        }

        var fields = stat[(close + 2)..].Split(' ');
        // Field 22 overall is starttime; fields[0] here is field 3.
        return fields.Length > 19 && long.TryParse(fields[19], NumberStyles.Integer, CultureInfo.InvariantCulture, out var ticks) ? ticks : null;
    }

    /// <summary>True when <paramref name="pid"/> runs and started at <paramref name="startTime"/>.</summary>
    public static bool IsSame(int pid, long startTime) => StartTime(pid) == startTime;

    /// <summary>True when the process is a zombie or gone.</summary>
    public static bool IsDead(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var close = stat.LastIndexOf(')');
            return close < 0 || close + 2 >= stat.Length || stat[close + 2] is 'Z' or 'X';
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return true;
        }
    }

    /// <summary>
    /// Gives <paramref name="signal"/> its default disposition back. A signal ignored by the parent
    /// (nohup, a non-interactive rc shell) stays ignored across exec, and .NET then never installs
    /// the handler a PosixSignalRegistration asks for: a daemon's reload signal would be lost.
    /// </summary>
    public static void RestoreDefault(int signal)
    {
        if (Libc.SetSignalHandler(signal, 0) == -1)
        {
            throw new NativeException("signal", Marshal.GetLastPInvokeError());
        }
    }

    /// <summary>Sends <paramref name="signal"/>; false when the process does not exist.</summary>
    public static bool Signal(int pid, int signal)
    {
        if (Libc.Kill(pid, signal) == 0)
        {
            return true;
        }

        var errno = Marshal.GetLastPInvokeError();
        return errno == ESrch ? false : throw new NativeException($"kill({pid}, {signal})", errno);
    }

    /// <summary>SIGTERM, then SIGKILL after <paramref name="grace"/>; waits until the process is gone.</summary>
    public static void Stop(int pid, long startTime, TimeSpan grace)
    {
        if (!IsSame(pid, startTime))
        {
            return;
        }

        Signal(pid, SigTerm);
        var deadline = DateTime.UtcNow + grace;
        while (DateTime.UtcNow < deadline)
        {
            if (IsDead(pid) || !IsSame(pid, startTime))
            {
                return;
            }

            Thread.Sleep(20);
        }

        if (IsSame(pid, startTime))
        {
            Signal(pid, SigKill);
            for (var i = 0; i < 100 && !IsDead(pid); i++)
            {
                Thread.Sleep(20);
            }
        }
    }
}
