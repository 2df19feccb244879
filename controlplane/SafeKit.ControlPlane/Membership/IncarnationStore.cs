using System.Globalization;

namespace SafeKit.ControlPlane.Membership;

/// <summary>
/// Gives every start of a node a higher incarnation than the one before, so that its peers tell a
/// restart from a replay: the larger of (last one + 1) and the wall clock in seconds, persisted.
/// </summary>
public static class IncarnationStore
{
    public const string FileName = "incarnation";

    public static uint Next(string stateDirectory, DateTimeOffset now)
    {
        Directory.CreateDirectory(stateDirectory);
        var path = Path.Combine(stateDirectory, FileName);
        uint last = 0;
        if (File.Exists(path) && uint.TryParse(File.ReadAllText(path).Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var stored))
        {
            last = stored;
        }

        var next = Math.Max(last + 1, (uint)Math.Clamp(now.ToUnixTimeSeconds(), 1, uint.MaxValue));
        File.WriteAllText(path, next.ToString(CultureInfo.InvariantCulture));
        return next;
    }
}
