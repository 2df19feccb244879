using SafeKit.Api;
using SafeKit.ControlPlane.Configuration;
using SafeKit.ControlPlane.Events;
using SafeKit.ControlPlane.Membership;
using SafeKit.ControlPlane.Status;

namespace SafeKit.Daemon;

/// <summary>The daemon as the API sees it: its status, its buckets, reloads and module actions.</summary>
internal sealed class DaemonControl : INodeControl
{
    private readonly ConfigReloader _reloader;
    private readonly List<FarmModuleHost> _farms;
    private readonly List<MirrorModuleHost> _mirrors;
    private readonly MembershipService _membership;
    private readonly ModuleActions _actions;
    private readonly DateTimeOffset _started;
    private readonly TimeProvider _time;

    public DaemonControl(string node, ConfigReloader reloader, List<FarmModuleHost> farms, List<MirrorModuleHost> mirrors, MembershipService membership, ModuleActions actions, EventJournal journal, DateTimeOffset started, TimeProvider time)
    {
        Events = journal;
        NodeName = node;
        _reloader = reloader;
        _farms = farms;
        _mirrors = mirrors;
        _membership = membership;
        _actions = actions;
        _started = started;
        _time = time;
    }

    public ClusterConfig Configuration => _reloader.Running;

    public string NodeName { get; }

    public EventJournal Events { get; }

    public NodeStatus Status() => new(
        _reloader.Running.Name,
        NodeName,
        Environment.ProcessId,
        _started,
        _time.GetUtcNow(),
        [.. _farms.Select(f => f.Status()), .. _mirrors.Select(m => m.Status())],
        _membership.Snapshot(),
        [.. _farms.SelectMany(f => f.Checks()), .. _mirrors.SelectMany(m => m.Checks())],
        _reloader.Status());

    public IReadOnlyList<BucketRange>? Buckets(string module) =>
        _farms.FirstOrDefault(f => f.Name == module)?.BucketRanges().Select(r => new BucketRange(r.First, r.Last, r.Owner)).ToList();

    public Task<ReloadOutcome> ReloadAsync() => _reloader.ReloadAsync(_membership, _farms);

    public Task<ModuleActionResult> ActAsync(string module, ModuleAction action) => _actions.ActAsync(module, action);
}
