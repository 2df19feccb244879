using System.Buffers.Binary;
using System.Text;
using SafeKit.Native.Interop;

namespace SafeKit.Native.Files;

/// <summary>
/// An entry's extended attributes (user.*, trusted.*, security.*, and POSIX ACLs as
/// system.posix_acl_access / _default) as one canonical blob — sorted by name; each name (UTF-8),
/// a zero byte, a 32-bit little-endian length and the value — so two copies compare by bytes and
/// a resync carries them as is. Read and written without following a symlink.
/// </summary>
public static unsafe class ExtendedAttributes
{
    private const int NoData = 61; // ENODATA
    private const int NotSupported = 95; // EOPNOTSUPP
    private const int Range = 34; // ERANGE: it grew between the size query and the read

    /// <summary>The blob of <paramref name="path"/>'s attributes; null when it has none (or is gone, or its file system has none).</summary>
    /// <exception cref="NativeException">Reading them failed otherwise.</exception>
    public static byte[]? Read(string path)
    {
        fixed (byte* p = Utf8(path))
        {
            var names = Call((nint)p, 0, path);
            if (names is not { Length: > 0 })
            {
                return null;
            }

            var sorted = Encoding.UTF8.GetString(names).Split('\0', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal).ToList();
            using var blob = new MemoryStream();
            Span<byte> length = stackalloc byte[4];
            foreach (var name in sorted)
            {
                byte[]? value;
                fixed (byte* n = Utf8(name))
                {
                    value = Call((nint)p, (nint)n, path);
                }

                if (value is null)
                {
                    continue; // Removed since it was listed.
                }

                blob.Write(Encoding.UTF8.GetBytes(name));
                blob.WriteByte(0);
                BinaryPrimitives.WriteInt32LittleEndian(length, value.Length);
                blob.Write(length);
                blob.Write(value);
            }

            return blob.Length == 0 ? null : blob.ToArray();
        }
    }

    /// <summary>Makes <paramref name="path"/>'s attributes exactly <paramref name="wanted"/>: sets what differs, removes what is not there.</summary>
    /// <exception cref="NativeException">Setting or removing one failed.</exception>
    /// <exception cref="InvalidDataException">The blob is malformed.</exception>
    public static void Apply(string path, byte[]? wanted)
    {
        var current = Parse(Read(path));
        var target = Parse(wanted);
        fixed (byte* p = Utf8(path))
        {
            foreach (var name in current.Keys.Where(n => !target.ContainsKey(n)))
            {
                fixed (byte* n = Utf8(name))
                {
                    if (Posix.LRemoveXattr(p, n) != 0 && Posix.Errno != NoData)
                    {
                        throw new NativeException($"removing attribute {name} of {path}", Posix.Errno);
                    }
                }
            }

            foreach (var (name, value) in target)
            {
                if (current.TryGetValue(name, out var have) && have.AsSpan().SequenceEqual(value))
                {
                    continue;
                }

                fixed (byte* n = Utf8(name))
                fixed (byte* v = value)
                {
                    if (Posix.LSetXattr(p, n, v, (nuint)value.Length, 0) != 0)
                    {
                        throw new NativeException($"setting attribute {name} of {path}", Posix.Errno);
                    }
                }
            }
        }
    }

    /// <summary>The attributes in a blob, by name.</summary>
    /// <exception cref="InvalidDataException">The blob is malformed.</exception>
    public static Dictionary<string, byte[]> Parse(byte[]? blob)
    {
        var attributes = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        var rest = blob.AsSpan();
        while (rest.Length > 0)
        {
            var end = rest.IndexOf((byte)0);
            if (end <= 0 || rest.Length < end + 5)
            {
                throw new InvalidDataException("a malformed extended-attribute list");
            }

            var name = Encoding.UTF8.GetString(rest[..end]);
            var length = BinaryPrimitives.ReadInt32LittleEndian(rest[(end + 1)..]);
            if (length < 0 || rest.Length < end + 5 + length)
            {
                throw new InvalidDataException($"a malformed extended attribute {name}");
            }

            attributes[name] = rest.Slice(end + 5, length).ToArray();
            rest = rest[(end + 5 + length)..];
        }

        return attributes;
    }

    /// <summary>
    /// The name list (<paramref name="name"/> 0) or one value: a size query then a read, again if
    /// it grew meanwhile; null when there is nothing (ENODATA, ENOENT, unsupported).
    /// </summary>
    private static byte[]? Call(nint path, nint name, string what)
    {
        for (var attempt = 0; attempt < 4; attempt++)
        {
            var needed = name == 0 ? Posix.LListXattr((byte*)path, null, 0) : Posix.LGetXattr((byte*)path, (byte*)name, null, 0);
            if (needed < 0)
            {
                return Posix.Errno is NoData or NotSupported or 2 or 20 ? null : throw new NativeException($"extended attributes of {what}", Posix.Errno);
            }

            if (needed == 0)
            {
                return []; // Most files: no attribute, and no second call to read none.
            }

            var buffer = new byte[needed];
            fixed (byte* b = buffer)
            {
                var got = name == 0 ? Posix.LListXattr((byte*)path, b, (nuint)buffer.Length) : Posix.LGetXattr((byte*)path, (byte*)name, b, (nuint)buffer.Length);
                if (got >= 0)
                {
                    return buffer[..(int)got];
                }
            }

            if (Posix.Errno != Range)
            {
                return Posix.Errno is NoData or NotSupported or 2 or 20 ? null : throw new NativeException($"extended attributes of {what}", Posix.Errno);
            }
        }

        throw new NativeException($"extended attributes of {what} keep changing", Range);
    }

    private static byte[] Utf8(string text)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(text) + 1];
        Encoding.UTF8.GetBytes(text, bytes);
        return bytes;
    }
}
