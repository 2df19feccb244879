using System.Net;
using SafeKit.Native.Files;
using SafeKit.Replication.Channel;
using SafeKit.Replication.Resync;
using SafeKit.Tests.Replication;

namespace SafeKit.Tests.Resync;

/// <summary>
/// The resync engine on real directories over real TCP (127.0.0.1): a source tree brought onto a
/// target — empty, stale, or holding changes of its own — ends byte- and metadata-identical, and
/// only the blocks that differ travel.
/// </summary>
public sealed class ResyncTests : IDisposable
{
    private const int Block = ResyncSource.BlockSize;
    private readonly DirectoryInfo _work = Directory.CreateTempSubdirectory("sk-resync-test-");

    private string Source => Path.Join(_work.FullName, "source");

    private string Target => Path.Join(_work.FullName, "target");

    public ResyncTests()
    {
        Directory.CreateDirectory(Source);
        Directory.CreateDirectory(Target);
    }

    public void Dispose() => _work.Delete(recursive: true);

    [Fact]
    public async Task EmptyTarget_ReceivesTheWholeTree_WithMetadataLinksAndSpecialFiles()
    {
        BuildTree(Source);

        var (statistics, _) = await ResyncAsync();

        Assert.Equal(TreeSnapshot.Of(Source), TreeSnapshot.Of(Target));
        Assert.True(statistics.BytesSent >= 3 * 1024 * 1024, statistics.ToString());
    }

    [Fact]
    public async Task StaleTarget_GetsOnlyWhatChanged_AndLosesWhatTheSourceRemoved()
    {
        BuildTree(Source);
        await ResyncAsync();
        var total = Directory.EnumerateFiles(Source, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);

        // Changes while the target was away: one block overwritten in the middle of a big file,
        // an append, a truncate, a rename over an existing name, a removed tree, a new tree, a
        // permission and owner change, a symlink pointing elsewhere.
        using (var big = File.OpenHandle(Path.Join(Source, "data/big.bin"), FileMode.Open, FileAccess.Write))
        {
            RandomAccess.Write(big, Random(100), (5 * Block) + 10);
        }

        File.AppendAllText(Path.Join(Source, "data/log.txt"), "one more line\n");
        using (var cut = File.OpenHandle(Path.Join(Source, "data/half.bin"), FileMode.Open, FileAccess.Write))
        {
            RandomAccess.SetLength(cut, Block + 7);
        }

        File.Move(Path.Join(Source, "docs/a.txt"), Path.Join(Source, "docs/b.txt"), overwrite: true);
        Directory.Delete(Path.Join(Source, "old"), recursive: true);
        Directory.CreateDirectory(Path.Join(Source, "new/deeper"));
        File.WriteAllText(Path.Join(Source, "new/deeper/fresh.txt"), "fresh");
        File.SetUnixFileMode(Path.Join(Source, "docs/b.txt"), UnixFileMode.UserRead | UnixFileMode.UserWrite);
        FileTree.SetMetadata(Path.Join(Source, "docs/b.txt"), EntryKind.Regular, 0x180, 4321, 4321, 1_700_000_000_123_456_789);
        File.Delete(Path.Join(Source, "docs/link"));
        File.CreateSymbolicLink(Path.Join(Source, "docs/link"), "../new/deeper/fresh.txt");

        // And the target changed on its own (what a crashed PRIM may hold that SECOND never got).
        File.WriteAllText(Path.Join(Target, "stray.txt"), "only on the target");
        using (var planted = File.OpenHandle(Path.Join(Target, "data/other.bin"), FileMode.Open, FileAccess.Write))
        {
            RandomAccess.Write(planted, Random(10), 3 * Block);
        }

        var (statistics, target) = await ResyncAsync();

        Assert.Equal(TreeSnapshot.Of(Source), TreeSnapshot.Of(Target));
        Assert.False(File.Exists(Path.Join(Target, "stray.txt")));
        // Blocks: 1 (big), 1 (log), 1 (half's last), 1 (other), small files whole.
        Assert.InRange(statistics.BlocksSent, 4, 8);
        Assert.True(statistics.BytesSent < 8 * Block, statistics.ToString());
        Assert.True(statistics.WireBytes < total / 10, $"{statistics} for a tree of {total} bytes");
        Assert.True(target.Removed >= 2, $"removed {target.Removed}");
    }

