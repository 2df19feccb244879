namespace SafeKit.Replication.Resync;

/// <summary>
/// A resync's optional bandwidth cap (a token bucket over the bytes it writes): a resync that
/// runs while the application serves can be kept from filling the replication network. A burst
/// of a tenth of a second's worth (at least one message) passes at once; then the writer waits
/// until the bytes it is about to send fit in the rate.
/// </summary>
public sealed class BandwidthCap
{
    private readonly double _bytesPerSecond;
    private readonly double _burst;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private double _available;
    private long _last;

    /// <param name="bytesPerSecond">The rate; 0 or less: no cap.</param>
    public BandwidthCap(long bytesPerSecond, TimeProvider? time = null)
    {
        _bytesPerSecond = bytesPerSecond;
        _burst = Math.Max(bytesPerSecond / 10.0, 64 * 1024);
        _time = time ?? TimeProvider.System;
        _available = _burst;
        _last = _time.GetTimestamp();
    }

    /// <summary>Whether there is a cap at all.</summary>
    public bool Limited => _bytesPerSecond > 0;

    /// <summary>
    /// Takes <paramref name="bytes"/> from the bucket; returns how long the caller must wait
    /// before sending them (zero when they fit now).
    /// </summary>
    public TimeSpan Take(long bytes)
    {
        if (!Limited)
        {
            return TimeSpan.Zero;
        }

        lock (_gate)
        {
            var now = _time.GetTimestamp();
            _available = Math.Min(_burst, _available + (_time.GetElapsedTime(_last, now).TotalSeconds * _bytesPerSecond));
            _last = now;
            _available -= bytes;
            return _available >= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(-_available / _bytesPerSecond);
        }
    }

    /// <summary>Waits until <paramref name="bytes"/> may be sent.</summary>
    public Task WaitAsync(long bytes, CancellationToken cancellationToken) =>
        Take(bytes) is { Ticks: > 0 } wait ? Task.Delay(wait, _time, cancellationToken) : Task.CompletedTask;
}
