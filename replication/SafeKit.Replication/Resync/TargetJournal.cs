using SafeKit.Native.Fuse;

namespace SafeKit.Replication.Resync;

/// <summary>
/// What a resync target says about its copy: the generation its data is at, and its own change
/// journal — the paths it may have changed beyond that generation (it crashed as PRIM with
/// changes in flight), complete or not. A target that never served since its copy was last made
/// equal has no journal: <see cref="Base"/> is then <see cref="Data"/>, complete, with no path.
/// </summary>
public sealed record TargetJournal(Guid Data, Guid Base, bool Complete, ChangeSet Paths)
{
    /// <summary>The target's report for its data directory's journal as found on disk.</summary>
    public static TargetJournal Of(Guid data, JournalContents? journal) =>
        journal is null ? new TargetJournal(data, data, true, ChangeSet.Empty) : new TargetJournal(data, journal.Base, journal.Complete, journal.Paths());
}
