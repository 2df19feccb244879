using System.Net;
using System.Net.NetworkInformation;

namespace SafeKit.Daemon;

/// <summary>
/// The split-brain guard's third party: with every heartbeat lost, a node takes over only if it
/// can reach one of the witness addresses (the isolated node cannot, the surviving one can).
/// </summary>
internal sealed class Witness
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMilliseconds(500);
    private readonly IReadOnlyList<IPAddress> _addresses;

    public Witness(IReadOnlyList<IPAddress> addresses)
    {
        _addresses = addresses;
    }

    public bool Configured => _addresses.Count > 0;

    /// <summary>The first witness that answers a ping (3 tries each), or null.</summary>
    public async Task<IPAddress?> ReachableAsync()
    {
        using var ping = new Ping();
        for (var attempt = 0; attempt < 3; attempt++)
        {
            foreach (var address in _addresses)
            {
                try
                {
                    var reply = await ping.SendPingAsync(address, Timeout);
                    if (reply.Status == IPStatus.Success)
                    {
                        return address;
                    }
                }
                catch (PingException)
                {
                    // Unreachable network and the like: not reachable.
                }
            }
        }

        return null;
    }

    public override string ToString() => string.Join(", ", _addresses);
}
