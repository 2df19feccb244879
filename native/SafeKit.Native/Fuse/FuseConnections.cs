using SafeKit.Native.Files;

namespace SafeKit.Native.Fuse;

/// <summary>
/// The kernel's FUSE control file system (fusectl, /sys/fs/fuse/connections): aborting a
/// connection ends every request on it at once and fails every later access with ENOTCONN.
/// </summary>
internal static class FuseConnections
{
    private const string Root = "/sys/fs/fuse/connections";

    /// <summary>Aborts connection <paramref name="id"/>; mounts fusectl for the moment when this mount namespace lacks it.</summary>
    /// <returns>Whether the abort was written.</returns>
    public static bool Abort(int id)
    {
        var mounted = false;
        try
        {
            if (!Directory.Exists(Path.Combine(Root, id.ToString(System.Globalization.CultureInfo.InvariantCulture))))
            {
                mounted = Posix.Mount("fusectl", Root, "fusectl", 0, "") == 0;
            }

            File.WriteAllText(Path.Combine(Root, id.ToString(System.Globalization.CultureInfo.InvariantCulture), "abort"), "1");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
        finally
        {
            if (mounted)
            {
                _ = Posix.Umount2(Root, 0);
            }
        }
    }
}
