using System.Runtime.InteropServices;
using SafeKit.Native.Fuse;

namespace SafeKit.Native.Files;

/// <summary>
/// The file syscalls a pass-through file system needs, as raw as libc has them: they return -1
/// and leave errno (read it with <see cref="Errno"/>), so a FUSE callback can answer with it
/// without an exception or an allocation.
/// </summary>
internal static unsafe partial class Posix
{
    private const string Lib = "libc";

    /// <summary>errno of the last call made on this thread.</summary>
    internal static int Errno => Marshal.GetLastPInvokeError();

    [LibraryImport(Lib, EntryPoint = "openat", SetLastError = true)]
    internal static partial int OpenAt(int directory, byte* path, int flags, uint mode);

    [LibraryImport(Lib, EntryPoint = "close", SetLastError = true)]
    internal static partial int Close(int fd);

    [LibraryImport(Lib, EntryPoint = "dup", SetLastError = true)]
    internal static partial int Dup(int fd);

    [LibraryImport(Lib, EntryPoint = "mount", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int Mount(string source, string target, string fileSystemType, ulong flags, string data);

    [LibraryImport(Lib, EntryPoint = "umount2", SetLastError = true)]
    internal static partial int Umount2(byte* target, int flags);

    [LibraryImport(Lib, EntryPoint = "umount2", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int Umount2(string target, int flags);

    [LibraryImport(Lib, EntryPoint = "fstatat", SetLastError = true)]
    internal static partial int FStatAt(int directory, byte* path, Stat* stat, int flags);

    [LibraryImport(Lib, EntryPoint = "fstat", SetLastError = true)]
    internal static partial int FStat(int fd, Stat* stat);

    [LibraryImport(Lib, EntryPoint = "mkdirat", SetLastError = true)]
    internal static partial int MkdirAt(int directory, byte* path, uint mode);

    [LibraryImport(Lib, EntryPoint = "mknodat", SetLastError = true)]
    internal static partial int MknodAt(int directory, byte* path, uint mode, ulong device);

    [LibraryImport(Lib, EntryPoint = "symlinkat", SetLastError = true)]
    internal static partial int SymlinkAt(byte* target, int directory, byte* path);

    [LibraryImport(Lib, EntryPoint = "readlinkat", SetLastError = true)]
    internal static partial nint ReadlinkAt(int directory, byte* path, byte* buffer, nuint size);

    [LibraryImport(Lib, EntryPoint = "unlinkat", SetLastError = true)]
    internal static partial int UnlinkAt(int directory, byte* path, int flags);

    [LibraryImport(Lib, EntryPoint = "linkat", SetLastError = true)]
    internal static partial int LinkAt(int oldDirectory, byte* oldPath, int newDirectory, byte* newPath, int flags);

    [LibraryImport(Lib, EntryPoint = "renameat2", SetLastError = true)]
    internal static partial int RenameAt2(int oldDirectory, byte* oldPath, int newDirectory, byte* newPath, uint flags);

    [LibraryImport(Lib, EntryPoint = "fchmodat", SetLastError = true)]
    internal static partial int FChmodAt(int directory, byte* path, uint mode, int flags);

    [LibraryImport(Lib, EntryPoint = "fchmod", SetLastError = true)]
    internal static partial int FChmod(int fd, uint mode);

    [LibraryImport(Lib, EntryPoint = "fchownat", SetLastError = true)]
    internal static partial int FChownAt(int directory, byte* path, uint owner, uint group, int flags);

    [LibraryImport(Lib, EntryPoint = "ftruncate", SetLastError = true)]
    internal static partial int FTruncate(int fd, long length);

    [LibraryImport(Lib, EntryPoint = "truncate", SetLastError = true)]
    internal static partial int Truncate(byte* path, long length);

    [LibraryImport(Lib, EntryPoint = "utimensat", SetLastError = true)]
    internal static partial int UtimensAt(int directory, byte* path, Timespec* times, int flags);

    [LibraryImport(Lib, EntryPoint = "futimens", SetLastError = true)]
    internal static partial int FUtimens(int fd, Timespec* times);

    [LibraryImport(Lib, EntryPoint = "pread", SetLastError = true)]
    internal static partial nint PRead(int fd, byte* buffer, nuint count, long offset);

    [LibraryImport(Lib, EntryPoint = "pwrite", SetLastError = true)]
    internal static partial nint PWrite(int fd, byte* buffer, nuint count, long offset);

    [LibraryImport(Lib, EntryPoint = "pwritev", SetLastError = true)]
    internal static partial nint PWritev(int fd, IoVector* vectors, int count, long offset);

    /// <summary>struct iovec.</summary>
    internal struct IoVector
    {
        public void* Base;
        public nuint Length;
    }

    [LibraryImport(Lib, EntryPoint = "read", SetLastError = true)]
    internal static partial nint Read(int fd, byte* buffer, nuint count);

    [LibraryImport(Lib, EntryPoint = "writev", SetLastError = true)]
    internal static partial nint WriteV(int fd, IoVector* vectors, int count);

    [LibraryImport(Lib, EntryPoint = "fsync", SetLastError = true)]
    internal static partial int FSync(int fd);

    [LibraryImport(Lib, EntryPoint = "fdatasync", SetLastError = true)]
    internal static partial int FDataSync(int fd);

    [LibraryImport(Lib, EntryPoint = "syncfs", SetLastError = true)]
    internal static partial int SyncFs(int fd);

    [LibraryImport(Lib, EntryPoint = "sync_file_range", SetLastError = true)]
    internal static partial int SyncFileRange(Microsoft.Win32.SafeHandles.SafeFileHandle fd, long offset, long length, uint flags);

    [LibraryImport(Lib, EntryPoint = "sync_file_range", SetLastError = true)]
    internal static partial int SyncFileRange(int fd, long offset, long length, uint flags);

    /// <summary>SYNC_FILE_RANGE_WRITE: start writing the dirty pages back, without waiting.</summary>
    public const uint SyncFileRangeWrite = 2;

    /// <summary>posix_fadvise: returns the error number itself (0 on success), errno is not set.</summary>
    [LibraryImport(Lib, EntryPoint = "posix_fadvise")]
    internal static partial int FAdvise(int fd, long offset, long length, int advice);

    public const int FAdvWillNeed = 3;

    [LibraryImport(Lib, EntryPoint = "fallocate", SetLastError = true)]
    internal static partial int FAllocate(int fd, int mode, long offset, long length);

    [LibraryImport(Lib, EntryPoint = "flock", SetLastError = true)]
    internal static partial int Flock(int fd, int operation);

    [LibraryImport(Lib, EntryPoint = "copy_file_range", SetLastError = true)]
    internal static partial nint CopyFileRange(int fdIn, long* offsetIn, int fdOut, long* offsetOut, nuint length, uint flags);

    [LibraryImport(Lib, EntryPoint = "lseek", SetLastError = true)]
    internal static partial long LSeek(int fd, long offset, int whence);

    [LibraryImport(Lib, EntryPoint = "fstatvfs", SetLastError = true)]
    internal static partial int FStatVfs(int fd, StatVfs* stat);

    [LibraryImport(Lib, EntryPoint = "fdopendir", SetLastError = true)]
    internal static partial nint FdOpenDir(int fd);

    [LibraryImport(Lib, EntryPoint = "readdir", SetLastError = true)]
    internal static partial DirEnt* ReadDir(nint directory);

    [LibraryImport(Lib, EntryPoint = "seekdir")]
    internal static partial void SeekDir(nint directory, long position);

    [LibraryImport(Lib, EntryPoint = "closedir", SetLastError = true)]
    internal static partial int CloseDir(nint directory);

    [LibraryImport(Lib, EntryPoint = "setxattr", SetLastError = true)]
    internal static partial int SetXattr(byte* path, byte* name, byte* value, nuint size, int flags);

    [LibraryImport(Lib, EntryPoint = "getxattr", SetLastError = true)]
    internal static partial nint GetXattr(byte* path, byte* name, byte* value, nuint size);

    [LibraryImport(Lib, EntryPoint = "listxattr", SetLastError = true)]
    internal static partial nint ListXattr(byte* path, byte* list, nuint size);

    [LibraryImport(Lib, EntryPoint = "removexattr", SetLastError = true)]
    internal static partial int RemoveXattr(byte* path, byte* name);

    [LibraryImport(Lib, EntryPoint = "llistxattr", SetLastError = true)]
    internal static partial nint LListXattr(byte* path, byte* list, nuint size);

    [LibraryImport(Lib, EntryPoint = "lgetxattr", SetLastError = true)]
    internal static partial nint LGetXattr(byte* path, byte* name, byte* value, nuint size);

    [LibraryImport(Lib, EntryPoint = "lsetxattr", SetLastError = true)]
    internal static partial int LSetXattr(byte* path, byte* name, byte* value, nuint size, int flags);

    [LibraryImport(Lib, EntryPoint = "lremovexattr", SetLastError = true)]
    internal static partial int LRemoveXattr(byte* path, byte* name);

    public const int ORdonly = 0, OWronly = 1, ORdwr = 2, OAccessMode = 3;
    public const int OCreat = 0x40, OExcl = 0x80, ONoctty = 0x100, OTrunc = 0x200, OAppend = 0x400, ONonblock = 0x800;
    public const int ODsync = 0x1000, ODirect = 0x4000, ODirectory = 0x10000, ONofollow = 0x20000, OCloexec = 0x80000, OSync = 0x101000, OPath = 0x200000;
    public const int AtFdCwd = -100, AtSymlinkNofollow = 0x100, AtRemoveDir = 0x200, AtSymlinkFollow = 0x400, AtEmptyPath = 0x1000;
    public const uint SIfMt = 0xF000, SIfDir = 0x4000, SIfReg = 0x8000, SIfLnk = 0xA000, SIfIfo = 0x1000;
    public const long UtimeNow = (1L << 30) - 1, UtimeOmit = (1L << 30) - 2;
    public const int MntDetach = 2;
    public const int LockShared = 1, LockExclusive = 2, LockNonblocking = 4, LockUnlock = 8;
    public const int ENOENT = 2, EIO = 5, EBADF = 9, EAGAIN = 11, ENOMEM = 12, EACCES = 13, EEXIST = 17, EXDEV = 18, ENOTDIR = 20, EISDIR = 21,
        EINVAL = 22, ENOSPC = 28, EROFS = 30, ERANGE = 34, ENOSYS = 38, ENOTEMPTY = 39, ENODATA = 61, EOPNOTSUPP = 95, ECONNABORTED = 103, ENOTCONN = 107, ESTALE = 116;
}

/// <summary><c>struct dirent</c> (64-bit glibc): the name follows at byte 19.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct DirEnt
{
#pragma warning disable CA1051
    public ulong Ino;
    public long Offset;
    public ushort RecordLength;
    public byte Type;
    public fixed byte Name[256];
#pragma warning restore CA1051
}
