using System.Runtime.InteropServices;

namespace SafeKit.Native.Fuse;

/// <summary>
/// libfuse 3.14's low-level API (libfuse3.so.3: Debian ships the unversioned name only with -dev).
/// Replies take a positive errno; a request may be answered after its callback returned, from any
/// thread, exactly once.
/// </summary>
internal static unsafe partial class LibFuse
{
    private const string Lib = "libfuse3.so.3";

    [LibraryImport(Lib, EntryPoint = "fuse_session_new")]
    internal static partial nint SessionNew(FuseArgs* args, FuseLowLevelOps* ops, nuint opSize, void* userdata);

    [LibraryImport(Lib, EntryPoint = "fuse_session_mount", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int SessionMount(nint session, string mountpoint);

    [LibraryImport(Lib, EntryPoint = "fuse_session_custom_io")]
    internal static partial int SessionCustomIo(nint session, FuseCustomIo* io, int fd);

    [LibraryImport(Lib, EntryPoint = "fuse_session_fd")]
    internal static partial int SessionFd(nint session);

    [LibraryImport(Lib, EntryPoint = "fuse_session_loop_mt")]
    internal static partial int SessionLoopMt(nint session, nint config);

    [LibraryImport(Lib, EntryPoint = "fuse_loop_cfg_create")]
    internal static partial nint LoopConfigCreate();

    [LibraryImport(Lib, EntryPoint = "fuse_loop_cfg_destroy")]
    internal static partial void LoopConfigDestroy(nint config);

    [LibraryImport(Lib, EntryPoint = "fuse_loop_cfg_set_max_threads")]
    internal static partial void LoopConfigSetMaxThreads(nint config, uint maxThreads);

    [LibraryImport(Lib, EntryPoint = "fuse_loop_cfg_set_idle_threads")]
    internal static partial void LoopConfigSetIdleThreads(nint config, uint idleThreads);

    [LibraryImport(Lib, EntryPoint = "fuse_session_unmount")]
    internal static partial void SessionUnmount(nint session);

    [LibraryImport(Lib, EntryPoint = "fuse_session_destroy")]
    internal static partial void SessionDestroy(nint session);

    [LibraryImport(Lib, EntryPoint = "fuse_session_exit")]
    internal static partial void SessionExit(nint session);

    [LibraryImport(Lib, EntryPoint = "fuse_req_userdata")]
    internal static partial void* RequestUserdata(nint request);

    [LibraryImport(Lib, EntryPoint = "fuse_req_ctx")]
    internal static partial FuseContext* RequestContext(nint request);

    [LibraryImport(Lib, EntryPoint = "fuse_reply_err")]
    internal static partial int ReplyErr(nint request, int errno);

    [LibraryImport(Lib, EntryPoint = "fuse_reply_none")]
    internal static partial void ReplyNone(nint request);

    [LibraryImport(Lib, EntryPoint = "fuse_reply_entry")]
    internal static partial int ReplyEntry(nint request, FuseEntryParam* entry);

    [LibraryImport(Lib, EntryPoint = "fuse_reply_create")]
    internal static partial int ReplyCreate(nint request, FuseEntryParam* entry, FuseFileInfo* fileInfo);

    [LibraryImport(Lib, EntryPoint = "fuse_reply_attr")]
    internal static partial int ReplyAttr(nint request, Stat* attr, double timeout);

    [LibraryImport(Lib, EntryPoint = "fuse_reply_readlink")]
    internal static partial int ReplyReadlink(nint request, byte* link);

    [LibraryImport(Lib, EntryPoint = "fuse_reply_open")]
    internal static partial int ReplyOpen(nint request, FuseFileInfo* fileInfo);

    [LibraryImport(Lib, EntryPoint = "fuse_reply_write")]
    internal static partial int ReplyWrite(nint request, nuint count);

    [LibraryImport(Lib, EntryPoint = "fuse_reply_buf")]
    internal static partial int ReplyBuf(nint request, byte* buffer, nuint size);

    [LibraryImport(Lib, EntryPoint = "fuse_reply_data")]
    internal static partial int ReplyData(nint request, FuseBufVec* bufvec, int flags);

    [LibraryImport(Lib, EntryPoint = "fuse_reply_statfs")]
    internal static partial int ReplyStatfs(nint request, StatVfs* stat);

    [LibraryImport(Lib, EntryPoint = "fuse_reply_xattr")]
    internal static partial int ReplyXattr(nint request, nuint count);

    [LibraryImport(Lib, EntryPoint = "fuse_reply_lseek")]
    internal static partial int ReplyLseek(nint request, long offset);

    [LibraryImport(Lib, EntryPoint = "fuse_add_direntry")]
    internal static partial nuint AddDirentry(nint request, byte* buffer, nuint size, byte* name, Stat* stat, long nextOffset);

    [LibraryImport(Lib, EntryPoint = "fuse_add_direntry_plus")]
    internal static partial nuint AddDirentryPlus(nint request, byte* buffer, nuint size, byte* name, FuseEntryParam* entry, long nextOffset);
}
