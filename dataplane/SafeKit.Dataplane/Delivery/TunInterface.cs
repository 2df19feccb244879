using System.Net;
using System.Net.Sockets;
using SafeKit.Native.Host;

namespace SafeKit.Dataplane.Delivery;

/// <summary>Brings the VIP TUN up and gives it the VIPs as host addresses.</summary>
public static class TunInterface
{
    /// <summary>Configures <paramref name="name"/> with <paramref name="vips"/> (IPv6 without DAD).</summary>
    public static void Configure(string name, IReadOnlyList<IPAddress> vips, int mtu)
    {
        ArgumentNullException.ThrowIfNull(vips);
        CommandRunner.RunChecked("ip", ["link", "set", "dev", name, "mtu", mtu.ToString(System.Globalization.CultureInfo.InvariantCulture), "up"]);
        foreach (var vip in vips)
        {
            if (vip.AddressFamily == AddressFamily.InterNetwork)
            {
                CommandRunner.RunChecked("ip", ["-4", "addr", "replace", $"{vip}/32", "dev", name]);
            }
            else
            {
                CommandRunner.RunChecked("ip", ["-6", "addr", "replace", $"{vip}/128", "dev", name, "nodad"]);
            }
        }
    }
}
