using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using SafeKit.Native.Fuse;
using SafeKit.Replication.Channel;

namespace SafeKit.Replication.Resync;

/// <summary>
/// A small resync between two scratch directories of this process, over TCP on one of the node's
/// addresses, run once when the daemon starts. Without it a process's first resync — a failback,
/// right after a crash restarted the node — pays, on both nodes and while the application shares
/// the same cores, for what .NET does at a method's first calls: loading its types, compiling
/// the async code over this project's types that ReadyToRun images cannot hold, and compiling the
/// hot methods again optimised. On this project's 2-core lab, that was about a quarter of the CPU
/// a failback after the survivor's crash used. Both ends run here, with the features the real
/// resync negotiates: a whole-tree pass, then a pass over changed paths, some files by their
/// changed ranges and some by block hashes, and the finish.
/// </summary>
public static class ResyncWarmup
{
    /// <summary>Enough files that the per-file and per-block code is called past the runtime's threshold (30 calls) for its optimised version.</summary>
    private const int Files = 40;

    /// <summary>What the warm-up moved, its second pass's figures (for the log and the tests).</summary>
    public sealed record Outcome(TimeSpan Elapsed, ResyncStatistics Changes);

    /// <summary>
    /// Runs the warm-up in <paramref name="scratch"/> (created, and removed whatever happens),
    /// listening on <paramref name="address"/>.
    /// </summary>
    /// <param name="streams">File streams, as the node's resyncs use (see <see cref="ResyncSource.Streams"/>).</param>
    public static async Task<Outcome> RunAsync(string scratch, IPAddress address, int streams, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var source = Path.Join(scratch, "source");
        var target = Path.Join(scratch, "target");
        Remove(scratch);
        try
        {
            Directory.CreateDirectory(target);
            Write(source);
            var key = RandomNumberGenerator.GetBytes(32);
            using var listener = ResyncListener.Listen(new IPEndPoint(address, 0), Options("target", "source", key));
            var endpoint = (IPEndPoint)listener.LocalEndPoint;
            Task<ResyncConnection> Connect(CancellationToken ct) => ResyncConnection.ConnectAsync(endpoint, Options("source", "target", key), ct);

            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var serving = ResyncServer.ServeAsync(listener, () => new ResyncTarget(target), null, null, static () => true, stop.Token);
            try
            {
                await using (var first = new ResyncSource(source, await Connect(cancellationToken), null, streams, Connect))
                {
                    _ = await first.TargetJournalAsync(cancellationToken);
                    await first.RunAsync(cancellationToken);
                }

                var (changes, ranges) = Change(source);
                await using var second = new ResyncSource(source, await Connect(cancellationToken), null, streams, Connect);
                _ = await second.TargetJournalAsync(cancellationToken);
                await second.PassAsync(changes, (relative, _, _) => ranges.TryGetValue(relative, out var range) ? [range] : null, cancellationToken);
                await second.FinishAsync(null, cancellationToken);
                return new Outcome(Stopwatch.GetElapsedTime(started), second.Statistics);
            }
            finally
            {
                await stop.CancelAsync();
                await serving;
            }
        }
        finally
        {
            Remove(scratch);
        }
    }

    private static ReplicationChannelOptions Options(string local, string peer, byte[] key) => new()
    {
        ClusterName = "resync-warmup",
        LocalNode = local,
        PeerNode = peer,
        Key = key,
    };

    /// <summary>Files of one to a few blocks, half of them text the stream compresses, half random bytes it cannot.</summary>
    private static void Write(string source)
    {
        var random = new Random(20261127);
        for (var i = 0; i < Files; i++)
        {
            var directory = Directory.CreateDirectory(Path.Join(source, $"d{i % 4}"));
            var content = new byte[(i % 5) switch { 0 => 3_000, 1 => 20_000, 2 => 70_000, 3 => 150_000, _ => 40_000 }];
            if (i % 2 == 0)
            {
                random.NextBytes(content);
            }
            else
            {
                content.AsSpan().Fill((byte)('a' + (i % 26)));
            }

            File.WriteAllBytes(Path.Join(directory.FullName, $"f{i}"), content);
        }
    }

    /// <summary>Overwrites a range of every file; half of them with the range known (sent as is), half compared by hashes; one file removed, one added.</summary>
    private static (ChangeSet Changes, Dictionary<string, ByteRange> Ranges) Change(string source)
    {
        var paths = new Dictionary<string, ChangeScope>(StringComparer.Ordinal);
        var ranges = new Dictionary<string, ByteRange>(StringComparer.Ordinal);
        var patch = new byte[1_000];
        RandomNumberGenerator.Fill(patch);
        for (var i = 0; i < Files; i++)
        {
            var relative = $"d{i % 4}/f{i}";
            using (var file = File.OpenHandle(Path.Join(source, relative), FileMode.Open, FileAccess.Write))
            {
                var offset = RandomAccess.GetLength(file) / 2;
                RandomAccess.Write(file, patch, offset);
                if (i % 2 == 0)
                {
                    ranges[relative] = new ByteRange(offset, offset + patch.Length);
                }
            }

            paths[relative] = ChangeScope.Entry;
        }

        File.Delete(Path.Join(source, "d1/f1"));
        File.WriteAllBytes(Path.Join(source, "d1/added"), patch);
        paths["d1"] = ChangeScope.Directory;
        return (ChangeSet.Of(paths), ranges);
    }

    private static void Remove(string scratch)
    {
        if (Directory.Exists(scratch))
        {
            Directory.Delete(scratch, recursive: true);
        }
    }
}
