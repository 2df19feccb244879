using System.Net;
using SafeKit.Replication.Resync;

namespace SafeKit.Tests.Resync;

/// <summary>
/// The daemon's start-up resync between scratch directories (real TCP on 127.0.0.1): it takes
/// both kinds of changed file a failback sends (by known ranges, by block hashes), sends about
/// what it changed, and leaves nothing behind, also when it fails.
/// </summary>
public sealed class ResyncWarmupTests : IDisposable
{
    private readonly DirectoryInfo _work = Directory.CreateTempSubdirectory("sk-warmup-test-");

    public void Dispose() => _work.Delete(recursive: true);

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public async Task Warmup_SendsChangedFilesBothWays_AndRemovesItsScratch(int streams)
    {
        var scratch = Path.Join(_work.FullName, "warmup");

        var outcome = await ResyncWarmup.RunAsync(scratch, IPAddress.Loopback, streams, TestContext.Current.CancellationToken);

        Assert.False(Directory.Exists(scratch));
        var changes = outcome.Changes;
        Assert.Equal(20, changes.FilesByRanges);
        Assert.True(changes.HashRequests >= 8, changes.ToString()); // The files of several blocks among the others.

        // 20 ranges of 1,000 bytes, a block around the patch of each file compared by hashes,
        // the other files (one block at most) whole, and one new file: not the tree's 2.2 MB.
        Assert.InRange(changes.BytesSent, 40_000, (20 * 1_000) + (8 * ResyncSource.BlockSize) + (11 * 40_000) + 1_000);
    }

    [Fact]
    public async Task AWarmupThatCannotListen_Fails_AndRemovesItsScratch()
    {
        var scratch = Path.Join(_work.FullName, "warmup");

        // An address this host does not have (TEST-NET-2 inside the lab's range is not assigned here).
        await Assert.ThrowsAnyAsync<System.Net.Sockets.SocketException>(() => ResyncWarmup.RunAsync(scratch, IPAddress.Parse("198.18.255.254"), 1, TestContext.Current.CancellationToken));

        Assert.False(Directory.Exists(scratch));
    }
}
