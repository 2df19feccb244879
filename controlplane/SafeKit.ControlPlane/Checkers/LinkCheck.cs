namespace SafeKit.ControlPlane.Checkers;

/// <summary>
/// The farm interface has carrier: a pulled cable (or a peer veth down) makes the node unready,
/// so it never claims buckets alone while cut off, and rediscovers the others when the link
/// returns.
/// </summary>
public sealed class LinkCheck : ICheck
{
    private readonly string _interface;

    public LinkCheck(string interfaceName)
    {
        _interface = interfaceName;
    }

    public string Name => "link:" + _interface;

    public Task<CheckResult> RunAsync(CancellationToken cancellation)
    {
        var directory = Path.Combine("/sys/class/net", _interface);
        try
        {
            var carrier = File.ReadAllText(Path.Combine(directory, "carrier")).Trim();
            var state = File.ReadAllText(Path.Combine(directory, "operstate")).Trim();
            return Task.FromResult(carrier == "1"
                ? new CheckResult(true, $"carrier up ({state})")
                : new CheckResult(false, $"no carrier ({state})"));
        }
        catch (IOException e)
        {
            // Reading carrier of an interface that is administratively down fails with EINVAL.
            return Task.FromResult(new CheckResult(false, $"link down ({e.Message.Trim()})"));
        }
        catch (UnauthorizedAccessException e)
        {
            return Task.FromResult(new CheckResult(false, e.Message));
        }
    }
}
