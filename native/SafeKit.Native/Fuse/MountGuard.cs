using SafeKit.Native.Files;
using SafeKit.Native.Interop;

namespace SafeKit.Native.Fuse;

/// <summary>
/// Keeps a replicated path from ever exposing a plain directory. Under the FUSE mount lies a
/// read-only, empty tmpfs (the guard): when the FUSE mount goes (an orderly stop, a detached
/// crashed mount) the application's writes there fail with EROFS instead of landing, unreplicated,
/// in the directory underneath. The guard stays mounted when safekitd stops, on purpose.
/// </summary>
public static class MountGuard
{
    /// <summary>Source name of the guard in /proc/self/mountinfo.</summary>
    public const string Source = "safekit-guard";

    private const ulong ReadOnly = 1;
    private const ulong NoSuid = 2;
    private const ulong NoDev = 4;
    private const ulong NoExec = 8;

    /// <summary>
    /// Detaches the FUSE mounts a crashed safekitd left on <paramref name="path"/> (they answer
    /// ENOTCONN) and makes sure the guard lies under whatever is mounted next.
    /// </summary>
    /// <exception cref="NativeException">The guard cannot be mounted.</exception>
    public static void Prepare(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        Directory.CreateDirectory(path);
        for (var i = 0; i < 16 && Top(path) is { FileSystemType: var type } && type.StartsWith("fuse", StringComparison.Ordinal); i++)
        {
            FuseMount.DetachStale(path);
        }

        if (Top(path) is { Source: Source })
        {
            return;
        }

        if (Posix.Mount(Source, path, "tmpfs", ReadOnly | NoSuid | NoDev | NoExec, "size=4k,nr_inodes=16,mode=0555") != 0)
        {
            throw new NativeException($"mount of the read-only guard on {path}", Posix.Errno);
        }
    }

    /// <summary>Whether the guard is the top mount on <paramref name="path"/> (no FUSE mount above it).</summary>
    public static bool Exposed(string path) => Top(path) is { Source: Source };

    /// <summary>The top-most mount on <paramref name="path"/> in this mount namespace, if any.</summary>
    public static MountEntry? Top(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var target = path.TrimEnd('/');
        MountEntry? top = null;
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            // id parent major:minor root mountpoint options [optional...] - fstype source super-options
            var fields = line.Split(' ');
            var separator = Array.IndexOf(fields, "-");
            if (fields.Length < 5 || separator < 0 || separator + 2 >= fields.Length)
            {
                continue;
            }

            if (Unescape(fields[4]) == target)
            {
                top = new MountEntry(target, fields[separator + 1], Unescape(fields[separator + 2]));
            }
        }

        return top;
    }

    /// <summary>mountinfo writes space, tab, newline and backslash as octal escapes.</summary>
    private static string Unescape(string field) =>
        field.Replace("\\040", " ", StringComparison.Ordinal).Replace("\\011", "\t", StringComparison.Ordinal)
            .Replace("\\012", "\n", StringComparison.Ordinal).Replace("\\134", "\\", StringComparison.Ordinal);
}

/// <summary>One mount as /proc/self/mountinfo lists it.</summary>
public sealed record MountEntry(string MountPoint, string FileSystemType, string Source);
