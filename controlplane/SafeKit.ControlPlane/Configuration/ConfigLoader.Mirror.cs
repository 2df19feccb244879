using System.Net;
using YamlDotNet.RepresentationModel;

namespace SafeKit.ControlPlane.Configuration;

/// <summary>The <c>type: mirror</c> modules of a configuration file.</summary>
public static partial class ConfigLoader
{
    private static readonly string[] MirrorKeys =
        ["name", "type", "vips", "interface", "directories", "replication", "witness", "startup_wait_ms", "state_dir", "scripts", "checkers", "restart"];

    private static readonly string[] DirectoryKeys = ["path", "data", "mode"];
    private static readonly string[] ReplicationKeys = ["port", "network", "stall_timeout_ms", "resync_mbps", "resync_streams"];
    private static readonly Dictionary<string, ReplicationMode> ReplicationModes = new(StringComparer.Ordinal) { ["sync"] = ReplicationMode.Sync, ["fsync"] = ReplicationMode.Fsync };

    /// <summary>Whether the module mapping at <paramref name="node"/> says <c>type: mirror</c>.</summary>
    private static bool IsMirror(YamlNode node) =>
        node is YamlMappingNode mapping
        && mapping.Children.TryGetValue(new YamlScalarNode("type"), out var type)
        && (type as YamlScalarNode)?.Value == "mirror";

    private static MirrorModuleConfig? ReadMirror(YamlReader reader, YamlNode node, string path, int nodeCount, int networks)
    {
        var f = reader.Mapping(node, path, MirrorKeys);
        var name = ReadName(reader, reader.Required(f, node, path, "name"), path + ".name");
        var vips = ReadAddresses(reader, f, "vips", path, required: true, "a mirror needs a VIP that follows PRIM");
        var nic = reader.String(reader.Required(f, node, path, "interface"), path + ".interface");
        if (nic is not null && !InterfaceName().IsMatch(nic))
        {
            reader.Error(f["interface"], path + ".interface", $"'{nic}' is not a valid interface name (1-15 characters, no '/' or spaces)");
        }

        var directories = new List<MirrorDirectoryConfig>();
        var list = reader.Sequence(reader.Required(f, node, path, "directories"), path + ".directories");
        if (f.TryGetValue("directories", out var directoriesNode) && list.Count == 0)
        {
            reader.Error(directoriesNode, path + ".directories", "a mirror replicates at least one directory");
        }

        for (var i = 0; i < list.Count; i++)
        {
            if (ReadDirectory(reader, list[i], $"{path}.directories[{i}]", name ?? "mirror") is { } directory)
            {
                directories.Add(directory);
            }
        }

        ValidateDirectories(reader, list, directories, path);
        var (port, network, stall, resyncMbps, resyncStreams) = f.TryGetValue("replication", out var replicationNode)
            ? ReadReplication(reader, replicationNode, path + ".replication", networks)
            : (MirrorModuleConfig.DefaultReplicationPort, 0, MirrorModuleConfig.DefaultStallTimeoutMilliseconds, 0, 0);
        if (port is { } first && first + directories.Count - 1 > 65535)
        {
            reader.Error(replicationNode, path + ".replication.port", $"{directories.Count} directories need ports {first}..{first + directories.Count - 1}");
        }

        var witnesses = ReadAddresses(reader, f, "witness", path, required: false, null);
        var wait = f.TryGetValue("startup_wait_ms", out var waitNode) ? reader.Integer(waitNode, path + ".startup_wait_ms", 0, 3_600_000) : MirrorModuleConfig.DefaultStartupWaitMilliseconds;
        var state = f.TryGetValue("state_dir", out var stateNode) ? AbsolutePath(reader, stateNode, path + ".state_dir") : name is null ? null : $"/var/lib/safekit/{name}";
        var scripts = f.TryGetValue("scripts", out var scriptsNode) ? ReadScripts(reader, scriptsNode, path + ".scripts") : new ScriptsConfig(null, null);
        var checkers = new List<CheckerConfig>();
        if (f.TryGetValue("checkers", out var checkersNode))
        {
            var items = reader.Sequence(checkersNode, path + ".checkers");
            for (var i = 0; i < items.Count; i++)
            {
                if (ReadChecker(reader, items[i], $"{path}.checkers[{i}]") is { } checker)
                {
                    checkers.Add(checker);
                }
            }
        }

        var restart = f.TryGetValue("restart", out var restartNode) ? ReadRestart(reader, restartNode, path + ".restart") : new RestartConfig();
        if (nodeCount != 2)
        {
            reader.Error(node, path + ".type", $"a mirror runs on exactly two nodes; cluster.nodes lists {nodeCount}");
        }

        if (name is null || nic is null || vips.Count == 0 || directories.Count == 0 || directories.Count != list.Count || port is null || network is null || stall is null
            || resyncMbps is null || resyncStreams is null || wait is null || state is null || scripts is null || restart is null)
        {
            return null;
        }

        return new MirrorModuleConfig(name, vips, nic, directories, port.Value, network.Value, stall.Value, witnesses, (int)wait, state, scripts, checkers, restart, resyncMbps.Value, resyncStreams.Value);
    }

