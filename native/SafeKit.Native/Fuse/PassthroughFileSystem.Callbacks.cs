using System.Runtime.InteropServices;
using SafeKit.Native.Files;

namespace SafeKit.Native.Fuse;

// A reply that cannot be sent means the request was interrupted or the mount aborted: the kernel
// no longer waits for it, so there is nothing to do (open and create close their descriptor).
#pragma warning disable CA1806

/// <summary>
/// The entry points libfuse calls (on its own threads). Each finds its file system through the
/// session's userdata and never lets an exception reach native code (that would end the process):
/// it answers EIO instead.
/// </summary>
public sealed unsafe partial class PassthroughFileSystem
{
    /// <summary>The operations table for <see cref="LibFuse.SessionNew"/>.</summary>
    internal static FuseLowLevelOps Operations()
    {
        var ops = default(FuseLowLevelOps);
        ops.Slots[FuseLowLevelOps.Init] = (ulong)(delegate* unmanaged<void*, FuseConnInfo*, void>)&OnInit;
        ops.Slots[FuseLowLevelOps.Lookup] = (ulong)(delegate* unmanaged<nint, ulong, byte*, void>)&OnLookup;
        ops.Slots[FuseLowLevelOps.Forget] = (ulong)(delegate* unmanaged<nint, ulong, ulong, void>)&OnForget;
        ops.Slots[FuseLowLevelOps.ForgetMulti] = (ulong)(delegate* unmanaged<nint, nuint, FuseForgetData*, void>)&OnForgetMulti;
        ops.Slots[FuseLowLevelOps.Getattr] = (ulong)(delegate* unmanaged<nint, ulong, FuseFileInfo*, void>)&OnGetattr;
        ops.Slots[FuseLowLevelOps.Setattr] = (ulong)(delegate* unmanaged<nint, ulong, Stat*, int, FuseFileInfo*, void>)&OnSetattr;
        ops.Slots[FuseLowLevelOps.Readlink] = (ulong)(delegate* unmanaged<nint, ulong, void>)&OnReadlink;
        ops.Slots[FuseLowLevelOps.Mknod] = (ulong)(delegate* unmanaged<nint, ulong, byte*, uint, ulong, void>)&OnMknod;
        ops.Slots[FuseLowLevelOps.Mkdir] = (ulong)(delegate* unmanaged<nint, ulong, byte*, uint, void>)&OnMkdir;
        ops.Slots[FuseLowLevelOps.Unlink] = (ulong)(delegate* unmanaged<nint, ulong, byte*, void>)&OnUnlink;
        ops.Slots[FuseLowLevelOps.Rmdir] = (ulong)(delegate* unmanaged<nint, ulong, byte*, void>)&OnRmdir;
        ops.Slots[FuseLowLevelOps.Symlink] = (ulong)(delegate* unmanaged<nint, byte*, ulong, byte*, void>)&OnSymlink;
        ops.Slots[FuseLowLevelOps.Rename] = (ulong)(delegate* unmanaged<nint, ulong, byte*, ulong, byte*, uint, void>)&OnRename;
        ops.Slots[FuseLowLevelOps.Link] = (ulong)(delegate* unmanaged<nint, ulong, ulong, byte*, void>)&OnLink;
        ops.Slots[FuseLowLevelOps.Open] = (ulong)(delegate* unmanaged<nint, ulong, FuseFileInfo*, void>)&OnOpen;
        ops.Slots[FuseLowLevelOps.Read] = (ulong)(delegate* unmanaged<nint, ulong, nuint, long, FuseFileInfo*, void>)&OnRead;
        ops.Slots[FuseLowLevelOps.Write] = (ulong)(delegate* unmanaged<nint, ulong, byte*, nuint, long, FuseFileInfo*, void>)&OnWrite;
        ops.Slots[FuseLowLevelOps.Flush] = (ulong)(delegate* unmanaged<nint, ulong, FuseFileInfo*, void>)&OnFlush;
        ops.Slots[FuseLowLevelOps.Release] = (ulong)(delegate* unmanaged<nint, ulong, FuseFileInfo*, void>)&OnRelease;
        ops.Slots[FuseLowLevelOps.Fsync] = (ulong)(delegate* unmanaged<nint, ulong, int, FuseFileInfo*, void>)&OnFsync;
        ops.Slots[FuseLowLevelOps.Opendir] = (ulong)(delegate* unmanaged<nint, ulong, FuseFileInfo*, void>)&OnOpendir;
        ops.Slots[FuseLowLevelOps.Readdir] = (ulong)(delegate* unmanaged<nint, ulong, nuint, long, FuseFileInfo*, void>)&OnReaddir;
        ops.Slots[FuseLowLevelOps.Releasedir] = (ulong)(delegate* unmanaged<nint, ulong, FuseFileInfo*, void>)&OnReleasedir;
        ops.Slots[FuseLowLevelOps.Fsyncdir] = (ulong)(delegate* unmanaged<nint, ulong, int, FuseFileInfo*, void>)&OnFsyncdir;
        ops.Slots[FuseLowLevelOps.Statfs] = (ulong)(delegate* unmanaged<nint, ulong, void>)&OnStatfs;
        ops.Slots[FuseLowLevelOps.Setxattr] = (ulong)(delegate* unmanaged<nint, ulong, byte*, byte*, nuint, int, void>)&OnSetxattr;
        ops.Slots[FuseLowLevelOps.Getxattr] = (ulong)(delegate* unmanaged<nint, ulong, byte*, nuint, void>)&OnGetxattr;
        ops.Slots[FuseLowLevelOps.Listxattr] = (ulong)(delegate* unmanaged<nint, ulong, nuint, void>)&OnListxattr;
        ops.Slots[FuseLowLevelOps.Removexattr] = (ulong)(delegate* unmanaged<nint, ulong, byte*, void>)&OnRemovexattr;
        ops.Slots[FuseLowLevelOps.Create] = (ulong)(delegate* unmanaged<nint, ulong, byte*, uint, FuseFileInfo*, void>)&OnCreate;
        ops.Slots[FuseLowLevelOps.Flock] = (ulong)(delegate* unmanaged<nint, ulong, FuseFileInfo*, int, void>)&OnFlock;
        ops.Slots[FuseLowLevelOps.Fallocate] = (ulong)(delegate* unmanaged<nint, ulong, int, long, long, FuseFileInfo*, void>)&OnFallocate;
        ops.Slots[FuseLowLevelOps.CopyFileRange] = (ulong)(delegate* unmanaged<nint, ulong, long, FuseFileInfo*, ulong, long, FuseFileInfo*, nuint, int, void>)&OnCopyFileRange;
        ops.Slots[FuseLowLevelOps.Lseek] = (ulong)(delegate* unmanaged<nint, ulong, long, int, FuseFileInfo*, void>)&OnLseek;
        return ops;
    }

