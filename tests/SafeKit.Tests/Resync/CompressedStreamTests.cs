using System.Net;
using SafeKit.Replication.Resync;
using SafeKit.Tests.Replication;

namespace SafeKit.Tests.Resync;

/// <summary>
/// A resync connection compressed as one zstd stream per direction, over real TCP: messages of
/// every size cross it intact; a source and a target agree on it by themselves; and a target from
/// before that agreement (it answers the options request with an error) is still resynchronised,
/// uncompressed.
/// </summary>
public sealed class CompressedStreamTests : IDisposable
{
    private readonly DirectoryInfo _work = Directory.CreateTempSubdirectory("sk-zstream-test-");

    private string Source => Path.Join(_work.FullName, "source");

    private string Target => Path.Join(_work.FullName, "target");

    public void Dispose() => _work.Delete(recursive: true);

    [Fact]
    public async Task Messages_OfEverySize_CrossTheCompressedStreamIntact_AndRepeatsCostLittle()
    {
        var ct = TestContext.Current.CancellationToken;
        var (writer, reader) = await PairAsync(ct);
        await using (writer)
        await using (reader)
        {
            writer.CompressWrites();
            reader.DecompressReads();
            var random = new Random(7);
            var messages = new List<byte[]>
            {
                Array.Empty<byte>(),
                Bytes(random, ResyncConnection.MaxMessageLength), // the largest, incompressible
                Enumerable.Repeat((byte)'x', ResyncConnection.MaxMessageLength).ToArray(), // the largest, compressible
            };
            for (var i = 0; i < 2000; i++)
            {
                // Entries as a listing carries them: the same shape, names and numbers that differ a little.
                messages.Add(System.Text.Encoding.UTF8.GetBytes($"d{i / 100:D3}/e{i % 50:D2}/f{i:D6}.bin mode 100644 uid 0 gid 0 size {1000 + random.Next(2048)} mtime 17{random.Next(100_000_000):D9}"));
            }

            messages.Add(Bytes(random, 300_000));
            var sending = Task.Run(
                async () =>
                {
                    foreach (var message in messages)
                    {
                        await writer.WriteAsync(message, ct);
                    }
                },
                ct);
            foreach (var expected in messages)
            {
                var received = await reader.ReadAsync(ct);
                Assert.NotNull(received);
                Assert.Equal(expected, received);
            }

            await sending;
            var plain = messages.Sum(m => m.Length + 4L);
            var small = messages.Skip(3).Take(2000).Sum(m => m.Length + 4L);

            // The incompressible ones cost about their size; the 4 MiB of 'x' and the 2000 entries a fraction of theirs.
            Assert.True(reader.WireBytes < plain - ResyncConnection.MaxMessageLength - (small / 2), $"{reader.WireBytes} bytes on the wire for {plain} bytes of messages");
            Assert.Equal(writer.WireBytes, reader.WireBytes);
        }
    }

    [Fact]
    public async Task CorruptCompressedBytes_AreAClearError_NotAMessage()
    {
        var ct = TestContext.Current.CancellationToken;
        var (writer, reader) = await PairAsync(ct);
        await using (writer)
        await using (reader)
        {
            reader.DecompressReads();
            await writer.WriteAsync(Bytes(new Random(1), 1000), ct); // plain bytes where a zstd stream is expected

            var error = await Assert.ThrowsAsync<InvalidDataException>(async () => await reader.ReadAsync(ct));
            Assert.Contains("corrupt compressed stream", error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Resync_AgreesOnTheCompressedStream_AndSendsLessThanToATargetFromBeforeIt()
    {
        var ct = TestContext.Current.CancellationToken;
        var files = SmallFiles(Source);

        var compressed = await ResyncAsync(olderTarget: false, ct);
        Assert.Equal(TreeSnapshot.Of(Source), TreeSnapshot.Of(Target));

        Directory.Delete(Target, recursive: true);
        var uncompressed = await ResyncAsync(olderTarget: true, ct);
        Assert.Equal(TreeSnapshot.Of(Source), TreeSnapshot.Of(Target));

        // The same tree both times; the stream spares much of each file's names and metadata (about 100 of some 160 bytes here).
        Assert.True(compressed.WireBytes < uncompressed.WireBytes - (files * 60L), $"compressed {compressed}; uncompressed {uncompressed}");
    }

    private async Task<ResyncStatistics> ResyncAsync(bool olderTarget, CancellationToken ct)
    {
        Directory.CreateDirectory(Target);
        var (connection, targetConnection) = await PairAsync(ct);
        await using (targetConnection)
        {
            using var target = new ResyncTarget(Target);
            var serving = olderTarget ? ServeAsAnOlderReleaseAsync(target, targetConnection, ct) : target.ServeAsync(targetConnection, ct);
            ResyncStatistics statistics;
            await using (var source = new ResyncSource(Source, connection))
            {
                statistics = await source.RunAsync(ct);
                Assert.Equal(!olderTarget, connection.CompressesWrites);
            }

            await serving;
            return statistics;
        }
    }

    /// <summary>A target of the release before the options request: it answers it as an unknown type, and everything else as usual.</summary>
    private static async Task ServeAsAnOlderReleaseAsync(ResyncTarget target, ResyncConnection connection, CancellationToken ct)
    {
        while (await connection.ReadAsync(ct) is { } request)
        {
            if (request[0] == (byte)ResyncMessageType.Options)
            {
                using var refusal = new MessageWriter(ResyncMessageType.Options);
                refusal.Body.Write(5);
                refusal.Body.Write("unknown resync request type 7");
                await connection.WriteAsync(refusal.ToArray(), ct);
                continue;
            }

            await connection.WriteAsync(target.Handle(request), ct);
        }
    }

    private static async Task<(ResyncConnection Source, ResyncConnection Target)> PairAsync(CancellationToken ct)
    {
        using var listener = ResyncListener.Listen(new IPEndPoint(IPAddress.Loopback, 0), ChannelPair.Options("n2", "n1"));
        var accepting = listener.AcceptAsync(ct);
        var source = await ResyncConnection.ConnectAsync((IPEndPoint)listener.LocalEndPoint, ChannelPair.Options("n1", "n2"), ct);
        return (source, await accepting);
    }

    /// <summary>Dataset (b) in small: files of 1–3 KiB of random bytes, a hundred per directory; returns how many.</summary>
    private static int SmallFiles(string root)
    {
        var random = new Random(3);
        const int count = 600;
        for (var i = 0; i < count; i++)
        {
            var directory = Directory.CreateDirectory(Path.Join(root, $"d{i / 100:D3}")).FullName;
            File.WriteAllBytes(Path.Join(directory, $"f{i:D6}.bin"), Bytes(random, random.Next(1024, 3072)));
        }

        return count;
    }

    private static byte[] Bytes(Random random, int length)
    {
        var bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }
}
