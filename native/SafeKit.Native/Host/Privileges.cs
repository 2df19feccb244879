using System.Globalization;
using SafeKit.Native.Interop;

namespace SafeKit.Native.Host;

/// <summary>What this process may do: effective uid and Linux capabilities.</summary>
public static class Privileges
{
    public const int CapNetAdmin = 12;
    public const int CapNetRaw = 13;
    public const int CapSysAdmin = 21;

    /// <summary>True when running with effective uid 0.</summary>
    public static bool IsRoot => Libc.GetEuid() == 0;

    /// <summary>True when the effective capability set holds <paramref name="capability"/>.</summary>
    public static bool HasCapability(int capability)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("CapEff:", StringComparison.Ordinal))
            {
                var mask = ulong.Parse(line.AsSpan(7).Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                return (mask & (1UL << capability)) != 0;
            }
        }

        return false;
    }
}
