using SafeKit.Native.Files;
using SafeKit.Native.Fuse;

namespace SafeKit.Replication.Resync;

/// <summary>
/// Reads ahead, in the background and several at once, what a pass over changed paths is about to
/// look at: each path's inode, a changed directory's entries, a changed file's contents (posix_fadvise
/// WILLNEED). On a cold disk the pass itself looks at one path after another; with the metadata
/// and contents already on their way, its reads wait for the disk much less. Best effort, silent.
/// </summary>
internal static class TreeWarmer
{
    private const int Readers = 8;

    /// <summary>Starts warming <paramref name="paths"/> under <paramref name="root"/>; the task ends when all were asked for.</summary>
    public static Task Start(string root, IReadOnlyCollection<KeyValuePair<string, ChangeScope>> paths) =>
        paths.Count == 0 ? Task.CompletedTask : Task.Run(() => Parallel.ForEach(paths, new ParallelOptions { MaxDegreeOfParallelism = Readers }, change => Warm(root, change.Key, change.Value)));

    private static void Warm(string root, string relative, ChangeScope scope)
    {
        var path = relative.Length == 0 ? root : Path.Join(root, relative);
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
            else if (entry.Kind == EntryKind.Regular)
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
