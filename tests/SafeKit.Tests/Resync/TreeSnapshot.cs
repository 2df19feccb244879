using System.Security.Cryptography;
using SafeKit.Native.Files;

namespace SafeKit.Tests.Resync;

/// <summary>
/// Everything a copy must reproduce, per relative path: kind, permission bits, owner, size,
/// modification time (ns), content hash or link target, and which paths share an inode.
/// Two trees are identical when their snapshots are equal line by line.
/// </summary>
internal static class TreeSnapshot
{
    public static List<string> Of(string root, bool withTimes = true)
    {
        var lines = new List<string>();
        var groups = new Dictionary<(ulong, ulong), string>();
        void Walk(string relative)
        {
            var directory = relative.Length == 0 ? root : Path.Join(root, relative);
            FileTree.TryLstat(directory, out var self);
            lines.Add($"{(relative.Length == 0 ? "." : relative)} dir {Convert.ToString(self.Mode, 8)} {self.Uid}:{self.Gid}{(withTimes ? $" {self.MtimeNs}" : "")}");
            foreach (var entry in FileTree.List(directory))
            {
                var path = relative.Length == 0 ? entry.Name : $"{relative}/{entry.Name}";
                var full = Path.Join(root, path);
                switch (entry.Kind)
                {
                    case EntryKind.Directory:
                        Walk(path);
                        break;
                    case EntryKind.Regular:
                        var group = "";
                        if (entry.Links > 1)
                        {
                            group = groups.TryGetValue((entry.Device, entry.Inode), out var first) ? $" linked-to {first}" : "";
                            groups.TryAdd((entry.Device, entry.Inode), path);
                        }

                        lines.Add($"{path} file {Convert.ToString(entry.Mode, 8)} {entry.Uid}:{entry.Gid} {entry.Size}{(withTimes ? $" {entry.MtimeNs}" : "")} {Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(full)))}{group}");
                        break;
                    case EntryKind.Symlink:
                        lines.Add($"{path} symlink {entry.Uid}:{entry.Gid}{(withTimes ? $" {entry.MtimeNs}" : "")} -> {new FileInfo(full).LinkTarget}");
                        break;
                    default:
                        lines.Add($"{path} {entry.Kind} {Convert.ToString(entry.Mode, 8)} {entry.Uid}:{entry.Gid}{(withTimes ? $" {entry.MtimeNs}" : "")}");
                        break;
                }
            }
        }

        Walk("");
        return lines;
    }
}
