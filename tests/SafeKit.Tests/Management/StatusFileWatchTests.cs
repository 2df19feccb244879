using SafeKit.ControlPlane.Status;

namespace SafeKit.Tests.Management;

/// <summary>The status file as a wait loop looks at it: parsed again only once rewritten.</summary>
public sealed class StatusFileWatchTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("sk-status-watch-");

    public void Dispose() => _directory.Delete(recursive: true);

    private static NodeStatus Status(int pid) => new("lab", "m1", pid, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, [], null);

    [Fact]
    public void ItIsReadWhenRewritten_AndNotWhileItsTimeStaysTheSame()
    {
        var watch = new StatusFileWatch(_directory.FullName);
        Assert.Null(watch.Latest()); // Not written yet.

        StatusFile.Write(_directory.FullName, Status(1));
        var path = Path.Join(_directory.FullName, StatusFile.FileName);
        var first = DateTime.UtcNow.AddSeconds(-10);
        File.SetLastWriteTimeUtc(path, first);
        Assert.Equal(1, watch.Latest()?.Pid);

        // Changed under the same time (as a write within one tick of the file clock would be): the last parse stands.
        StatusFile.Write(_directory.FullName, Status(2));
        File.SetLastWriteTimeUtc(path, first);
        Assert.Equal(1, watch.Latest()?.Pid);

        // Rewritten later: read again.
        File.SetLastWriteTimeUtc(path, first.AddSeconds(1));
        Assert.Equal(2, watch.Latest()?.Pid);

        // Unreadable: nothing, and read again as soon as it is whole.
        File.WriteAllText(path, "{ torn");
        Assert.Null(watch.Latest());
        StatusFile.Write(_directory.FullName, Status(3));
        File.SetLastWriteTimeUtc(path, first.AddSeconds(2));
        Assert.Equal(3, watch.Latest()?.Pid);
    }
}
