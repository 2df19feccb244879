using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using SafeKit.ControlPlane.Configuration;

namespace SafeKit.ControlPlane.Firewall;

/// <summary>A port the administrator opens besides SafeKit's own (SSH on the appliance).</summary>
/// <param name="Protocol">"tcp" or "udp".</param>
/// <param name="Port">The port.</param>
public sealed record FirewallOpening(string Protocol, int Port)
{
    /// <summary>Parses "tcp/22" or "udp/53".</summary>
    /// <exception cref="FormatException">Not PROTOCOL/PORT with tcp or udp and a port 1..65535.</exception>
    public static FirewallOpening Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split('/');
        if (parts.Length == 2 && parts[0] is "tcp" or "udp"
            && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is >= 1 and <= 65535)
        {
            return new FirewallOpening(parts[0], port);
        }

        throw new FormatException($"'{text}' is not tcp/PORT or udp/PORT (port 1..65535)");
    }
}

/// <summary>
/// The node's inbound firewall as an nftables ruleset (table <c>inet safekit_firewall</c>): everything
/// is dropped but what the cluster's configuration says this node serves — the API and console,
/// heartbeats and replication from the cluster's nodes only, every VIP (the application's services)
/// — plus the openings the administrator names. Replies to the node's own traffic, loopback and the
/// ICMP that IPv4/IPv6 cannot work without (neighbour discovery, multicast listener queries, "too
/// big") pass. Forwarded and outgoing traffic is not filtered. Another table's chain (the farm's
/// netdev ingress) is unaffected; this one only decides what reaches local sockets.
/// </summary>
public static class HostFirewall
{
    public const string TableName = "safekit_firewall";

    /// <summary>
    /// The ruleset for <paramref name="config"/> (null: a node not configured yet, which serves only
    /// the API's "not configured" answer on <see cref="ApiConfig.DefaultHttpsPort"/>). The text
    /// replaces any previous version of the table in one transaction (<c>nft -f</c>).
    /// </summary>
    public static string Ruleset(ClusterConfig? config, IReadOnlyList<FirewallOpening> openings)
    {
        ArgumentNullException.ThrowIfNull(openings);
        var text = new StringBuilder();
        text.Append("table inet ").AppendLine(TableName);
        text.Append("delete table inet ").AppendLine(TableName);
        text.Append("table inet ").Append(TableName).AppendLine(" {");
        var nodes = config?.Nodes.SelectMany(n => n.Addresses).Distinct().ToList() ?? [];
        Set(text, "cluster_nodes4", "ipv4_addr", nodes.Where(IsV4));
        Set(text, "cluster_nodes6", "ipv6_addr", nodes.Where(a => !IsV4(a)));
        var vips = config is null ? [] : config.Farms.SelectMany(f => f.Vips).Concat(config.Mirrors.SelectMany(m => m.Vips)).Distinct().ToList();
        Set(text, "vips4", "ipv4_addr", vips.Where(IsV4));
        Set(text, "vips6", "ipv6_addr", vips.Where(a => !IsV4(a)));

        text.AppendLine("  chain input {");
        text.AppendLine("    type filter hook input priority filter; policy drop;");
        text.AppendLine("    iif \"lo\" accept");
        text.AppendLine("    ct state established,related accept");
        text.AppendLine("    ct state invalid drop");
        // Pings are answered (the mirror's witness and operators use them); IGMP and MLD queries
        // keep multicast-mode farms' group memberships alive in snooping switches.
        text.AppendLine("    icmp type { echo-request, destination-unreachable, time-exceeded, parameter-problem } accept");
        text.AppendLine("    icmpv6 type { echo-request, destination-unreachable, packet-too-big, time-exceeded, parameter-problem, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-query } accept");
        text.AppendLine("    meta l4proto igmp accept");

        var api = config?.Api ?? new ApiConfig();
        if (api.Enabled)
        {
            text.Append("    tcp dport ").Append(Number(api.Port)).AppendLine(" accept comment \"API and console\"");
        }

        if (config is not null)
        {
            FromNodes(text, $"udp dport {Number(config.Heartbeat.Port)}", "heartbeats");
            foreach (var mirror in config.Mirrors)
            {
                // Replication and resync ports, then SECOND's verify ports (one each per directory).
                var last = mirror.ReplicationPort + (2 * mirror.Directories.Count) - 1;
                FromNodes(text, $"tcp dport {Number(mirror.ReplicationPort)}-{Number(last)}", $"mirror {mirror.Name}: replication, resync, verify");
            }

            if (vips.Count > 0)
            {
                Accept(text, vips.Any(IsV4), "ip daddr @vips4", "the application on the VIPs");
                Accept(text, vips.Any(a => !IsV4(a)), "ip6 daddr @vips6", "the application on the VIPs");
            }
        }

        foreach (var opening in openings.Distinct())
        {
            text.Append("    ").Append(opening.Protocol).Append(" dport ").Append(Number(opening.Port)).AppendLine(" accept comment \"administrator\"");
        }

        text.AppendLine("    counter drop comment \"not served by this node\"");
        text.AppendLine("  }");
        text.AppendLine("}");
        return text.ToString();

        void FromNodes(StringBuilder rules, string match, string comment)
        {
            Accept(rules, nodes.Any(IsV4), "ip saddr @cluster_nodes4 " + match, comment);
            Accept(rules, nodes.Any(a => !IsV4(a)), "ip6 saddr @cluster_nodes6 " + match, comment);
        }
    }

    private static void Accept(StringBuilder text, bool when, string match, string comment)
    {
        if (when)
        {
            text.Append("    ").Append(match).Append(" accept comment \"").Append(comment).AppendLine("\"");
        }
    }

    private static void Set(StringBuilder text, string name, string type, IEnumerable<IPAddress> addresses)
    {
        var elements = addresses.Select(a => a.ToString()).ToList();
        if (elements.Count == 0)
        {
            return;
        }

        text.Append("  set ").Append(name).AppendLine(" {");
        text.Append("    type ").Append(type).AppendLine();
        text.Append("    elements = { ").Append(string.Join(", ", elements)).AppendLine(" }");
        text.AppendLine("  }");
    }

    private static bool IsV4(IPAddress address) => address.AddressFamily == AddressFamily.InterNetwork;

    private static string Number(int value) => value.ToString(CultureInfo.InvariantCulture);
}
