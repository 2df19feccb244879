using SafeKit.Native.Host;

namespace SafeKit.Cli.Lab;

/// <summary>
/// The mount namespaces of a mirror lab's nodes. Each node sees its own /srv (where the replicated
/// directories are mounted) and its own /var/lib/safekit (its real files and records), at the same
/// paths as the other node, as two servers would. A namespace is held open by a bind of its
/// /proc/PID/ns/mnt to a file (unshare --mount=FILE), so it outlives every process of the node:
/// a crashed node's mounts stay where they were until it starts again.
/// </summary>
internal static class LabMounts
{
    private const string PostgresRun = "/run/postgresql";

    /// <summary>The command prefix that runs a command on node <paramref name="index"/> (or in namespace <paramref name="ns"/>).</summary>
    public static IReadOnlyList<string> Enter(LabTopology topology, int index, string ns) =>
        topology.Mirror && index > 0
            ? ["nsenter", $"--net=/run/netns/{ns}", $"--mount={topology.MountNamespace(index)}"]
            : ["ip", "netns", "exec", ns];

    /// <summary>
    /// Creates node <paramref name="index"/>'s mount namespace: its own /sys (its interfaces), /srv and
    /// /var/lib/safekit (a directory of the host's disk, or a tmpfs of <paramref name="dataMiB"/> MiB).
    /// </summary>
    public static void Create(LabTopology topology, int index, int dataMiB)
    {
        var directory = topology.MountNamespaceDirectory;
        if (!Directory.Exists(directory))
        {
            Directory.CreateDirectory(directory);
            // Namespace files must sit on a mount that does not propagate.
            CommandRunner.RunChecked("mount", ["--bind", directory, directory]);
            CommandRunner.RunChecked("mount", ["--make-private", directory]);
        }

        var file = topology.MountNamespace(index);
        File.WriteAllText(file, string.Empty);
        var variable = Path.Combine(topology.NodeDirectory(index), "var");
        Directory.CreateDirectory(variable);
        Directory.CreateDirectory(LabTopology.MirrorVarDirectory);
        var directories = string.Join(' ', LabTopology.MirrorDirectories);
        var setup = "mount -t sysfs sysfs /sys && mount -t tmpfs -o mode=0755,size=16m sk-srv /srv && mkdir -p " + directories
            + (dataMiB > 0
                ? " && mount -t tmpfs -o mode=0755,size=" + dataMiB.ToString(System.Globalization.CultureInfo.InvariantCulture) + "m sk-data " + LabTopology.MirrorVarDirectory
                : " && mount --bind '" + variable + "' " + LabTopology.MirrorVarDirectory)
            // PostgreSQL's socket directory, private to the node as on a server of its own.
            + " && mkdir -p " + PostgresRun + " && mount -t tmpfs -o mode=2775,size=1m sk-pgrun " + PostgresRun
            + " && (chown postgres:postgres " + PostgresRun + " 2>/dev/null || true)";
        CommandRunner.RunChecked("unshare", [$"--mount={file}", "--propagation", "private", "nsenter", $"--net=/run/netns/{topology.NodeName(index)}", "sh", "-c", setup]);
    }

    /// <summary>Writes the lab's first page through PRIM's mount (so SECOND receives it too).</summary>
    public static void Seed(LabTopology topology)
    {
        var enter = Enter(topology, 1, topology.NodeName(1));
        CommandRunner.RunChecked(enter[0], [.. enter.Skip(1), "sh", "-c", "printf 'mirror lab: replicated by SafeKit\\n' > /srv/www/index.html"]);
    }

    /// <summary>A crash of the node's server: its FUSE mounts detach (the guards underneath stay).</summary>
    public static void DetachReplicated(LabTopology topology, int index)
    {
        var enter = Enter(topology, index, topology.NodeName(index));
        CommandRunner.Run(enter[0], [.. enter.Skip(1), "umount", "-a", "-l", "-t", "fuse.safekit"]);
    }

    /// <summary>Releases every node's namespace file and the private mount that holds them.</summary>
    public static void RemoveAll(LabTopology topology)
    {
        var directory = topology.MountNamespaceDirectory;
        if (!Directory.Exists(directory))
        {
            return;
        }

        foreach (var file in Directory.GetFiles(directory))
        {
            CommandRunner.Run("umount", ["-l", file]);
        }

        CommandRunner.Run("umount", ["-l", directory]);
    }
}
