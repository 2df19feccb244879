using System.Runtime.InteropServices;

namespace SafeKit.Tests.Mirror;

/// <summary>
/// A thread that creates files as another user, directly in a directory (setfsuid applies to the
/// calling thread only): a change made behind a mount's back, by someone else.
/// </summary>
internal static unsafe partial class ForeignCreator
{
    private const int WriteOnly = 0x1, Create = 0x40, Exclusive = 0x80, CloseOnExec = 0x80000;

    [LibraryImport("libc", EntryPoint = "setfsuid")]
    private static partial int SetFsUid(uint uid);

    [LibraryImport("libc", EntryPoint = "setfsgid")]
    private static partial int SetFsGid(uint gid);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags, uint mode);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);

    /// <summary>From now on, files this thread creates belong to <paramref name="uid"/>:<paramref name="gid"/>.</summary>
    public static void BecomeOnThisThread(uint uid, uint gid)
    {
        // Group first: setfsgid needs the privilege the fsuid change would drop.
        _ = SetFsGid(gid); // Returns the previous fsgid, not an error: the test checks the owner of what it creates.
        _ = SetFsUid(uid);
    }

    /// <summary>Creates <paramref name="path"/> with exactly <paramref name="mode"/> (O_EXCL); false when it exists already.</summary>
    public static bool CreateNew(string path, uint mode)
    {
        var fd = Open(path, WriteOnly | Create | Exclusive | CloseOnExec, mode);
        if (fd < 0)
        {
            return false;
        }

        _ = Close(fd);
        return true;
    }
}
