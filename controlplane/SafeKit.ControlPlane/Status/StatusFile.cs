using System.Text.Json;

namespace SafeKit.ControlPlane.Status;

/// <summary>The node status file: written atomically (temp file + rename), read by the CLI and the lab.</summary>
public static class StatusFile
{
    /// <summary>File name inside a node's state directory.</summary>
    public const string FileName = "status.json";

    public static void Write(string directory, NodeStatus status)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, FileName);
        var temporary = path + ".tmp";
        File.WriteAllText(temporary, JsonSerializer.Serialize(status, StatusJsonContext.Default.NodeStatus));
        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>The status in <paramref name="directory"/>, or null when absent or unreadable.</summary>
    public static NodeStatus? TryRead(string directory)
    {
        var path = Path.Combine(directory, FileName);
        try
        {
            return File.Exists(path) ? JsonSerializer.Deserialize(File.ReadAllText(path), StatusJsonContext.Default.NodeStatus) : null;
        }
        catch (Exception e) when (e is IOException or JsonException)
        {
            return null;
        }
    }
}
