using SafeKit.Dataplane.Capture;
using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Engine;
using SafeKit.Dataplane.Flows;

namespace SafeKit.Cli.Lab;

/// <summary>How to build a lab (the options of <c>safekit lab up</c>).</summary>
internal sealed record LabOptions
{
    /// <summary>Names every namespace and the state directory; lets tests run their own lab beside a user's.</summary>
    public string Prefix { get; init; } = "sk";

    public int Nodes { get; init; } = 3;

    public Affinity Affinity { get; init; } = Affinity.ClientIpPort;

    public L2Mode L2Mode { get; init; } = L2Mode.Unicast;

    public DataplaneMode Dataplane { get; init; } = DataplaneMode.Userspace;

    public CaptureKind Capture { get; init; } = CaptureKind.Ring;

    public int Workers { get; init; } = 1;

    public bool IPv6 { get; init; } = true;

    /// <summary>A mirror lab (two nodes m1/m2, replicated directories) instead of a farm.</summary>
    public bool Mirror { get; init; }

    /// <summary>The replication mode of the mirror lab's directories: sync or fsync.</summary>
    public string MirrorMode { get; init; } = "sync";

    /// <summary>
    /// A mirror node's /var/lib/safekit (its real files) on a file system of this size instead of
    /// the host's disk: lets a test fill a node's disk. 0: the host's disk.
    /// </summary>
    public int DataMiB { get; init; }

    /// <summary>Nginx worker processes per node.</summary>
    public int NginxWorkers { get; init; } = 1;
}
