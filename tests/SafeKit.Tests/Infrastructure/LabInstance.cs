using System.Diagnostics;
using PacketDotNet;
using SharpPcap;
using SharpPcap.LibPcap;
using System.Net;
using System.Text.Json;
using SafeKit.ControlPlane.Configuration;
using SafeKit.Dataplane.Buckets;
using SafeKit.Dataplane.Flows;
using SafeKit.Native.Host;

namespace SafeKit.Tests.Infrastructure;

/// <summary>
/// A lab brought up with the real <c>safekit lab up</c> under a per-run prefix, used through the
/// real CLI, and removed with <c>safekit lab down</c>.
/// </summary>
public class LabInstance : IDisposable
{
    private readonly string? _unavailable;

    protected LabInstance(params string[] options)
    {
        _unavailable = Tools.LabUnavailableReason();
        Prefix = Tools.RunTag();
        if (_unavailable is not null)
        {
            return;
        }

        var up = Tools.Run(Tools.Safekit, ["lab", "up", "--prefix", Prefix, .. options]);
        if (!up.Succeeded)
        {
            Tools.Run(Tools.Safekit, "lab", "down", "--prefix", Prefix);
            UpError = $"safekit lab up {string.Join(' ', options)} failed ({up.ExitCode}): {up.Output}{up.Error}";
        }
    }

    public string Prefix { get; }

    /// <summary>Why bringing the lab up failed (tests report it), or null.</summary>
    public string? UpError { get; }

    public string StateDirectory => Path.Combine("/run/safekit-lab", Prefix);

    /// <summary>Skips when the machine cannot run labs; fails when this lab did not come up.</summary>
    public void Require()
    {
        Assert.SkipWhen(_unavailable is not null, _unavailable ?? string.Empty);
        Assert.True(UpError is null, UpError);
    }

    /// <summary><c>safekit lab exec NAME -- COMMAND</c>.</summary>
    public CommandResult Exec(string name, params string[] command) =>
        Tools.Run(Tools.Safekit, ["lab", "exec", "--prefix", Prefix, name, "--", .. command]);

    public JsonElement ExecJson(string name, params string[] command)
    {
        var result = Exec(name, command);
        Assert.True(result.Succeeded, $"{string.Join(' ', command)} failed: {result.Error}");
        return JsonDocument.Parse(result.Output).RootElement;
    }

    public JsonElement Status()
    {
        var result = Tools.Run(Tools.Safekit, "lab", "status", "--json", "--prefix", Prefix);
        return JsonDocument.Parse(result.Output).RootElement;
    }

