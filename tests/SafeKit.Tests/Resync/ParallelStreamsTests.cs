using System.Net;
using SafeKit.Native.Files;
using SafeKit.Replication.Resync;
using SafeKit.Tests.Replication;

namespace SafeKit.Tests.Resync;

/// <summary>
/// A resync's files over several TCP streams, served as the daemon serves them
/// (<see cref="ResyncServer"/>, real connections on 127.0.0.1): every stream carries files, the
/// copies end identical, only what changed travels; a second source waits for the first; a
/// stream that does not belong to the session in progress, or asks more than hashes and data,
/// is refused with a reason.
/// </summary>
public sealed class ParallelStreamsTests : IDisposable
{
    private const int Block = ResyncSource.BlockSize;
    private readonly DirectoryInfo _work = Directory.CreateTempSubdirectory("sk-streams-test-");

    public ParallelStreamsTests()
    {
        Directory.CreateDirectory(Source);
        Directory.CreateDirectory(Target);
    }

    private string Source => Path.Join(_work.FullName, "source");

    private string Target => Path.Join(_work.FullName, "target");

    public void Dispose() => _work.Delete(recursive: true);

    [Fact]
    public async Task ChangedFiles_TravelOnEveryStream_AndTheCopiesEndIdentical()
    {
        var ct = TestContext.Current.CancellationToken;
        var random = new Random(7);
        for (var d = 0; d < 6; d++)
        {
            Directory.CreateDirectory(Path.Join(Source, $"d{d}/sub"));
            for (var f = 0; f < 20; f++)
            {
                var size = f % 5 == 0 ? random.Next(Block, 16 * Block) : random.Next(0, 20_000);
                File.WriteAllBytes(Path.Join(Source, $"d{d}", f % 2 == 0 ? $"f{f}" : $"sub/f{f}"), Bytes(random, size));
            }
        }

        FileTree.Link(Path.Join(Source, "d0/f0"), Path.Join(Source, "d1/linked"));
        await using (var server = Server.Start(Target))
        {
            await ResyncAsync(server, 4, ct);
        }

        // While the target is away: blocks overwritten, files appended to, cut short, removed, added.
        var changed = 0L;
        for (var d = 0; d < 6; d++)
        {
            var big = Path.Join(Source, $"d{d}", "f0");
            await using (var file = File.OpenWrite(big))
            {
                file.Position = Math.Max(0, file.Length / 2);
                file.Write(Bytes(random, 1000));
            }

            File.AppendAllText(Path.Join(Source, $"d{d}", "f2"), new string('x', 3000));
            File.WriteAllBytes(Path.Join(Source, $"d{d}", "new"), Bytes(random, 40_000));
            File.Delete(Path.Join(Source, $"d{d}", "sub/f1"));
            using (var cut = File.OpenHandle(Path.Join(Source, $"d{d}", "sub/f3"), FileMode.Open, FileAccess.Write))
            {
                RandomAccess.SetLength(cut, 10);
            }

            changed += 1000 + 3000 + 40_000;
        }

        await using (var server = Server.Start(Target))
        {
            var (statistics, streams) = await ResyncAsync(server, 4, ct);
            var target = await server.ServedAsync();

            // The listings on the first connection, the files on four more (idle ones take turns: each gets some).
            Assert.Equal(4, streams);
            var perStream = target.FilesWrittenPerStream;
            Assert.Equal(5, perStream.Length);
            Assert.Equal(0, perStream[0]);
            Assert.All(perStream[1..], files => Assert.True(files > 0, $"files written per connection: {string.Join(", ", perStream)}"));
            Assert.Equal(TreeSnapshot.Of(Source), TreeSnapshot.Of(Target));

            // Whole blocks around each change, a small file whole: nothing beyond what changed.
            Assert.True(statistics.BytesSent <= changed + (6 * 3 * Block), statistics.ToString());
        }
    }

