using System.Security.Cryptography;
using System.Text;

namespace SafeKit.Api;

/// <summary>
/// The API tokens of a node, from a root-only file with one <c>ROLE TOKEN</c> per line (roles:
/// admin, read; '#' starts a comment). Tokens are kept as SHA-256 digests and every presented token
/// is compared with all of them in constant time, so neither timing nor a memory dump gives one away.
/// </summary>
public sealed class TokenStore
{
    private readonly List<(byte[] Digest, ApiRole Role)> _tokens;

    private TokenStore(List<(byte[] Digest, ApiRole Role)> tokens)
    {
        _tokens = tokens;
    }

    /// <summary>Reads the tokens file; when it does not exist and <paramref name="createIfMissing"/>, writes one with a new admin and a new read token.</summary>
    /// <exception cref="InvalidOperationException">The file is unreadable, malformed, empty or readable by others than its owner.</exception>
    public static TokenStore Load(string path, bool createIfMissing)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            if (!createIfMissing)
            {
                throw new InvalidOperationException($"{path}: API tokens file not found");
            }

            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            var text = $"# safekitd API tokens: ROLE TOKEN (roles: admin, read)\nadmin {NewToken()}\nread {NewToken()}\n";
            using (var stream = new FileStream(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite }))
            {
                stream.Write(Encoding.ASCII.GetBytes(text));
            }
        }

        if ((File.GetUnixFileMode(path) & (UnixFileMode.GroupRead | UnixFileMode.OtherRead | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0)
        {
            throw new InvalidOperationException($"{path}: API tokens file is readable or writable by group or others (chmod 600 it)");
        }

        return Parse(File.ReadAllLines(path), path);
    }

    /// <summary>Parses tokens file lines (<paramref name="source"/> names the file in errors).</summary>
    public static TokenStore Parse(IEnumerable<string> lines, string source)
    {
        ArgumentNullException.ThrowIfNull(lines);
        var tokens = new List<(byte[], ApiRole)>();
        var number = 0;
        foreach (var raw in lines)
        {
            number++;
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 2 || parts[0] is not ("admin" or "read"))
            {
                throw new InvalidOperationException($"{source}:{number}: expected 'admin TOKEN' or 'read TOKEN'");
            }

            if (parts[1].Length < 16)
            {
                throw new InvalidOperationException($"{source}:{number}: a token needs at least 16 characters");
            }

            tokens.Add((Digest(parts[1]), parts[0] == "admin" ? ApiRole.Admin : ApiRole.Read));
        }

        return tokens.Count == 0 ? throw new InvalidOperationException($"{source}: no token") : new TokenStore(tokens);
    }

    /// <summary>The role of a presented token, or null when it is not one of ours.</summary>
    public ApiRole? Authenticate(ReadOnlySpan<char> presented)
    {
        Span<byte> digest = stackalloc byte[32];
        Span<byte> utf8 = stackalloc byte[Math.Min(Encoding.UTF8.GetMaxByteCount(presented.Length), 4096)];
        if (presented.Length > 1024)
        {
            return null;
        }

        var length = Encoding.UTF8.GetBytes(presented, utf8);
        SHA256.HashData(utf8[..length], digest);
        ApiRole? role = null;
        foreach (var (known, knownRole) in _tokens)
        {
            // No early exit: every token is compared.
            if (CryptographicOperations.FixedTimeEquals(known, digest))
            {
                role = knownRole;
            }
        }

        return role;
    }

    private static byte[] Digest(string token) => SHA256.HashData(Encoding.UTF8.GetBytes(token));

    private static string NewToken() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(24)).Replace('+', '-').Replace('/', '_');
}
