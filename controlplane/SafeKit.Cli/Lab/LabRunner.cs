using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using SafeKit.ControlPlane.Status;
using SafeKit.Dataplane.Capture;
using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Engine;
using SafeKit.Dataplane.Flows;
using SafeKit.Native.Host;

namespace SafeKit.Cli.Lab;

/// <summary>
/// Builds, inspects and removes the local lab: a bridge namespace with no uplink, a client and N
/// nodes joined by veth, safekitd and NGINX in every node. Everything it creates carries the
/// lab's prefix and is removed by <see cref="Down"/>, also after a crashed run.
/// </summary>
internal sealed partial class LabRunner
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan ApplicationTimeout = TimeSpan.FromSeconds(120);
    private readonly TextWriter _out;
    private readonly TextWriter _error;

    public LabRunner(TextWriter output, TextWriter error)
    {
        _out = output;
        _error = error;
    }

    public int Up(LabOptions options)
    {
        if (!Privileges.IsRoot)
        {
            _error.WriteLine("safekit lab: the lab creates network namespaces and needs root");
            return 77;
        }

        var topology = new LabTopology(options.Prefix, options.Mirror ? 2 : options.Nodes, options.Mirror);
        var daemon = Path.Combine(AppContext.BaseDirectory, "safekitd");
        string[] required = options.Mirror
            ? [daemon, "/usr/sbin/nginx", "/usr/sbin/ip", "/usr/bin/setsid", "/usr/bin/nsenter", "/usr/bin/unshare", "/usr/sbin/runuser", Path.Combine(LabTopology.PostgresBin, "initdb")]
            : [daemon, "/usr/sbin/nginx", "/usr/sbin/ip", "/usr/bin/setsid", "/usr/bin/nsenter", "/usr/bin/unshare"];
        var missing = required.Where(p => !File.Exists(p)).ToList();
        if (missing.Count > 0)
        {
            _error.WriteLine($"safekit lab: missing {string.Join(", ", missing)} (run ./setup first)");
            return 69;
        }

        if (LabState.TryRead(topology.StateDirectory) is { } existing && existing.Processes.Any(LabProcesses.IsRunning))
        {
            _error.WriteLine($"safekit lab: lab '{options.Prefix}' is already up; run 'safekit lab down{PrefixArgument(options.Prefix)}' first");
            return 1;
        }

        RemoveAll(options.Prefix);
        var state = new LabState(
            options.Prefix,
            topology.NodeCount,
            options.Affinity == Affinity.ClientIp ? "client-ip" : "client-ip-port",
            options.L2Mode == L2Mode.Unicast ? "unicast" : "multicast",
            options.Dataplane == DataplaneMode.Kernel ? "kernel" : "userspace",
            options.Capture == CaptureKind.Pcap ? "pcap" : "ring",
            options.IPv6,
            DateTimeOffset.UtcNow,
            [],
            options.Mirror ? "mirror" : "farm");
        try
        {
            Directory.CreateDirectory(topology.StateDirectory);
            File.WriteAllBytes(topology.KeyPath, System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
            File.SetUnixFileMode(topology.KeyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            File.WriteAllText(topology.TokensPath, $"# lab API tokens (safekit lab status --json shows them)\nadmin {LabTokens.New()}\nread {LabTokens.New()}\n");
            File.SetUnixFileMode(topology.TokensPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            LabCertificates.Create(topology);
            using (var download = File.Create(topology.DownloadPath))
            {
                download.SetLength(LabTopology.DownloadBytes);
            }

            File.SetUnixFileMode(topology.DownloadPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            BuildNetwork(topology, options);
            File.WriteAllText(topology.ConfigPath, options.Mirror ? LabFiles.MirrorClusterConfig(topology, options) : LabFiles.ClusterConfig(topology, options));
            if (options.Mirror)
            {
                File.WriteAllText(topology.MirrorAppScriptPath, LabFiles.MirrorAppScript());
            }

            foreach (var i in topology.NodeIndexes)
            {
                Directory.CreateDirectory(topology.NodeDirectory(i));
                File.WriteAllText(Path.Combine(topology.NodeDirectory(i), "nginx.conf"), options.Mirror ? LabFiles.MirrorNginx(topology, options, i) : LabFiles.Nginx(topology, options, i));
                if (options.Mirror)
                {
                    LabMounts.Create(topology, i, options.DataMiB);
                }
            }

            // safekitd starts NGINX with the module's start script and reports UP (a mirror: PRIM
            // and SECOND) once its checkers pass.
            StartDaemons(topology, state, daemon);
            state.Write(topology.StateDirectory);
            if (options.Mirror)
            {
                WaitForApplication(topology, 1, DateTime.UtcNow + ApplicationTimeout);
                LabMounts.Seed(topology);
                WaitForMirroring(topology, DateTime.UtcNow + ApplicationTimeout);
            }
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or TimeoutException or SafeKit.Native.Interop.NativeException)
        {
            state.Write(topology.StateDirectory);
            _error.WriteLine($"safekit lab: {e.Message}");
            if (Environment.GetEnvironmentVariable("SAFEKIT_LAB_KEEP") == "1")
            {
                _error.WriteLine($"safekit lab: SAFEKIT_LAB_KEEP=1: the lab stays for inspection; 'safekit lab down{PrefixArgument(options.Prefix)}' removes it");
                return 1;
            }

            _error.WriteLine("safekit lab: removing what was built");
            RemoveAll(options.Prefix);
            return 1;
        }

        if (options.Mirror)
        {
            _out.WriteLine($"mirror lab '{options.Prefix}' is up: {topology.NodeName(1)} PRIM, {topology.NodeName(2)} SECOND, VIP {topology.Vip4}{(options.IPv6 ? $" and {topology.Vip6}" : string.Empty)}; " +
                $"replicated: {string.Join(", ", LabTopology.MirrorDirectories)} (NGINX serves /srv/www)");
        }
        else
        {
            _out.WriteLine($"lab '{options.Prefix}' is up: {options.Nodes} nodes, VIP {topology.Vip4}{(options.IPv6 ? $" and {topology.Vip6}" : string.Empty)}, " +
                $"{state.Dataplane} dataplane ({state.Capture}), {state.L2Mode} cluster MAC, affinity {state.Affinity}");
        }

        _out.WriteLine($"  state and logs: {topology.StateDirectory}");
        _out.WriteLine($"  try: safekit lab exec{PrefixArgument(options.Prefix)} client -- curl -s http://{topology.Vip4}/");
        _out.WriteLine($"       safekit lab status{PrefixArgument(options.Prefix)}");
        _out.WriteLine($"       safekit lab down{PrefixArgument(options.Prefix)}");
        return 0;
    }

    public int Down(string prefix)
    {
        if (!Privileges.IsRoot)
        {
            _error.WriteLine("safekit lab: removing the lab needs root");
            return 77;
        }

        var removed = RemoveAll(prefix);
        _out.WriteLine(removed ? $"lab '{prefix}' removed" : $"no lab '{prefix}' was up");
        return 0;
    }

    public int Status(string prefix, bool json)
    {
        var topology = new LabTopology(prefix, 0);
        var state = LabState.TryRead(topology.StateDirectory);
        var report = BuildReport(prefix, state);
        if (json)
        {
            _out.WriteLine(JsonSerializer.Serialize(report, LabJsonContext.Default.LabStatusReport));
            return report.Up ? 0 : 3;
        }

        if (!report.Up)
        {
            _out.WriteLine($"lab '{prefix}' is not up");
            return 3;
        }

        if (report.Kind == "mirror")
        {
            _out.WriteLine($"mirror lab '{prefix}': VIP {report.Vip}{(report.Vip6 is null ? string.Empty : " " + report.Vip6)}");
            _out.WriteLine($"{"node",-14} {"address",-14} {"safekitd",-9} {"nginx",-6} {"state",-7} reason");
            foreach (var node in report.Nodes)
            {
                _out.WriteLine($"{node.Name,-14} {node.Address,-14} {(node.SafekitdRunning ? "running" : "DOWN"),-9} {(node.NginxRunning ? "up" : "-"),-6} {node.State ?? "-",-7} {node.Reason ?? "-"}");
            }

            return report.Nodes.All(n => n.SafekitdRunning) && report.Nodes.Any(n => n.State is "PRIM" or "ALONE") ? 0 : 1;
        }

        _out.WriteLine($"lab '{prefix}': VIP {report.Vip}{(report.Vip6 is null ? string.Empty : " " + report.Vip6)}, {report.Dataplane} dataplane, {report.L2Mode}, affinity {report.Affinity}");
        _out.WriteLine($"{"node",-14} {"address",-14} {"safekitd",-9} {"nginx",-6} {"state",-6} {"buckets",8} {"accepted",10} {"rejected",10} {"arp",5} {"malformed",9} {"drops",6}");
        foreach (var node in report.Nodes)
        {
            var c = node.Counters;
            _out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{node.Name,-14} {node.Address,-14} {(node.SafekitdRunning ? "running" : "DOWN"),-9} {(node.NginxRunning ? "up" : "DOWN"),-6} {node.State ?? "-",-6} {node.OwnedBuckets?.ToString(CultureInfo.InvariantCulture) ?? "-",8} " +
                $"{Count(c, "accepted"),10} {Count(c, "rejected"),10} {Count(c, "arp_answered"),5} {Count(c, "malformed"),9} {node.CaptureDropped?.ToString(CultureInfo.InvariantCulture) ?? "-",6}"));
        }

        return report.Nodes.All(n => n.SafekitdRunning && n.NginxRunning) ? 0 : 1;
    }

    /// <summary>Kills a node's safekitd with SIGKILL: a crash (no goodbye, no cleanup).</summary>
    public int Kill(string prefix, string name)
    {
        if (RunningDaemon(prefix, name, out var failure) is not var (topology, _, index, process))
        {
            return failure;
        }

        if (topology.Mirror)
        {
            return CrashMirrorNode(topology, index);
        }

        ProcessControl.Signal(process.Pid, ProcessControl.SigKill);
        for (var i = 0; i < 250 && !ProcessControl.IsDead(process.Pid); i++)
        {
            Thread.Sleep(20);
        }

        _out.WriteLine($"safekitd on {topology.NodeName(index)} killed (pid {process.Pid})");
        return 0;
    }

    /// <summary>
    /// A mirror node's server crashes: kill -9 of everything running in it (safekitd, the
    /// application), its FUSE mounts detach, its VIP goes.
    /// </summary>
    private int CrashMirrorNode(LabTopology topology, int index)
    {
        var ns = topology.NodeName(index);
        var pids = Netns.Pids(ns);
        var killed = DateTimeOffset.UtcNow;
        foreach (var pid in pids)
        {
            ProcessControl.Signal(pid, ProcessControl.SigKill);
        }

        for (var i = 0; i < 250 && pids.Any(p => !ProcessControl.IsDead(p)); i++)
        {
            Thread.Sleep(20);
        }

        LabMounts.DetachReplicated(topology, index);
        CommandRunner.Run("ip", ["-n", ns, "addr", "del", $"{topology.Vip4}/32", "dev", LabTopology.NodeInterface]);
        CommandRunner.Run("ip", ["-n", ns, "addr", "del", $"{topology.Vip6}/128", "dev", LabTopology.NodeInterface]);
        // The moment of the crash, for whoever measures how long the service was gone.
        _out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{ns} crashed at {killed:HH:mm:ss.fff} ({killed.ToUnixTimeMilliseconds()} Unix ms): {pids.Count} processes killed, its mounts detached, its VIP gone"));
        return 0;
    }

    /// <summary>Stops a node's safekitd with SIGTERM: it drains (leaves the view, lets its connections finish) and exits.</summary>
    public int Stop(string prefix, string name)
    {
        if (RunningDaemon(prefix, name, out var failure) is not var (topology, _, index, process))
        {
            return failure;
        }

        ProcessControl.Signal(process.Pid, ProcessControl.SigTerm);
        _out.WriteLine($"safekitd on {topology.NodeName(index)} is draining (pid {process.Pid})");
        return 0;
    }

    /// <summary>
    /// Asks a node's safekitd to reload the lab's configuration file (SIGHUP) and prints what it
    /// did: 0 when applied, 1 when refused (the running configuration stays in force).
    /// </summary>
    public int Reload(string prefix, string name)
    {
        if (RunningDaemon(prefix, name, out var failure) is not var (topology, _, index, process))
        {
            return failure;
        }

        var before = StatusFile.TryRead(topology.NodeDirectory(index))?.Config?.LastReload?.At;
        ProcessControl.Signal(process.Pid, ProcessControl.SigHup);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            if (StatusFile.TryRead(topology.NodeDirectory(index))?.Config?.LastReload is { } outcome && outcome.At != before)
            {
                var node = topology.NodeName(index);
                var lines = outcome.Applied
                    ? outcome.Changes.Count == 0 ? [$"{node}: configuration reloaded, nothing changed"] : outcome.Changes.Select(c => $"{node}: applied {c}")
                    : outcome.Problems.Select(p => $"{node}: reload refused: {p}");
                foreach (var line in lines.Concat(outcome.Notes.Select(n => $"{node}: note: {n}")))
                {
                    (outcome.Applied ? _out : _error).WriteLine(line);
                }

                return outcome.Applied ? 0 : 1;
            }

            Thread.Sleep(50);
        }

        // What the daemon was doing meanwhile is the only clue to a reload that never came.
        _error.WriteLine($"safekit lab: safekitd on {topology.NodeName(index)} did not report the reload within 30 s; the end of its log:{Environment.NewLine}{LabProcesses.Tail(Path.Combine(topology.NodeDirectory(index), "safekitd.log"))}");
        return 1;
    }

    /// <summary>The running safekitd of a lab node, or null (the reason is written; <paramref name="failure"/>: 2 no such node, 1 not running).</summary>
    private (LabTopology Topology, LabState State, int Index, LabProcess Process)? RunningDaemon(string prefix, string name, out int failure)
    {
        failure = 2;
        if (!TryNode(prefix, name, out var topology, out var state, out var index))
        {
            return null;
        }

        failure = 1;
        var process = state.Processes.FirstOrDefault(p => p.Role == "safekitd" && p.Namespace == topology.NodeName(index));
        if (process is null || !LabProcesses.IsRunning(process))
        {
            _error.WriteLine($"safekit lab: safekitd on {topology.NodeName(index)} is not running");
            return null;
        }

        return (topology, state, index, process);
    }

    /// <summary>Starts a node's safekitd again and waits until its module is UP.</summary>
    public int Start(string prefix, string name)
    {
        if (!TryNode(prefix, name, out var topology, out var state, out var index))
        {
            return 2;
        }

        if (state.Processes.Any(p => p.Role == "safekitd" && p.Namespace == topology.NodeName(index) && LabProcesses.IsRunning(p)))
        {
            _error.WriteLine($"safekit lab: safekitd on {topology.NodeName(index)} is already running");
            return 1;
        }

        StartDaemon(topology, state, Path.Combine(AppContext.BaseDirectory, "safekitd"), index);
        state.Write(topology.StateDirectory);
        try
        {
            WaitUntilUp(topology, state, index, DateTime.UtcNow + StartTimeout);
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException)
        {
            _error.WriteLine($"safekit lab: {e.Message}");
            return 1;
        }

        var module = StatusFile.TryRead(topology.NodeDirectory(index)) is { Modules: [var first, ..] } ? first : null;
        _out.WriteLine(module?.Mirror is { } mirror ? $"safekitd on {topology.NodeName(index)} is up: {module.State} ({mirror.Reason})" : $"safekitd on {topology.NodeName(index)} is up");
        return 0;
    }

    /// <summary>
    /// Acts on a node's application (NGINX) behind safekitd's back: <c>stop</c> (it dies),
    /// <c>start</c> (an operator starts it), <c>break</c> (its configuration is broken, so it cannot
    /// start), <c>fix</c> (the configuration is restored).
    /// </summary>
    public int App(string prefix, string name, string action)
    {
        if (!TryNode(prefix, name, out var topology, out var state, out var index))
        {
            return 2;
        }

        var directory = topology.NodeDirectory(index);
        var conf = Path.Combine(directory, "nginx.conf");
        var good = Path.Combine(directory, "nginx.conf.good");
        switch (action)
        {
            case "stop":
                if (NginxPid(topology, index) is { } pid)
                {
                    ProcessControl.Signal(pid, ProcessControl.SigTerm);
                    for (var i = 0; i < 250 && !ProcessControl.IsDead(pid); i++)
                    {
                        Thread.Sleep(20);
                    }
                }

                break;
            case "start":
                var enter = LabMounts.Enter(topology, index, topology.NodeName(index));
                var started = CommandRunner.Run(enter[0], [.. enter.Skip(1), "/usr/sbin/nginx", "-c", conf]);
                if (!started.Succeeded)
                {
                    _error.WriteLine($"safekit lab: nginx on {topology.NodeName(index)} did not start: {started.Error.Trim()}");
                    return 1;
                }

                break;
            case "break":
                if (!File.Exists(good))
                {
                    File.Copy(conf, good);
                }

                File.WriteAllText(conf, "this is not an nginx configuration;\n");
                return App(prefix, name, "stop");
            case "fix":
                if (File.Exists(good))
                {
                    File.Move(good, conf, overwrite: true);
                }

                break;
            default:
                _error.WriteLine("safekit lab app: stop, start, break or fix");
                return 64;
        }

        _out.WriteLine($"{topology.NodeName(index)}: application {action}");
        return 0;
    }

    /// <summary>Takes a node's cable out (or puts it back): its bridge port goes down (up).</summary>
    public int Link(string prefix, string name, bool up)
    {
        if (!TryNode(prefix, name, out var topology, out _, out var index))
        {
            return 2;
        }

        Netns.Ip("-n", topology.BridgeNamespace, "link", "set", topology.NodePort(index), up ? "up" : "down");
        _out.WriteLine($"{topology.NodeName(index)}: link {(up ? "up" : "down")}");
        return 0;
    }

    /// <summary>
    /// Drops heartbeats from <paramref name="from"/> to <paramref name="to"/> (and back unless
    /// <paramref name="oneWay"/>) in the lab's switch, leaving all other traffic alone.
    /// </summary>
    public int Partition(string prefix, string from, string to, bool oneWay)
    {
        if (!TryNode(prefix, from, out var topology, out _, out var a) || !TryNode(prefix, to, out _, out _, out var b))
        {
            return 2;
        }

        var rules = new List<string> { $"add table bridge {PartitionTable}", $"add chain bridge {PartitionTable} forward {{ type filter hook forward priority 0; policy accept; }}" };
        rules.Add(HeartbeatDrop(topology, a, b));
        if (!oneWay)
        {
            rules.Add(HeartbeatDrop(topology, b, a));
        }

        CommandRunner.RunChecked("ip", ["netns", "exec", topology.BridgeNamespace, "nft", "-f", "-"], string.Join('\n', rules) + "\n");
        _out.WriteLine($"heartbeats {topology.NodeName(a)} {(oneWay ? "->" : "<->")} {topology.NodeName(b)} dropped");
        return 0;
    }

    /// <summary>Removes every heartbeat partition.</summary>
    public int Heal(string prefix)
    {
        var state = LabState.TryRead(new LabTopology(prefix, 0).StateDirectory);
        if (state is null)
        {
            _error.WriteLine($"safekit lab: lab '{prefix}' is not up");
            return 3;
        }

        var topology = state.Topology;
        CommandRunner.Run("ip", ["netns", "exec", topology.BridgeNamespace, "nft", "delete", "table", "bridge", PartitionTable]);
        _out.WriteLine("heartbeat partitions removed");
        return 0;
    }

    private const string PartitionTable = "safekit_lab_partition";

    private static string HeartbeatDrop(LabTopology topology, int from, int to) =>
        $"add rule bridge {PartitionTable} forward ip saddr {topology.NodeV4(from)} ip daddr {topology.NodeV4(to)} udp dport {LabTopology.HeartbeatPort} drop";

    private bool TryNode(string prefix, string name, out LabTopology topology, out LabState state, out int index)
    {
        state = LabState.TryRead(new LabTopology(prefix, 0).StateDirectory)!;
        topology = state?.Topology ?? new LabTopology(prefix, 0);
        index = topology.NodeIndex(name);
        if (state is null)
        {
            _error.WriteLine($"safekit lab: lab '{prefix}' is not up");
            return false;
        }

        if (index == 0)
        {
            _error.WriteLine($"safekit lab: no node '{name}' in lab '{prefix}' (n1..n{state.Nodes})");
            return false;
        }

        return true;
    }

    public int Exec(string prefix, string name, IReadOnlyList<string> command)
    {
        var state = LabState.TryRead(new LabTopology(prefix, 0).StateDirectory);
        var topology = state?.Topology ?? new LabTopology(prefix, LabTopology.MaxNodes);
        var ns = topology.ResolveNamespace(name);
        if (ns is null || !Netns.List().Contains(ns))
        {
            _error.WriteLine($"safekit lab: no namespace '{name}' in lab '{prefix}' (use client, br, n1..n{state?.Nodes ?? 0})");
            return 2;
        }

        if (command.Count == 0)
        {
            _error.WriteLine("safekit lab exec: nothing to run (safekit lab exec NAME -- COMMAND...)");
            return 64;
        }

        var index = topology.NodeIndexes.FirstOrDefault(i => topology.NodeName(i) == ns);
        var enter = LabMounts.Enter(topology, index, ns);
        var start = new ProcessStartInfo(enter[0]) { UseShellExecute = false };
        foreach (var argument in enter.Skip(1).Concat(command))
        {
            start.ArgumentList.Add(argument);
        }

        // `safekit` run in a lab namespace talks to the lab's API at once: the node's own (or, from
        // the client, the first node's), with the lab's admin token and its certificate authority.
        var node = topology.NodeIndexes.FirstOrDefault(i => topology.NodeName(i) == ns, topology.NodeIndexes.First());
        start.Environment["SAFEKIT_NODE"] = topology.ApiUrl(node);
        start.Environment["SAFEKIT_TOKEN_FILE"] = topology.TokensPath;
        start.Environment["SAFEKIT_CA"] = topology.CaPath;

        using var process = Process.Start(start)!;
        process.WaitForExit();
        return process.ExitCode;
    }

    private static string Count(IReadOnlyDictionary<string, long>? counters, string key) =>
        counters is not null && counters.TryGetValue(key, out var value) ? value.ToString(CultureInfo.InvariantCulture) : "-";

    private static string PrefixArgument(string prefix) => prefix == "sk" ? string.Empty : $" --prefix {prefix}";

    private static LabStatusReport BuildReport(string prefix, LabState? state)
    {
        if (state is null)
        {
            return new LabStatusReport(prefix, false, null, null, null, LabTopology.VipV4.ToString(), null, [], [], null);
        }

        var topology = state.Topology;
        var nodes = new List<LabNodeReport>();
        foreach (var i in topology.NodeIndexes)
        {
            var name = topology.NodeName(i);
            var status = StatusFile.TryRead(topology.NodeDirectory(i));
            var module = status is { Modules.Count: > 0 } ? status.Modules[0] : null;
            var daemonRunning = state.Processes.Any(p => p.Role == "safekitd" && p.Namespace == name && LabProcesses.IsRunning(p));
            var farm = module?.Farm;
            nodes.Add(new LabNodeReport(
                name,
                name,
                topology.NodeV4(i).ToString(),
                daemonRunning,
                NginxPid(topology, i) is not null,
                daemonRunning ? module?.State : "STOP",
                farm?.OwnedBuckets,
                farm?.Counters,
                farm?.CaptureDropped,
                topology.ApiUrl(i),
                module?.Mirror?.Reason));
        }

        var processes = state.Processes.Select(p => new LabProcessReport(p.Role, p.Namespace, p.Pid, LabProcesses.IsRunning(p))).ToList();
        return new LabStatusReport(prefix, true, state.Dataplane, state.L2Mode, state.Affinity, topology.Vip4.ToString(), state.IPv6 ? topology.Vip6.ToString() : null, nodes, processes, LabTokens.Read(topology.TokensPath, topology.CaPath), topology.Mirror ? "mirror" : "farm");
    }

    private static void BuildNetwork(LabTopology topology, LabOptions options)
    {
        var bridge = topology.BridgeNamespace;
        Netns.Add(bridge);
        Netns.Add(topology.ClientNamespace);
        foreach (var i in topology.NodeIndexes)
        {
            Netns.Add(topology.NodeName(i));
        }

        // The bridge has no address and no uplink: it only joins the lab's veths.
        Netns.Ip("-n", bridge, "link", "set", "lo", "up");
        Netns.Sysctl(bridge, "net.ipv6.conf.all.disable_ipv6", "1");
        Netns.Sysctl(bridge, "net.ipv6.conf.default.disable_ipv6", "1");
        // A switch forwards frames without looking at IP headers; br_netfilter would validate
        // (and drop) malformed IP in bridged frames and cost every frame a trip through netfilter.
        foreach (var table in new[] { "iptables", "ip6tables", "arptables" })
        {
            if (File.Exists($"/proc/sys/net/bridge/bridge-nf-call-{table}"))
            {
                Netns.Sysctl(bridge, $"net.bridge.bridge-nf-call-{table}", "0");
            }
        }
        Netns.Ip("-n", bridge, "link", "add", "name", LabTopology.Bridge, "type", "bridge");
        Netns.Ip("-n", bridge, "link", "set", LabTopology.Bridge, "up");
        AddHost(topology, options, topology.ClientNamespace, "c", LabTopology.ClientV4.ToString(), LabTopology.ClientV6.ToString());
        foreach (var i in topology.NodeIndexes)
        {
            AddHost(topology, options, topology.NodeName(i), topology.NodePort(i), topology.NodeV4(i).ToString(), topology.NodeV6(i).ToString());
            if (options.L2Mode == L2Mode.Multicast)
            {
                // With IGMP/MLD snooping a bridge stops flooding a multicast MAC nobody joined;
                // router ports still get every multicast frame.
                CommandRunner.RunChecked("bridge", ["-n", bridge, "link", "set", "dev", topology.NodePort(i), "mcast_router", "2"]);
            }
        }
    }

    private static void AddHost(LabTopology topology, LabOptions options, string ns, string port, string v4, string v6)
    {
        var bridge = topology.BridgeNamespace;
        Netns.Ip("-n", ns, "link", "set", "lo", "up");
        Netns.Sysctl(ns, "net.ipv6.conf.all.accept_dad", "0");
        Netns.Sysctl(ns, "net.ipv6.conf.default.accept_dad", "0");
        Netns.Ip("-n", bridge, "link", "add", "name", port, "type", "veth", "peer", "name", LabTopology.NodeInterface, "netns", ns);
        Netns.Ip("-n", bridge, "link", "set", port, "master", LabTopology.Bridge, "up");
        Netns.Ip("-n", ns, "link", "set", LabTopology.NodeInterface, "up");
        Netns.Ip("-n", ns, "addr", "add", v4 + "/24", "dev", LabTopology.NodeInterface);
        if (options.IPv6)
        {
            Netns.Ip("-n", ns, "-6", "addr", "add", v6 + "/64", "dev", LabTopology.NodeInterface, "nodad");
        }
    }

    private static void StartDaemons(LabTopology topology, LabState state, string daemon)
    {
        foreach (var i in topology.NodeIndexes)
        {
            StartDaemon(topology, state, daemon, i);
        }

        var deadline = DateTime.UtcNow + StartTimeout;
        foreach (var i in topology.NodeIndexes)
        {
            WaitUntilUp(topology, state, i, deadline);
        }
    }

    private static LabProcess StartDaemon(LabTopology topology, LabState state, string daemon, int index)
    {
        var directory = topology.NodeDirectory(index);
        Directory.CreateDirectory(directory);
        var log = Path.Combine(directory, "safekitd.log");
        state.Processes.RemoveAll(p => p.Role == "safekitd" && p.Namespace == topology.NodeName(index));
        var process = LabProcesses.Start("safekitd", topology.NodeName(index), [daemon, "--config", topology.ConfigPath, "--node", topology.NodeName(index), "--state-dir", directory], log, LabMounts.Enter(topology, index, topology.NodeName(index)));
        state.Processes.Add(process);
        return process;
    }

    /// <summary>
    /// Waits until the node's safekitd (the one in <paramref name="state"/>) reports its farm module
    /// UP — a mirror module: PRIM, SECOND or ALONE, or WAIT for a reason other than still waiting to hear its peer.
    /// </summary>
    private static void WaitUntilUp(LabTopology topology, LabState state, int index, DateTime deadline)
    {
        var process = state.Processes.First(p => p.Role == "safekitd" && p.Namespace == topology.NodeName(index));
        var watch = new StatusFileWatch(topology.NodeDirectory(index));
        while (watch.Latest() is not { Modules: [var module, ..] } status || status.Pid != process.Pid || !Settled(module))
        {
            if (!LabProcesses.IsRunning(process))
            {
                throw new InvalidOperationException($"safekitd on {topology.NodeName(index)} exited:{Environment.NewLine}{LabProcesses.Tail(process.Log)}");
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"safekitd on {topology.NodeName(index)} did not come up within {StartTimeout.TotalSeconds} s:{Environment.NewLine}{LabProcesses.Tail(process.Log)}");
            }

            // Not faster: it waits beside what the node does on start (a failback, for one).
            Thread.Sleep(50);
        }
    }

    /// <summary>
    /// Waits until the mirror's start script has run on node <paramref name="index"/> (the first start
    /// initialises PostgreSQL's data directory through the mount, which takes seconds).
    /// </summary>
    private static void WaitForApplication(LabTopology topology, int index, DateTime deadline)
    {
        var watch = new StatusFileWatch(topology.NodeDirectory(index));
        while (watch.Latest() is not { Modules: [{ Application.LastStart: not null }, ..] })
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"the application of {topology.NodeName(index)} did not start within {ApplicationTimeout.TotalSeconds} s:{Environment.NewLine}{LabProcesses.Tail(Path.Combine(topology.NodeDirectory(index), "safekitd.log"))}");
            }

            Thread.Sleep(50);
        }

        if (StatusFile.TryRead(topology.NodeDirectory(index)) is { Modules: [{ Application.LastStart: { } last }, ..] } && !last.StartsWith("exit 0", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"the start script of {topology.NodeName(index)} failed ({last}); see {Path.Combine(topology.NodeDirectory(index), "safekitd.log")} and postgresql.log");
        }
    }

    /// <summary>
    /// A new pair: node 1 serves alone first and brings node 2's copy to its own (the first
    /// synchronisation); waits until they mirror, node 1 PRIM and node 2 SECOND.
    /// </summary>
    private static void WaitForMirroring(LabTopology topology, DateTime deadline)
    {
        string? State(int index) => StatusFile.TryRead(topology.NodeDirectory(index)) is { Modules: [var module, ..] } ? module.State : null;
        while (State(1) != "PRIM" || State(2) != "SECOND")
        {
            if (DateTime.UtcNow > deadline)
            {
                var reasons = string.Join("; ", Enumerable.Range(1, 2).Select(i => $"{topology.NodeName(i)}: {(StatusFile.TryRead(topology.NodeDirectory(i)) is { Modules: [var m, ..] } ? $"{m.State} ({m.Mirror?.Reason})" : "no status")}"));
                throw new TimeoutException($"the pair did not start mirroring within {ApplicationTimeout.TotalSeconds} s: {reasons}");
            }

            Thread.Sleep(50);
        }
    }

    private static bool Settled(ModuleStatus module) =>
        module.State is "UP" or "PRIM" or "SECOND" or "ALONE"
        || (module is { State: "WAIT", Mirror.Reason: var reason } && !reason.StartsWith("waiting to hear", StringComparison.Ordinal) && !reason.StartsWith("same data", StringComparison.Ordinal)
            && !reason.StartsWith("starting", StringComparison.Ordinal));

    /// <summary>The node's NGINX master, from its pid file, if it runs.</summary>
    private static int? NginxPid(LabTopology topology, int index)
    {
        try
        {
            var text = File.ReadAllText(Path.Combine(topology.NodeDirectory(index), "nginx.pid")).Trim();
            return int.TryParse(text, CultureInfo.InvariantCulture, out var pid) && !ProcessControl.IsDead(pid) ? pid : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Stops the lab's processes and deletes its namespaces and state. True when anything existed.</summary>
    private bool RemoveAll(string prefix)
    {
        var topology = new LabTopology(prefix, 0);
        var found = false;
        if (LabState.TryRead(topology.StateDirectory) is { } state)
        {
            found = true;
            foreach (var process in Enumerable.Reverse(state.Processes))
            {
                LabProcesses.Stop(process);
            }
        }

        var pattern = new Regex("^" + Regex.Escape(prefix) + "-(br|client|n[0-9]+|m[0-9]+)$", RegexOptions.CultureInvariant);
        foreach (var ns in Netns.List().Where(n => pattern.IsMatch(n)))
        {
            found = true;
            // Anything still running in a lab namespace was started by the lab (NGINX workers,
            // a daemon from a crashed run): stop it by PID before the namespace goes.
            foreach (var pid in Netns.Pids(ns))
            {
                if (ProcessControl.StartTime(pid) is { } start)
                {
                    ProcessControl.Stop(pid, start, TimeSpan.FromSeconds(3));
                }
            }

            Netns.Delete(ns);
        }

        LabMounts.RemoveAll(topology);
        if (Directory.Exists(topology.StateDirectory))
        {
            found = true;

            // A process that was just stopped may still be closing its files (a log written on
            // exit): a removal racing it fails with "directory not empty"; again a moment later.
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    Directory.Delete(topology.StateDirectory, recursive: true);
                    break;
                }
                catch (IOException) when (attempt < 5)
                {
                    Thread.Sleep(500);
                }
                catch (IOException e)
                {
                    _error.WriteLine($"safekit lab: could not remove {topology.StateDirectory}: {e.Message}");
                    break;
                }
            }
        }

        return found;
    }
}
