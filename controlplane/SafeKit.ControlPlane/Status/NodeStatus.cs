using System.Text.Json.Serialization;

namespace SafeKit.ControlPlane.Status;

/// <summary>What safekitd reports about its node (written to its state directory every second).</summary>
public sealed record NodeStatus(
    string Cluster,
    string Node,
    int Pid,
    DateTimeOffset Started,
    DateTimeOffset Updated,
    IReadOnlyList<ModuleStatus> Modules,
    SafeKit.ControlPlane.Membership.MembershipSnapshot? Membership = null,
    IReadOnlyList<SafeKit.ControlPlane.Checkers.CheckStatus>? Checks = null);

/// <summary>State of one module on the node.</summary>
public sealed record ModuleStatus(string Name, string Type, string State, FarmStatus? Farm, IReadOnlyList<StateTransition>? Transitions = null, ApplicationStatus? Application = null);

/// <summary>The application of a module on the node.</summary>
/// <param name="RecentRestarts">Restarts in the current restart window.</param>
/// <param name="GaveUp">The restart limit was reached: the node stays out until the checks pass.</param>
/// <param name="LastStart">Outcome of the last start script.</param>
/// <param name="LastStop">Outcome of the last stop script.</param>
public sealed record ApplicationStatus(int RecentRestarts, bool GaveUp, string? LastStart, string? LastStop);

/// <summary>The farm dataplane of one node.</summary>
public sealed record FarmStatus(
    string Mode,
    string Capture,
    string ClusterMac,
    int Buckets,
    int OwnedBuckets,
    IReadOnlyDictionary<string, long> Counters,
    long CaptureReceived,
    long CaptureDropped,
    int TrackedFragments);

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(NodeStatus))]
internal sealed partial class StatusJsonContext : JsonSerializerContext;
