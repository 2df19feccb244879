using System.Runtime.InteropServices;
using SafeKit.Native.Files;
using SafeKit.Native.Interop;

namespace SafeKit.Native.Fuse;

/// <summary>
/// A <see cref="PassthroughFileSystem"/> mounted on a path: a libfuse session served by its
/// multithreaded loop on a dedicated thread, unmounted on dispose. Mounted with
/// <c>default_permissions</c> (the kernel checks modes and ACLs) and <c>allow_other</c>, without
/// <c>auto_unmount</c>: if the daemon dies the mount stays and every access fails with ENOTCONN,
/// so nothing can land in the plain directory underneath without being replicated.
/// </summary>
public sealed unsafe class FuseMount : IDisposable
{
    /// <summary>libfuse worker threads at most (a worker blocked in a callback is one fewer to serve).</summary>
    public const uint MaxThreads = 16;

    private readonly nint _session;
    private readonly GCHandle _self;
    private readonly nint[] _arguments;
    private readonly Thread _loop;
    private int _disposed;

    private FuseMount(nint session, GCHandle self, nint[] arguments, string mountpoint)
    {
        _session = session;
        _self = self;
        _arguments = arguments;
        Mountpoint = mountpoint;
        _loop = new Thread(Loop) { IsBackground = true, Name = "sk-fuse-loop" };
        _loop.Start();
    }

    public string Mountpoint { get; }

    /// <summary>Mounts <paramref name="fileSystem"/> on <paramref name="mountpoint"/> (an existing directory).</summary>
    /// <exception cref="NativeException">libfuse refused the options or the mount.</exception>
    public static FuseMount Mount(PassthroughFileSystem fileSystem, string mountpoint, string fsName = "safekit")
    {
        ArgumentNullException.ThrowIfNull(fileSystem);
        ArgumentNullException.ThrowIfNull(mountpoint);
        // A read-only view is refused every change by the kernel itself (EROFS), before it reaches us.
        string[] argv = ["safekitd", "-o", $"default_permissions,allow_other,fsname={fsName},subtype=safekit{(fileSystem.ReadOnly ? ",ro" : string.Empty)}"];
        var arguments = argv.Select(Marshal.StringToCoTaskMemUTF8).ToArray();
        var self = GCHandle.Alloc(fileSystem);
        nint session;
        fixed (nint* argvPointer = arguments)
        {
            var args = new FuseArgs { Argc = arguments.Length, Argv = (byte**)argvPointer, Allocated = 0 };
            var ops = PassthroughFileSystem.Operations();
            session = LibFuse.SessionNew(&args, &ops, (nuint)sizeof(FuseLowLevelOps), (void*)GCHandle.ToIntPtr(self));
        }

        if (session == 0)
        {
            Free(self, arguments);
            throw new NativeException($"fuse_session_new for {mountpoint} failed (see the libfuse message above)");
        }

        if (LibFuse.SessionMount(session, mountpoint) != 0)
        {
            LibFuse.SessionDestroy(session);
            Free(self, arguments);
            throw new NativeException($"cannot mount the FUSE file system on {mountpoint} (does it exist? is /dev/fuse there? are we root?)");
        }

        // Before the loop reads INIT. On failure libfuse says why and serves the device itself:
        // every write then costs the kernel's security.capability lookup, nothing else changes.
        _ = FuseDevice.Attach(session);

        return new FuseMount(session, self, arguments, mountpoint);
    }

    private void Loop()
    {
        var config = LibFuse.LoopConfigCreate();
        LibFuse.LoopConfigSetMaxThreads(config, MaxThreads);
        _ = LibFuse.SessionLoopMt(_session, config);
        LibFuse.LoopConfigDestroy(config);
    }

    /// <summary>Unmounts (the loop's reads then fail and it returns) and frees the session.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // Unmount first, so the loop's reads end (ENODEV) and it returns before its descriptor closes;
        // lazily when busy. fuse_session_unmount then only closes the device.
        var connection = ConnectionOf(Mountpoint);
        var path = PassthroughFileSystem.Utf8(Mountpoint);
        var detached = false;
        fixed (byte* p = path)
        {
            if (Posix.Umount2(p, 0) < 0)
            {
                detached = Posix.Umount2(p, Posix.MntDetach) == 0;
            }
        }

        // Detached while a process still holds a file open in it: the connection would live on and
        // that process keep changing the files after the node stopped replicating them (it may be
        // SECOND by now). Aborting the connection fails every further access (ENOTCONN).
        if (detached && connection is { } id && !_loop.Join(TimeSpan.FromMilliseconds(200)))
        {
            FuseConnections.Abort(id);
        }

        // A write or fsync answered later, once SECOND acknowledges it (DeferredReply), replies through
        // the session: it must outlive them. They end with an acknowledgement or the link's loss.
        var fileSystem = (PassthroughFileSystem)_self.Target!;
        if (_loop.Join(TimeSpan.FromSeconds(10)) && SpinWait.SpinUntil(() => fileSystem.RepliesDeferred == 0, TimeSpan.FromSeconds(10)))
        {
            LibFuse.SessionUnmount(_session);
            LibFuse.SessionDestroy(_session);
            Free(_self, _arguments);
        }

        // Else a worker is stuck in a callback, or a reply still waits: leaking the session is safer than freeing it under them.
    }

    /// <summary>Detaches a mount a crashed daemon left behind (its accesses fail with ENOTCONN) so the path can be mounted again.</summary>
    public static bool DetachStale(string mountpoint)
    {
        ArgumentNullException.ThrowIfNull(mountpoint);
        var path = PassthroughFileSystem.Utf8(mountpoint);
        fixed (byte* p = path)
        {
            return Posix.Umount2(p, Posix.MntDetach) == 0;
        }
    }

    /// <summary>The FUSE connection behind the mount on <paramref name="mountpoint"/> (its device minor in /proc/self/mountinfo), or null.</summary>
    private static int? ConnectionOf(string mountpoint)
    {
        int? found = null;
        try
        {
            foreach (var line in File.ReadLines("/proc/self/mountinfo"))
            {
                // id parent major:minor root mountpoint options... - fstype source
                var fields = line.Split(' ');
                if (fields.Length > 4 && fields[4] == mountpoint && fields[2].Split(':') is [_, var minor] && line.Contains(" - fuse", StringComparison.Ordinal)
                    && int.TryParse(minor, System.Globalization.CultureInfo.InvariantCulture, out var id))
                {
                    found = id; // The last one is the mount on top.
                }
            }
        }
        catch (IOException)
        {
            return null;
        }

        return found;
    }

    private static void Free(GCHandle self, nint[] arguments)
    {
        self.Free();
        foreach (var argument in arguments)
        {
            Marshal.FreeCoTaskMem(argument);
        }
    }
}
