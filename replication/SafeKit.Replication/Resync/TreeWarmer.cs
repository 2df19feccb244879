using System.Collections.Concurrent;
using SafeKit.Native.Files;
using SafeKit.Native.Fuse;

namespace SafeKit.Replication.Resync;

/// <summary>
/// Reads ahead, in the background and many at once, what a pass over changed paths is about to
/// look at: each path's inode, a changed directory's entries, a changed file's contents (posix_fadvise
/// WILLNEED). On a cold disk the pass itself looks at one path after another; with the metadata
/// and contents already on their way, its reads wait for the disk much less. Best effort, silent.
/// The readers are threads of their own, started while there is work and ending when there is
/// none: each blocks on the disk, and blocking thread-pool workers (two on a 2-core node, more
/// only added slowly) would stall the pass they are meant to feed.
/// </summary>
internal sealed class TreeWarmer
{
    /// <summary>Lookups in flight: a virtual or SSD disk serves a deep queue about as fast as one read.</summary>
    private const int Readers = 32;

    private readonly string _root;
    private readonly bool _smallContents;
    private readonly ConcurrentQueue<KeyValuePair<string, ChangeScope>> _queue = new();
    private int _readers;

    /// <param name="smallContents">Also read ahead the contents of files of one block (else only their inodes).</param>
    public TreeWarmer(string root, bool smallContents)
    {
        _root = root;
        _smallContents = smallContents;
    }

    /// <summary>Queues <paramref name="paths"/> (relative to the root) and starts readers for them.</summary>
    public void Add(IEnumerable<KeyValuePair<string, ChangeScope>> paths)
    {
        foreach (var path in paths)
        {
            _queue.Enqueue(path);
        }

        for (var wanted = Math.Min(Readers, _queue.Count); wanted > 0 && TryAddReader(); wanted--)
        {
            new Thread(Read) { IsBackground = true, Name = "resync warmer" }.Start();
        }
    }

    private bool TryAddReader()
    {
        var readers = Volatile.Read(ref _readers);
        while (readers < Readers)
        {
            var seen = Interlocked.CompareExchange(ref _readers, readers + 1, readers);
            if (seen == readers)
            {
                return true;
            }

            readers = seen;
        }

        return false;
    }

    private void Read()
    {
        do
        {
            while (_queue.TryDequeue(out var change))
            {
                Warm(change.Key, change.Value);
            }

            Interlocked.Decrement(ref _readers);
        }

        // Paths queued after the queue looked empty, while every reader still counted: carry on.
        while (!_queue.IsEmpty && TryAddReader());
    }

    private void Warm(string relative, ChangeScope scope)
    {
        var path = relative.Length == 0 ? _root : Path.Join(_root, relative);
        try
        {
            if (!FileTree.TryLstat(path, out var entry))
            {
                return;
            }

            if (entry.Kind == EntryKind.Directory && scope != ChangeScope.Entry)
            {
                _ = FileTree.List(path); // Every entry's inode.
            }
            else if (entry.Kind == EntryKind.Regular && (_smallContents || entry.Size > ResyncSource.BlockSize))
            {
                FileTree.Prefetch(path);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or SafeKit.Native.Interop.NativeException)
        {
            // Gone or unreadable: the pass finds out for itself.
        }
    }
}
