using System.Globalization;
using System.Runtime.InteropServices;

namespace SafeKit.Native.Host;

/// <summary>
/// The process's limit on open descriptors. A pass-through file system holds one descriptor per
/// file the kernel knows (as libfuse's passthrough_hp does), so the usual 1,024 or 20,000 runs out
/// on a tree of any size (EMFILE on create): raise it, as root may, to the kernel's ceiling.
/// </summary>
public static partial class OpenFileLimit
{
    private const int NoFile = 7; // RLIMIT_NOFILE
    private static readonly Lazy<ulong> Raised = new(RaiseOnce);

    /// <summary>Raises the limit once per process (to fs.nr_open, or at least to the hard limit); returns the soft limit now in force.</summary>
    public static ulong Raise() => Raised.Value;

    private static unsafe ulong RaiseOnce()
    {
        Limit current;
        if (GetRLimit(NoFile, &current) != 0)
        {
            return 0;
        }

        var ceiling = ulong.TryParse(File.Exists("/proc/sys/fs/nr_open") ? File.ReadAllText("/proc/sys/fs/nr_open").Trim() : "", NumberStyles.None, CultureInfo.InvariantCulture, out var open) ? open : current.Max;
        var wanted = new Limit { Current = Math.Max(ceiling, current.Max), Max = Math.Max(ceiling, current.Max) };
        if (SetRLimit(NoFile, &wanted) == 0)
        {
            return wanted.Current;
        }

        // Not root (no CAP_SYS_RESOURCE): up to the hard limit.
        wanted = new Limit { Current = current.Max, Max = current.Max };
        return SetRLimit(NoFile, &wanted) == 0 ? current.Max : current.Current;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Limit
    {
        public ulong Current;
        public ulong Max;
    }

    [LibraryImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    private static unsafe partial int GetRLimit(int resource, Limit* limit);

    [LibraryImport("libc", EntryPoint = "setrlimit", SetLastError = true)]
    private static unsafe partial int SetRLimit(int resource, Limit* limit);
}
