using System.Diagnostics;
using System.Globalization;
using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using SafeKit.Native.Fuse;
using SafeKit.Replication.Channel;
using SafeKit.Replication.Mirror;

namespace SafeKit.Perf;

/// <summary>
/// One configuration fio writes into during <see cref="MirrorBenchmark"/>: a directory that stays
/// ready (mounted, SECOND connected) for the whole run, so the configurations can take turns.
/// </summary>
internal sealed class MirrorBenchTarget : IDisposable
{
    private readonly List<Action> _teardown = [];
    private Func<string?>? _failure;
    private Func<string>? _summary;

    private MirrorBenchTarget(string name, int writers)
    {
        Name = name;
        Writers = writers;
    }

    public string Name { get; }

    /// <summary>Where fio writes.</summary>
    public string Directory { get; private set; } = string.Empty;

    /// <summary>fio jobs writing at once (each its own file); the figures are per writer.</summary>
    public int Writers { get; }

    /// <summary>A plain directory; <paramref name="writers"/> 2 is this disk writing every byte twice with nothing in between.</summary>
    public static MirrorBenchTarget Plain(string root, string name, int writers = 1) =>
        new(name, writers) { Directory = System.IO.Directory.CreateDirectory(Path.Combine(root, name)).FullName };

    /// <summary>libfuse's passthrough_ll (compiled by the benchmark) over a directory of its own.</summary>
    public static MirrorBenchTarget PassthroughLl(string root, string binary)
    {
        var target = new MirrorBenchTarget("passthrough_ll", 1);
        var data = System.IO.Directory.CreateDirectory(Path.Combine(root, "pll-data")).FullName;
        var mountpoint = System.IO.Directory.CreateDirectory(Path.Combine(root, "pll-mnt")).FullName;
        var process = Process.Start(binary, ["-f", "-o", $"source={data}", mountpoint])!;
        target._teardown.Add(() =>
        {
            FuseMount.DetachStale(mountpoint);
            process.WaitForExit(5000);
            process.Dispose();
        });
        try
        {
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (!File.ReadAllLines("/proc/self/mountinfo").Any(l => l.Split(' ')[4] == mountpoint))
            {
                if (DateTime.UtcNow > deadline || process.HasExited)
                {
                    throw new InvalidOperationException("passthrough_ll did not mount");
                }

                Thread.Sleep(50);
            }
        }
        catch
        {
            target.Dispose();
            throw;
        }

        target.Directory = mountpoint;
        return target;
    }

    /// <summary>
    /// Our mount: alone (<paramref name="mode"/> null) or replicating to a SECOND in this process
    /// over loopback TCP, its copy under <paramref name="secondRoot"/> (default: beside PRIM's).
    /// </summary>
    public static MirrorBenchTarget Mount(string root, string name, MirrorMode? mode, string? secondRoot = null)
    {
        var target = new MirrorBenchTarget(name, 1);
        try
        {
            target.MountOn(root, mode, secondRoot);
        }
        catch
        {
            target.Dispose();
            throw;
        }

        return target;
    }

    private void MountOn(string root, MirrorMode? mode, string? secondRoot)
    {
        var data = System.IO.Directory.CreateDirectory(Path.Combine(root, Name + "-data")).FullName;
        var mountpoint = System.IO.Directory.CreateDirectory(Path.Combine(root, Name + "-mnt")).FullName;
        ReplicationLink? link = null;
        if (mode is not null)
        {
            var second = System.IO.Directory.CreateDirectory(Path.Combine(secondRoot ?? root, Name + "-second")).FullName;
            var key = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
            ReplicationChannelOptions Options(string local, string peer) => new() { ClusterName = "bench", LocalNode = local, PeerNode = peer, Key = key };
            var applier = new SecondApplier(MirrorApplier.Open(second), NullLogger.Instance);
            _teardown.Add(applier.Dispose);
            var listener = ReplicationListener.Listen(new IPEndPoint(IPAddress.Loopback, 0), Options("second", "prim"));
            _teardown.Add(listener.Dispose);
            var accepted = listener.AcceptAsync(applier);
            var sender = ReplicationSender.ConnectAsync(listener.LocalEndPoint, Options("prim", "second")).GetAwaiter().GetResult();
            _teardown.Add(() => sender.DisposeAsync().AsTask().GetAwaiter().GetResult());
            var receiver = accepted.GetAwaiter().GetResult();
            _teardown.Insert(_teardown.Count - 1, () => receiver.DisposeAsync().AsTask().GetAwaiter().GetResult()); // Closed after the sender.
            link = new ReplicationLink(sender, mode.Value, NullLogger.Instance);
            var replicating = link;
            _failure = () => replicating.State != LinkState.Mirroring || applier.Failure is not null ? replicating.AloneReason ?? applier.Failure : null;
            _summary = () => string.Create(CultureInfo.InvariantCulture, $"{applier.Applied} changes applied on SECOND");
        }

        var fileSystem = PassthroughFileSystem.Open(data, link);
        _teardown.Add(fileSystem.Dispose);
        var mounted = FuseMount.Mount(fileSystem, mountpoint, "safekit-bench");
        _teardown.Add(mounted.Dispose);
        Directory = mountpoint;
    }

    /// <exception cref="InvalidOperationException">Replication stopped (PRIM went alone): the figures would not be a mirror's.</exception>
    public void EnsureStillMirroring()
    {
        if (_failure?.Invoke() is { } failure)
        {
            throw new InvalidOperationException($"{Name}: replication failed during the benchmark: {failure}");
        }
    }

    /// <summary>What SECOND did, for the log (null without one).</summary>
    public string? Summary => _summary?.Invoke();

    public void Dispose()
    {
        // The last set up goes first: the mount before its file system, the sender before the listener.
        for (var i = _teardown.Count - 1; i >= 0; i--)
        {
            _teardown[i]();
        }

        _teardown.Clear();
    }
}
