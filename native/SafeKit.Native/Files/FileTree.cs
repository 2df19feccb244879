using System.Text;
using SafeKit.Native.Fuse;
using SafeKit.Native.Interop;

namespace SafeKit.Native.Files;

/// <summary>What a directory entry is, as a resync compares it (anything else is skipped).</summary>
public enum EntryKind : byte
{
    Regular = 1,
    Directory = 2,
    Symlink = 3,
    Fifo = 4,
    Other = 5,
}

/// <summary>One entry of a tree, from lstat: never follows a symbolic link.</summary>
/// <param name="MtimeNs">Modification time, nanoseconds since the epoch.</param>
public readonly record struct TreeEntry(string Name, EntryKind Kind, uint Mode, uint Uid, uint Gid, long Size, long MtimeNs, ulong Device, ulong Inode, ulong Links);

/// <summary>
/// The file-tree operations a resync needs, by path, never following symbolic links: lstat,
/// listing, ownership/mode/nanosecond times, fifos, recursive removal. Failures throw
/// <see cref="NativeException"/> naming the path.
/// </summary>
public static unsafe class FileTree
{
    private const int CurrentDirectory = -100; // AT_FDCWD
    private const int NoFollow = 0x100; // AT_SYMLINK_NOFOLLOW
    private const uint TypeMask = 0xF000;
    private const long UtimeOmit = (1L << 30) - 2;

    /// <summary>lstat of <paramref name="path"/>; false when it does not exist.</summary>
    /// <exception cref="NativeException">Any failure other than ENOENT/ENOTDIR.</exception>
    public static bool TryLstat(string path, out TreeEntry entry)
    {
        Stat stat;
        int result;
        fixed (byte* p = Utf8(path))
        {
            result = Posix.FStatAt(CurrentDirectory, p, &stat, NoFollow);
        }

        if (result != 0)
        {
            var errno = Posix.Errno;
            entry = default;
            return errno is 2 or 20 ? false : throw new NativeException($"lstat {path}", errno);
        }

        entry = new TreeEntry(
            Path.GetFileName(path),
            KindOf(stat.Mode),
            stat.Mode & 0xFFF,
            stat.Uid,
            stat.Gid,
            stat.Size,
            (stat.Mtime.Seconds * 1_000_000_000) + stat.Mtime.Nanoseconds,
            stat.Dev,
            stat.Ino,
            stat.Nlink);
        return true;
    }

    /// <summary>The entries of <paramref name="directory"/> (lstat of each), sorted by name; entries gone meanwhile are left out.</summary>
    public static List<TreeEntry> List(string directory)
    {
        var entries = new List<TreeEntry>();
        foreach (var path in Directory.EnumerateFileSystemEntries(directory))
        {
            if (TryLstat(path, out var entry))
            {
                entries.Add(entry);
            }
        }

        entries.Sort(static (a, b) => string.CompareOrdinal(a.Name, b.Name));
        return entries;
    }

    /// <summary>Owner, permission bits (not for symbolic links: they have none) and modification time.</summary>
    public static void SetMetadata(string path, EntryKind kind, uint mode, uint uid, uint gid, long mtimeNs)
    {
        fixed (byte* p = Utf8(path))
        {
            if (Posix.FChownAt(CurrentDirectory, p, uid, gid, NoFollow) != 0)
            {
                throw new NativeException($"chown {path}", Posix.Errno);
            }

            // After chown: it clears set-user-ID bits the mode may carry.
            if (kind != EntryKind.Symlink && Posix.FChmodAt(CurrentDirectory, p, mode & 0xFFF, 0) != 0)
            {
                throw new NativeException($"chmod {path}", Posix.Errno);
            }

            var times = stackalloc Timespec[2];
            times[0] = new Timespec { Seconds = 0, Nanoseconds = UtimeOmit };
            times[1] = new Timespec { Seconds = Math.DivRem(mtimeNs, 1_000_000_000, out var ns), Nanoseconds = ns };
            if (Posix.UtimensAt(CurrentDirectory, p, times, NoFollow) != 0)
            {
                throw new NativeException($"utimensat {path}", Posix.Errno);
            }
        }
    }

    /// <summary>Creates a named pipe.</summary>
    public static void MakeFifo(string path, uint mode)
    {
        fixed (byte* p = Utf8(path))
        {
            if (Posix.MknodAt(CurrentDirectory, p, 0x1000 | (mode & 0xFFF), 0) != 0)
            {
                throw new NativeException($"mkfifo {path}", Posix.Errno);
            }
        }
    }

    /// <summary>A hard link <paramref name="path"/> to the existing <paramref name="existing"/>.</summary>
    public static void Link(string existing, string path)
    {
        fixed (byte* from = Utf8(existing))
        fixed (byte* to = Utf8(path))
        {
            if (Posix.LinkAt(CurrentDirectory, from, CurrentDirectory, to, 0) != 0)
            {
                throw new NativeException($"link {existing} → {path}", Posix.Errno);
            }
        }
    }

    /// <summary>Sets the size (cuts or extends with zeros).</summary>
    public static void Truncate(string path, long size)
    {
        fixed (byte* p = Utf8(path))
        {
            if (Posix.Truncate(p, size) != 0)
            {
                throw new NativeException($"truncate {path}", Posix.Errno);
            }
        }
    }

    /// <summary>
    /// Asks the kernel to start reading a file into the page cache now (posix_fadvise WILLNEED),
    /// without waiting: a read of it that comes later finds it there. Best effort, silent.
    /// </summary>
    public static void Prefetch(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var bytes = System.Text.Encoding.UTF8.GetBytes(path + "\0");
        int fd;
        fixed (byte* p = bytes)
        {
            fd = Posix.OpenAt(Posix.AtFdCwd, p, Posix.ORdonly | Posix.ONofollow | Posix.OCloexec | Posix.ONonblock, 0);
        }

        if (fd >= 0)
        {
            _ = Posix.FAdvise(fd, 0, 0, Posix.FAdvWillNeed); // A hint: refused, the read later just waits for the disk.
            Posix.Close(fd);
        }
    }

    /// <summary>Removes a file, link or whole directory tree; a symbolic link is removed, never followed.</summary>
    public static void Remove(string path)
    {
        if (!TryLstat(path, out var entry))
        {
            return;
        }

        if (entry.Kind == EntryKind.Directory)
        {
            foreach (var child in Directory.EnumerateFileSystemEntries(path))
            {
                Remove(child);
            }

            Directory.Delete(path);
            return;
        }

        fixed (byte* p = Utf8(path))
        {
            if (Posix.UnlinkAt(CurrentDirectory, p, 0) != 0 && Posix.Errno != 2)
            {
                throw new NativeException($"unlink {path}", Posix.Errno);
            }
        }
    }

    /// <summary>Whether two paths name the same file (hard links of one inode).</summary>
    public static bool SameFile(string a, string b) =>
        TryLstat(a, out var x) && TryLstat(b, out var y) && x.Device == y.Device && x.Inode == y.Inode;

    private static EntryKind KindOf(uint mode) => (mode & TypeMask) switch
    {
        0x8000 => EntryKind.Regular,
        0x4000 => EntryKind.Directory,
        0xA000 => EntryKind.Symlink,
        0x1000 => EntryKind.Fifo,
        _ => EntryKind.Other,
    };

    private static byte[] Utf8(string path) => Encoding.UTF8.GetBytes(path + "\0");
}
