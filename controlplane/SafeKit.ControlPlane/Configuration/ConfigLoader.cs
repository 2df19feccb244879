using System.Net;
using System.Net.Sockets;
using System.Numerics;
using System.Text;
using System.Text.RegularExpressions;
using SafeKit.Dataplane.Capture;
using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Engine;
using SafeKit.Dataplane.Flows;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace SafeKit.ControlPlane.Configuration;

/// <summary>
/// Reads and validates a cluster configuration file (YAML). Every key is documented in the
/// README's configuration reference; unknown keys are errors, and every error names the file,
/// the line and the key.
/// </summary>
public static partial class ConfigLoader
{
    private static readonly string[] RootKeys = ["cluster", "modules"];
    private static readonly string[] ClusterKeys = ["name", "nodes", "key_file", "heartbeat", "api"];
    private static readonly string[] ApiKeys = ["enabled", "port", "plain_http", "certificate", "tokens_file", "ca_file"];
    private static readonly Dictionary<string, bool> Booleans = new(StringComparer.Ordinal) { ["true"] = true, ["false"] = false };
    private static readonly string[] NodeKeys = ["name", "address", "addresses", "weight"];
    private static readonly string[] HeartbeatKeys = ["port", "interval_ms", "timeout_ms"];

    /// <summary>Bucket assignment and heartbeats carry member sets as 32-bit masks.</summary>
    public const int MaxNodes = 32;
    private static readonly string[] ModuleKeys =
        ["name", "type", "vips", "interface", "l2_mode", "cluster_mac", "affinity", "buckets", "hash_seed", "dataplane", "capture", "tun", "workers", "drain_timeout_ms", "scripts", "checkers", "restart"];

    private static readonly string[] ScriptKeys = ["start", "stop", "timeout_ms"];
    private static readonly string[] CheckerKinds = ["tcp", "http", "process", "command", "link"];
    private static readonly string[] CheckerKeys = [.. CheckerKinds, "status", "interval_ms", "timeout_ms", "failures"];
    private static readonly string[] RestartKeys = ["max", "window_ms"];

    private static readonly Dictionary<string, L2Mode> L2Modes = new(StringComparer.Ordinal) { ["unicast"] = L2Mode.Unicast, ["multicast"] = L2Mode.Multicast };
    private static readonly Dictionary<string, Affinity> Affinities = new(StringComparer.Ordinal) { ["client-ip-port"] = Affinity.ClientIpPort, ["client-ip"] = Affinity.ClientIp };
    private static readonly Dictionary<string, DataplaneMode> Dataplanes = new(StringComparer.Ordinal) { ["userspace"] = DataplaneMode.Userspace, ["kernel"] = DataplaneMode.Kernel };
    private static readonly Dictionary<string, CaptureKind> Captures = new(StringComparer.Ordinal) { ["ring"] = CaptureKind.Ring, ["pcap"] = CaptureKind.Pcap };
    private static readonly Dictionary<string, int> ModuleTypes = new(StringComparer.Ordinal) { ["farm"] = 0, ["mirror"] = 1 };

