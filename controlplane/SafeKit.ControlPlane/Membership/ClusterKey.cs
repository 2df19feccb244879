namespace SafeKit.ControlPlane.Membership;

/// <summary>The shared secret that authenticates heartbeats, read from the cluster's key file.</summary>
public static class ClusterKey
{
    public const int MinimumLength = 16;

    /// <summary>Reads the key; the file must exist, hold at least 16 bytes and be readable by its owner only.</summary>
    /// <exception cref="InvalidOperationException">The key cannot be used, with the reason and the fix.</exception>
    public static byte[] Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            throw new InvalidOperationException($"cluster key file {path} does not exist (create it with: head -c 32 /dev/urandom > {path} && chmod 600 {path}, and copy it to every node)");
        }

        var mode = File.GetUnixFileMode(path);
        if ((mode & (UnixFileMode.GroupRead | UnixFileMode.OtherRead | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0)
        {
            throw new InvalidOperationException($"cluster key file {path} is accessible to other users; restrict it: chmod 600 {path}");
        }

        var key = File.ReadAllBytes(path);
        return key.Length >= MinimumLength
            ? key
            : throw new InvalidOperationException($"cluster key file {path} holds {key.Length} bytes; it needs at least {MinimumLength} random bytes");
    }
}
