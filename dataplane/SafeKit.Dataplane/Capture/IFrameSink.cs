namespace SafeKit.Dataplane.Capture;

/// <summary>Receives frames from a capture backend, on the backend's thread, one at a time.</summary>
public interface IFrameSink
{
    /// <summary>
    /// Handles one frame. The span points into the backend's buffer and is valid (and writable)
    /// only during the call.
    /// </summary>
    void OnFrame(Span<byte> frame, in FrameInfo info);
}
