using System.Globalization;
using SafeKit.Native.Fuse;
using SafeKit.Native.Host;

namespace SafeKit.Daemon;

/// <summary>
/// The discarded side of a split brain keeps its own changes before the chosen copy overwrites
/// them: under <c>STATE/discarded/TIME-GENERATION/</c>, the replicated directories' files as this
/// node had them (<c>cp -a</c>: contents, owners, modes, times, links), with a MANIFEST. From the
/// change journal when it lists every change since the shared generation (only the changed files,
/// directories' direct entries and renamed trees); otherwise the whole copy.
/// </summary>
internal static class SplitBrainKeeper
{
    private const int PathsPerCopy = 500;

    /// <summary>Copies what this node changed since <paramref name="shared"/>; returns the directory it is in.</summary>
    /// <exception cref="InvalidOperationException">A copy failed (the message says which).</exception>
    public static string Keep(string stateDirectory, Guid current, Guid shared, IEnumerable<MirrorDirectory> directories)
    {
        var destination = Path.Combine(stateDirectory, "discarded", string.Create(CultureInfo.InvariantCulture, $"{DateTime.UtcNow:yyyyMMdd'T'HHmmss'Z'}-{current:N}"));
        var manifest = new List<string>
        {
            $"What node kept of its own copy when the split brain was resolved for the peer's copy (prim --force there).",
            $"Its generation: {current}; the generation both last shared: {shared}.",
        };
        foreach (var directory in directories)
        {
            var data = directory.Config.Data;
            var target = Directory.CreateDirectory(Path.Combine(destination, directory.Config.Path.Trim('/'))).FullName;
            var journal = ChangeJournal.Read(directory.JournalDirectory);
            if (journal is { Complete: true } && journal.Base == shared)
            {
                var paths = Selected(data, journal.Paths().Paths);
                for (var i = 0; i < paths.Count; i += PathsPerCopy)
                {
                    Copy(data, ["-a", "--parents", "--no-dereference", "-t", target, "--", .. paths.Skip(i).Take(PathsPerCopy)]);
                }

                manifest.Add($"{directory.Config.Path}: {paths.Count} paths this node changed (from its change journal).");
                manifest.AddRange(paths.Select(p => "  " + p));
            }
            else
            {
                Copy(data, ["-a", "--no-dereference", "-T", ".", target]);
                manifest.Add($"{directory.Config.Path}: the whole copy (the change journal does not list every change since the shared generation).");
            }
        }

        File.WriteAllLines(Path.Combine(destination, "MANIFEST"), manifest);
        return destination;
    }

    /// <summary>The existing paths to copy: changed entries, a changed directory's direct entries, renamed trees.</summary>
    private static List<string> Selected(string data, IReadOnlyDictionary<string, ChangeScope> changes)
    {
        var selected = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var (path, scope) in changes)
        {
            var full = path.Length == 0 ? data : Path.Join(data, path);
            if (scope == ChangeScope.Directory && Directory.Exists(full) && !File.GetAttributes(full).HasFlag(FileAttributes.ReparsePoint))
            {
                foreach (var entry in new DirectoryInfo(full).EnumerateFileSystemInfos())
                {
                    if (entry is not DirectoryInfo || entry.LinkTarget is not null)
                    {
                        selected.Add(Path.GetRelativePath(data, entry.FullName));
                    }
                }
            }
            else if (path.Length > 0 && Path.Exists(full))
            {
                selected.Add(path);
            }
        }

        return [.. selected];
    }

    private static void Copy(string workingDirectory, string[] arguments)
    {
        var result = CommandRunner.Run("cp", arguments, timeout: TimeSpan.FromHours(6), workingDirectory: workingDirectory);
        if (!result.Succeeded)
        {
            throw new InvalidOperationException($"keeping this node's copy aside failed: cp {string.Join(' ', arguments.Take(6))}…: {result.Error.Trim()}");
        }
    }
}
