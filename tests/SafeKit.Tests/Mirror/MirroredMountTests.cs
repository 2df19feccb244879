using System.Collections.Concurrent;
using SafeKit.Native.Fuse;
using SafeKit.Native.Host;
using SafeKit.Tests.Infrastructure;

namespace SafeKit.Tests.Mirror;

/// <summary>
/// Every change made through the mount is replayed, in order, on a second copy by
/// <see cref="MirrorApplier"/> (SECOND's side): after the workload of every operation both copies
/// are identical (contents, modes, owners, links, xattrs, ACLs, explicit times). Once with changes
/// applied inline, once through a queue applied on another thread with acknowledgements arriving
/// later, as over the network.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class MirroredMountTests
{
    private static readonly string Workload = Path.Combine(AppContext.BaseDirectory, "Mirror", "fs_workload.py");

    /// <summary>Applies each change at once (the file system calls it in order).</summary>
    private sealed class InlineSink : IReplicationSink
    {
        private readonly MirrorApplier _applier;

        public InlineSink(MirrorApplier applier)
        {
            _applier = applier;
        }

        public ConcurrentQueue<string> Errors { get; } = new();

        public ConcurrentDictionary<MutationKind, int> Kinds { get; } = new();

        public ReplicationTicket Enqueue(MutationKind kind, ReadOnlySpan<byte> record, ReadOnlySpan<byte> data, bool durable, bool changes)
        {
            Kinds.AddOrUpdate(kind, 1, (_, n) => n + 1);
            var errno = _applier.Apply(kind, [.. record, .. data], durable);
            if (errno != 0)
            {
                Errors.Enqueue($"{kind}: errno {errno}");
            }

            return new ReplicationTicket(ValueTask.CompletedTask, changes || durable);
        }

        public void Diverged(string reason) => Errors.Enqueue("diverged: " + reason);
    }

    /// <summary>Queues changes; a separate thread applies them after a delay and completes their tickets.</summary>
    private sealed class QueuedSink : IReplicationSink, IDisposable
    {
        private readonly BlockingCollection<(MutationKind Kind, byte[] Payload, bool Durable, TaskCompletionSource Done)> _queue = new();
        private readonly Thread _thread;
        private readonly MirrorApplier _applier;

        public QueuedSink(MirrorApplier applier)
        {
            _applier = applier;
            _thread = new Thread(Run) { IsBackground = true };
            _thread.Start();
        }

        public ConcurrentQueue<string> Errors { get; } = new();

        public long Waited;

        public ReplicationTicket Enqueue(MutationKind kind, ReadOnlySpan<byte> record, ReadOnlySpan<byte> data, bool durable, bool changes)
        {
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _queue.Add((kind, [.. record, .. data], durable, done));
            if (changes || durable)
            {
                Interlocked.Increment(ref Waited);
            }

            return new ReplicationTicket(new ValueTask(done.Task), changes || durable);
        }

        public void Diverged(string reason) => Errors.Enqueue("diverged: " + reason);

        private void Run()
        {
            foreach (var (kind, payload, durable, done) in _queue.GetConsumingEnumerable())
            {
                if (kind is MutationKind.Write or MutationKind.Create)
                {
                    Thread.Sleep(1); // the network's round trip
                }

                var errno = _applier.Apply(kind, payload, durable);
                if (errno != 0)
                {
                    Errors.Enqueue($"{kind}: errno {errno}");
                }

                done.SetResult();
            }
        }

        public void Dispose()
        {
            _queue.CompleteAdding();
            _thread.Join();
            _queue.Dispose();
        }
    }

    private static string Python(params string[] arguments)
    {
        var result = CommandRunner.Run("/usr/bin/python3", arguments, timeout: TimeSpan.FromMinutes(3));
        Assert.True(result.Succeeded, $"python3 {string.Join(' ', arguments)}: {result.Output}{result.Error}");
        return result.Output;
    }

    private static (string Prim, string Second) Run(Func<MirrorApplier, IReplicationSink> sinkFor, Action<MirrorApplier, IReplicationSink>? after = null)
    {
        var root = Directory.CreateTempSubdirectory("sk-mirror-");
        try
        {
            File.SetUnixFileMode(root.FullName, (UnixFileMode)0x1ED);
            var data = Directory.CreateDirectory(Path.Combine(root.FullName, "data")).FullName;
            var second = Directory.CreateDirectory(Path.Combine(root.FullName, "second")).FullName;
            var mountpoint = Directory.CreateDirectory(Path.Combine(root.FullName, "mnt")).FullName;
            using var applier = MirrorApplier.Open(second);
            var sink = sinkFor(applier);
            using (var fs = PassthroughFileSystem.Open(data, sink))
            using (FuseMount.Mount(fs, mountpoint, "safekit-mirror-test"))
            {
                Python(Workload, mountpoint);
                // Concurrent writers on several files, also through the mount.
                Parallel.For(0, 4, w =>
                {
                    using var file = new FileStream(Path.Combine(mountpoint, $"stream-{w}"), FileMode.Create);
                    for (var i = 0; i < 200; i++)
                    {
                        file.Write(new byte[4096 + w]);
                        file.Flush();
                    }
                });
            }

            after?.Invoke(applier, sink);
            (sink as IDisposable)?.Dispose();
            return (Python(Workload, data, "dump"), Python(Workload, second, "dump"));
        }
        finally
        {
            root.Delete(recursive: true);
        }
    }

    [Fact]
    public void EveryChange_AppliedInOrder_LeavesSecondIdenticalToPrim()
    {
        Tools.RequireFuse();
        InlineSink? sink = null;
        var (prim, second) = Run(applier => sink = new InlineSink(applier), (applier, _) =>
        {
            // Every handle PRIM opened was released on SECOND too.
            Assert.Equal(0, applier.Handles);
        });

        Assert.Empty(sink!.Errors);
        Assert.Equal(prim, second);
        Assert.Contains("acl=user::rw-;user:4321:rw-", second, StringComparison.Ordinal);
        Assert.Contains("mtime=1700000000987654321", second, StringComparison.Ordinal);
        foreach (var kind in new[] { MutationKind.Create, MutationKind.Write, MutationKind.Rename, MutationKind.Link, MutationKind.Symlink, MutationKind.Mkdir, MutationKind.Mknod, MutationKind.Setattr, MutationKind.Setxattr, MutationKind.Removexattr, MutationKind.Fallocate, MutationKind.CopyFileRange, MutationKind.Fsync, MutationKind.Fsyncdir, MutationKind.Unlink, MutationKind.Open, MutationKind.Release })
        {
            Assert.True(sink.Kinds.ContainsKey(kind), $"no {kind} was replicated");
        }
    }

    [Fact]
    public void AcknowledgementsArrivingLater_StillGiveAnIdenticalSecond()
    {
        Tools.RequireFuse();
        QueuedSink? sink = null;
        var (prim, second) = Run(applier => sink = new QueuedSink(applier));
        Assert.Empty(sink!.Errors);
        Assert.Equal(prim, second);
        Assert.True(sink.Waited > 1000, $"{sink.Waited} changes waited for their acknowledgement");
    }

    [Fact]
    public void SecondsCopy_IsReadableAtItsOwnMount_ShowsChangesAtOnce_AndRefusesWrites()
    {
        Tools.RequireFuse();
        var root = Directory.CreateTempSubdirectory("sk-view-");
        try
        {
            File.SetUnixFileMode(root.FullName, (UnixFileMode)0x1ED);
            var data = Directory.CreateDirectory(Path.Combine(root.FullName, "data")).FullName;
            var second = Directory.CreateDirectory(Path.Combine(root.FullName, "second")).FullName;
            var prim = Directory.CreateDirectory(Path.Combine(root.FullName, "prim-mnt")).FullName;
            var view = Directory.CreateDirectory(Path.Combine(root.FullName, "second-mnt")).FullName;
            using var applier = MirrorApplier.Open(second);
            var sink = new InlineSink(applier);
            using var primFs = PassthroughFileSystem.Open(data, sink);
            using var viewFs = PassthroughFileSystem.Open(second, readOnly: true);
            using var primMount = FuseMount.Mount(primFs, prim, "safekit-prim");
            using var viewMount = FuseMount.Mount(viewFs, view, "safekit-second");

            File.WriteAllText(Path.Combine(prim, "page.html"), "version 1");
            Assert.Equal("version 1", File.ReadAllText(Path.Combine(view, "page.html")));
            File.WriteAllText(Path.Combine(prim, "page.html"), "version 2, longer");
            Assert.Equal("version 2, longer", File.ReadAllText(Path.Combine(view, "page.html")));
            File.Move(Path.Combine(prim, "page.html"), Path.Combine(prim, "index.html"));
            Assert.False(File.Exists(Path.Combine(view, "page.html")));
            Assert.True(File.Exists(Path.Combine(view, "index.html")));

            var refused = CommandRunner.Run("/usr/bin/python3", ["-c", $$"""
                import errno, os
                for attempt in (lambda: open("{{view}}/new", "w"), lambda: open("{{view}}/index.html", "a"), lambda: os.mkdir("{{view}}/d"), lambda: os.unlink("{{view}}/index.html")):
                    try:
                        attempt()
                        print("allowed")
                    except OSError as e:
                        print(errno.errorcode[e.errno])
                """]);
            Assert.Equal("EROFS EROFS EROFS EROFS", string.Join(' ', refused.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
            Assert.Empty(sink.Errors);
        }
        finally
        {
            root.Delete(recursive: true);
        }
    }
}
