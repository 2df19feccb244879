using System.Runtime.InteropServices;

namespace SafeKit.Native.Fuse;

// x86_64 glibc / libfuse 3.14 layouts (sizes checked by a test against the facts in FUSE-FACTS §5).
#pragma warning disable CA1051 // Interop structs: plain fields, as in C.

/// <summary><c>struct timespec</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct Timespec
{
    public long Seconds;
    public long Nanoseconds;
}

/// <summary><c>struct stat</c> (144 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct Stat
{
    public ulong Dev;
    public ulong Ino;
    public ulong Nlink;
    public uint Mode;
    public uint Uid;
    public uint Gid;
    private readonly int _pad0;
    public ulong Rdev;
    public long Size;
    public long Blksize;
    public long Blocks;
    public Timespec Atime;
    public Timespec Mtime;
    public Timespec Ctime;
    private readonly long _reserved0;
    private readonly long _reserved1;
    private readonly long _reserved2;
}

/// <summary><c>struct fuse_entry_param</c> (176 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseEntryParam
{
    public ulong Ino;
    public ulong Generation;
    public Stat Attr;
    public double AttrTimeout;
    public double EntryTimeout;
}

/// <summary><c>struct fuse_file_info</c> of libfuse 3.14 (40 bytes; newer versions differ).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseFileInfo
{
    public int Flags;

    /// <summary>Bitfield: writepage 0x1, direct_io 0x2, keep_cache 0x4, flush 0x8, nonseekable 0x10, flock_release 0x20, cache_readdir 0x40, noflush 0x80.</summary>
    public uint Bits;
    private readonly uint _padding2;
    public ulong Fh;
    public ulong LockOwner;
    public uint PollEvents;

    public const uint DirectIo = 0x2;
    public const uint KeepCache = 0x4;
    public const uint FlockRelease = 0x20;
}

/// <summary><c>struct fuse_conn_info</c> (128 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct FuseConnInfo
{
    public uint ProtoMajor;
    public uint ProtoMinor;
    public uint MaxWrite;
    public uint MaxRead;
    public uint MaxReadahead;
    public uint Capable;
    public uint Want;
    public uint MaxBackground;
    public uint CongestionThreshold;
    public uint TimeGran;
    private fixed uint _reserved[22];
}

/// <summary><c>struct fuse_args</c> (24 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct FuseArgs
{
    public int Argc;
    public byte** Argv;
    public int Allocated;
}

/// <summary><c>struct fuse_ctx</c>: who made the request.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseContext
{
    public uint Uid;
    public uint Gid;
    public int Pid;
    public uint Umask;
}

/// <summary><c>struct statvfs</c> (112 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct StatVfs
{
    public ulong Bsize;
    public ulong Frsize;
    public ulong Blocks;
    public ulong Bfree;
    public ulong Bavail;
    public ulong Files;
    public ulong Ffree;
    public ulong Favail;
    public ulong Fsid;
    public ulong Flag;
    public ulong Namemax;
    private fixed int _spare[6];
}

/// <summary><c>struct fuse_buf</c> (40 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct FuseBuf
{
    public nuint Size;
    public int Flags;
    public void* Mem;
    public int Fd;
    public long Pos;

    public const int IsFd = 2;
    public const int FdSeek = 4;
    public const int FdRetry = 8;
}

/// <summary><c>struct fuse_bufvec</c> with one buffer (64 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseBufVec
{
    public nuint Count;
    public nuint Index;
    public nuint Offset;
    public FuseBuf Buf;
}

/// <summary><c>struct fuse_forget_data</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseForgetData
{
    public ulong Ino;
    public ulong Nlookup;
}

/// <summary>
/// <c>struct fuse_lowlevel_ops</c> of 3.14: 44 function pointers in the order of FUSE-FACTS §1.
/// libfuse copies it, so it need not stay pinned.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct FuseLowLevelOps
{
    public const int Count = 44;
    public fixed ulong Slots[Count];

    public const int Init = 0, Destroy = 1, Lookup = 2, Forget = 3, Getattr = 4, Setattr = 5, Readlink = 6, Mknod = 7, Mkdir = 8, Unlink = 9,
        Rmdir = 10, Symlink = 11, Rename = 12, Link = 13, Open = 14, Read = 15, Write = 16, Flush = 17, Release = 18, Fsync = 19,
        Opendir = 20, Readdir = 21, Releasedir = 22, Fsyncdir = 23, Statfs = 24, Setxattr = 25, Getxattr = 26, Listxattr = 27, Removexattr = 28, Access = 29,
        Create = 30, Getlk = 31, Setlk = 32, Bmap = 33, Ioctl = 34, Poll = 35, WriteBuf = 36, RetrieveReply = 37, ForgetMulti = 38, Flock = 39,
        Fallocate = 40, Readdirplus = 41, CopyFileRange = 42, Lseek = 43;
}

/// <summary>Capability bits of <see cref="FuseConnInfo.Capable"/> and <see cref="FuseConnInfo.Want"/>.</summary>
public static class FuseCapabilities
{
    public const uint AsyncRead = 1u << 0;
    public const uint PosixLocks = 1u << 1;
    public const uint AtomicOTrunc = 1u << 3;
    public const uint ExportSupport = 1u << 4;
    public const uint DontMask = 1u << 6;
    public const uint SpliceWrite = 1u << 7;
    public const uint SpliceMove = 1u << 8;
    public const uint SpliceRead = 1u << 9;
    public const uint FlockLocks = 1u << 10;
    public const uint AutoInvalData = 1u << 12;
    public const uint ReaddirPlus = 1u << 13;
    public const uint ReaddirPlusAuto = 1u << 14;
    public const uint WritebackCache = 1u << 16;
    public const uint ParallelDirops = 1u << 18;
    public const uint PosixAcl = 1u << 19;
    public const uint HandleKillpriv = 1u << 20;
}

/// <summary>Bits of setattr's <c>to_set</c>.</summary>
public static class FuseSetAttr
{
    public const int Mode = 1 << 0;
    public const int Uid = 1 << 1;
    public const int Gid = 1 << 2;
    public const int Size = 1 << 3;
    public const int Atime = 1 << 4;
    public const int Mtime = 1 << 5;
    public const int AtimeNow = 1 << 7;
    public const int MtimeNow = 1 << 8;
    public const int Ctime = 1 << 10;
}
#pragma warning restore CA1051
