namespace SafeKit.ControlPlane.Status;

/// <summary>
/// A node's status file looked at often (a wait loop): parsed again only when it was rewritten.
/// The daemon rewrites it about once a second; a wait polls much faster so it sees the change at
/// once, and parsing on every look would make the polling process busy beside the node it waits for.
/// </summary>
public sealed class StatusFileWatch(string directory)
{
    private readonly string _path = Path.Combine(directory, StatusFile.FileName);
    private DateTime _written = DateTime.MinValue;
    private NodeStatus? _latest;

    /// <summary>The status as last written, or null while absent or unreadable.</summary>
    public NodeStatus? Latest()
    {
        // Written whole by a rename, with a new time: never read torn. Two writes within one tick of
        // the kernel's file clock (a few ms) carry the same time; the second is read at the next.
        var written = File.GetLastWriteTimeUtc(_path);
        if (written != _written || _latest is null)
        {
            _latest = StatusFile.TryRead(directory);
            _written = _latest is null ? DateTime.MinValue : written;
        }

        return _latest;
    }
}