    [Fact]
    public async Task ASecondSource_WaitsUntilTheFirstIsDone()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var server = Server.Start(Target);
        var first = new ResyncSource(Source, await server.ConnectAsync(ct));
        Assert.Null(await first.TargetJournalAsync(ct)); // In session: answered.

        await using var second = new ResyncSource(Source, await server.ConnectAsync(ct));
        var asked = second.TargetJournalAsync(ct);
        await Task.Delay(300, ct);
        Assert.False(asked.IsCompleted, "a second source was served while the first still was");

        await first.DisposeAsync();
        Assert.Null(await asked.WaitAsync(TimeSpan.FromSeconds(30), ct));
    }

    [Fact]
    public async Task AStreamWithATokenOfNoSessionInProgress_IsRefused_SayingWhy()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var server = Server.Start(Target);
        await using var stream = new ResyncStream(await server.ConnectAsync(ct), null, ResyncFeatures.CompressedStream, Guid.NewGuid());

        var refused = await Assert.ThrowsAsync<ResyncException>(() => stream.Negotiated);

        Assert.Contains("no resync session holds this stream's token", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnExtraStream_TakesOnlyHashesAndData()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var server = Server.Start(Target);
        await using var main = new ResyncStream(await server.ConnectAsync(ct), null, OptionsAnswer.Supported);
        var (features, token) = await main.Negotiated;
        Assert.True(features.HasFlag(ResyncFeatures.ParallelStreams));
        await using var extra = new ResyncStream(await server.ConnectAsync(ct), null, ResyncFeatures.CompressedStream, token);
        await extra.Negotiated;

        using var journal = new MessageWriter(ResyncMessageType.Journal);
        var response = await await extra.SendAsync(journal.ToArray(), ct);
        var refused = Assert.Throws<ResyncException>(() => ResyncStream.Check(response, ResyncMessageType.Journal, "a journal request on an extra stream"));

        Assert.Contains("carries only hashes and data, not a Journal request", refused.Message, StringComparison.Ordinal);
    }

    /// <summary>One whole resync of <see cref="Source"/> onto the server's copy over <paramref name="streams"/> streams.</summary>
    private async Task<(ResyncStatistics Statistics, int Streams)> ResyncAsync(Server server, int streams, CancellationToken ct)
    {
        await using var source = new ResyncSource(Source, await server.ConnectAsync(ct), null, streams, server.ConnectAsync);
        var statistics = await source.RunAsync(ct);
        return (statistics, source.Streams);
    }

    private static byte[] Bytes(Random random, int length)
    {
        var bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }

    /// <summary>A resync listener on 127.0.0.1 served by <see cref="ResyncServer"/>, each source with a new target on one copy.</summary>
    private sealed class Server : IAsyncDisposable
    {
        private readonly ResyncListener _listener;
        private readonly CancellationTokenSource _stop = new();
        private readonly TaskCompletionSource<ResyncTarget> _served = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Task _serving;

        private Server(string copy)
        {
            _listener = ResyncListener.Listen(new IPEndPoint(IPAddress.Loopback, 0), ChannelPair.Options("n2", "n1"));
            _serving = ResyncServer.ServeAsync(_listener, () => new ResyncTarget(copy), t => _served.TrySetResult(t), e => _served.TrySetException(e), () => true, _stop.Token);
        }

        public static Server Start(string copy) => new(copy);

        public Task<ResyncConnection> ConnectAsync(CancellationToken ct) =>
            ResyncConnection.ConnectAsync((IPEndPoint)_listener.LocalEndPoint, ChannelPair.Options("n1", "n2"), ct);

        /// <summary>The target of the first source served, once its session ended.</summary>
        public Task<ResyncTarget> ServedAsync() => _served.Task.WaitAsync(TimeSpan.FromSeconds(30));

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Dispose();
            await _serving.WaitAsync(TimeSpan.FromSeconds(30));
            _stop.Dispose();
        }
    }
}
