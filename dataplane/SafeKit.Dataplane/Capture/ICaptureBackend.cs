namespace SafeKit.Dataplane.Capture;

/// <summary>
/// Source of the frames arriving on the farm interface and the way out for the frames the
/// dataplane sends itself (ARP and NDP answers). One instance per worker thread.
/// </summary>
public interface ICaptureBackend : IDisposable
{
    /// <summary>Short name for logs and status (ring, pcap).</summary>
    string Name { get; }

    /// <summary>Waits up to <paramref name="timeoutMilliseconds"/> for frames and hands every ready one to <paramref name="sink"/>.</summary>
    /// <returns>Number of frames handled.</returns>
    int Dispatch(IFrameSink sink, int timeoutMilliseconds);

    /// <summary>Sends a complete Ethernet frame on the interface.</summary>
    bool Send(ReadOnlySpan<byte> frame);

    /// <summary>Cumulative kernel counters; safe to call from any thread.</summary>
    CaptureStatistics ReadStatistics();
}
