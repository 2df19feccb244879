using SafeKit.ControlPlane.Events;
using SafeKit.ControlPlane.Modules;

namespace SafeKit.Daemon;

/// <summary>Every module, farm or mirror, records its checkers' changes in the event journal the same way.</summary>
internal static class CheckEvents
{
    public static void RecordChecks(this ModuleSupervisor supervisor, EventJournal journal, string module) =>
        supervisor.CheckChanged += check => journal.Record(
            EventKinds.Check,
            module,
            check.Healthy ? EventSeverities.Info : EventSeverities.Warning,
            check.Healthy ? $"check {check.Name} healthy again" : $"check {check.Name} failing: {check.Detail}");
}
