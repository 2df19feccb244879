using SafeKit.Native.Interop;

namespace SafeKit.Native.Files;

/// <summary>fsync of a directory: makes a rename or a new entry in it durable.</summary>
public static unsafe class DirectorySync
{
    private const int ReadOnlyDirectory = 0x10000; // O_RDONLY | O_DIRECTORY
    private const int CloseOnExec = 0x80000;
    private const int CurrentDirectory = -100; // AT_FDCWD

    /// <exception cref="NativeException">The directory cannot be opened or synced.</exception>
    public static void Fsync(string directory)
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
            if (Posix.FSync(fd) != 0)
            {
                throw new NativeException($"fsync {directory}", Posix.Errno);
            }
        }
        finally
        {
            Posix.Close(fd);
        }
    }
}
