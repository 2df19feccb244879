using System.Runtime.InteropServices;
using SafeKit.Native.Interop;

namespace SafeKit.Native.Host;

/// <summary>Scheduling class of the calling thread.</summary>
public static unsafe class ThreadScheduling
{
    private const int SchedFifo = 1;

    /// <summary>
    /// Puts the calling thread in SCHED_FIFO at <paramref name="priority"/> (1..99), so that ordinary
    /// processes saturating every CPU cannot delay it (heartbeats must not be starved). The thread
    /// must block most of the time.
    /// </summary>
    /// <returns>null on success, else why it failed (errno text).</returns>
    public static string? TryMakeRealtime(int priority)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(priority, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(priority, 99);
        // pid 0 = the calling thread (Linux schedules threads individually).
        return Libc.SchedSetScheduler(0, SchedFifo, &priority) == 0
            ? null
            : Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError());
    }
}
