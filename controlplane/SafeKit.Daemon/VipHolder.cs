using System.Net;
using System.Net.Sockets;
using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Neighbors;
using SafeKit.Native.Host;
using SafeKit.Native.PacketSockets;

namespace SafeKit.Daemon;

/// <summary>
/// A mirror's VIPs on the node that runs the application: the addresses on its interface (its own
/// MAC answers for them) and announcements — gratuitous ARP, unsolicited neighbour advertisements —
/// repeated, so clients and switches forget the previous holder at once.
/// </summary>
internal sealed class VipHolder
{
    private static readonly TimeSpan[] Announcements = [TimeSpan.Zero, TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(3)];
    private readonly string _interface;
    private readonly IReadOnlyList<IPAddress> _vips;

    public VipHolder(string networkInterface, IReadOnlyList<IPAddress> vips)
    {
        _interface = networkInterface;
        _vips = vips;
    }

    /// <summary>Adds the VIPs and announces them (the first announcement before returning).</summary>
    /// <exception cref="InvalidOperationException">An address cannot be added.</exception>
    public void Take()
    {
        foreach (var vip in _vips)
        {
            var v6 = vip.AddressFamily == AddressFamily.InterNetworkV6;
            string[] arguments = v6
                ? ["-6", "addr", "replace", $"{vip}/128", "dev", _interface, "nodad"]
                : ["-4", "addr", "replace", $"{vip}/32", "dev", _interface];
            var result = CommandRunner.Run("ip", arguments);
            if (!result.Succeeded)
            {
                throw new InvalidOperationException($"cannot add VIP {vip} to {_interface}: {result.Error.Trim()}");
            }
        }

        Announce();
        _ = Task.Run(async () =>
        {
            for (var i = 1; i < Announcements.Length; i++)
            {
                await Task.Delay(Announcements[i] - Announcements[i - 1]);
                Announce();
            }
        });
    }

    /// <summary>Removes the VIPs (those already gone are fine).</summary>
    public void Release()
    {
        foreach (var vip in _vips)
        {
            var prefix = vip.AddressFamily == AddressFamily.InterNetworkV6 ? 128 : 32;
            CommandRunner.Run("ip", ["addr", "del", $"{vip}/{prefix}", "dev", _interface]);
        }
    }

    private void Announce()
    {
        if (NetworkInterfaceInfo.TryRead(_interface) is not { } nic)
        {
            return;
        }

        try
        {
            using var socket = PacketSocket.Open(new PacketSocketOptions { Interface = _interface });
            // The node's own MAC answers for a mirror's VIP: announce that one.
            var replies = new NeighborReplies(nic.MacAddress, new ClusterMac(L2Mode.Unicast, nic.MacAddress, nic.MacAddress));
            Span<byte> frame = stackalloc byte[NeighborReplies.MaxFrameLength];
            foreach (var vip in _vips)
            {
                var length = vip.AddressFamily == AddressFamily.InterNetworkV6
                    ? replies.BuildUnsolicitedAdvertisement(vip.GetAddressBytes(), frame)
                    : replies.BuildGratuitousArp(vip.GetAddressBytes(), frame);
                socket.Send(frame[..length]);
            }
        }
        catch (SafeKit.Native.Interop.NativeException)
        {
            // An announcement is a courtesy: the VIP answers ARP/NDP anyway. The next round may work.
        }
    }
}
