using System.Text.Json;
using System.Text.Json.Serialization;

namespace SafeKit.Replication.Mirror;

/// <summary>
/// What a mirror node remembers across crashes about its copy of the data: the generation it
/// holds and the one it came from. Both nodes hold the same generation while they mirror; a node
/// that starts taking writes without its peer (ALONE) first moves to a fresh generation whose
/// parent is the shared one. Comparing two nodes' records then says which copy is newer: the one
/// whose parent is the other's current generation. Neither → the copies diverged (both ran alone).
/// </summary>
/// <param name="Current">The generation this node's data is at (<see cref="Guid.Empty"/>: the empty start every pair shares).</param>
/// <param name="Parent">The generation it moved from when it last went alone.</param>
/// <param name="Diverging">True once Current was created alone: the peer does not have it (yet).</param>
/// <param name="LastRole">The role the node last held (PRIM, SECOND, ALONE, WAIT, or STALE once it learnt its copy is older): decides whether it may start without its peer.</param>
/// <param name="Forced">This copy was chosen by <c>prim --force</c>: it outranks a peer whose copy diverged (split brain), which is resynchronised from it; cleared once the peer follows again.</param>
/// <param name="KeptAside">On the discarded side of a split brain: where this node kept its own changes before being resynchronised (null: not done).</param>
public sealed record MirrorRecord(Guid Current, Guid Parent, bool Diverging, string LastRole, bool Forced = false, string? KeptAside = null)
{
    public const string FileName = "mirror.json";

    /// <summary>The last role of a node that learnt its peer went on alone from its copy: it never serves without that peer.</summary>
    public const string Stale = "STALE";

    /// <summary>A pair's start: empty data, nothing known.</summary>
    public static MirrorRecord Fresh { get; } = new(Guid.Empty, Guid.Empty, false, "NONE");

    /// <summary>How this node's data relates to the peer's.</summary>
    public DataRelation CompareWith(Guid peerCurrent, Guid peerParent)
    {
        if (peerCurrent == Current)
        {
            return DataRelation.Same;
        }

        if (peerParent == Current && peerCurrent != Guid.Empty)
        {
            return DataRelation.Older;
        }

        return Parent == peerCurrent && Current != Guid.Empty ? DataRelation.Newer : DataRelation.Diverged;
    }

    /// <summary>The record of a node that starts taking writes alone: a new generation, unless it already holds one the peer lacks.</summary>
    /// (A copy chosen by <c>prim --force</c> stays chosen; what was kept aside belongs to the history left.)
    public MirrorRecord GoneAlone() => Diverging ? this with { LastRole = "ALONE" } : this with { Current = Guid.NewGuid(), Parent = Current, Diverging = true, LastRole = "ALONE", KeptAside = null };

    /// <summary>
    /// A new generation from this one, even if the node already went alone: after a handover the
    /// peer holds this node's current generation, so changes it does not get need one of their own.
    /// </summary>
    public MirrorRecord Branched() => this with { Current = Guid.NewGuid(), Parent = Current, Diverging = true, LastRole = "ALONE", KeptAside = null };

    /// <summary>Reads the record in <paramref name="directory"/> (<see cref="Fresh"/> when there is none).</summary>
    /// <exception cref="InvalidDataException">The file exists but cannot be read: the node must not guess.</exception>
    public static MirrorRecord Load(string directory)
    {
        var path = Path.Combine(directory, FileName);
        if (!File.Exists(path))
        {
            return Fresh;
        }

        try
        {
            return JsonSerializer.Deserialize(File.ReadAllText(path), MirrorRecordJson.Default.MirrorRecord) ?? throw new InvalidDataException($"{path} is empty");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is damaged ({e.Message}); this node cannot tell how new its data is", e);
        }
    }

    /// <summary>Writes the record durably (temporary file, fsync, rename, fsync of the directory) before returning.</summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, FileName);
        var temporary = path + ".tmp";
        using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            JsonSerializer.Serialize(stream, this, MirrorRecordJson.Default.MirrorRecord);
            stream.Flush(flushToDisk: true);
        }

        File.Move(temporary, path, overwrite: true);
        SafeKit.Native.Files.DirectorySync.Fsync(directory);
    }
}

/// <summary>How this node's data relates to its peer's.</summary>
public enum DataRelation
{
    /// <summary>Identical generations: the same data.</summary>
    Same,

    /// <summary>The peer went on alone from this node's data: this copy is stale.</summary>
    Older,

    /// <summary>This node went on alone from the peer's data: the peer's copy is stale.</summary>
    Newer,

    /// <summary>Unrelated or both went on alone: split brain, an administrator chooses.</summary>
    Diverged,
}

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(MirrorRecord))]
internal sealed partial class MirrorRecordJson : JsonSerializerContext;
