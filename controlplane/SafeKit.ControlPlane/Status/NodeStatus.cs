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
    IReadOnlyList<SafeKit.ControlPlane.Checkers.CheckStatus>? Checks = null,
    ConfigStatus? Config = null);

/// <summary>The configuration in force on the node.</summary>
/// <param name="File">The file it was read from.</param>
/// <param name="Loaded">When it was read (at start or by the last applied reload).</param>
/// <param name="LastReload">Outcome of the last reload request (SIGHUP), if any.</param>
public sealed record ConfigStatus(string File, DateTimeOffset Loaded, ReloadOutcome? LastReload);

/// <summary>What a reload request did.</summary>
/// <param name="At">When it was requested.</param>
/// <param name="Applied">True when the new file is in force; false when the running configuration was kept.</param>
/// <param name="Changes">Settings changed ("key: old → new"); when not applied, what would have changed.</param>
/// <param name="Problems">Why it was not applied: file errors (file:line:column: key: message) or settings that need a restart.</param>
/// <param name="Notes">Differences that take effect elsewhere (another node's weight).</param>
public sealed record ReloadOutcome(DateTimeOffset At, bool Applied, IReadOnlyList<string> Changes, IReadOnlyList<string> Problems, IReadOnlyList<string> Notes);

/// <summary>State of one module on the node.</summary>
public sealed record ModuleStatus(string Name, string Type, string State, FarmStatus? Farm, IReadOnlyList<StateTransition>? Transitions = null, ApplicationStatus? Application = null, MirrorStatus? Mirror = null);

/// <summary>A mirror module on the node.</summary>
/// <param name="Peer">The other node.</param>
/// <param name="PeerAlive">Whether its heartbeats arrive.</param>
/// <param name="PeerState">Its role as its heartbeats say (null: not heard).</param>
/// <param name="Generation">This node's data generation.</param>
/// <param name="ParentGeneration">The generation it went alone from.</param>
/// <param name="Data">How this node's data compares with the peer's: same, older, newer, diverged (null: unknown).</param>
/// <param name="Reason">Why the node is in its state.</param>
/// <param name="Directories">Each replicated directory.</param>
/// <param name="Resync">The resync this node runs (or ran last) to bring the peer up to date; null when none since it started.</param>
/// <param name="Verify">The last verify this node ran (<c>safekit verify</c>); null when none since it started.</param>
public sealed record MirrorStatus(string Peer, bool PeerAlive, string? PeerState, string Generation, string ParentGeneration, string? Data, string Reason, IReadOnlyList<MirrorDirectoryStatus> Directories, ResyncProgress? Resync = null, VerifyStatus? Verify = null);

/// <summary>A verify this node ran as PRIM: both copies compared online, every file's blocks by hash.</summary>
/// <param name="At">When it ended.</param>
/// <param name="ElapsedSeconds">How long it took.</param>
/// <param name="Files">Regular files whose blocks were compared.</param>
/// <param name="Bytes">Bytes of those files (read on each node).</param>
/// <param name="BytesPerSecond">Bytes compared per second.</param>
/// <param name="FrozenMilliseconds">How long the application's writes were held back for the final recheck.</param>
/// <param name="Dismissed">Differences seen while writes were on their way, equal once applied (not reported).</param>
/// <param name="Differences">What differs with every write applied on both copies: "path: what".</param>
/// <param name="Unconfirmed">Differences seen live only (too much kept changing to recheck them frozen).</param>
/// <param name="Outcome">equal, different, unconfirmed, or failed: why.</param>
public sealed record VerifyStatus(DateTimeOffset At, double ElapsedSeconds, long Files, long Bytes, double BytesPerSecond, double FrozenMilliseconds, int Dismissed, IReadOnlyList<string> Differences, IReadOnlyList<string> Unconfirmed, string Outcome);

/// <summary>A resync this node runs as the source (the node with the newest data), live or as it ended.</summary>
/// <param name="Target">The node brought up to date.</param>
/// <param name="Active">Whether it runs now.</param>
/// <param name="Phase">connecting, pass N, frozen (writes held back), done, or failed.</param>
/// <param name="FirstPass">What the first pass looks at: the journals' paths, or the whole tree and why.</param>
/// <param name="Directories">Directories compared so far.</param>
/// <param name="FilesCompared">Files whose blocks were compared or sent.</param>
/// <param name="BytesCompared">Bytes of those files read here.</param>
/// <param name="BytesSent">Bytes of the blocks that differed and were sent (before compression).</param>
/// <param name="WireBytes">Bytes on the resync connections, both ways.</param>
/// <param name="ElapsedSeconds">Since it started (to its end when it ended).</param>
/// <param name="WireBytesPerSecond">Average rate on the wire.</param>
/// <param name="EtaSeconds">Estimated seconds left in the current pass (known when it goes over journaled paths; null in a walk).</param>
/// <param name="Outcome">How it ended (null while it runs).</param>
public sealed record ResyncProgress(string Target, bool Active, string Phase, string FirstPass, long Directories, long FilesCompared, long BytesCompared, long BytesSent, long WireBytes, double ElapsedSeconds, double WireBytesPerSecond, double? EtaSeconds, string? Outcome);

/// <summary>One replicated directory on the node.</summary>
/// <param name="Path">The application's path.</param>
/// <param name="Data">Where its files live on this node.</param>
/// <param name="Mode">sync or fsync.</param>
/// <param name="Mounted">What is mounted on the path: rw (PRIM/ALONE), ro (SECOND's view), guard (writes fail).</param>
/// <param name="Link">PRIM: mirroring or alone; SECOND: receiving or idle.</param>
/// <param name="ChangesSinceAlone">PRIM/ALONE: changes SECOND misses.</param>
/// <param name="Applied">SECOND: changes applied from PRIM on this connection.</param>
/// <param name="BytesInFlight">PRIM: bytes sent and not yet acknowledged.</param>
public sealed record MirrorDirectoryStatus(string Path, string Data, string Mode, string Mounted, string Link, long ChangesSinceAlone, long Applied, long BytesInFlight);

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
    int TrackedFragments,
    IReadOnlyList<VipCounters>? Vips = null);

/// <summary>Packets to one VIP this node accepted or left to another node (userspace decisions).</summary>
public sealed record VipCounters(string Address, long Accepted, long Rejected);

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(NodeStatus))]
internal sealed partial class StatusJsonContext : JsonSerializerContext;