    private static PassthroughFileSystem Of(nint request) => (PassthroughFileSystem)GCHandle.FromIntPtr((nint)LibFuse.RequestUserdata(request)).Target!;

    /// <summary>The last resort of every entry point: the request is answered, the process lives.</summary>
    private static void Failed(nint request) => LibFuse.ReplyErr(request, Posix.EIO);

    [UnmanagedCallersOnly]
    private static void OnInit(void* userdata, FuseConnInfo* connection)
    {
        try
        {
            DoInit(connection);
        }
        catch (Exception)
        {
            // Keep the defaults.
        }
    }

    [UnmanagedCallersOnly]
    private static void OnLookup(nint request, ulong parent, byte* name)
    {
        try { Of(request).DoLookup(request, parent, name); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnForget(nint request, ulong id, ulong count)
    {
        try { Of(request).DoForget(id, count); } catch (Exception) { /* nothing to answer but none */ }
        LibFuse.ReplyNone(request);
    }

    [UnmanagedCallersOnly]
    private static void OnForgetMulti(nint request, nuint count, FuseForgetData* forgets)
    {
        try
        {
            var fs = Of(request);
            for (nuint i = 0; i < count; i++)
            {
                fs.DoForget(forgets[i].Ino, forgets[i].Nlookup);
            }
        }
        catch (Exception)
        {
            // Forgets have no answer.
        }

        LibFuse.ReplyNone(request);
    }

    [UnmanagedCallersOnly]
    private static void OnGetattr(nint request, ulong id, FuseFileInfo* fileInfo)
    {
        try { Of(request).DoGetattr(request, id); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnSetattr(nint request, ulong id, Stat* attr, int toSet, FuseFileInfo* fileInfo)
    {
        try { Of(request).DoSetattr(request, id, attr, toSet, fileInfo); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnReadlink(nint request, ulong id)
    {
        try { Of(request).DoReadlink(request, id); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnMknod(nint request, ulong parent, byte* name, uint mode, ulong device)
    {
        try { Of(request).DoMake(request, parent, name, mode, device, null, directory: false); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnMkdir(nint request, ulong parent, byte* name, uint mode)
    {
        try { Of(request).DoMake(request, parent, name, mode, 0, null, directory: true); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnSymlink(nint request, byte* target, ulong parent, byte* name)
    {
        try { Of(request).DoMake(request, parent, name, 0, 0, target, directory: false); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnUnlink(nint request, ulong parent, byte* name)
    {
        try { Of(request).DoRemove(request, parent, name, directory: false); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnRmdir(nint request, ulong parent, byte* name)
    {
        try { Of(request).DoRemove(request, parent, name, directory: true); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnRename(nint request, ulong parent, byte* name, ulong newParent, byte* newName, uint flags)
    {
        try { Of(request).DoRename(request, parent, name, newParent, newName, flags); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnLink(nint request, ulong id, ulong newParent, byte* newName)
    {
        try { Of(request).DoLink(request, id, newParent, newName); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnOpen(nint request, ulong id, FuseFileInfo* fileInfo)
    {
        try { Of(request).DoOpen(request, id, fileInfo); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnCreate(nint request, ulong parent, byte* name, uint mode, FuseFileInfo* fileInfo)
    {
        try { Of(request).DoCreate(request, parent, name, mode, fileInfo); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnRead(nint request, ulong id, nuint size, long offset, FuseFileInfo* fileInfo)
    {
        try { DoRead(request, size, offset, fileInfo); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnWrite(nint request, ulong id, byte* buffer, nuint size, long offset, FuseFileInfo* fileInfo)
    {
        try { Of(request).DoWrite(request, buffer, size, offset, fileInfo); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnFlush(nint request, ulong id, FuseFileInfo* fileInfo)
    {
        try { DoFlush(request, fileInfo); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnRelease(nint request, ulong id, FuseFileInfo* fileInfo)
    {
        try { Of(request).DoRelease(request, fileInfo); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnFsync(nint request, ulong id, int datasync, FuseFileInfo* fileInfo)
    {
        try { Of(request).DoFsync(request, datasync, fileInfo); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnOpendir(nint request, ulong id, FuseFileInfo* fileInfo)
    {
        try { Of(request).DoOpendir(request, id, fileInfo); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnReaddir(nint request, ulong id, nuint size, long offset, FuseFileInfo* fileInfo)
    {
        try { Of(request).DoReaddir(request, size, offset, fileInfo); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnReleasedir(nint request, ulong id, FuseFileInfo* fileInfo)
    {
        try { Of(request).DoReleasedir(request, fileInfo); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnFsyncdir(nint request, ulong id, int datasync, FuseFileInfo* fileInfo)
    {
        try { Of(request).DoFsyncdir(request, datasync, fileInfo); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnStatfs(nint request, ulong id)
    {
        try { Of(request).DoStatfs(request, id); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnSetxattr(nint request, ulong id, byte* name, byte* value, nuint size, int flags)
    {
        try { Of(request).DoSetxattr(request, id, name, value, size, flags); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnGetxattr(nint request, ulong id, byte* name, nuint size)
    {
        try { Of(request).DoGetxattr(request, id, name, size); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnListxattr(nint request, ulong id, nuint size)
    {
        try { Of(request).DoListxattr(request, id, size); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnRemovexattr(nint request, ulong id, byte* name)
    {
        try { Of(request).DoRemovexattr(request, id, name); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnFlock(nint request, ulong id, FuseFileInfo* fileInfo, int operation)
    {
        try { DoFlock(request, fileInfo, operation); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnFallocate(nint request, ulong id, int mode, long offset, long length, FuseFileInfo* fileInfo)
    {
        try { Of(request).DoFallocate(request, mode, offset, length, fileInfo); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnCopyFileRange(nint request, ulong idIn, long offsetIn, FuseFileInfo* fileIn, ulong idOut, long offsetOut, FuseFileInfo* fileOut, nuint length, int flags)
    {
        try { Of(request).DoCopyFileRange(request, offsetIn, fileIn, offsetOut, fileOut, length, flags); } catch (Exception) { Failed(request); }
    }

    [UnmanagedCallersOnly]
    private static void OnLseek(nint request, ulong id, long offset, int whence, FuseFileInfo* fileInfo)
    {
        try { DoLseek(request, offset, whence, fileInfo); } catch (Exception) { Failed(request); }
    }
}
