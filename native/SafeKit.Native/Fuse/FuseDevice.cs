using System.Buffers.Binary;
using System.Runtime.InteropServices;
using SafeKit.Native.Files;

namespace SafeKit.Native.Fuse;

/// <summary>
/// The session's own reads and writes of /dev/fuse (libfuse's custom I/O), for one thing the
/// kernel offers and libfuse 3.14 cannot ask for: <c>FUSE_HANDLE_KILLPRIV_V2</c> (protocol 7.33,
/// libfuse 3.17). Without it the kernel clears <c>SB_NOSEC</c> on every FUSE mount, so before
/// every write it asks the daemon for the file's <c>security.capability</c> xattr: one more round
/// trip through the daemon per write (on this VM fio's 4 KiB writes to passthrough_ll took 36 µs
/// without xattr support and 93 µs with it). With it the kernel asks once per inode and leaves
/// clearing set-user-ID and set-group-ID to the daemon, flagging the requests where a local file
/// system would clear them (the caller lacks CAP_FSETID): writes, truncates, opens with O_TRUNC
/// and chown. libfuse drops those flags, so <see cref="Read"/> notes them for the worker thread
/// that reads the request (it also serves it) and <see cref="PassthroughFileSystem"/> clears the
/// bits. <c>security.capability</c> itself is removed by the real file system under the data
/// directory, whose writes, truncates and chowns we make through the VFS.
/// </summary>
internal static unsafe class FuseDevice
{
    private const int InHeaderLength = 40;
    private const uint OpSetattr = 4;
    private const uint OpOpen = 14;
    private const uint OpWrite = 16;
    private const uint OpInit = 26;
    private const uint OpCreate = 35;
    private const uint InitHandleKillPrivV2 = 1u << 28;
    private const uint WriteKillSuidGid = 1u << 2;
    private const uint SetattrKillSuidGid = 1u << 11;
    private const uint OpenKillSuidGid = 1u << 0;

    [ThreadStatic]
    private static bool t_killSuidGid;

    // INIT requests read and not yet answered, over all mounts: every other reply skips the check.
    private static int s_initsPending;

    /// <summary>Whether the request this libfuse worker serves asked the daemon to clear set-user-ID and set-group-ID.</summary>
    public static bool KillSuidGidRequested => t_killSuidGid;

    /// <summary>Serves <paramref name="session"/> (mounted) through <see cref="Read"/> and <see cref="Writev"/>; 0 or -errno.</summary>
    public static int Attach(nint session)
    {
        var io = new FuseCustomIo
        {
            Writev = (nint)(delegate* unmanaged<int, Posix.IoVector*, int, void*, nint>)&Writev,
            Read = (nint)(delegate* unmanaged<int, byte*, nuint, void*, nint>)&Read,
            SpliceReceive = 0, // Writes arrive in memory (no write_buf), as without custom I/O.
            SpliceSend = Splice, // libc's splice: replies to reads still move file pages without a copy.
        };
        return LibFuse.SessionCustomIo(session, &io, LibFuse.SessionFd(session));
    }

    // libfuse passes one argument more (its userdata) than splice takes; the C calling convention
    // lets the callee ignore it.
    private static readonly nint Splice = NativeLibrary.GetExport(NativeLibrary.Load("libc.so.6"), "splice");

    [UnmanagedCallersOnly]
    private static nint Read(int fd, byte* buffer, nuint length, void* userdata)
    {
        var read = Posix.Read(fd, buffer, length);
        if (read < 0)
        {
            // libfuse reads errno (ENOENT: interrupted, ENODEV: unmounted) once this returns.
            Marshal.SetLastSystemError(Posix.Errno);
            return read;
        }

        t_killSuidGid = false;
        if (read >= InHeaderLength)
        {
            try
            {
                Inspect(new ReadOnlySpan<byte>(buffer, (int)read), userdata);
            }
            catch (Exception)
            {
                // Nothing noted: the request is served as libfuse alone would.
            }
        }

        return read;
    }

