using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using SafeKit.Native.Files;

namespace SafeKit.Replication.Resync;

/// <summary>An entry of a listing: its metadata, a symlink's target, its extended attributes (ACLs included; <see cref="ExtendedAttributes"/>).</summary>
internal readonly record struct ListedEntry(TreeEntry Entry, string? Target, byte[]? Xattrs);

/// <summary>
/// One hash of a directory's listing as a resync compares it — names, kinds, permissions, owners,
/// sizes, times, link counts, symlink targets, extended attributes — so both ends can tell in 16 bytes whether a
/// directory needs its entries compared at all. Subdirectories count by name, kind, permissions
/// and owner only: their times move with their own contents, which their own listing covers.
/// </summary>
internal static class ListingDigest
{
    /// <param name="entries">Sorted by name (ordinal), as <see cref="FileTree.List"/> returns them.</param>
    public static UInt128 Of(IReadOnlyList<ListedEntry> entries)
    {
        var hash = new XxHash128();
        Span<byte> fields = stackalloc byte[49];
        foreach (var (entry, target, xattrs) in entries)
        {
            hash.Append(Encoding.UTF8.GetBytes(entry.Name));
            var directory = entry.Kind == EntryKind.Directory;
            fields[0] = (byte)entry.Kind;
            BinaryPrimitives.WriteUInt32LittleEndian(fields[1..], entry.Mode);
            BinaryPrimitives.WriteUInt32LittleEndian(fields[5..], entry.Uid);
            BinaryPrimitives.WriteUInt32LittleEndian(fields[9..], entry.Gid);
            BinaryPrimitives.WriteInt64LittleEndian(fields[13..], directory ? 0 : entry.Size);
            BinaryPrimitives.WriteInt64LittleEndian(fields[21..], directory ? 0 : entry.MtimeNs);
            BinaryPrimitives.WriteUInt64LittleEndian(fields[29..], entry.Kind == EntryKind.Regular ? entry.Links : 0);
            BinaryPrimitives.WriteUInt64LittleEndian(fields[37..], (ulong)(target?.Length ?? -1));
            BinaryPrimitives.WriteInt32LittleEndian(fields[45..], xattrs?.Length ?? 0);
            hash.Append(fields);
            if (target is not null)
            {
                hash.Append(Encoding.UTF8.GetBytes(target));
            }

            if (xattrs is not null)
            {
                hash.Append(xattrs);
            }
        }

        return hash.GetCurrentHashAsUInt128();
    }

    /// <summary>The entries a resync compares (sockets and devices left out; symlinks with their targets); null when the directory is gone.</summary>
    public static List<ListedEntry>? Read(string directory)
    {
        List<TreeEntry> listed;
        try
        {
            listed = FileTree.List(directory);
        }
        catch (DirectoryNotFoundException)
        {
            return null;
        }

        var entries = new List<ListedEntry>(listed.Count);
        foreach (var entry in listed)
        {
            if (entry.Kind == EntryKind.Other)
            {
                continue;
            }

            string? target = null;
            if (entry.Kind == EntryKind.Symlink && (target = new FileInfo(Path.Join(directory, entry.Name)).LinkTarget) is null)
            {
                continue; // Gone since the listing.
            }

            entries.Add(new ListedEntry(entry, target, Xattrs(Path.Join(directory, entry.Name), entry.Kind)));
        }

        return entries;
    }

    /// <summary>An entry's extended attributes as a resync carries them (none for a symlink: Linux keeps user attributes off them).</summary>
    public static byte[]? Xattrs(string path, EntryKind kind) => kind == EntryKind.Symlink ? null : ExtendedAttributes.Read(path);
}
