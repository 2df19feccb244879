using System.Security.Cryptography;

namespace SafeKit.Cli.Lab;

/// <summary>The lab's API tokens file: written at lab up, read back for <c>lab status --json</c>.</summary>
internal static class LabTokens
{
    public static string New() => Convert.ToHexString(RandomNumberGenerator.GetBytes(20)).ToLowerInvariant();

    public static LabApiTokens? Read(string path, string caPath)
    {
        if (!File.Exists(path))
        {
            return null;
        }

        var pairs = File.ReadAllLines(path)
            .Where(l => !l.StartsWith('#'))
            .Select(l => l.Split(' ', 2, StringSplitOptions.TrimEntries))
            .Where(p => p.Length == 2)
            .ToDictionary(p => p[0], p => p[1], StringComparer.Ordinal);
        return pairs.TryGetValue("admin", out var admin) && pairs.TryGetValue("read", out var read) ? new LabApiTokens(admin, read, caPath) : null;
    }
}
