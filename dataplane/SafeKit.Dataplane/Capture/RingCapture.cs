using SafeKit.Native.PacketSockets;

namespace SafeKit.Dataplane.Capture;

/// <summary>Capture through our TPACKET_V3 ring: frames are read in place, with virtio-net headers.</summary>
public sealed class RingCapture : ICaptureBackend
{
    private readonly PacketSocket _socket;
    private readonly TpacketV3Ring _ring;
    private long _received;
    private long _dropped;

    public RingCapture(PacketSocketOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _socket = PacketSocket.Open(options with { VnetHeader = true });
        _ring = _socket.Ring ?? throw new ArgumentException("the ring backend needs ring geometry", nameof(options));
    }

    public string Name => "ring";

    public int Dispatch(IFrameSink sink, int timeoutMilliseconds)
    {
        ArgumentNullException.ThrowIfNull(sink);
        if (!_ring.TryAcquire(out var block))
        {
            if (!_socket.WaitReadable(timeoutMilliseconds) || !_ring.TryAcquire(out block))
            {
                return 0;
            }
        }

        var handled = 0;
        do
        {
            foreach (var frame in block)
            {
                var info = new FrameInfo(frame.VnetHeader, hasVnet: true, truncated: frame.CapturedLength < frame.WireLength);
                sink.OnFrame(frame.Frame, info);
                handled++;
            }

            _ring.Release();
        }
        while (_ring.TryAcquire(out block));

        return handled;
    }

    public bool Send(ReadOnlySpan<byte> frame) => _socket.Send(frame);

    public CaptureStatistics ReadStatistics()
    {
        var stats = _socket.ReadStatistics();
        return new CaptureStatistics(
            Interlocked.Add(ref _received, stats.Packets),
            Interlocked.Add(ref _dropped, stats.Drops));
    }

    public void Dispose() => _socket.Dispose();
}
