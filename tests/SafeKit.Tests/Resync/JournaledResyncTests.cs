using Microsoft.Extensions.Logging.Abstractions;
using SafeKit.Native.Fuse;
using SafeKit.Native.Host;
using SafeKit.Replication.Mirror;
using SafeKit.Replication.Resync;
using SafeKit.Tests.Infrastructure;
using SafeKit.Tests.Replication;

namespace SafeKit.Tests.Resync;

/// <summary>
/// Failback after the survivor itself crashed while alone: every change made through its mount
/// was journaled first, so after the restart the resync looks only at the journaled paths — its
/// own and those the target says it changed as PRIM before its crash — never walking the tree,
/// and the copies end equal.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class JournaledResyncTests
{
    /// <summary>Every kind of change, made through the mount as an application would.</summary>
    private const string Changes = """
        set -e
        dd if=/dev/urandom of=inplace/big.bin bs=4096 count=3 seek=40 conv=notrunc status=none
        echo appended >> inplace/log.txt
        truncate -s 1000 work/shrink.bin
        mv work/over-from.txt work/over-to.txt
        mv work/dir1 work/dir2
        rm work/gone.txt
        rm -r work/tree
        ln work/linked.txt work/linked-too.txt
        mkdir -p new/x/y && echo fresh > new/x/y/z.txt
        chmod 600 modes/mode.txt
        ln -s ../inplace/log.txt new/log-link
        echo rewritten > work/dir2/inner.txt
        """;

    [Fact]
    public async Task SurvivorCrashedAlone_TheResyncLooksOnlyAtJournaledPaths_AndTheCopiesEndEqual()
    {
        Tools.RequireFuse();
        var ct = TestContext.Current.CancellationToken;
        var root = Directory.CreateTempSubdirectory("sk-journaled-resync-");
        File.SetUnixFileMode(root.FullName, (UnixFileMode)0x1ED);
        var data = Directory.CreateDirectory(Path.Join(root.FullName, "data")).FullName;
        var second = Directory.CreateDirectory(Path.Join(root.FullName, "second")).FullName;
        var mountpoint = Directory.CreateDirectory(Path.Join(root.FullName, "mnt")).FullName;
        var journalDirectory = Path.Join(root.FullName, "journal");
        var targetJournalDirectory = Path.Join(root.FullName, "target-journal");
        var generation = Guid.NewGuid();
        ChangeJournal? crashed = null;
        try
        {
            // The shared past: a bulk of directories nobody touches, and the files the changes hit.
            for (var d = 0; d < 40; d++)
            {
                var directory = Directory.CreateDirectory(Path.Join(data, "bulk", $"d{d}")).FullName;
                for (var f = 0; f < 5; f++)
                {
                    File.WriteAllBytes(Path.Join(directory, $"f{f}"), Enumerable.Range(0, 5000 + f).Select(b => (byte)(b ^ d)).ToArray());
                }
            }

            var work = Directory.CreateDirectory(Path.Join(data, "work")).FullName;
            // Written only in place (data, size): nothing else in this directory changes, so only the journal knows.
            var inplace = Directory.CreateDirectory(Path.Join(data, "inplace")).FullName;
            File.WriteAllBytes(Path.Join(inplace, "big.bin"), Enumerable.Range(0, 1 << 20).Select(b => (byte)(b * 7)).ToArray());
            File.WriteAllText(Path.Join(inplace, "log.txt"), "log\n");
            Directory.CreateDirectory(Path.Join(data, "modes"));
            File.WriteAllText(Path.Join(data, "modes", "mode.txt"), "mode\n");
            foreach (var name in new[] { "over-from.txt", "over-to.txt", "gone.txt", "linked.txt" })
            {
                File.WriteAllText(Path.Join(work, name), $"{name} as both copies had it\n");
            }

            File.WriteAllBytes(Path.Join(work, "shrink.bin"), new byte[300_000]);
            Directory.CreateDirectory(Path.Join(data, "peer"));
            File.WriteAllText(Path.Join(data, "peer", "peer.txt"), "as both copies had it\n");
            Directory.CreateDirectory(Path.Join(work, "dir1"));
            File.WriteAllText(Path.Join(work, "dir1", "inner.txt"), "inner\n");
            Directory.CreateDirectory(Path.Join(work, "tree", "deep"));
            File.WriteAllText(Path.Join(work, "tree", "deep", "leaf.txt"), "leaf\n");
            CommandRunner.RunChecked("cp", ["-a", data + "/.", second]);

            // Serving alone with the journal: the changes go through the mount. Then the process
            // "crashes": the mount goes away and the journal is never closed.
            var link = new ReplicationLink(null, MirrorMode.Sync, NullLogger.Instance);
            crashed = ChangeJournal.Open(journalDirectory, generation, completeIfNew: true);
            using (var fs = PassthroughFileSystem.Open(data, link))
            {
                fs.UseJournal(crashed);
                using var mount = FuseMount.Mount(fs, mountpoint, "safekit-journal-test");
                var changed = CommandRunner.Run("sh", ["-c", $"cd '{mountpoint}' && {Changes}"]);
                Assert.True(changed.ExitCode == 0, changed.Error);
            }

            // The target crashed as PRIM with a change in flight that the survivor never got: its own journal lists it.
            File.WriteAllText(Path.Join(second, "peer", "peer.txt"), "written on the target only, never acknowledged\n");
            using (var targetJournal = ChangeJournal.Open(targetJournalDirectory, generation, completeIfNew: true))
            {
                targetJournal.WaitDurable(targetJournal.Note("peer/peer.txt", ChangeScope.Entry));
            }

            // The survivor restarts: its journal is kept (same history), the mount comes back, the resync runs.
            using var journal = ChangeJournal.Open(journalDirectory, generation, completeIfNew: false);
            Assert.True(journal.Complete);
            using var restarted = PassthroughFileSystem.Open(data, link);
            restarted.UseJournal(journal);
            using var remount = FuseMount.Mount(restarted, mountpoint, "safekit-journal-test");

            var resync = await JournaledFailback.RunAsync(restarted, second, generation, targetJournalDirectory, ct);

            Assert.True(resync.FromJournal, resync.FirstPassScope);
            Assert.Equal(TreeSnapshot.Of(data), TreeSnapshot.Of(second));

            // No walk: of the 40 untouched directories none was listed, and their files were not compared.
            Assert.True(resync.Statistics.Directories < 25, $"{resync.Statistics.Directories} directories listed ({resync.FirstPassScope})");
            Assert.True(resync.Statistics.FilesCompared < 20, $"{resync.Statistics.FilesCompared} files compared");
            Assert.True(resync.Statistics.BytesSent < 300_000, $"{resync.Statistics.BytesSent} bytes sent for ~15 KB changed");

            // The target's hashes are asked for big.bin (16 blocks), shrink.bin (5 blocks there) and
            // mode.txt (same size and time: only its blocks can tell) — not for the one-block files
            // rewritten here or there (log.txt, over-to.txt, peer.txt), whose one block is sent.
            Assert.Equal(3, resync.Statistics.HashRequests);
        }
        finally
        {
            crashed?.Dispose();
            FuseMount.DetachStale(mountpoint);
            root.Delete(recursive: true);
        }
    }

    /// <summary>
    /// Acknowledges each change at once, recording what it was asked to send — and, given a
    /// journal, whether that journal held nothing not yet on disk as each write was sent (just
    /// before it is made here).
    /// </summary>
    private sealed class RecordingSink(ChangeJournal? journal = null) : IReplicationSink
    {
        public List<(MutationKind Kind, bool Durable)> Sent { get; } = [];

        /// <summary>Each change sent (just before or after PRIM made it, under the same lock): whether every journal record was on disk.</summary>
        public List<(MutationKind Kind, bool RecordsDurable)> Changes { get; } = [];

        public IEnumerable<bool> RecordsDurableAtWrite => Changes.Where(c => c.Kind == MutationKind.Write).Select(c => c.RecordsDurable);

        public ReplicationTicket Enqueue(MutationKind kind, ReadOnlySpan<byte> record, ReadOnlySpan<byte> data, bool durable, bool changes)
        {
            lock (Sent)
            {
                Sent.Add((kind, durable));
                if (journal is not null && changes)
                {
                    Changes.Add((kind, journal.AllDurable));
                }
            }

            return new ReplicationTicket(ValueTask.CompletedTask, changes || durable);
        }

        public void Diverged(string reason)
        {
        }
    }

    /// <summary>A mount of <c>data</c> with a journal on disk (in <c>root</c>) and changed ranges tracked, every change recorded by a <see cref="RecordingSink"/>.</summary>
    private sealed class JournaledMount : IDisposable
    {
        private FuseMount? _mount;

        private JournaledMount(ChangeJournal journal, RecordingSink sink, PassthroughFileSystem fileSystem)
        {
            (Journal, Sink, FileSystem) = (journal, sink, fileSystem);
        }

        public ChangeJournal Journal { get; }

        public RecordingSink Sink { get; }

        public PassthroughFileSystem FileSystem { get; }

        public static JournaledMount Start(DirectoryInfo root, string data, string mountpoint)
        {
            var journal = ChangeJournal.Open(Path.Join(root.FullName, "journal"), Guid.NewGuid(), completeIfNew: true);
            var sink = new RecordingSink(journal);
            var mounted = new JournaledMount(journal, sink, PassthroughFileSystem.Open(data, sink));
            try
            {
                mounted.FileSystem.UseJournal(journal);
                mounted.FileSystem.TrackChangedRanges();
                mounted._mount = FuseMount.Mount(mounted.FileSystem, mountpoint, "safekit-journal-test");
                return mounted;
            }
            catch
            {
                mounted.Dispose();
                throw;
            }
        }

        public void Dispose()
        {
            _mount?.Dispose();
            FileSystem.Dispose();
            Journal.Dispose();
        }
    }

    /// <summary>A directory (world-readable, for the mount's users) with the real files' directory and a mountpoint in it.</summary>
    private static (DirectoryInfo Root, string Data, string Mountpoint) MountScratch(string prefix)
    {
        Tools.RequireFuse();
        var root = Directory.CreateTempSubdirectory(prefix);
        File.SetUnixFileMode(root.FullName, (UnixFileMode)0x1ED);
        return (root, Directory.CreateDirectory(Path.Join(root.FullName, "data")).FullName, Directory.CreateDirectory(Path.Join(root.FullName, "mnt")).FullName);
    }

    [Fact]
    public async Task WhileMirroring_ARotationSendsADurableCheckpoint_AndTheEpochsBeforeItCanBeDropped()
    {
        var (root, data, mountpoint) = MountScratch("sk-journal-rotation-");
        try
        {
            File.WriteAllText(Path.Join(data, "before.txt"), "");
            File.WriteAllText(Path.Join(data, "after.txt"), "");
            var sink = new RecordingSink();
            using var journal = ChangeJournal.Open(Path.Join(root.FullName, "journal"), Guid.NewGuid(), completeIfNew: true);
            using var fs = PassthroughFileSystem.Open(data, sink);
            fs.UseJournal(journal);
            using var mount = FuseMount.Mount(fs, mountpoint, "safekit-journal-test");
            await File.WriteAllTextAsync(Path.Join(mountpoint, "before.txt"), "before", TestContext.Current.CancellationToken);

            var (epoch, acknowledged) = fs.RotateJournal();
            await acknowledged;
            // (Not necessarily the last one sent: the kernel may forward the file's release later.)
            lock (sink.Sent)
            {
                Assert.Contains((MutationKind.Checkpoint, true), sink.Sent);
            }

            await File.WriteAllTextAsync(Path.Join(mountpoint, "after.txt"), "after", TestContext.Current.CancellationToken);
            Assert.Equal(["after.txt", "before.txt"], journal.Snapshot().Paths.Keys.Order(StringComparer.Ordinal));

            // SECOND holds everything before the checkpoint durably: only what came after is kept.
            journal.DropThrough(epoch);
            Assert.Equal(["after.txt"], journal.Snapshot().Paths.Keys);
            Assert.Equal(["after.txt"], ChangeJournal.Read(Path.Join(root.FullName, "journal"))!.Paths().Paths.Keys);

            // SECOND's side of a checkpoint: its whole copy made durable (syncfs), acknowledged with 0.
            using var applier = MirrorApplier.Open(Directory.CreateDirectory(Path.Join(root.FullName, "second")).FullName);
            Assert.Equal(0, applier.Apply(MutationKind.Checkpoint, [], durable: true));
        }
        finally
        {
            FuseMount.DetachStale(mountpoint);
            root.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task AWrite_IsMadeOnlyOnceItsRecordsAreDurable_SoAPowerCutCannotLeaveItOnDiskUnrecorded()
    {
        var (root, data, mountpoint) = MountScratch("sk-journal-order-");
        try
        {
            await File.WriteAllBytesAsync(Path.Join(data, "inplace.bin"), new byte[256 * 1024], TestContext.Current.CancellationToken);
            using var mounted = JournaledMount.Start(root, data, mountpoint); // Ranges tracked: each write far from the others needs a range record of its own.
            var (journal, sink) = (mounted.Journal, mounted.Sink);

            // In place, at places no record covers yet: the path's record first, then a range each.
            using (var file = File.OpenHandle(Path.Join(mountpoint, "inplace.bin"), FileMode.Open, FileAccess.Write))
            {
                foreach (var offset in new long[] { 0, 100_000, 200_000 })
                {
                    RandomAccess.Write(file, new byte[] { 1, 2, 3 }, offset);
                }
            }

            Assert.Equal(["inplace.bin"], journal.Snapshot().Paths.Keys);
            lock (sink.Sent)
            {
                Assert.Equal(3, sink.RecordsDurableAtWrite.Count());
                Assert.All(sink.RecordsDurableAtWrite, Assert.True);
            }
        }
        finally
        {
            FuseMount.DetachStale(mountpoint);
            root.Delete(recursive: true);
        }
    }

    /// <summary>One of each change but writes, each on paths no record holds yet (run from the mount's root).</summary>
    private const string EveryOtherChange = """
        import os
        os.truncate("truncated.bin", 10)
        os.chmod("chmodded.bin", 0o600)
        fd = os.open("allocated.bin", os.O_WRONLY); os.posix_fallocate(fd, 0, 1 << 20); os.close(fd)
        src = os.open("source.bin", os.O_RDONLY); dst = os.open("copied.bin", os.O_WRONLY)
        assert os.copy_file_range(src, dst, 4096, 0, 0) == 4096
        os.close(src); os.close(dst)
        os.close(os.open("emptied.bin", os.O_WRONLY | os.O_TRUNC))
        open("create/new.txt", "w").close()
        os.mkdir("mkdir/sub")
        os.symlink("target", "symlink/link")
        os.mkfifo("mkfifo/pipe")
        os.rename("rename-from/x", "rename-to/y")
        os.link("link-from/x", "link-to/y")
        os.unlink("unlink/x")
        os.rmdir("rmdir/sub")
        os.setxattr("xattr.bin", "user.color", b"blue")
        os.removexattr("unxattr.bin", "user.color")
        """;

    [Fact]
    public void EveryOtherChange_IsMadeOnlyOnceItsRecordsAreDurable_NotOnlyAnsweredAfter()
    {
        var (root, data, mountpoint) = MountScratch("sk-journal-order-all-");
        try
        {
            foreach (var file in new[] { "truncated.bin", "chmodded.bin", "allocated.bin", "source.bin", "copied.bin", "emptied.bin", "xattr.bin", "unxattr.bin" })
            {
                File.WriteAllBytes(Path.Join(data, file), new byte[8192]);
            }

            foreach (var dir in new[] { "create", "mkdir", "symlink", "mkfifo", "rename-from", "rename-to", "link-from", "link-to", "unlink", "rmdir/sub" })
            {
                Directory.CreateDirectory(Path.Join(data, dir));
            }

            foreach (var file in new[] { "rename-from/x", "link-from/x", "unlink/x" })
            {
                File.WriteAllText(Path.Join(data, file), "x");
            }

            Assert.True(CommandRunner.Run("/usr/bin/python3", ["-c", "import os, sys; os.setxattr(sys.argv[1], 'user.color', b'red')", Path.Join(data, "unxattr.bin")]).Succeeded);
            using var mounted = JournaledMount.Start(root, data, mountpoint);
            var sink = mounted.Sink;

            var run = CommandRunner.Run("/usr/bin/python3", ["-c", EveryOtherChange], timeout: TimeSpan.FromMinutes(1), workingDirectory: mountpoint);
            Assert.True(run.Succeeded, run.Output + run.Error);

            lock (sink.Sent)
            {
                // Each kind was made (the kernel may turn O_TRUNC into a setattr), and each saw its records on disk already.
                Assert.Superset(
                    new HashSet<MutationKind>
                    {
                        MutationKind.Setattr, MutationKind.Fallocate, MutationKind.CopyFileRange, MutationKind.Create, MutationKind.Mkdir,
                        MutationKind.Symlink, MutationKind.Mknod, MutationKind.Rename, MutationKind.Link, MutationKind.Unlink,
                        MutationKind.Rmdir, MutationKind.Setxattr, MutationKind.Removexattr,
                    },
                    sink.Changes.Select(c => c.Kind).ToHashSet());
                Assert.All(sink.Changes, c => Assert.True(c.RecordsDurable, $"{c.Kind} was made before its journal record was on disk"));
            }
        }
        finally
        {
            FuseMount.DetachStale(mountpoint);
            root.Delete(recursive: true);
        }
    }

    /// <summary>Four threads creating, rewriting, renaming and removing files in five shared directories.</summary>
    private const string ConcurrentChanges = """
        import os, threading
        def work(t):
            for i in range(300):
                d = "d%d" % (i % 5)
                name = "%s/f%d_%d" % (d, t, i % 20)
                with open(name, "ab") as f:
                    f.write(b"x" * (1 + i % 7000))
                if i % 7 == 0:
                    os.replace(name, "%s/r%d" % ("d%d" % ((i + 1) % 5), t))
                elif i % 11 == 0:
                    os.unlink(name)
                elif i % 13 == 0:
                    os.truncate(name, i % 100)
        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        """;

    [Fact]
    public async Task ConcurrentChanges_WhileEpochsBegin_AllComplete_AndTheJournalListsWhereTheyHappened()
    {
        var (root, data, mountpoint) = MountScratch("sk-journal-concurrent-");
        try
        {
            for (var d = 0; d < 5; d++)
            {
                Directory.CreateDirectory(Path.Join(data, $"d{d}"));
            }

            using var mounted = JournaledMount.Start(root, data, mountpoint);
            var (journal, sink, fs) = (mounted.Journal, mounted.Sink, mounted.FileSystem);

            // Epochs begin meanwhile: a change waiting for its record when one begins takes its intents again in the new one.
            using var done = new CancellationTokenSource();
            var rotations = 0;
            var rotating = Task.Run(async () =>
            {
                while (!done.IsCancellationRequested)
                {
                    await fs.RotateJournal().Acknowledged;
                    rotations++;
                    await Task.Delay(5, TestContext.Current.CancellationToken);
                }
            }, TestContext.Current.CancellationToken);

            var run = CommandRunner.Run("/usr/bin/python3", ["-c", ConcurrentChanges], timeout: TimeSpan.FromMinutes(2), workingDirectory: mountpoint);
            done.Cancel();
            await rotating;
            Assert.True(run.Succeeded, run.Output + run.Error);
            Assert.True(rotations > 1, $"{rotations} epochs began during the run");

            // Nothing dropped: every directory changed is listed, and every file left in it is, or its directory.
            var paths = journal.Snapshot().Paths;
            foreach (var file in Directory.EnumerateFiles(data, "*", SearchOption.AllDirectories))
            {
                var relative = Path.GetRelativePath(data, file);
                Assert.True(paths.ContainsKey(relative) || paths.ContainsKey(Path.GetDirectoryName(relative)!), $"{relative} is not in the journal");
            }

            Assert.True(journal.AllDurable);
        }
        finally
        {
            FuseMount.DetachStale(mountpoint);
            root.Delete(recursive: true);
        }
    }
}
