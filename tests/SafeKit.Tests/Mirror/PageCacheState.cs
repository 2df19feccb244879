using System.Runtime.InteropServices;

namespace SafeKit.Tests.Mirror;

/// <summary>cachestat(2) (Linux 6.5): how many of a file's pages are cached, dirty and under writeback.</summary>
internal static unsafe partial class PageCacheState
{
    private const long SysCachestat = 451; // x86_64

    [StructLayout(LayoutKind.Sequential)]
    private struct Range
    {
        public ulong Offset;
        public ulong Length; // 0: to the end of the file
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct Counts
    {
        public ulong Cached;
        public ulong Dirty;
        public ulong Writeback;
        public ulong Evicted;
        public ulong RecentlyEvicted;
    }

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, int fd, Range* range, Counts* counts, uint flags);

    /// <summary>The whole file's page counts.</summary>
    public static Counts Of(string path)
    {
        using var file = File.OpenHandle(path);
        var range = default(Range);
        var counts = default(Counts);
        if (Syscall(SysCachestat, (int)file.DangerousGetHandle(), &range, &counts, 0) != 0)
        {
            throw new InvalidOperationException($"cachestat {path}: errno {Marshal.GetLastPInvokeError()}");
        }

        return counts;
    }
}
