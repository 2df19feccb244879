using SafeKit.ControlPlane.Membership;

namespace SafeKit.Daemon;

/// <summary>
/// Whether this node offers to take traffic: every module's application is healthy, no module was
/// stopped by an administrator, and the daemon is not stopping.
/// </summary>
internal sealed class NodeReadiness
{
    private readonly MembershipService _membership;
    private readonly bool[] _healthy;
    private readonly bool[] _stopped;
    private readonly Lock _gate = new();
    private bool _stopping;

    public NodeReadiness(MembershipService membership, int modules)
    {
        _membership = membership;
        _healthy = new bool[modules];
        _stopped = new bool[modules];
    }

    public void SetHealthy(int module, bool healthy) => Update(() => _healthy[module] = healthy);

    public void SetStopped(int module, bool stopped) => Update(() => _stopped[module] = stopped);

    public void Stopping() => Update(() => _stopping = true);

    private void Update(Action change)
    {
        lock (_gate)
        {
            change();
            _membership.Ready = !_stopping && _healthy.All(h => h) && !_stopped.Any(s => s);
        }
    }
}
