using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace SafeKit.Dataplane.Decisions;

/// <summary>How frames for the VIP reach every node.</summary>
public enum L2Mode
{
    /// <summary>
    /// A locally administered unicast MAC that no port ever sends from: switches never learn it
    /// and flood it to every port.
    /// </summary>
    Unicast,

    /// <summary>A multicast MAC: flooded by design (mind IGMP/MLD snooping on the switch).</summary>
    Multicast,
}

/// <summary>
/// The MAC addresses the VIPs resolve to. Derived from the first IPv4 VIP (else the first IPv6 VIP)
/// so that every node computes the same one without configuration:
/// unicast <c>02:53:4b:x:y:z</c> ("SK", locally administered) for every VIP;
/// multicast <c>01:00:5e:7f:y:z</c> for IPv4 VIPs and <c>33:33:7f:x:y:z</c> for IPv6 VIPs.
/// </summary>
public sealed record ClusterMac(L2Mode Mode, byte[] IPv4Mac, byte[] IPv6Mac)
{
    /// <summary>Derives the cluster MACs of <paramref name="vips"/>.</summary>
    public static ClusterMac Derive(L2Mode mode, IReadOnlyList<IPAddress> vips, byte[]? overrideMac = null)
    {
        ArgumentNullException.ThrowIfNull(vips);
        if (vips.Count == 0)
        {
            throw new ArgumentException("a farm needs at least one VIP", nameof(vips));
        }

        if (overrideMac is not null)
        {
            return new ClusterMac(mode, overrideMac, overrideMac);
        }

        var first = vips.FirstOrDefault(v => v.AddressFamily == AddressFamily.InterNetwork) ?? vips[0];
        var bytes = first.GetAddressBytes();
        var x = bytes[^3];
        var y = bytes[^2];
        var z = bytes[^1];
        return mode == L2Mode.Unicast
            ? new ClusterMac(mode, [0x02, 0x53, 0x4b, x, y, z], [0x02, 0x53, 0x4b, x, y, z])
            : new ClusterMac(mode, [0x01, 0x00, 0x5e, 0x7f, y, z], [0x33, 0x33, 0x7f, x, y, z]);
    }

    /// <summary>True when <paramref name="destination"/> (a frame's first six bytes) is a cluster MAC.</summary>
    public bool Matches(ReadOnlySpan<byte> destination) =>
        destination.StartsWith(IPv4Mac) || destination.StartsWith(IPv6Mac);

    /// <summary>Formats a MAC as aa:bb:cc:dd:ee:ff.</summary>
    public static string Format(ReadOnlySpan<byte> mac)
    {
        var parts = new string[mac.Length];
        for (var i = 0; i < mac.Length; i++)
        {
            parts[i] = mac[i].ToString("x2", CultureInfo.InvariantCulture);
        }

        return string.Join(':', parts);
    }

    /// <summary>Parses aa:bb:cc:dd:ee:ff; null when malformed.</summary>
    public static byte[]? TryParse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split(':');
        if (parts.Length != 6)
        {
            return null;
        }

        var mac = new byte[6];
        for (var i = 0; i < 6; i++)
        {
            if (parts[i].Length != 2 || !byte.TryParse(parts[i], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out mac[i]))
            {
                return null;
            }
        }

        return mac;
    }
}