    private static List<IPAddress> ReadAddresses(YamlReader reader, Dictionary<string, YamlNode> f, string key, string path, bool required, string? emptyMessage)
    {
        var result = new List<IPAddress>();
        if (!f.TryGetValue(key, out var listNode))
        {
            if (required)
            {
                reader.Error(null, $"{path}.{key}", "is required");
            }

            return result;
        }

        var items = listNode is YamlSequenceNode ? reader.Sequence(listNode, $"{path}.{key}") : [listNode];
        for (var i = 0; i < items.Count; i++)
        {
            if (reader.Address(items[i], $"{path}.{key}[{i}]") is { } address)
            {
                if (result.Contains(address))
                {
                    reader.Error(items[i], $"{path}.{key}[{i}]", $"{address} is listed twice");
                }

                result.Add(address);
            }
        }

        if (items.Count == 0 && emptyMessage is not null)
        {
            reader.Error(listNode, $"{path}.{key}", emptyMessage);
        }

        return result;
    }

    private static MirrorDirectoryConfig? ReadDirectory(YamlReader reader, YamlNode node, string path, string module)
    {
        var f = reader.Mapping(node, path, DirectoryKeys);
        var mountpoint = reader.Required(f, node, path, "path") is { } pathNode ? AbsolutePath(reader, pathNode, path + ".path") : null;
        var data = f.TryGetValue("data", out var dataNode)
            ? AbsolutePath(reader, dataNode, path + ".data")
            : mountpoint is null ? null : $"/var/lib/safekit/{module}/data{mountpoint.TrimEnd('/')}";
        var mode = f.TryGetValue("mode", out var modeNode) ? reader.Choice(modeNode, path + ".mode", ReplicationModes) : ReplicationMode.Sync;
        if (mountpoint is not null && mountpoint.TrimEnd('/').Length == 0)
        {
            reader.Error(f["path"], path + ".path", "/ cannot be replicated: name the application's own directory");
            return null;
        }

        return mountpoint is null || data is null || mode is null ? null : new MirrorDirectoryConfig(mountpoint.TrimEnd('/'), data.TrimEnd('/'), mode.Value);
    }

    /// <summary>Directories may neither overlap each other nor hold each other's data.</summary>
    private static void ValidateDirectories(YamlReader reader, IReadOnlyList<YamlNode> nodes, List<MirrorDirectoryConfig> directories, string path)
    {
        static bool Inside(string a, string b) => a == b || a.StartsWith(b + "/", StringComparison.Ordinal);
        var paths = directories.SelectMany(d => new[] { d.Path, d.Data }).ToList();
        for (var i = 0; i < directories.Count && i < nodes.Count; i++)
        {
            for (var j = 0; j < paths.Count; j++)
            {
                var (a, b) = (directories[i].Path, paths[j]);
                if (j != 2 * i && (Inside(a, b) || Inside(b, a)))
                {
                    reader.Error(nodes[i], $"{path}.directories[{i}].path", $"{a} overlaps {b}: replicated paths and data directories must be disjoint");
                    break;
                }
            }

            if (Inside(directories[i].Data, directories[i].Path) || Inside(directories[i].Path, directories[i].Data))
            {
                reader.Error(nodes[i], $"{path}.directories[{i}].data", $"{directories[i].Data} overlaps its own path {directories[i].Path}");
            }
        }
    }

    private static (int? Port, int? Network, int? Stall, int? ResyncMbps, int? ResyncStreams) ReadReplication(YamlReader reader, YamlNode node, string path, int networks)
    {
        var f = reader.Mapping(node, path, ReplicationKeys);
        var port = f.TryGetValue("port", out var portNode) ? reader.Integer(portNode, path + ".port", 1, 65535) : MirrorModuleConfig.DefaultReplicationPort;
        var network = f.TryGetValue("network", out var networkNode) ? reader.Integer(networkNode, path + ".network", 0, 15) : 0;
        if (network is { } n && networks > 0 && n >= networks)
        {
            reader.Error(networkNode, path + ".network", $"network {n} does not exist: the nodes have {networks} address(es) (0..{networks - 1})");
            network = null;
        }

        var stall = f.TryGetValue("stall_timeout_ms", out var stallNode) ? reader.Integer(stallNode, path + ".stall_timeout_ms", 100, 600_000) : MirrorModuleConfig.DefaultStallTimeoutMilliseconds;
        var resync = f.TryGetValue("resync_mbps", out var resyncNode) ? reader.Integer(resyncNode, path + ".resync_mbps", 0, 400_000) : 0;
        var streams = f.TryGetValue("resync_streams", out var streamsNode) ? reader.Integer(streamsNode, path + ".resync_streams", 0, MirrorModuleConfig.MaxResyncStreams) : 0;
        return ((int?)port, (int?)network, (int?)stall, (int?)resync, (int?)streams);
    }
}