    /// <summary>Every entry's extended attributes and ACLs under <paramref name="root"/>, as text.</summary>
    private static string Attributes(string root)
    {
        var script = "import os, sys\nroot = sys.argv[1]\nfor d, dirs, files in sorted(os.walk(root)):\n    for n in sorted(dirs + files):\n        p = os.path.join(d, n)\n        if os.path.islink(p): continue\n        print(os.path.relpath(p, root), sorted((a, os.getxattr(p, a, follow_symlinks=False)) for a in os.listxattr(p, follow_symlinks=False)))\n";
        var result = SafeKit.Native.Host.CommandRunner.Run("python3", ["-c", script, root]);
        Assert.True(result.Succeeded, result.Error);
        return result.Output;
    }

    [Fact]
    public async Task ExtendedAttributesAndAcls_ReachTheTarget_AndItsOwnExtraOnesGo()
    {
        BuildTree(Source);
        await ResyncAsync();

        // Only attributes change: no file's size or time moves (an ACL changes the ctime only).
        SafeKit.Native.Host.CommandRunner.RunChecked("setfacl", ["-m", "u:4321:rw", Path.Join(Source, "data/log.txt")]);
        SafeKit.Native.Host.CommandRunner.RunChecked("setfacl", ["-d", "-m", "u:4321:rwx", Path.Join(Source, "docs")]);
        SafeKit.Native.Host.CommandRunner.RunChecked("python3", ["-c", "import os, sys; os.setxattr(sys.argv[1], 'user.origin', b'source')", Path.Join(Source, "data/big.bin")]);
        SafeKit.Native.Host.CommandRunner.RunChecked("python3", ["-c", "import os, sys; os.setxattr(sys.argv[1], 'user.stray', b'x')", Path.Join(Target, "data/half.bin")]);
        Assert.NotEqual(Attributes(Source), Attributes(Target));

        var (statistics, _) = await ResyncAsync();

        Assert.Equal(Attributes(Source), Attributes(Target));
        Assert.Contains("user.origin", Attributes(Target), StringComparison.Ordinal);
        Assert.Contains("system.posix_acl_default", Attributes(Target), StringComparison.Ordinal);
        Assert.DoesNotContain("user.stray", Attributes(Target), StringComparison.Ordinal);
        Assert.Equal(0, statistics.BlocksSent);
        Assert.Equal(TreeSnapshot.Of(Source), TreeSnapshot.Of(Target));
    }

    [Fact]
    public async Task SecondPassWithNothingChanged_SendsNoBlock()
    {
        BuildTree(Source);
        await ResyncAsync();

        var (statistics, _) = await ResyncAsync();

        Assert.Equal(0, statistics.BlocksSent);
        Assert.Equal(0, statistics.FilesCompared);
        Assert.Equal(0, statistics.DirectoriesListed);
        Assert.True(statistics.WireBytes < 100 * statistics.Directories, statistics.ToString());
        Assert.Equal(TreeSnapshot.Of(Source), TreeSnapshot.Of(Target));
    }