    private static void Inspect(ReadOnlySpan<byte> request, void* userdata)
    {
        var opcode = BinaryPrimitives.ReadUInt32LittleEndian(request[4..]);
        var body = request[InHeaderLength..];
        switch (opcode)
        {
            case OpWrite when body.Length >= 24:
                t_killSuidGid = (BinaryPrimitives.ReadUInt32LittleEndian(body[20..]) & WriteKillSuidGid) != 0;
                break;
            case OpSetattr when body.Length >= 4:
                t_killSuidGid = (BinaryPrimitives.ReadUInt32LittleEndian(body) & SetattrKillSuidGid) != 0;
                break;
            case OpOpen when body.Length >= 8:
                t_killSuidGid = (BinaryPrimitives.ReadUInt32LittleEndian(body[4..]) & OpenKillSuidGid) != 0;
                break;
            case OpCreate when body.Length >= 16:
                t_killSuidGid = (BinaryPrimitives.ReadUInt32LittleEndian(body[12..]) & OpenKillSuidGid) != 0;
                break;
            case OpInit when body.Length >= 16:
                var fs = (PassthroughFileSystem)GCHandle.FromIntPtr((nint)userdata).Target!;
                var offered = (BinaryPrimitives.ReadUInt32LittleEndian(body[12..]) & InitHandleKillPrivV2) != 0;
                fs.Negotiation.Received(BinaryPrimitives.ReadUInt64LittleEndian(request[8..]), offered);
                Interlocked.Increment(ref s_initsPending);
                break;
        }
    }

    [UnmanagedCallersOnly]
    private static nint Writev(int fd, Posix.IoVector* vectors, int count, void* userdata)
    {
        try
        {
            if (Volatile.Read(ref s_initsPending) != 0 && count >= 1 && vectors[0].Length >= 16
                && GCHandle.FromIntPtr((nint)userdata).Target is PassthroughFileSystem { Negotiation.Pending: true } fs)
            {
                // struct fuse_out_header: len, error, unique; then struct fuse_init_out, flags at 12.
                var header = (byte*)vectors[0].Base;
                var unique = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(header + 8, 8));
                var error = BinaryPrimitives.ReadInt32LittleEndian(new ReadOnlySpan<byte>(header + 4, 4));
                if (fs.Negotiation.IsReplyToInit(unique))
                {
                    Interlocked.Decrement(ref s_initsPending);
                    if (error == 0 && count >= 2 && vectors[1].Length >= 16 && fs.Negotiation.Offered)
                    {
                        *(uint*)((byte*)vectors[1].Base + 12) |= InitHandleKillPrivV2;
                        fs.Negotiation.Agreed();
                    }
                }
            }
        }
        catch (Exception)
        {
            // The reply goes as libfuse made it.
        }

        var written = Posix.WriteV(fd, vectors, count);
        if (written < 0)
        {
            // libfuse reads errno (ENOENT: the request was interrupted) once this returns.
            Marshal.SetLastSystemError(Posix.Errno);
        }

        return written;
    }
}

/// <summary>struct fuse_custom_io (libfuse 3.14): writev, read, splice_receive, splice_send.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseCustomIo
{
    public nint Writev;
    public nint Read;
    public nint SpliceReceive;
    public nint SpliceSend;
}

/// <summary>What one mount's INIT settled beyond libfuse: whether the daemon clears set-user-ID and set-group-ID itself.</summary>
internal sealed class FuseNegotiation
{
    private long _initUnique;

    /// <summary>The INIT request is read and not yet answered.</summary>
    public bool Pending => Volatile.Read(ref _initUnique) != 0;

    /// <summary>The kernel offered <c>FUSE_HANDLE_KILLPRIV_V2</c>.</summary>
    public bool Offered { get; private set; }

    /// <summary>The INIT reply took <c>FUSE_HANDLE_KILLPRIV_V2</c>: the daemon clears set-user-ID and set-group-ID where the kernel flags it.</summary>
    public bool HandlesKillPriv { get; private set; }

    public void Received(ulong unique, bool offered)
    {
        Offered = offered;
        Volatile.Write(ref _initUnique, (long)unique);
    }

    public bool IsReplyToInit(ulong unique) => Interlocked.CompareExchange(ref _initUnique, 0, (long)unique) == (long)unique;

    public void Agreed() => HandlesKillPriv = true;
}
