using System.Diagnostics;
using System.Globalization;

namespace SafeKit.Daemon;

/// <summary>
/// How long each step of a resync took, for its summary: where a failback's time went (connecting,
/// the live passes, the frozen pass, the target's copy made durable, the attach) without a profiler.
/// </summary>
internal sealed class ResyncPhases
{
    private readonly List<(string Name, double Milliseconds)> _done = [];
    private long _since = Stopwatch.GetTimestamp();

    /// <summary>Ends the step called <paramref name="name"/>; the next one starts now.</summary>
    public void Done(string name)
    {
        var now = Stopwatch.GetTimestamp();
        _done.Add((name, Stopwatch.GetElapsedTime(_since, now).TotalMilliseconds));
        _since = now;
    }

    public override string ToString() =>
        "steps: " + string.Join(", ", _done.Select(static d => string.Create(CultureInfo.InvariantCulture, $"{d.Name} {d.Milliseconds:0} ms")));
}
