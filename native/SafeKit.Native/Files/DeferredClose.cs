using System.Collections.Concurrent;

namespace SafeKit.Native.Files;

/// <summary>
/// Closes descriptors on a thread of its own, in the order given. The last close of a file that
/// is already unlinked frees it there and then (its cached pages, its blocks): on this VM up to
/// 2.9 s for a 512 MiB file while the disk was busy. PRIM's file system drops a node under its
/// sequencing lock, where that would stall every write of the application; SECOND drops one while
/// applying the replication stream, where it held every later change and its acknowledgement back
/// until PRIM's silence timeout took SECOND for dead. The descriptor's number stays taken until the
/// close, so nothing can mistake a later descriptor for it.
/// </summary>
public static class DeferredClose
{
    private static readonly BlockingCollection<int> Pending = Start();
    private static long s_queued;
    private static long s_closed;

    /// <summary>Hands <paramref name="fd"/> over to be closed soon; the caller must not use it again.</summary>
    public static void Close(int fd)
    {
        Interlocked.Increment(ref s_queued);
        Pending.Add(fd);
    }

    /// <summary>Waits until every descriptor handed over so far is closed (tests, and whoever needs the space back now); false after <paramref name="timeout"/>.</summary>
    public static bool WaitIdle(TimeSpan timeout)
    {
        var target = Interlocked.Read(ref s_queued);
        var deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (Interlocked.Read(ref s_closed) < target)
        {
            if (Environment.TickCount64 > deadline)
            {
                return false;
            }

            Thread.Sleep(1);
        }

        return true;
    }

    private static BlockingCollection<int> Start()
    {
        var pending = new BlockingCollection<int>(new ConcurrentQueue<int>());
        new Thread(() =>
        {
            foreach (var fd in pending.GetConsumingEnumerable())
            {
                Posix.Close(fd);
                Interlocked.Increment(ref s_closed);
            }
        })
        { IsBackground = true, Name = "sk-deferred-close" }.Start();
        return pending;
    }
}
