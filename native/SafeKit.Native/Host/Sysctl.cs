namespace SafeKit.Native.Host;

/// <summary>Reads and writes kernel parameters under /proc/sys (per network namespace for net.*).</summary>
public static class Sysctl
{
    private const string Root = "/proc/sys/";

    /// <summary>Path of a dotted key (net.ipv4.conf.eth0.arp_ignore).</summary>
    public static string PathOf(string key)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        return Root + key.Replace('.', '/');
    }

    /// <summary>Current value, or null when the key does not exist.</summary>
    public static string? Read(string key)
    {
        var path = PathOf(key);
        return File.Exists(path) ? File.ReadAllText(path).Trim() : null;
    }

    /// <summary>Writes a value; throws IOException/UnauthorizedAccessException with the kernel's answer.</summary>
    public static void Write(string key, string value) => File.WriteAllText(PathOf(key), value);
}
