using Microsoft.Extensions.Logging.Abstractions;
using SafeKit.Native.Fuse;
using SafeKit.Native.Host;
using SafeKit.Replication.Mirror;
using SafeKit.Replication.Resync;
using SafeKit.Tests.Infrastructure;
using SafeKit.Tests.Replication;

namespace SafeKit.Tests.Resync;

/// <summary>
/// Failback from a survivor that stayed up while alone: it recorded which bytes of each file
/// changed, so the resync sends those bytes only — not the 64 KiB blocks around them, and with no
/// hashes asked — for every kind of content change; and falls back to comparing blocks for a file
/// changed before it went alone, one the target changed itself, or a name a rename put another
/// file under. The copies end equal either way.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class ChangedRangesResyncTests
{
    private const int BigSize = 1 << 20;

    /// <summary>Every kind of content change, through the mount, as an application makes them.</summary>
    private const string Changes = """
        set -e
        for at in 1000 300000 900000; do
          dd if=/dev/urandom of=ranged/big.bin bs=100 count=1 seek=$at oflag=seek_bytes conv=notrunc status=none
        done
        echo appended >> ranged/log.txt
        truncate -s 1000 ranged/shrink-grow.bin && truncate -s 200000 ranged/shrink-grow.bin
        fallocate -p -o 40960 -l 8192 ranged/punched.bin
        echo rewritten > ranged/truncated.txt
        python3 -c 'import os
        a, b, n = os.open("ranged/big.bin", os.O_RDONLY), os.open("ranged/copied.bin", os.O_WRONLY), 0
        while n < 500000: n += os.copy_file_range(a, b, 500000 - n, 3000 + n, n)'
        dd if=/dev/urandom of=early/early.bin bs=100 count=1 seek=700000 oflag=seek_bytes conv=notrunc status=none
        dd if=/dev/urandom of=peer/peer.bin bs=100 count=1 seek=100 oflag=seek_bytes conv=notrunc status=none
        mv renamed/from.bin renamed/onto.bin
        dd if=/dev/urandom of=renamed/onto.bin bs=100 count=1 seek=5000 oflag=seek_bytes conv=notrunc status=none
        """;

    /// <param name="crashed">The survivor crashed after the changes and serves alone again: the ranges come from its journal.</param>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AloneSurvivor_SendsOnlyTheChangedBytes_AndTheCopiesEndEqual(bool crashed)
    {
        Tools.RequireFuse();
        var ct = TestContext.Current.CancellationToken;
        var root = Directory.CreateTempSubdirectory("sk-ranges-resync-");
        File.SetUnixFileMode(root.FullName, (UnixFileMode)0x1ED);
        var data = Directory.CreateDirectory(Path.Join(root.FullName, "data")).FullName;
        var second = Directory.CreateDirectory(Path.Join(root.FullName, "second")).FullName;
        var mountpoint = Directory.CreateDirectory(Path.Join(root.FullName, "mnt")).FullName;
        var targetJournalDirectory = Path.Join(root.FullName, "target-journal");
        var generation = Guid.NewGuid();
        try
        {
            // The shared past: random content (incompressible), so the bytes sent are the bytes that travel.
            var random = new Random(11);
            byte[] Random(int size)
            {
                var bytes = new byte[size];
                random.NextBytes(bytes);
                return bytes;
            }

            foreach (var (directory, name, size) in new[]
            {
                ("ranged", "big.bin", BigSize), ("ranged", "log.txt", 5000), ("ranged", "shrink-grow.bin", 150_000),
                ("ranged", "punched.bin", 100_000), ("ranged", "truncated.txt", 70_000), ("ranged", "copied.bin", 600_000),
                ("early", "early.bin", BigSize), ("peer", "peer.bin", 200_000), ("renamed", "from.bin", 300_000), ("renamed", "onto.bin", 300_000),
            })
            {
                Directory.CreateDirectory(Path.Join(data, directory));
                File.WriteAllBytes(Path.Join(data, directory, name), Random(size));
            }

            CommandRunner.RunChecked("cp", ["-a", data + "/.", second]);

            // Changed while the peer was still there but not acknowledged (its journal epoch kept):
            // the survivor did not see it happen alone, so it knows no ranges for it.
            File.WriteAllBytes(Path.Join(data, "early", "early.bin"), Random(BigSize));
            using var journal = ChangeJournal.Open(Path.Join(root.FullName, "journal"), generation, completeIfNew: true);
            journal.WaitDurable(journal.Note("early/early.bin", ChangeScope.Entry));

            var link = new ReplicationLink(null, MirrorMode.Sync, NullLogger.Instance);
            var fs = PassthroughFileSystem.Open(data, link);
            fs.UseJournal(journal);
            fs.TrackChangedRanges();
            using (FuseMount.Mount(fs, mountpoint, "safekit-ranges-test"))
            {
                var changed = CommandRunner.Run("sh", ["-c", $"cd '{mountpoint}' && {Changes}"]);
                Assert.True(changed.ExitCode == 0, changed.Error);
            }

            using var restarted = crashed ? ChangeJournal.Open(Path.Join(root.FullName, "journal"), generation, completeIfNew: false) : null;
            if (restarted is not null)
            {
                // Nothing of the first run survives but its files and its journal (left open, as a
                // crash leaves it): a new file system serves alone on the same data.
                fs.Dispose();
                fs = PassthroughFileSystem.Open(data, new ReplicationLink(null, MirrorMode.Sync, NullLogger.Instance));
                fs.UseJournal(restarted);
                fs.TrackChangedRanges();
            }

            // The target changed one of the same files as PRIM before it failed: its journal says so.
            using (var handle = File.OpenHandle(Path.Join(second, "peer", "peer.bin"), FileMode.Open, FileAccess.Write))
            {
                RandomAccess.Write(handle, Random(100), 150_000);
            }

            using (var targetJournal = ChangeJournal.Open(targetJournalDirectory, generation, completeIfNew: true))
            {
                targetJournal.WaitDurable(targetJournal.Note("peer/peer.bin", ChangeScope.Entry));
            }

            var resync = await JournaledFailback.RunAsync(fs, second, generation, targetJournalDirectory, ct);
            fs.Dispose();

            Assert.True(resync.FromJournal, resync.FirstPassScope);
            Assert.Equal(TreeSnapshot.Of(data), TreeSnapshot.Of(second));

            // big.bin, log.txt, shrink-grow.bin, punched.bin, truncated.txt, copied.bin: their ranges.
            // Not early.bin (changed before), peer.bin (the target changed it too), onto.bin (renamed onto).
            var statistics = resync.Statistics;
            Assert.Equal(6, statistics.FilesByRanges);

            // Ranged: 300 + 9 + 199,000 + 8,192 + 10 + 500,000 bytes (after a crash, the copy's runs
            // as written, perhaps widened, at most to its file's end). By hash: the changed blocks of
            // early.bin (16), peer.bin (2), onto.bin (5). Sent by blocks, big.bin alone would be 3 × 64 KiB.
            const long Ranged = 300 + 9 + 199_000 + 8_192 + 10 + 500_000;
            Assert.InRange(statistics.BytesSent, Ranged, Ranged + ((16 + 2 + 5) * 65_536));
            Assert.Equal(3, statistics.HashRequests); // early.bin, peer.bin, onto.bin: none for a ranged file.

        }
        finally
        {
            FuseMount.DetachStale(mountpoint);
            root.Delete(recursive: true);
        }
    }
}
