using Microsoft.Extensions.Logging;
using SafeKit.ControlPlane.Configuration;
using SafeKit.ControlPlane.Events;
using SafeKit.ControlPlane.Membership;
using SafeKit.ControlPlane.Status;

namespace SafeKit.Daemon;

/// <summary>
/// Re-reads the configuration file on request (SIGHUP) and applies what may change at runtime: this
/// node's weight, heartbeat timings, and each farm's scripts, checkers, restart policy and drain
/// timeout. An invalid file or a change that needs a restart leaves the running configuration in force.
/// </summary>
internal sealed class ConfigReloader : IDisposable
{
    private readonly string _path;
    private readonly string _self;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _one = new(1, 1);
    private readonly EventJournal _journal;

    public ConfigReloader(string path, ClusterConfig running, string self, EventJournal journal, TimeProvider time, ILogger logger)
    {
        _journal = journal;
        _path = path;
        Running = running;
        _self = self;
        _time = time;
        _logger = logger;
        Loaded = time.GetUtcNow();
    }

    /// <summary>The configuration in force.</summary>
    public ClusterConfig Running { get; private set; }

    public DateTimeOffset Loaded { get; private set; }

    public ReloadOutcome? LastReload { get; private set; }

    public ConfigStatus Status() => new(_path, Loaded, LastReload);

    /// <summary>Reads the file again and applies it to the membership and the farms, or refuses.</summary>
    public async Task<ReloadOutcome> ReloadAsync(MembershipService membership, IReadOnlyList<FarmModuleHost> farms)
    {
        ArgumentNullException.ThrowIfNull(membership);
        ArgumentNullException.ThrowIfNull(farms);
        // SIGHUP and the API may ask at the same moment: one reload at a time.
        await _one.WaitAsync();
        try
        {
            var outcome = await ReloadOnceAsync(membership, farms);
            _journal.Record(
                EventKinds.Config,
                null,
                outcome.Applied ? EventSeverities.Info : EventSeverities.Warning,
                outcome.Applied
                    ? $"configuration reloaded: {(outcome.Changes.Count == 0 ? "nothing changed" : string.Join("; ", outcome.Changes))}"
                    : $"configuration reload refused: {string.Join("; ", outcome.Problems)}");
            return outcome;
        }
        finally
        {
            _one.Release();
        }
    }

    private async Task<ReloadOutcome> ReloadOnceAsync(MembershipService membership, IReadOnlyList<FarmModuleHost> farms)
    {
        var at = _time.GetUtcNow();
        ClusterConfig next;
        try
        {
            next = ConfigLoader.Load(_path);
        }
        catch (ConfigException e)
        {
            return Refuse(at, [], e.Errors.Select(error => error.ToString()).ToList(), []);
        }

        var plan = ReloadPlan.Compare(Running, next, _self);
        foreach (var note in plan.Notes)
        {
            DaemonLog.ReloadNote(_logger, note);
        }

        if (!plan.Applicable)
        {
            return Refuse(at, plan.Changes, plan.RestartRequired.Select(r => $"needs a restart of safekitd: {r}").ToList(), plan.Notes);
        }

        var self = next.Nodes.First(n => n.Name == _self);
        membership.Retune(self.Weight, next.Heartbeat);
        for (var i = 0; i < farms.Count; i++)
        {
            await farms[i].ReconfigureAsync(next.Farms[i]);
        }

        Running = next;
        Loaded = at;
        DaemonLog.Reloaded(_logger, _path, plan.Changes.Count == 0 ? "nothing changed" : string.Join("; ", plan.Changes));
        return LastReload = new ReloadOutcome(at, true, plan.Changes, [], plan.Notes);
    }

    private ReloadOutcome Refuse(DateTimeOffset at, IReadOnlyList<string> changes, IReadOnlyList<string> problems, IReadOnlyList<string> notes)
    {
        foreach (var problem in problems)
        {
            DaemonLog.ReloadRefused(_logger, problem);
        }

        return LastReload = new ReloadOutcome(at, false, changes, problems, notes);
    }

    public void Dispose() => _one.Dispose();
}
