using SafeKit.Native.Files;

namespace SafeKit.Native.Fuse;

/// <summary>
/// Clearing set-user-ID and set-group-ID where a local file system would, once the kernel leaves
/// it to us (<see cref="FuseDevice"/>): it flags the write, truncate, O_TRUNC open or chown of a
/// caller without CAP_FSETID, and we make and replicate the mode change before the change itself,
/// as one more setattr. Our own writes into the real files cannot do it: the daemon has CAP_FSETID.
/// </summary>
public sealed unsafe partial class PassthroughFileSystem
{
    private const uint SetUserId = 0x800;
    private const uint SetGroupId = 0x400;
    private const uint GroupExecute = 0x8;

    /// <summary>What the kernel clears for such a caller: set-user-ID, and set-group-ID when the group may execute (otherwise it marks mandatory locking).</summary>
    private static uint WithoutPrivileges(uint mode) =>
        mode & ~SetUserId & ((mode & GroupExecute) != 0 ? ~SetGroupId : ~0u);

    /// <summary>Whether the regular file behind <paramref name="fd"/> (open or O_PATH) has privileges to lose: its state and mode without them.</summary>
    private static bool HasPrivileges(int fd, out Stat now, out uint killed)
    {
        Stat stat;
        var found = Posix.FStatAt(fd, (byte*)Empty, &stat, Posix.AtEmptyPath | Posix.AtSymlinkNofollow) == 0 && (stat.Mode & 0xF000) == 0x8000;
        now = stat;
        killed = WithoutPrivileges(stat.Mode & 0xFFF);
        return found && killed != (stat.Mode & 0xFFF);
    }

    /// <summary>
    /// Under <see cref="_sequence"/>, before a write or after an O_TRUNC open the kernel flagged,
    /// or before a fallocate or copy_file_range into the file by <paramref name="caller"/> (the
    /// kernel flags neither; a local file system clears the bits for them too): clears the
    /// privileges of the file open as <paramref name="handle"/> and replicates that.
    /// </summary>
    private ReplicationTicket KillPrivileges(ulong handle, nint caller = 0)
    {
        // Without FUSE_HANDLE_KILLPRIV_V2 the kernel clears them itself, except on O_DIRECT
        // writes, which it flags whatever was negotiated.
        var asked = caller == 0 ? FuseDevice.KillSuidGidRequested : Negotiation.HandlesKillPriv;
        if (!asked || !_open.TryGetValue(handle, out var file) || Node(file.Node) is not { } inode)
        {
            return ReplicationTicket.None;
        }

        if (!HasPrivileges((int)handle, out var now, out var killed) || (caller != 0 && MayKeepPrivileges(caller)) || Posix.FChmod((int)handle, killed) < 0)
        {
            // Nothing to clear; or, like the kernel's own attempt, a failure that does not stop the change.
            return ReplicationTicket.None;
        }

        var attr = now;
        attr.Mode = killed;
        return SendSetattr(inode, (long)handle, FuseSetAttr.Mode, &attr);
    }

    /// <summary>Whether the process behind <paramref name="request"/> has CAP_FSETID (asked only of a file that has privileges to lose).</summary>
    private static bool MayKeepPrivileges(nint request)
    {
        var context = LibFuse.RequestContext(request);
        const ulong FileSetId = 1UL << 4; // CAP_FSETID
        try
        {
            foreach (var line in File.ReadLines($"/proc/{context->Pid}/status"))
            {
                if (line.StartsWith("CapEff:", StringComparison.Ordinal))
                {
                    return (ulong.Parse(line.AsSpan(7).Trim(), System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture) & FileSetId) != 0;
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            // Gone already, or in a PID namespace we cannot see: judge by the user.
        }

        return context->Uid == 0;
    }

    /// <summary>
    /// Under <see cref="_sequence"/>, for a setattr the kernel flagged (a truncate or chown): the
    /// mode change it implies, folded into the same setattr unless it sets the mode itself.
    /// </summary>
    private static int WithKilledPrivileges(Inode inode, Stat* attr, int toSet)
    {
        if (!FuseDevice.KillSuidGidRequested || (toSet & FuseSetAttr.Mode) != 0)
        {
            return toSet;
        }

        if (!HasPrivileges(inode.Fd, out _, out var killed))
        {
            return toSet;
        }

        attr->Mode = killed;
        return toSet | FuseSetAttr.Mode;
    }
}
