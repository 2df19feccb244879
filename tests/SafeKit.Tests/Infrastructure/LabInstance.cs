using System.Diagnostics;
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

    /// <summary>The node the lab's own configuration assigns a client flow to.</summary>
    public Func<byte[], bool, ushort, string> OwnerFunction()
    {
        var config = ConfigLoader.Load(Path.Combine(StateDirectory, "cluster.yaml"));
        var farm = config.Farms[0];
        var nodes = config.Nodes.Select(n => new NodeWeight(n.Name, n.Weight)).ToList();
        var table = BucketTable.Compute(nodes, farm.Buckets, nodes[0].Name);
        var hasher = new FlowHasher(farm.Affinity, farm.HashSeed);
        return (client, hasPort, port) => nodes[table.OwnerOf(table.BucketOf(hasher.Hash(client, hasPort && farm.Affinity == Affinity.ClientIpPort, port)))].Name;
    }

    /// <summary>Starts tcpdump in a lab namespace writing to <paramref name="file"/>; stop it with <see cref="StopCapture"/>.</summary>
    public Process StartCapture(string name, string file, string filter)
    {
        var start = new ProcessStartInfo(Tools.Safekit) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var argument in new[] { "lab", "exec", "--prefix", Prefix, name, "--", "tcpdump", "--immediate-mode", "-Z", "root", "-i", "eth0", "-U", "-n", "-w", file, filter })
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

    public static void StopCapture(Process tcpdump)
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

        tcpdump.WaitForExit(5000);
        tcpdump.Dispose();
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