    [Fact]
    public async Task ReplicationSender_IsRefusedByAResyncTarget()
    {
        using var listener = ResyncListener.Listen(new IPEndPoint(IPAddress.Loopback, 0), ChannelPair.Options("n2", "n1"));
        var accepting = listener.AcceptAsync(TestContext.Current.CancellationToken);

        var connecting = ReplicationSender.ConnectAsync(listener.LocalEndPoint, ChannelPair.Options("n1", "n2"), cancellationToken: TestContext.Current.CancellationToken);

        var refused = await Assert.ThrowsAsync<ReplicationHandshakeException>(() => accepting);
        Assert.Equal(HandshakeFailure.WrongRole, refused.Failure);
        Assert.Contains("sender", refused.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<ReplicationHandshakeException>(async () => await connecting);
    }

    [Theory]
    [InlineData("../escape")]
    [InlineData("/etc")]
    [InlineData("a/../../b")]
    public void PathOutsideTheDataDirectory_IsRefused(string path)
    {
        using var target = new ResyncTarget(Target);
        using var request = new MessageWriter(ResyncMessageType.Hashes);
        request.Body.Write(path);
        request.Body.Write(Block);
        request.Body.Write(0L);
        request.Body.Write(1);

        using var response = new MessageReader(target.Handle(request.ToArray()));

        Assert.Equal(ResyncMessageType.Hashes, response.Type);
        Assert.NotEqual(0, response.Body.ReadInt32());
        Assert.Contains("unsafe path", response.Body.ReadString(), StringComparison.Ordinal);
    }

    private async Task<(ResyncStatistics Statistics, ResyncTarget Target)> ResyncAsync()
    {
        var ct = TestContext.Current.CancellationToken;
        using var listener = ResyncListener.Listen(new IPEndPoint(IPAddress.Loopback, 0), ChannelPair.Options("n2", "n1"));
        var accepting = listener.AcceptAsync(ct);
        var connection = await ResyncConnection.ConnectAsync((IPEndPoint)listener.LocalEndPoint, ChannelPair.Options("n1", "n2"), ct);
        await using var targetConnection = await accepting;
        var target = new ResyncTarget(Target);
        var serving = target.ServeAsync(targetConnection, ct);
        ResyncStatistics statistics;
        await using (var source = new ResyncSource(Source, connection))
        {
            statistics = await source.RunAsync(ct);
        }

        await serving;
        target.Dispose();
        return (statistics, target);
    }

    /// <summary>Nested directories, files of 0 bytes to several MiB (compressible and not), a hard link, a symlink, a fifo, owners and modes.</summary>
    private static void BuildTree(string root)
    {
        Directory.CreateDirectory(Path.Join(root, "data"));
        Directory.CreateDirectory(Path.Join(root, "docs/nested/deep"));
        Directory.CreateDirectory(Path.Join(root, "old/stuff"));
        File.WriteAllBytes(Path.Join(root, "data/big.bin"), Random((2 * 1024 * 1024) + 333));
        File.WriteAllBytes(Path.Join(root, "data/other.bin"), Random(6 * Block));
        File.WriteAllBytes(Path.Join(root, "data/half.bin"), Random(3 * Block));
        File.WriteAllText(Path.Join(root, "data/log.txt"), string.Concat(Enumerable.Repeat("a line of a log that compresses well\n", 30_000)));
        File.WriteAllBytes(Path.Join(root, "data/empty"), []);
        File.WriteAllText(Path.Join(root, "docs/a.txt"), "a");
        File.WriteAllText(Path.Join(root, "docs/b.txt"), "b");
        File.WriteAllText(Path.Join(root, "docs/nested/deep/c.txt"), "c");
        File.WriteAllText(Path.Join(root, "old/stuff/gone.txt"), "gone");
        FileTree.Link(Path.Join(root, "docs/a.txt"), Path.Join(root, "docs/nested/a-again.txt"));
        File.CreateSymbolicLink(Path.Join(root, "docs/link"), "a.txt");
        FileTree.MakeFifo(Path.Join(root, "docs/pipe"), 0x1A4);
        FileTree.SetMetadata(Path.Join(root, "docs/nested/deep/c.txt"), EntryKind.Regular, 0x1ED, 1234, 5678, 1_600_000_000_000_000_001);
        FileTree.SetMetadata(Path.Join(root, "docs/nested"), EntryKind.Directory, 0x1C0, 1234, 1234, 1_600_000_000_500_000_000);
    }

    private static byte[] Random(int length)
    {
        var bytes = new byte[length];
        System.Random.Shared.NextBytes(bytes);
        return bytes;
    }
}