    /// <summary>The status.json of node <paramref name="index"/> (1-based) as written last.</summary>
    public JsonElement NodeStatus(int index) =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(StateDirectory, $"{Prefix}-n{index}", "status.json"))).RootElement;

    /// <summary>Waits (polling status files) until <paramref name="condition"/> holds; fails after <paramref name="seconds"/>.</summary>
    public static void WaitUntil(Func<bool> condition, string what, double seconds = 15)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            try
            {
                if (condition())
                {
                    return;
                }
            }
            catch (Exception e) when (e is IOException or JsonException or KeyNotFoundException or InvalidOperationException)
            {
                // A status file being replaced, or a daemon not up yet: look again.
            }

            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting until {what}");
            Thread.Sleep(100);
        }
    }

    /// <summary>Members of the view node <paramref name="index"/> follows.</summary>
    public IReadOnlyList<string> Members(int index) =>
        NodeStatus(index).GetProperty("membership").GetProperty("members").EnumerateArray().Select(m => m.GetString()!).ToList();

    /// <summary>Buckets node <paramref name="index"/> owns (0 when its daemon is down).</summary>
    public int OwnedBuckets(int index) =>
        NodeStatus(index) is { } status && status.GetProperty("modules").GetArrayLength() > 0
            ? status.GetProperty("modules")[0].GetProperty("farm").GetProperty("owned_buckets").GetInt32()
            : 0;

    /// <summary>A membership counter of node <paramref name="index"/>.</summary>
    public long MembershipCounter(int index, string name) =>
        NodeStatus(index).GetProperty("membership").GetProperty("counters").GetProperty(name).GetInt64();

    /// <summary>Runs <c>safekit lab VERB ARGS</c> for this lab and asserts it worked.</summary>
    public string Lab(params string[] arguments)
    {
        var result = Tools.Run(Tools.Safekit, ["lab", arguments[0], "--prefix", Prefix, .. arguments[1..]]);
        Assert.True(result.Succeeded, $"safekit lab {string.Join(' ', arguments)}: {result.Output}{result.Error}");
        return result.Output;
    }

    /// <summary>A counter of every node, by node name, from status written after this call.</summary>
    public Dictionary<string, long> Counter(string name)
    {
        // safekitd writes its status every second: wait for a write that saw everything so far.
        var asked = DateTimeOffset.UtcNow;
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (DateTime.UtcNow < deadline && Directory.GetDirectories(StateDirectory).Any(d =>
        {
            var file = Path.Combine(d, "status.json");
            return File.Exists(file) && JsonDocument.Parse(File.ReadAllText(file)).RootElement.GetProperty("updated").GetDateTimeOffset() <= asked;
        }))
        {
            Thread.Sleep(100);
        }

        return Status().GetProperty("nodes").EnumerateArray().ToDictionary(
            n => n.GetProperty("name").GetString()!,
            n => n.GetProperty("counters").GetProperty(name).GetInt64());
    }

    /// <summary>
    /// The node the current view assigns a client flow to: the members of the newest non-empty view
    /// any node follows (a yielding leader publishes a newer but empty one), with the configured
    /// weights, the lab's seed and affinity.
    /// </summary>
    public Func<byte[], bool, ushort, string> OwnerFunction()
    {
        var config = ConfigLoader.Load(Path.Combine(StateDirectory, "cluster.yaml"));
        var farm = config.Farms[0];
        var members = Enumerable.Range(1, config.Nodes.Count)
            .Select(NodeStatus)
            .Where(s => s.TryGetProperty("membership", out var m) && m.ValueKind == JsonValueKind.Object && m.GetProperty("members").GetArrayLength() > 0)
            .Select(s => s.GetProperty("membership"))
            .OrderByDescending(m => m.GetProperty("epoch").GetUInt32())
            .Select(m => m.GetProperty("members").EnumerateArray().Select(x => x.GetString()!).ToHashSet())
            .First();
        var nodes = config.Nodes.Where(n => members.Contains(n.Name)).Select(n => new NodeWeight(n.Name, n.Weight)).ToList();
        var table = BucketTable.Compute(nodes, farm.Buckets, nodes[0].Name);
        var hasher = new FlowHasher(farm.Affinity, farm.HashSeed);
        return (client, hasPort, port) => nodes[table.OwnerOf(table.BucketOf(hasher.Hash(client, hasPort && farm.Affinity == Affinity.ClientIpPort, port)))].Name;
    }

    /// <summary>The node a view made of <paramref name="members"/> gives the client flow from <paramref name="port"/> (IPv4 client).</summary>
    public string OwnerIn(IReadOnlyCollection<string> members, ushort port)
    {
        var config = ConfigLoader.Load(Path.Combine(StateDirectory, "cluster.yaml"));
        var farm = config.Farms[0];
        var nodes = config.Nodes.Where(n => members.Contains(n.Name)).Select(n => new NodeWeight(n.Name, n.Weight)).ToList();
        var table = BucketTable.Compute(nodes, farm.Buckets, nodes[0].Name);
        var hash = new FlowHasher(farm.Affinity, farm.HashSeed).Hash(IPAddress.Parse("198.18.0.10").GetAddressBytes(), farm.Affinity == Affinity.ClientIpPort, port);
        return nodes[table.OwnerOf(table.BucketOf(hash))].Name;
    }

    /// <summary>
    /// Client ports from <paramref name="from"/> up whose flow <paramref name="pick"/> accepts,
    /// <paramref name="count"/> of them. Tests sharing a lab use distinct ranges: a port just used
    /// is in TIME_WAIT on the client and cannot be bound again.
    /// </summary>
    public static List<ushort> Ports(int count, ushort from, Func<ushort, bool> pick)
    {
        var ports = new List<ushort>();
        for (var port = from; ports.Count < count && port < 60000; port++)
        {
            if (pick(port))
            {
                ports.Add(port);
            }
        }

        return ports;
    }

    /// <summary>A slow 8 MiB download from the client's <paramref name="port"/>; returns "CODE SIZE".</summary>
    /// <remarks>On a thread of its own: a busy thread pool must not delay the download's start.</remarks>
    public Task<string> DownloadAsync(ushort port) => Task.Factory.StartNew(
        () => Exec("client", "curl", "-s", "-m", "40", "--local-port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "http://198.18.0.100/download").Output.Trim(),
        CancellationToken.None,
        TaskCreationOptions.LongRunning,
        TaskScheduler.Default);

    /// <summary>
    /// <paramref name="count"/> new HTTP connections from the client to <paramref name="vip"/>:
    /// asserts every one succeeded and was served by the node the lab's bucket table assigns to its
    /// flow. Returns how many each node served.
    /// </summary>
    public Dictionary<string, int> HttpFollowingTheTable(string vip, int count, int concurrency = 4)
    {
        var report = ExecJson("client", Tools.Loadgen, "http", "--host", vip, "--count", count.ToString(System.Globalization.CultureInfo.InvariantCulture), "--concurrency", concurrency.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(count, report.GetProperty("ok").GetInt32());
        return ServedFollowingTheTable(report.GetProperty("connections"), vip);
    }

    /// <summary>As <see cref="HttpFollowingTheTable"/>, for datagrams of <paramref name="size"/> bytes to the UDP service.</summary>
    public Dictionary<string, int> UdpFollowingTheTable(string vip, int count, int size)
    {
        var report = ExecJson("client", Tools.Loadgen, "udp", "--host", vip, "--port", "5300", "--count", count.ToString(System.Globalization.CultureInfo.InvariantCulture), "--size", size.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(count, report.GetProperty("ok").GetInt32());
        return ServedFollowingTheTable(report.GetProperty("datagrams"), vip);
    }

    /// <summary>ping to the VIP: every request answered, exactly once.</summary>
    public void AssertOneReplyPerPing(string vip)
    {
        var ping = Exec("client", "ping", "-c", "5", "-i", "0.2", "-W", "2", vip);
        Assert.True(ping.Succeeded, ping.Output + ping.Error);
        Assert.Contains("5 packets transmitted, 5 received", ping.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("DUP", ping.Output, StringComparison.Ordinal);
    }

    /// <summary>POSTs <paramref name="count"/> bodies of <paramref name="bytes"/> to the VIP; each must get 200.</summary>
    public void PostBodies(int count, int bytes)
    {
        var body = Path.Combine(StateDirectory, "body.bin");
        File.WriteAllBytes(body, new byte[bytes]);
        for (var i = 0; i < count; i++)
        {
            var post = Exec("client", "curl", "-s", "-m", "20", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Expect:", "--data-binary", "@" + body, "http://198.18.0.100/");
            Assert.Equal("200", post.Output);
        }
    }

    /// <summary>TCP checksum errors (InCsumErrors) counted by each node's kernel.</summary>
    public IEnumerable<long> TcpChecksumErrors() =>
        Directory.GetDirectories(StateDirectory).Select(d =>
        {
            // /proc/PID/net/snmp shows the counters of PID's network namespace; InCsumErrors is last.
            var pid = JsonDocument.Parse(File.ReadAllText(Path.Combine(d, "status.json"))).RootElement.GetProperty("pid").GetInt32();
            var values = File.ReadAllLines($"/proc/{pid}/net/snmp").Last(l => l.StartsWith("Tcp:", StringComparison.Ordinal)).Split(' ');
            return long.Parse(values[^1], System.Globalization.CultureInfo.InvariantCulture);
        });

    /// <summary>The node named in an answer ("node P-nX").</summary>
    public static string Node(JsonElement result)
    {
        var body = result.GetProperty("body").GetString();
        Assert.NotNull(body);
        Assert.StartsWith("node ", body, StringComparison.Ordinal);
        return body["node ".Length..];
    }

    /// <summary>The cluster MAC safekitd reports.</summary>
    public string ClusterMac()
    {
        var status = JsonDocument.Parse(File.ReadAllText(Path.Combine(StateDirectory, Prefix + "-n1", "status.json"))).RootElement;
        return status.GetProperty("modules")[0].GetProperty("farm").GetProperty("cluster_mac").GetString()!;
    }

    private Dictionary<string, int> ServedFollowingTheTable(JsonElement results, string vip)
    {
        var owner = OwnerFunction();
        var client = IPAddress.Parse(vip.Contains(':', StringComparison.Ordinal) ? "2001:2::10" : "198.18.0.10").GetAddressBytes();
        var served = new Dictionary<string, int>();
        foreach (var result in results.EnumerateArray())
        {
            var node = Node(result);
            Assert.Equal(owner(client, true, (ushort)result.GetProperty("port").GetInt32()), node);
            served[node] = served.GetValueOrDefault(node) + 1;
        }

        return served;
    }

    /// <summary>
    /// Opens <paramref name="count"/> connections from the client while capturing what the VIP
    /// sends back: every connection gets exactly one SYN-ACK (one node accepted it) and none is reset.
    /// </summary>
    public void AssertOneSynAckPerConnection(int count)
    {
        var file = Path.Combine(StateDirectory, "synack.pcap");
        var tcpdump = StartCapture("client", file, "tcp port 80 and src 198.18.0.100");
        var report = ExecJson("client", Tools.Loadgen, "http", "--host", "198.18.0.100", "--count", count.ToString(System.Globalization.CultureInfo.InvariantCulture), "--concurrency", "4");
        Assert.Equal(count, report.GetProperty("ok").GetInt32());
        ServedFollowingTheTable(report.GetProperty("connections"), "198.18.0.100");
        var opened = report.GetProperty("connections").EnumerateArray().Select(c => c.GetProperty("port").GetInt32()).ToList();
        // On a loaded machine tcpdump may still hold the last packets when the requests are done:
        // stop it once the file shows every connection (or after 5 s, and then judge what it has).
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (DateTime.UtcNow < deadline && ReadSynAcks(file).SynAcks.Count < count)
        {
            Thread.Sleep(100);
        }

        Thread.Sleep(300);
        var said = StopCapture(tcpdump);
        var (synAcks, resets) = ReadSynAcks(file);
        var missing = opened.Select((port, i) => (port, i)).Where(o => !synAcks.Keys.Any(k => k.Port == o.port)).Select(o => $"{o.port} (connection #{o.i})");
        Assert.True(count == synAcks.Count, $"{count} connections opened, {synAcks.Count} distinct ones answered by a SYN-ACK in the capture ({synAcks.Values.Sum()} SYN-ACKs); without one: {string.Join(", ", missing)}; tcpdump: {said}");
        Assert.All(synAcks, pair => Assert.True(pair.Value == 1, $"port {pair.Key} got {pair.Value} SYN-ACKs"));
        Assert.Equal(0, resets);
    }

    /// <summary>
    /// SYN-ACKs per connection and resets in a capture (read while tcpdump may still write it).
    /// A connection is its client port and initial sequence number, which its SYN-ACK acknowledges.
    /// </summary>
    private static (Dictionary<(ushort Port, uint Isn), int> SynAcks, int Resets) ReadSynAcks(string file)
    {
        var synAcks = new Dictionary<(ushort Port, uint Isn), int>();
        var resets = 0;
        try
        {
            using var reader = new CaptureFileReaderDevice(file);
            reader.Open();
            while (reader.GetNextPacket(out var capture) == GetPacketStatus.PacketRead)
            {
                var raw = capture.GetPacket();
                var tcp = Packet.ParsePacket(raw.LinkLayerType, raw.Data).Extract<TcpPacket>();
                if (tcp.Synchronize && tcp.Acknowledgment)
                {
                    var connection = (tcp.DestinationPort, tcp.AcknowledgmentNumber);
                    synAcks[connection] = synAcks.GetValueOrDefault(connection) + 1;
                }

                if (tcp.Reset)
                {
                    resets++;
                }
            }
        }
        catch (Exception e) when (e is PcapException or IOException)
        {
            // A packet half written at the end of the file: what was read so far counts.
        }

        return (synAcks, resets);
    }

    /// <summary>Starts tcpdump in a lab namespace writing to <paramref name="file"/>; stop it with <see cref="StopCapture"/>.</summary>
    public Process StartCapture(string name, string file, string filter)
    {
        var start = new ProcessStartInfo(Tools.Safekit) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var argument in new[] { "lab", "exec", "--prefix", Prefix, name, "--", "tcpdump", "--immediate-mode", "-B", "16384", "-Z", "root", "-i", "eth0", "-U", "-n", "-w", file, filter })
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start)!;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        // tcpdump says "listening on ..." once its socket is open.
        var line = process.StandardError.ReadLine();
        Assert.True(line is not null && line.Contains("listening", StringComparison.Ordinal) && DateTime.UtcNow < deadline, $"tcpdump did not start: {line}");
        return process;
    }

    /// <returns>What tcpdump said on leaving (its packet and kernel-drop counts).</returns>
    public static string StopCapture(Process tcpdump)
    {
        // safekit lab exec runs ip netns exec tcpdump as its child: signal that child by PID.
        // (--immediate-mode: without it libpcap holds packets in ring blocks that a stopped
        // tcpdump never writes out.)
        foreach (var child in Children(tcpdump.Id))
        {
            if (ProcessControl.StartTime(child) is { } start)
            {
                ProcessControl.Stop(child, start, TimeSpan.FromSeconds(3));
            }
        }

        var said = tcpdump.WaitForExit(5000) ? tcpdump.StandardError.ReadToEnd().Trim() : "(tcpdump did not exit)";
        tcpdump.Dispose();
        return said.ReplaceLineEndings("; ");
    }

    public void Dispose()
    {
        if (_unavailable is null)
        {
            Tools.Run(Tools.Safekit, "lab", "down", "--prefix", Prefix);
        }

        GC.SuppressFinalize(this);
    }

    private static List<int> Children(int pid)
    {
        var path = $"/proc/{pid}/task/{pid}/children";
        return File.Exists(path)
            ? File.ReadAllText(path).Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToList()
            : [];
    }
}

/// <summary>3 nodes, unicast cluster MAC, client-ip-port affinity, ring capture (the default lab).</summary>
/// <summary>A lab whose nodes' HTTP APIs the API tests call.</summary>
public sealed class ApiLab : LabInstance
{
    public ApiLab()
        : base("--no-ipv6")
    {
    }
}

public sealed class ManagementLab : LabInstance
{
    public ManagementLab()
        : base("--no-ipv6")
    {
    }
}

public sealed class ConsoleLab : LabInstance
{
    public ConsoleLab()
        : base("--no-ipv6")
    {
    }
}

public sealed class DefaultLab : LabInstance
{
    public DefaultLab()
        : base()
    {
    }
}

/// <summary>Session affinity: the client's IP alone chooses the node.</summary>
public sealed class ClientIpAffinityLab : LabInstance
{
    public ClientIpAffinityLab()
        : base("--affinity", "client-ip")
    {
    }
}

/// <summary>Multicast cluster MAC.</summary>
public sealed class MulticastLab : LabInstance
{
    public MulticastLab()
        : base("--l2", "multicast")
    {
    }
}

/// <summary>The libpcap capture backend.</summary>
public sealed class PcapLab : LabInstance
{
    public PcapLab()
        : base("--capture", "pcap")
    {
    }
}

/// <summary>The in-kernel nftables fast path.</summary>
public sealed class KernelLab : LabInstance
{
    public KernelLab()
        : base("--dataplane", "kernel")
    {
    }
}

/// <summary>Two capture threads per node sharing the interface with PACKET_FANOUT.</summary>
public sealed class FanoutLab : LabInstance
{
    public FanoutLab()
        : base("--workers", "2")
    {
    }
}

/// <summary>Two nodes whose inbound firewall the test installs (and removes).</summary>
public sealed class FirewallLab : LabInstance
{
    public FirewallLab()
        : base("--nodes", "2")
    {
    }
}

/// <summary>A lab for failures: tests kill, cut and partition its nodes and restore it afterwards.</summary>
public sealed class FailureLab : LabInstance
{
    public FailureLab()
        : base("--no-ipv6")
    {
    }
}

/// <summary>A mirror lab (m1 PRIM, m2 SECOND): tests that crash nodes build their own, as a crashed pair needs a resync.</summary>
public sealed class MirrorLab : LabInstance
{
    /// <param name="options">More <c>safekit lab up</c> options (e.g. --data-mib N).</param>
    public MirrorLab(params string[] options)
        : base(["--mirror", "--no-ipv6", .. options])
    {
    }

    public string M(int index) => $"{Prefix}-m{index}";

    /// <summary>The mirror module of node <paramref name="index"/> as its status.json says.</summary>
    public JsonElement Module(int index) =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(StateDirectory, M(index), "status.json"))).RootElement.GetProperty("modules")[0];

    public string State(int index) => Module(index).GetProperty("state").GetString()!;

    public string Reason(int index) => Module(index).GetProperty("mirror").GetProperty("reason").GetString()!;

    /// <summary>Waits until node <paramref name="index"/>'s module is in <paramref name="state"/>.</summary>
    public void WaitForState(int index, string state, double seconds = 20) =>
        WaitUntil(() => State(index) == state, $"{M(index)} is {state} (it is {TryState(index)})", seconds);

    private string TryState(int index)
    {
        try
        {
            return $"{State(index)}: {Reason(index)}";
        }
        catch (Exception e) when (e is IOException or JsonException or KeyNotFoundException or InvalidOperationException or IndexOutOfRangeException)
        {
            return "unknown";
        }
    }

    /// <summary>Runs SQL on the lab's PostgreSQL through the VIP, from the client, as role <c>lab</c>: unaligned tuples only.</summary>
    public CommandResult Sql(string sql) =>
        Exec("client", "env", "PGPASSWORD=lab", "PGCONNECT_TIMEOUT=3", "psql", "-h", "198.18.0.200", "-U", "lab", "-d", "lab", "-v", "ON_ERROR_STOP=1", "-tAq", "-c", sql);

    /// <summary>GET on the VIP from the client: status code, the node that served it, the body.</summary>
    public (string Code, string? ServedBy, string Body) Get(string path)
    {
        var result = Exec("client", "curl", "-s", "-m", "5", "-D", "-", $"http://198.18.0.200{path}");
        var text = result.Output.Replace("\r", string.Empty, StringComparison.Ordinal);
        var split = text.IndexOf("\n\n", StringComparison.Ordinal);
        if (split < 0)
        {
            return ("000", null, text);
        }

        var headers = text[..split].Split('\n');
        var code = headers[0].Split(' ') is [_, var c, ..] ? c : "000";
        var servedBy = headers.FirstOrDefault(h => h.StartsWith("X-Served-By: ", StringComparison.OrdinalIgnoreCase))?["X-Served-By: ".Length..];
        return (code, servedBy, text[(split + 2)..]);
    }
}