    /// <summary>Loads <paramref name="path"/>.</summary>
    /// <exception cref="ConfigException">The file is missing or invalid; every problem is listed.</exception>
    public static ClusterConfig Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            throw new ConfigException([new ConfigError(path, 0, 0, "(file)", "file not found")]);
        }

        var (config, errors) = Parse(File.ReadAllText(path), path);
        return errors.Count > 0 ? throw new ConfigException(errors) : config!;
    }

    /// <summary>Parses configuration text; returns the config (null when invalid) and every error found.</summary>
    public static (ClusterConfig? Config, IReadOnlyList<ConfigError> Errors) Parse(string text, string file)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            var message = e.InnerException?.Message ?? e.Message;
            return (null, [new ConfigError(file, (int)e.Start.Line, (int)e.Start.Column, "(syntax)", message)]);
        }

        if (stream.Documents.Count != 1)
        {
            return (null, [new ConfigError(file, 0, 0, "(file)", "expected exactly one YAML document")]);
        }

        var reader = new YamlReader(file);
        var rootNode = stream.Documents[0].RootNode;
        var root = reader.Mapping(rootNode, string.Empty, RootKeys);
        var clusterNode = reader.Required(root, rootNode, string.Empty, "cluster");
        var cluster = ReadCluster(reader, clusterNode);
        var modules = new List<FarmModuleConfig>();
        var mirrors = new List<MirrorModuleConfig>();
        if (root.TryGetValue("modules", out var modulesNode))
        {
            var list = reader.Sequence(modulesNode, "modules");
            var farmNodes = new List<YamlNode>();
            var networks = cluster.Nodes.Count > 0 ? cluster.Nodes[0].Addresses.Count : 0;
            for (var i = 0; i < list.Count; i++)
            {
                if (IsMirror(list[i]))
                {
                    if (ReadMirror(reader, list[i], $"modules[{i}]", cluster.Nodes.Count, networks) is { } mirror)
                    {
                        mirrors.Add(mirror);
                    }
                }
                else
                {
                    farmNodes.Add(list[i]);
                    if (ReadModule(reader, list[i], $"modules[{i}]", cluster.Name) is { } module)
                    {
                        modules.Add(module);
                    }
                }
            }

            ValidateModules(reader, farmNodes, modules);
            if (list.Count > 1)
            {
                reader.Error(list[1], "modules[1]", "this version runs one module (a farm or a mirror) per cluster");
            }
        }

        if (reader.Errors.Count > 0 || cluster.Name is null)
        {
            return (null, reader.Errors);
        }

        return (new ClusterConfig(cluster.Name, cluster.Nodes, modules, file, cluster.KeyFile, cluster.Heartbeat, cluster.Api) { Mirrors = mirrors }, []);
    }

    /// <summary>The default jhash seed of a cluster: FNV-1a of its name, the same on every node.</summary>
    public static uint DefaultHashSeed(string clusterName)
    {
        ArgumentNullException.ThrowIfNull(clusterName);
        var hash = 2166136261u;
        foreach (var b in Encoding.UTF8.GetBytes(clusterName))
        {
            hash = (hash ^ b) * 16777619u;
        }

        return hash;
    }

    private static ClusterPart ReadCluster(YamlReader reader, YamlNode? node)
    {
        var nodes = new List<NodeConfig>();
        var heartbeat = new HeartbeatConfig();
        if (node is null)
        {
            return new ClusterPart(null, nodes, null, heartbeat, new ApiConfig());
        }

        var entries = reader.Mapping(node, "cluster", ClusterKeys);
        var name = ReadName(reader, reader.Required(entries, node, "cluster", "name"), "cluster.name");
        var list = reader.Sequence(reader.Required(entries, node, "cluster", "nodes"), "cluster.nodes");
        if (entries.TryGetValue("nodes", out var nodesNode) && list.Count == 0)
        {
            reader.Error(nodesNode, "cluster.nodes", "a cluster needs at least one node");
        }

        if (list.Count > MaxNodes)
        {
            reader.Error(nodesNode, "cluster.nodes", $"{list.Count} nodes; a cluster has at most {MaxNodes}");
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        var addresses = new HashSet<IPAddress>();
        int? networks = null;
        for (var i = 0; i < list.Count; i++)
        {
            var path = $"cluster.nodes[{i}]";
            var fields = reader.Mapping(list[i], path, NodeKeys);
            var nodeName = ReadName(reader, reader.Required(fields, list[i], path, "name"), path + ".name");
            var nodeAddresses = ReadNodeAddresses(reader, fields, list[i], path);
            var weight = fields.TryGetValue("weight", out var weightNode) ? reader.Integer(weightNode, path + ".weight", 1, 100) : 1;
            if (nodeName is not null && !names.Add(nodeName))
            {
                reader.Error(fields["name"], path + ".name", $"node name '{nodeName}' is used twice");
            }

            foreach (var address in nodeAddresses)
            {
                if (!addresses.Add(address))
                {
                    reader.Error(list[i], path, $"address {address} is used twice");
                }
            }

            if (nodeAddresses.Count > 0)
            {
                networks ??= nodeAddresses.Count;
                if (networks != nodeAddresses.Count)
                {
                    reader.Error(list[i], path, $"{nodeAddresses.Count} addresses, but the first node has {networks}: every node needs one address on each heartbeat network");
                }
            }

            if (nodeName is not null && nodeAddresses.Count > 0 && weight is not null)
            {
                nodes.Add(new NodeConfig(nodeName, nodeAddresses, (int)weight));
            }
        }

        string? keyFile = null;
        if (entries.TryGetValue("key_file", out var keyNode) && reader.String(keyNode, "cluster.key_file") is { } key)
        {
            if (!Path.IsPathRooted(key))
            {
                reader.Error(keyNode, "cluster.key_file", $"'{key}' is not an absolute path");
            }
            else
            {
                keyFile = key;
            }
        }
        else if (list.Count > 1)
        {
            reader.Error(node, "cluster.key_file", "is required with more than one node: heartbeats are authenticated with the cluster key (create it with: head -c 32 /dev/urandom > FILE && chmod 600 FILE, the same file on every node)");
        }

        if (entries.TryGetValue("heartbeat", out var heartbeatNode))
        {
            heartbeat = ReadHeartbeat(reader, heartbeatNode) ?? heartbeat;
        }

        var api = entries.TryGetValue("api", out var apiNode) ? ReadApi(reader, apiNode) ?? new ApiConfig() : new ApiConfig();
        return new ClusterPart(name, nodes, keyFile, heartbeat, api);
    }

    private static List<IPAddress> ReadNodeAddresses(YamlReader reader, Dictionary<string, YamlNode> fields, YamlNode node, string path)
    {
        var result = new List<IPAddress>();
        var hasSingle = fields.TryGetValue("address", out var single);
        var hasList = fields.TryGetValue("addresses", out var many);
        if (hasSingle == hasList)
        {
            reader.Error(node, path + ".address", hasSingle ? "give either address or addresses, not both" : "is required (or addresses: one per heartbeat network)");
            return result;
        }

        var items = hasSingle ? [single!] : reader.Sequence(many, path + ".addresses");
        for (var i = 0; i < items.Count; i++)
        {
            if (reader.Address(items[i], hasSingle ? path + ".address" : $"{path}.addresses[{i}]") is { } address)
            {
                result.Add(address);
            }
        }

        if (hasList && items.Count == 0)
        {
            reader.Error(many, path + ".addresses", "needs at least one address");
        }

        return result;
    }

    private static HeartbeatConfig? ReadHeartbeat(YamlReader reader, YamlNode node)
    {
        var defaults = new HeartbeatConfig();
        var f = reader.Mapping(node, "cluster.heartbeat", HeartbeatKeys);
        var port = f.TryGetValue("port", out var portNode) ? reader.Integer(portNode, "cluster.heartbeat.port", 1, 65535) : defaults.Port;
        var interval = f.TryGetValue("interval_ms", out var intervalNode) ? reader.Integer(intervalNode, "cluster.heartbeat.interval_ms", 10, 5000) : defaults.IntervalMilliseconds;
        var timeout = f.TryGetValue("timeout_ms", out var timeoutNode) ? reader.Integer(timeoutNode, "cluster.heartbeat.timeout_ms", 30, 60000) : defaults.TimeoutMilliseconds;
        if (interval is null || timeout is null || port is null)
        {
            return null;
        }

        if (timeout < 3 * interval)
        {
            reader.Error(timeoutNode ?? node, "cluster.heartbeat.timeout_ms", $"{timeout} ms is less than 3 heartbeat intervals ({3 * interval} ms): one lost heartbeat would declare a node dead");
            return null;
        }

        return new HeartbeatConfig((int)port, (int)interval, (int)timeout);
    }

    private static ApiConfig? ReadApi(YamlReader reader, YamlNode node)
    {
        const string Path0 = "cluster.api";
        var f = reader.Mapping(node, Path0, ApiKeys);
        var enabled = f.TryGetValue("enabled", out var enabledNode) ? reader.Choice(enabledNode, Path0 + ".enabled", Booleans) : true;
        var plain = f.TryGetValue("plain_http", out var plainNode) ? reader.Choice(plainNode, Path0 + ".plain_http", Booleans) : false;
        var port = f.TryGetValue("port", out var portNode) ? reader.Integer(portNode, Path0 + ".port", 1, 65535) : plain == true ? ApiConfig.DefaultHttpPort : ApiConfig.DefaultHttpsPort;
        var certificate = f.TryGetValue("certificate", out var certificateNode) ? AbsolutePath(reader, certificateNode, Path0 + ".certificate") : null;
        var tokens = f.TryGetValue("tokens_file", out var tokensNode) ? AbsolutePath(reader, tokensNode, Path0 + ".tokens_file") : null;
        var ca = f.TryGetValue("ca_file", out var caNode) ? AbsolutePath(reader, caNode, Path0 + ".ca_file") : null;
        if (plain == true && certificateNode is not null)
        {
            reader.Error(certificateNode, Path0 + ".certificate", "plain_http: true serves no certificate; remove one of them");
        }

        return enabled is null || plain is null || port is null ? null : new ApiConfig(enabled.Value, (int)port, plain.Value, certificate, tokens, ca);
    }

    private static string? AbsolutePath(YamlReader reader, YamlNode node, string path)
    {
        var value = reader.String(node, path);
        if (value is not null && !Path.IsPathRooted(value))
        {
            reader.Error(node, path, $"'{value}' is not an absolute path");
            return null;
        }

        return value;
    }

    private sealed record ClusterPart(string? Name, List<NodeConfig> Nodes, string? KeyFile, HeartbeatConfig Heartbeat, ApiConfig Api);

    private static FarmModuleConfig? ReadModule(YamlReader reader, YamlNode node, string path, string? clusterName)
    {
        var f = reader.Mapping(node, path, ModuleKeys);
        var name = ReadName(reader, reader.Required(f, node, path, "name"), path + ".name");
        var type = reader.Choice(reader.Required(f, node, path, "type"), path + ".type", ModuleTypes);
        var vips = new List<IPAddress>();
        var vipNodes = reader.Sequence(reader.Required(f, node, path, "vips"), path + ".vips");
        for (var i = 0; i < vipNodes.Count; i++)
        {
            if (reader.Address(vipNodes[i], $"{path}.vips[{i}]") is { } vip)
            {
                if (vips.Contains(vip))
                {
                    reader.Error(vipNodes[i], $"{path}.vips[{i}]", $"VIP {vip} is listed twice");
                }

                vips.Add(vip);
            }
        }

        if (f.TryGetValue("vips", out var vipsNode) && vipNodes.Count == 0)
        {
            reader.Error(vipsNode, path + ".vips", "a farm needs at least one VIP");
        }

        var nic = reader.String(reader.Required(f, node, path, "interface"), path + ".interface");
        if (nic is not null && !InterfaceName().IsMatch(nic))
        {
            reader.Error(f["interface"], path + ".interface", $"'{nic}' is not a valid interface name (1-15 characters, no '/' or spaces)");
        }

        var l2 = f.TryGetValue("l2_mode", out var l2Node) ? reader.Choice(l2Node, path + ".l2_mode", L2Modes) : L2Mode.Unicast;
        byte[]? mac = null;
        if (f.TryGetValue("cluster_mac", out var macNode) && reader.String(macNode, path + ".cluster_mac") is { } macText)
        {
            mac = ClusterMac.TryParse(macText);
            if (mac is null)
            {
                reader.Error(macNode, path + ".cluster_mac", $"'{macText}' is not a MAC address (aa:bb:cc:dd:ee:ff)");
            }
            else if (l2 == L2Mode.Unicast && (mac[0] & 1) != 0)
            {
                reader.Error(macNode, path + ".cluster_mac", "l2_mode unicast needs a unicast MAC (first byte even)");
            }
            else if (l2 == L2Mode.Multicast && (mac[0] & 1) == 0)
            {
                reader.Error(macNode, path + ".cluster_mac", "l2_mode multicast needs a multicast MAC (first byte odd)");
            }
        }

        var affinity = f.TryGetValue("affinity", out var affinityNode) ? reader.Choice(affinityNode, path + ".affinity", Affinities) : Affinity.ClientIpPort;
        var buckets = f.TryGetValue("buckets", out var bucketsNode) ? reader.Integer(bucketsNode, path + ".buckets", 1, 65536) : 4096;
        if (buckets is { } count && !BitOperations.IsPow2(count))
        {
            reader.Error(bucketsNode, path + ".buckets", $"{count} is not a power of two");
            buckets = null;
        }

        long? seed = f.TryGetValue("hash_seed", out var seedNode)
            ? reader.Integer(seedNode, path + ".hash_seed", 0, uint.MaxValue)
            : DefaultHashSeed(clusterName ?? string.Empty);
        var dataplane = f.TryGetValue("dataplane", out var dataplaneNode) ? reader.Choice(dataplaneNode, path + ".dataplane", Dataplanes) : DataplaneMode.Userspace;
        var capture = f.TryGetValue("capture", out var captureNode) ? reader.Choice(captureNode, path + ".capture", Captures) : CaptureKind.Ring;
        var tun = f.TryGetValue("tun", out var tunNode) ? reader.String(tunNode, path + ".tun") : name is null ? null : "sk-" + name;
        if (tun is not null && !InterfaceName().IsMatch(tun))
        {
            reader.Error(tunNode ?? node, path + ".tun", $"'{tun}' is not a valid interface name (1-15 characters); set tun explicitly");
            tun = null;
        }

        var workers = f.TryGetValue("workers", out var workersNode) ? reader.Integer(workersNode, path + ".workers", 1, 16) : 1;
        var drain = f.TryGetValue("drain_timeout_ms", out var drainNode) ? reader.Integer(drainNode, path + ".drain_timeout_ms", 0, 3_600_000) : 60_000;
        var scripts = f.TryGetValue("scripts", out var scriptsNode) ? ReadScripts(reader, scriptsNode, path + ".scripts") : new ScriptsConfig(null, null);
        var checkers = new List<CheckerConfig>();
        if (f.TryGetValue("checkers", out var checkersNode))
        {
            var list = reader.Sequence(checkersNode, path + ".checkers");
            for (var i = 0; i < list.Count; i++)
            {
                if (ReadChecker(reader, list[i], $"{path}.checkers[{i}]") is { } checker)
                {
                    checkers.Add(checker);
                }
            }
        }

        var restart = f.TryGetValue("restart", out var restartNode) ? ReadRestart(reader, restartNode, path + ".restart") : new RestartConfig();
        if (name is null || type is null || nic is null || l2 is null || affinity is null || buckets is null || seed is null || dataplane is null || capture is null || tun is null || workers is null || drain is null || scripts is null || restart is null || vips.Count == 0)
        {
            return null;
        }

        return new FarmModuleConfig(name, vips, nic, l2.Value, mac, affinity.Value, (int)buckets, (uint)seed, dataplane.Value, capture.Value, tun, (int)workers, (int)drain, scripts, checkers, restart);
    }

    private static ScriptsConfig? ReadScripts(YamlReader reader, YamlNode node, string path)
    {
        var f = reader.Mapping(node, path, ScriptKeys);
        var start = f.TryGetValue("start", out var startNode) ? reader.String(startNode, path + ".start") : null;
        var stop = f.TryGetValue("stop", out var stopNode) ? reader.String(stopNode, path + ".stop") : null;
        var timeout = f.TryGetValue("timeout_ms", out var timeoutNode) ? reader.Integer(timeoutNode, path + ".timeout_ms", 100, 3_600_000) : 30_000;
        return timeout is null ? null : new ScriptsConfig(start, stop, (int)timeout);
    }

    private static CheckerConfig? ReadChecker(YamlReader reader, YamlNode node, string path)
    {
        var f = reader.Mapping(node, path, CheckerKeys);
        var kinds = CheckerKinds.Where(f.ContainsKey).ToList();
        if (kinds.Count != 1)
        {
            reader.Error(node, path, $"a checker has exactly one of: {string.Join(", ", CheckerKinds)}");
            return null;
        }

        var kind = kinds[0];
        var target = reader.String(f[kind], $"{path}.{kind}");
        var status = f.TryGetValue("status", out var statusNode) ? reader.Integer(statusNode, path + ".status", 100, 599) : 200;
        var interval = f.TryGetValue("interval_ms", out var intervalNode) ? reader.Integer(intervalNode, path + ".interval_ms", 10, 3_600_000) : 1000;
        var timeout = f.TryGetValue("timeout_ms", out var timeoutNode) ? reader.Integer(timeoutNode, path + ".timeout_ms", 10, 3_600_000) : 2000;
        var failures = f.TryGetValue("failures", out var failuresNode) ? reader.Integer(failuresNode, path + ".failures", 1, 100) : 3;
        if (target is null || status is null || interval is null || timeout is null || failures is null)
        {
            return null;
        }

        switch (kind)
        {
            case "tcp" when !int.TryParse(target, System.Globalization.CultureInfo.InvariantCulture, out var port) ? !IPEndPoint.TryParse(target, out _) : port is < 1 or > 65535:
                reader.Error(f[kind], $"{path}.tcp", $"'{target}' is neither a port nor address:port");
                return null;
            case "http" when !Uri.TryCreate(target, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"):
                reader.Error(f[kind], $"{path}.http", $"'{target}' is not an http(s) URL");
                return null;
            case "process" when !Path.IsPathRooted(target):
                reader.Error(f[kind], $"{path}.process", $"'{target}' is not an absolute pid file path");
                return null;
        }

        if (kind != "http" && statusNode is not null)
        {
            reader.Error(statusNode, path + ".status", "only http checkers have a status");
        }

        var checkerKind = kind switch
        {
            "tcp" => CheckerKind.Tcp,
            "http" => CheckerKind.Http,
            "process" => CheckerKind.Process,
            "command" => CheckerKind.Command,
            _ => CheckerKind.Link,
        };
        return new CheckerConfig(checkerKind, target, (int)status, (int)interval, (int)timeout, (int)failures);
    }

    private static RestartConfig? ReadRestart(YamlReader reader, YamlNode node, string path)
    {
        var f = reader.Mapping(node, path, RestartKeys);
        var max = f.TryGetValue("max", out var maxNode) ? reader.Integer(maxNode, path + ".max", 0, 1000) : 3;
        var window = f.TryGetValue("window_ms", out var windowNode) ? reader.Integer(windowNode, path + ".window_ms", 1000, 86_400_000) : 300_000;
        return max is null || window is null ? null : new RestartConfig((int)max, (int)window);
    }

    private static void ValidateModules(YamlReader reader, List<YamlNode> nodes, List<FarmModuleConfig> modules)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        var vips = new HashSet<IPAddress>();
        for (var i = 0; i < modules.Count && i < nodes.Count; i++)
        {
            if (!names.Add(modules[i].Name))
            {
                reader.Error(nodes[i], $"modules[{i}].name", $"module name '{modules[i].Name}' is used twice");
            }

            foreach (var vip in modules[i].Vips)
            {
                if (!vips.Add(vip))
                {
                    reader.Error(nodes[i], $"modules[{i}].vips", $"VIP {vip} belongs to two modules");
                }
            }

            if (modules[i].Vips.Any(v => v.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6)))
            {
                reader.Error(nodes[i], $"modules[{i}].vips", "VIPs are IPv4 or IPv6 addresses");
            }
        }

    }

    private static string? ReadName(YamlReader reader, YamlNode? node, string path)
    {
        if (node is null)
        {
            return null;
        }

        var name = reader.String(node, path);
        if (name is not null && !Name().IsMatch(name))
        {
            reader.Error(node, path, $"'{name}' is not a valid name (letters, digits, '-' and '_', at most 32, starting with a letter or digit)");
            return null;
        }

        return name;
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")]
    private static partial Regex Name();

    [GeneratedRegex("^[A-Za-z0-9_.@-][A-Za-z0-9_.:@-]{0,14}$")]
    private static partial Regex InterfaceName();
}
