using SafeKit.Native.Interop;

namespace SafeKit.Native.Files;

/// <summary>Durability of directories: fsync of one, syncfs of the file system that holds one (and a file's writeback started ahead of it).</summary>
public static unsafe class DirectorySync
{
    private const int ReadOnlyDirectory = 0x10000; // O_RDONLY | O_DIRECTORY
    private const int CloseOnExec = 0x80000;
    private const int CurrentDirectory = -100; // AT_FDCWD

    /// <summary>fsync of a directory: makes a rename or a new entry in it durable.</summary>
    /// <exception cref="NativeException">The directory cannot be opened or synced.</exception>
    public static void Fsync(string directory) => Sync(directory, syncFileSystem: false);

    /// <summary>syncfs: everything written to the file system that holds <paramref name="directory"/> becomes durable, in one call.</summary>
    /// <exception cref="NativeException">The directory cannot be opened or its file system synced.</exception>
    public static void SyncFileSystem(string directory) => Sync(directory, syncFileSystem: true);

    /// <summary>
    /// Starts writing a file's dirty pages to disk and returns without waiting (sync_file_range):
    /// a later <see cref="SyncFileSystem"/> then finds them on their way or done, instead of
    /// writing everything at once. A hint: refused, the later sync just writes them itself.
    /// </summary>
    public static void StartWriteback(Microsoft.Win32.SafeHandles.SafeFileHandle file)
    {
        ArgumentNullException.ThrowIfNull(file);
        _ = Posix.SyncFileRange(file, 0, 0, Posix.SyncFileRangeWrite); // The marshaller holds the handle open meanwhile.
    }

    private static void Sync(string directory, bool syncFileSystem)
    {
        ArgumentNullException.ThrowIfNull(directory);
        var path = System.Text.Encoding.UTF8.GetBytes(directory + "\0");
        int fd;
        fixed (byte* p = path)
        {
            fd = Posix.OpenAt(CurrentDirectory, p, ReadOnlyDirectory | CloseOnExec, 0);
        }

        if (fd < 0)
        {
            throw new NativeException($"open {directory}", Posix.Errno);
        }

        try
        {
            if ((syncFileSystem ? Posix.SyncFs(fd) : Posix.FSync(fd)) != 0)
            {
                throw new NativeException($"{(syncFileSystem ? "syncfs" : "fsync")} {directory}", Posix.Errno);
            }
        }
        finally
        {
            Posix.Close(fd);
        }
    }
}
