using System.Net;

namespace SafeKit.ControlPlane.Configuration;

/// <summary>What a module's application needs from its configuration, whatever the module type.</summary>
public interface IApplicationModule
{
    string Name { get; }

    /// <summary>The VIPs the application serves (a tcp checker given only a port checks the first).</summary>
    IReadOnlyList<IPAddress> Vips { get; }

    /// <summary>The interface that carries the VIPs (its carrier is always checked).</summary>
    string Interface { get; }

    ScriptsConfig Scripts { get; }

    IReadOnlyList<CheckerConfig> Checkers { get; }

    RestartConfig Restart { get; }
}

/// <summary>When a replicated directory's calls return (see the README's mirror section for what each mode risks).</summary>
public enum ReplicationMode
{
    /// <summary>write() returns once SECOND applied it; fsync once durable on both.</summary>
    Sync,

    /// <summary>write() returns once queued in order to SECOND; fsync waits until everything before it is durable on both.</summary>
    Fsync,
}

/// <summary>One replicated directory.</summary>
/// <param name="Path">The path the application uses (the FUSE mountpoint).</param>
/// <param name="Data">Where the real files live on this node (owned by safekitd; never written directly).</param>
/// <param name="Mode">When the application's calls return.</param>
public sealed record MirrorDirectoryConfig(string Path, string Data, ReplicationMode Mode);

/// <summary>
/// A mirror module: two nodes, the application runs on PRIM with its directories replicated
/// synchronously to SECOND; SECOND takes the VIP and starts the application when PRIM fails.
/// </summary>
/// <param name="Name">Module name.</param>
/// <param name="Vips">Addresses that follow PRIM (added to <paramref name="Interface"/>, announced by gratuitous ARP / unsolicited NA).</param>
/// <param name="Interface">The node's interface on the VIP network.</param>
/// <param name="Directories">Replicated directories.</param>
/// <param name="ReplicationPort">TCP port of the first directory's channel (the next directories use the next ports).</param>
/// <param name="ReplicationNetwork">Which of the nodes' addresses carries replication (0: the first, the VIP network).</param>
/// <param name="StallTimeoutMilliseconds">How long PRIM lets writes wait for a silent SECOND before it goes ALONE.</param>
/// <param name="Witnesses">Addresses pinged before taking over with every heartbeat lost (empty: never take over alone).</param>
/// <param name="StartupWaitMilliseconds">How long a starting node waits to hear its peer before deciding alone.</param>
/// <param name="StateDirectory">Where the node keeps the module's persistent record (its data generation).</param>
/// <param name="ResyncMegabitsPerSecond">A resync's bandwidth cap in Mbit/s (0: none).</param>
/// <param name="ResyncStreams">Connections a directory's resync sends files on side by side (0: <see cref="MirrorModuleConfig.AutoResyncStreams"/>).</param>
public sealed record MirrorModuleConfig(
    string Name,
    IReadOnlyList<IPAddress> Vips,
    string Interface,
    IReadOnlyList<MirrorDirectoryConfig> Directories,
    int ReplicationPort,
    int ReplicationNetwork,
    int StallTimeoutMilliseconds,
    IReadOnlyList<IPAddress> Witnesses,
    int StartupWaitMilliseconds,
    string StateDirectory,
    ScriptsConfig Scripts,
    IReadOnlyList<CheckerConfig> Checkers,
    RestartConfig Restart,
    int ResyncMegabitsPerSecond = 0,
    int ResyncStreams = 0) : IApplicationModule
{
    public const int MaxResyncStreams = 16;

    /// <summary>
    /// The streams of files a resync uses when the config does not say: one per two cores, 1 to
    /// 4. Each keeps about a core busy between both ends (reading, hashing, compressing, writing);
    /// on a 2-core node four made the failback after a crash slower than one (measured).
    /// </summary>
    public static int AutoResyncStreams(int processors) => Math.Clamp(processors / 2, 1, 4);

    public const int DefaultReplicationPort = 4900;

    /// <summary>Default stall bound: the replication channel's silence timeout, which held under a loaded CI machine.</summary>
    public const int DefaultStallTimeoutMilliseconds = 2000;

    public const int DefaultStartupWaitMilliseconds = 5000;
}
