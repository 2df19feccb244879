using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Parsing;
using SafeKit.Native.PacketSockets;

namespace SafeKit.Dataplane.Capture;

/// <summary>
/// The kernel-side filter in front of the dataplane: only frames to the cluster MACs, ARP, and
/// IPv6 to 33:33:* (neighbour solicitations for the VIP travel to a solicited-node group) reach
/// user space. Everything else on the interface (the node's own traffic) never costs a wakeup.
/// </summary>
public static class CaptureFilter
{
    private const uint Accept = 0x40000;

    /// <summary>Classic BPF for the ring backend.</summary>
    /// <param name="mac">Cluster MACs.</param>
    /// <param name="neighborOnly">Only ARP and IPv6 multicast (the kernel fast path handles VIP traffic).</param>
    public static IReadOnlyList<BpfInstruction> Build(ClusterMac mac, bool neighborOnly)
    {
        ArgumentNullException.ThrowIfNull(mac);
        var program = new List<BpfInstruction>
        {
            // ARP (any destination) passes.
            new(BpfInstruction.LoadHalfAbsolute, 0, 0, 12),
            new(BpfInstruction.JumpEqual, 0, 1, EtherTypes.Arp),
            new(BpfInstruction.Return, 0, 0, Accept),
        };
        if (!neighborOnly)
        {
            AddMacMatch(program, mac.IPv4Mac);
            if (!mac.IPv6Mac.AsSpan().SequenceEqual(mac.IPv4Mac))
            {
                AddMacMatch(program, mac.IPv6Mac);
            }
        }

        // IPv6 to a 33:33:* group (solicited-node multicast for NDP).
        program.Add(new(BpfInstruction.LoadHalfAbsolute, 0, 0, 0));
        program.Add(new(BpfInstruction.JumpEqual, 0, 3, 0x3333));
        program.Add(new(BpfInstruction.LoadHalfAbsolute, 0, 0, 12));
        program.Add(new(BpfInstruction.JumpEqual, 0, 1, EtherTypes.IPv6));
        program.Add(new(BpfInstruction.Return, 0, 0, Accept));
        program.Add(new(BpfInstruction.Return, 0, 0, 0));
        return program;
    }

    /// <summary>The same filter in pcap syntax for the libpcap backend.</summary>
    public static string BuildPcapExpression(ClusterMac mac, bool neighborOnly)
    {
        ArgumentNullException.ThrowIfNull(mac);
        var terms = new List<string> { "arp", "(ether[0:2] = 0x3333 and ip6)" };
        if (!neighborOnly)
        {
            terms.Add($"ether dst {ClusterMac.Format(mac.IPv4Mac)}");
            terms.Add($"ether dst {ClusterMac.Format(mac.IPv6Mac)}");
        }

        return "inbound and (" + string.Join(" or ", terms) + ")";
    }

    private static void AddMacMatch(List<BpfInstruction> program, byte[] mac)
    {
        var high = ((uint)mac[0] << 24) | ((uint)mac[1] << 16) | ((uint)mac[2] << 8) | mac[3];
        var low = (uint)((mac[4] << 8) | mac[5]);
        program.Add(new(BpfInstruction.LoadWordAbsolute, 0, 0, 0));
        program.Add(new(BpfInstruction.JumpEqual, 0, 3, high));
        program.Add(new(BpfInstruction.LoadHalfAbsolute, 0, 0, 4));
        program.Add(new(BpfInstruction.JumpEqual, 0, 1, low));
        program.Add(new(BpfInstruction.Return, 0, 0, Accept));
    }
}
