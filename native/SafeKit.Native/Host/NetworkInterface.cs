using System.Globalization;
using SafeKit.Native.Interop;

namespace SafeKit.Native.Host;

/// <summary>Facts about one network interface, read from /sys/class/net.</summary>
public sealed record NetworkInterfaceInfo(string Name, int Index, byte[] MacAddress, int Mtu)
{
    /// <summary>Reads the interface, or returns null if it does not exist in this namespace.</summary>
    public static NetworkInterfaceInfo? TryRead(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (name.Contains('/', StringComparison.Ordinal) || name is "." or "..")
        {
            return null;
        }

        var directory = Path.Combine("/sys/class/net", name);
        if (!Directory.Exists(directory))
        {
            return null;
        }

        var index = (int)Libc.IfNameToIndex(name);
        var mac = ParseMac(File.ReadAllText(Path.Combine(directory, "address")).Trim());
        var mtu = int.Parse(File.ReadAllText(Path.Combine(directory, "mtu")).Trim(), CultureInfo.InvariantCulture);
        return new NetworkInterfaceInfo(name, index, mac, mtu);
    }

    /// <summary>Names of every interface in this network namespace.</summary>
    public static IReadOnlyList<string> List() =>
        Directory.Exists("/sys/class/net")
            ? Directory.GetFileSystemEntries("/sys/class/net").Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToArray()
            : [];

    private static byte[] ParseMac(string text)
    {
        var parts = text.Split(':');
        var mac = new byte[6];
        for (var i = 0; i < 6 && i < parts.Length; i++)
        {
            mac[i] = byte.Parse(parts[i], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        }

        return mac;
    }
}
