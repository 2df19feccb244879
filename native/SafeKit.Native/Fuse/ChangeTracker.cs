namespace SafeKit.Native.Fuse;

/// <summary>How far a resync must look at a changed path.</summary>
public enum ChangeScope : byte
{
    /// <summary>The entry itself changed (content, size, metadata): compare it even if its size and time match.</summary>
    Entry = 1,

    /// <summary>Names were added to or removed from this directory, or its own metadata changed.</summary>
    Directory = 2,

    /// <summary>Something arrived here by rename: compare everything under it.</summary>
    Tree = 3,
}

/// <summary>
/// The paths (relative to the data directory) a node changed since tracking began or since the
/// last <see cref="ChangeTracker.Take"/>. A path is the one the changed file had when the change was
/// made; one renamed since is also covered by the rename's own entries (both directories, and the
/// new name as a tree).
/// </summary>
public sealed class ChangeSet
{
    internal ChangeSet(Dictionary<string, ChangeScope> paths)
    {
        Paths = paths;
    }

    public IReadOnlyDictionary<string, ChangeScope> Paths { get; }

    public int Count => Paths.Count;

    /// <summary>No path.</summary>
    public static ChangeSet Empty { get; } = new(new Dictionary<string, ChangeScope>(StringComparer.Ordinal));

    /// <summary>A set built from paths and scopes received from a peer.</summary>
    public static ChangeSet Of(IEnumerable<KeyValuePair<string, ChangeScope>> paths)
    {
        ArgumentNullException.ThrowIfNull(paths);
        var all = new Dictionary<string, ChangeScope>(StringComparer.Ordinal);
        foreach (var (path, scope) in paths)
        {
            ScopeMap.Widen(all, path, scope);
        }

        return new ChangeSet(all);
    }

    /// <summary>
    /// Whether <paramref name="relative"/> still names the file it named before these changes:
    /// nothing arrived by rename at it or above it, and no name was added to or removed from its
    /// directory (a create, an unlink, a link or a rename there may have put another file under it).
    /// </summary>
    public bool KeepsName(string relative)
    {
        ArgumentNullException.ThrowIfNull(relative);
        var path = relative;
        var parent = true;
        while (true)
        {
            var slash = path.LastIndexOf('/');
            var up = slash < 0 ? "" : path[..slash];
            if (Paths.TryGetValue(path, out var scope) && scope == ChangeScope.Tree)
            {
                return false;
            }

            if (parent && Paths.TryGetValue(up, out var above) && above >= ChangeScope.Directory)
            {
                return false;
            }

            if (path.Length == 0)
            {
                return true;
            }

            parent = false;
            path = up;
        }
    }

    /// <summary>Both sets in one (each path with the wider of its scopes): one pass covers them.</summary>
    public static ChangeSet Union(ChangeSet first, ChangeSet second)
    {
        ArgumentNullException.ThrowIfNull(first);
        ArgumentNullException.ThrowIfNull(second);
        var paths = new Dictionary<string, ChangeScope>(first.Paths, StringComparer.Ordinal);
        ScopeMap.WidenAll(paths, second.Paths);
        return new ChangeSet(paths);
    }
}

/// <summary>Collects changed paths for the next resync pass (thread-safe; called under the file system's sequencing lock).</summary>
internal sealed class ChangeTracker
{
    private readonly Lock _gate = new();
    private Dictionary<string, ChangeScope> _paths = new(StringComparer.Ordinal);
    private HashSet<ulong> _noted = [];

    /// <summary>Whether the node was already noted as changed in this round (a write storm pays the path lookup once).</summary>
    public bool AlreadyNoted(ulong node)
    {
        lock (_gate)
        {
            return _noted.Contains(node);
        }
    }

    public void Note(string relative, ChangeScope scope, ulong node = 0)
    {
        lock (_gate)
        {
            ScopeMap.Widen(_paths, relative, scope);

            if (node != 0)
            {
                _noted.Add(node);
            }
        }
    }

    /// <summary>What changed so far; tracking goes on from empty.</summary>
    public ChangeSet Take()
    {
        lock (_gate)
        {
            var taken = _paths;
            _paths = new Dictionary<string, ChangeScope>(StringComparer.Ordinal);
            _noted = [];
            return new ChangeSet(taken);
        }
    }
}

/// <summary>Maps of paths (or nodes) to the widest scope noted for each: one rule for every record of changes.</summary>
internal static class ScopeMap
{
    /// <summary>Notes <paramref name="scope"/> for <paramref name="key"/> unless a wider one is there; true when it changed the map.</summary>
    public static bool Widen<TKey>(Dictionary<TKey, ChangeScope> map, TKey key, ChangeScope scope)
        where TKey : notnull
    {
        if (map.TryGetValue(key, out var known) && known >= scope)
        {
            return false;
        }

        map[key] = scope;
        return true;
    }

    public static void WidenAll(Dictionary<string, ChangeScope> map, IReadOnlyDictionary<string, ChangeScope> more)
    {
        foreach (var (path, scope) in more)
        {
            Widen(map, path, scope);
        }
    }
}
