using System.Globalization;
using System.Net;
using System.Net.Sockets;
using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Engine;
using SafeKit.Native.Host;
using NetInterface = System.Net.NetworkInformation.NetworkInterface;

namespace SafeKit.Dataplane.Preflight;

/// <summary>
/// Checks made before the dataplane touches the node, and the kernel settings it needs. Each
/// setting is written and read back; a node where one does not hold refuses to start, because
/// every one of them, wrong, silently breaks the farm:
/// <list type="bullet">
/// <item>arp_ignore=1 on the farm interface: else the kernel answers ARP for the VIP (it is local,
/// on the TUN) with the node's own MAC and that node takes all the traffic;</item>
/// <item>arp_announce=2: else the node's own ARP requests carry the VIP as sender and announce
/// it at the node's MAC;</item>
/// <item>rp_filter 0 or 2 on the TUN: strict mode drops packets from clients that arrive on the
/// TUN while the route back is the farm interface;</item>
/// <item>drop_unicast_in_l2_multicast=1 in multicast mode: else every kernel also accepts the
/// frames and a client gets one answer per node.</item>
/// </list>
/// </summary>
public static class FarmPreflight
{
    /// <summary>Problems found before anything is changed (empty when the node is fit).</summary>
    public static IReadOnlyList<string> Check(FarmDataplaneOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var problems = new List<string>();
        if (!Privileges.IsRoot && !(Privileges.HasCapability(Privileges.CapNetAdmin) && Privileges.HasCapability(Privileges.CapNetRaw)))
        {
            problems.Add("safekitd needs root or the CAP_NET_ADMIN and CAP_NET_RAW capabilities (raw capture, TUN, sysctls)");
        }

        if (NetworkInterfaceInfo.TryRead(options.Interface) is null)
        {
            problems.Add($"interface '{options.Interface}' does not exist in this network namespace (found: {string.Join(", ", NetworkInterfaceInfo.List())})");
        }

        if (string.Equals(options.TunName, options.Interface, StringComparison.Ordinal))
        {
            problems.Add($"the TUN device name '{options.TunName}' is the farm interface itself");
        }

        if (!File.Exists("/dev/net/tun"))
        {
            problems.Add("/dev/net/tun is missing (the kernel needs CONFIG_TUN)");
        }

        if (options.Mode == DataplaneMode.Kernel && !File.Exists("/usr/sbin/nft"))
        {
            problems.Add("the kernel dataplane needs nftables (/usr/sbin/nft is missing)");
        }

        foreach (var nic in NetInterface.GetAllNetworkInterfaces())
        {
            if (nic.Name == options.TunName)
            {
                continue;
            }

            foreach (var address in nic.GetIPProperties().UnicastAddresses)
            {
                if (!options.Vips.Contains(address.Address))
                {
                    continue;
                }

                problems.Add(nic.Name == options.Interface
                    ? $"VIP {address.Address} is configured on the farm interface {nic.Name}: remove it (ip addr del {address.Address}/{address.PrefixLength} dev {nic.Name}); the dataplane carries the VIP on its TUN, and on {nic.Name} the kernel would answer ARP with the node's own MAC and take all the traffic"
                    : $"VIP {address.Address} is already configured on {nic.Name}: remove it; the dataplane carries the VIP on its TUN {options.TunName}");
            }
        }

        return problems;
    }

    /// <summary>Writes and verifies the kernel settings the farm depends on.</summary>
    /// <exception cref="PreflightException">A setting could not be written or does not hold.</exception>
    public static void ApplySysctls(FarmDataplaneOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var problems = new List<string>();
        var nic = options.Interface;
        var tun = options.TunName;
        Ensure(problems, $"net.ipv4.conf.{nic}.arp_ignore", "1", v => Max("arp_ignore", nic, v) is 1 or 2);
        Ensure(problems, $"net.ipv4.conf.{nic}.arp_announce", "2", v => Max("arp_announce", nic, v) == 2);
        if (ReadInt("net.ipv4.conf.all.rp_filter") == 1)
        {
            // Strict everywhere would drop the TUN's packets; loose keeps the protection elsewhere.
            Ensure(problems, "net.ipv4.conf.all.rp_filter", "2", v => v == 2);
        }

        Ensure(problems, $"net.ipv4.conf.{tun}.rp_filter", "0", v => Max("rp_filter", tun, v) is 0 or 2);
        if (options.Vips.Any(v => v.AddressFamily == AddressFamily.InterNetworkV6))
        {
            Ensure(problems, $"net.ipv6.conf.{tun}.disable_ipv6", "0", v => v == 0);
            Ensure(problems, $"net.ipv6.conf.{tun}.accept_dad", "0", v => v == 0);
        }

        if (options.L2Mode == L2Mode.Multicast)
        {
            Ensure(problems, $"net.ipv4.conf.{nic}.drop_unicast_in_l2_multicast", "1", v => v == 1);
            if (options.Vips.Any(v => v.AddressFamily == AddressFamily.InterNetworkV6))
            {
                Ensure(problems, $"net.ipv6.conf.{nic}.drop_unicast_in_l2_multicast", "1", v => v == 1);
            }
        }

        if (problems.Count > 0)
        {
            throw new PreflightException(problems);
        }
    }

    private static int Max(string setting, string device, int deviceValue) =>
        Math.Max(ReadInt($"net.ipv4.conf.all.{setting}"), deviceValue);

    private static int ReadInt(string key) =>
        int.TryParse(Sysctl.Read(key), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : -1;

    private static void Ensure(List<string> problems, string key, string value, Func<int, bool> holds)
    {
        try
        {
            if (Sysctl.Read(key) is null)
            {
                problems.Add($"sysctl {key} does not exist");
                return;
            }

            Sysctl.Write(key, value);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            problems.Add($"cannot set sysctl {key}={value}: {e.Message}");
            return;
        }

        var actual = ReadInt(key);
        if (!holds(actual))
        {
            problems.Add($"sysctl {key} is {actual} after writing {value} (check net.ipv4.conf.all and any tool that resets it)");
        }
    }
}
