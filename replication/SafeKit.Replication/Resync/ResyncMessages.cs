using System.Text;
using SafeKit.Native.Files;

namespace SafeKit.Replication.Resync;

/// <summary>
/// The requests of a resync (source → target); each gets one response, in order, that starts
/// with the same type byte and a status (0, or an errno with a message naming the path).
/// <code>
/// Dir     path, the directory's own metadata, its entries (name, kind, mode, uid, gid, size,
///         mtime, hard-link key, how it is compared (<see cref="EntryCompare"/>), symlink
///         target, xattrs) → the regular files whose content differs
///         (name, the target's size; -1 when new); to a compare-only target (a verify): the
///         regular files whose blocks to compare, then every other difference (name, words)
/// Hashes  path, block size, first block, count → target's size, one XxHash128 per block
/// Data    path, last?, final size and metadata, blocks (offset, length, zstd or raw bytes) → ok
/// Finish  → the target's copy is durable (syncfs)
/// Journal → the target's data generation and its own change journal (base, complete?, paths):
///           what its copy may hold that the source's lacks (it crashed as PRIM)
/// Warm    paths and scopes a pass is about to look at → ok at once; the target reads their
///         inodes and contents ahead in the background
/// Options the features the source offers (<see cref="ResyncFeatures"/>), its first request,
///         with nothing else in flight → the ones the target accepts (with
///         <see cref="ResyncFeatures.ParallelStreams"/>: and the session's token); both
///         directions switch right after this exchange
/// Stream  a session token: the first request of a source's extra stream, before its options →
///         ok, the connection now carries hashes and data of that session's files
/// </code>
/// </summary>
internal enum ResyncMessageType : byte
{
    Dir = 1,
    Hashes = 2,
    Data = 3,
    Finish = 4,
    Journal = 5,
    Warm = 6,
    Options = 7,
    Stream = 8,
}

/// <summary>
/// How the source compares a listed entry, sent with it (one byte; a target of an earlier
/// release reads it as a boolean: forced or not).
/// </summary>
internal enum EntryCompare : byte
{
    /// <summary>By size and modification time: equal ones are left alone.</summary>
    Listed = 0,

    /// <summary>Changed since the copies were equal: compared even if its size and time match.</summary>
    Forced = 1,

    /// <summary>Forced, and the source knows exactly which bytes changed: when its copy is stale it sends only those, asking no hashes.</summary>
    ByRanges = 2,
}

/// <summary>The options exchange (<see cref="ResyncMessageType.Options"/>), read the same way on both ends.</summary>
internal static class OptionsAnswer
{
    /// <summary>The features this release has: what a source offers and a target takes.</summary>
    public const ResyncFeatures Supported = ResyncFeatures.CompressedStream | ResyncFeatures.ParallelStreams;

    /// <summary>What an options answer accepted (nothing when it is an error: a target of an earlier release).</summary>
    public static ResyncFeatures Accepted(byte[] answer)
    {
        using var reader = new MessageReader(answer);
        return reader.Type == ResyncMessageType.Options && answer.Length >= 9 && reader.Body.ReadInt32() == 0
            ? (ResyncFeatures)reader.Body.ReadInt32()
            : ResyncFeatures.None;
    }

    /// <summary>The session token an answer that accepted <see cref="ResyncFeatures.ParallelStreams"/> carries after the features.</summary>
    public static Guid? Token(byte[] answer) =>
        Accepted(answer).HasFlag(ResyncFeatures.ParallelStreams) && answer.Length >= 25 ? new Guid(answer.AsSpan(9, 16)) : null;
}

/// <summary>An entry as the source describes it. A regular file with several links carries its (device, inode) as key.</summary>
internal readonly record struct ResyncEntry(TreeEntry Entry, string? SymlinkTarget)
{
    public bool HasLinkKey => Entry.Kind == EntryKind.Regular && Entry.Links > 1;
}

/// <summary>Builds one message.</summary>
internal sealed class MessageWriter : IDisposable
{
    private readonly MemoryStream _stream = new();
    private readonly BinaryWriter _writer;

    public MessageWriter(ResyncMessageType type)
    {
        _writer = new BinaryWriter(_stream, Encoding.UTF8, leaveOpen: true);
        _writer.Write((byte)type);
    }

    public BinaryWriter Body => _writer;

    public long Length => _stream.Length;

    public void Entry(TreeEntry entry)
    {
        _writer.Write((byte)entry.Kind);
        _writer.Write(entry.Mode);
        _writer.Write(entry.Uid);
        _writer.Write(entry.Gid);
        _writer.Write(entry.Size);
        _writer.Write(entry.MtimeNs);
    }

    public byte[] ToArray()
    {
        _writer.Flush();
        return _stream.ToArray();
    }

    public void Dispose()
    {
        _writer.Dispose();
        _stream.Dispose();
    }
}

/// <summary>Reads one message; a short or malformed one throws <see cref="InvalidDataException"/>.</summary>
internal sealed class MessageReader : IDisposable
{
    private readonly BinaryReader _reader;

    public MessageReader(byte[] message)
    {
        _reader = new BinaryReader(new MemoryStream(message, writable: false), Encoding.UTF8);
        if (message.Length == 0)
        {
            throw new InvalidDataException("an empty resync message");
        }

        Type = (ResyncMessageType)_reader.ReadByte();
    }

    public ResyncMessageType Type { get; }

    public BinaryReader Body => _reader;

    public TreeEntry Entry(string name)
    {
        var kind = (EntryKind)_reader.ReadByte();
        return new TreeEntry(name, kind, _reader.ReadUInt32(), _reader.ReadUInt32(), _reader.ReadUInt32(), _reader.ReadInt64(), _reader.ReadInt64(), 0, 0, 1);
    }

    /// <summary>A relative path as sent: no absolute path, no "..", no empty component (a peer must not escape the data directory).</summary>
    public string RelativePath()
    {
        var path = _reader.ReadString();
        if (path.Length > 0 && (path[0] == '/' || path.Split('/').Any(static c => c is "" or "." or "..")))
        {
            throw new InvalidDataException($"the resync source sent an unsafe path '{path}'");
        }

        return path;
    }

    /// <summary>An entry name: one component.</summary>
    public string Name()
    {
        var name = _reader.ReadString();
        return name is "" or "." or ".." || name.Contains('/', StringComparison.Ordinal)
            ? throw new InvalidDataException($"the resync source sent an unsafe name '{name}'")
            : name;
    }

    /// <summary>An entry name, or "" for the directory itself.</summary>
    public string NameOrSelf()
    {
        var name = _reader.ReadString();
        return name.Length == 0 || (name is not ("." or "..") && !name.Contains('/', StringComparison.Ordinal))
            ? name
            : throw new InvalidDataException($"the resync peer sent an unsafe name '{name}'");
    }

    public void Dispose() => _reader.Dispose();
}
