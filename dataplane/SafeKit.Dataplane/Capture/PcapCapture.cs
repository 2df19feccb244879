using SafeKit.Native.PacketSockets;
using SharpPcap;
using SharpPcap.LibPcap;

namespace SafeKit.Dataplane.Capture;

/// <summary>
/// Capture through libpcap (SharpPcap). Immediate mode (libpcap then uses a TPACKET_V2 ring) so
/// frames are not held back; <c>GetNextPacketPointers</c> reads without allocating. libpcap has no
/// virtio-net headers, so the dataplane completes partial checksums itself.
/// </summary>
public sealed unsafe class PcapCapture : ICaptureBackend
{
    private const int BatchLimit = 256;
    private readonly LibPcapLiveDevice _device;
    private long _received;
    private long _dropped;

    public PcapCapture(string interfaceName, string filter, int bufferBytes)
    {
        ArgumentException.ThrowIfNullOrEmpty(interfaceName);
        var list = LibPcapLiveDeviceList.New();
        _device = list.FirstOrDefault(d => d.Name == interfaceName)
            ?? throw new InvalidOperationException($"libpcap does not see interface '{interfaceName}'");
        _device.Open(new DeviceConfiguration
        {
            Mode = DeviceModes.Promiscuous,
            Snaplen = 262144,
            ReadTimeout = 100,
            Immediate = true,
            BufferSize = bufferBytes,
        });
        _device.Filter = filter;
    }

    public string Name => "pcap";

    public int Dispatch(IFrameSink sink, int timeoutMilliseconds)
    {
        ArgumentNullException.ThrowIfNull(sink);
        var handled = 0;
        var header = IntPtr.Zero;
        var data = IntPtr.Zero;
        var none = default(VirtioNetHeader);
        while (handled < BatchLimit)
        {
            var status = _device.GetNextPacketPointers(ref header, ref data);
            if (status != 1)
            {
                break;
            }

            // struct pcap_pkthdr { struct timeval ts; bpf_u_int32 caplen; bpf_u_int32 len; }
            var captured = *(uint*)((byte*)header + 16);
            var length = *(uint*)((byte*)header + 20);
            var frame = new Span<byte>((void*)data, (int)captured);
            sink.OnFrame(frame, new FrameInfo(none, hasVnet: false, truncated: captured < length));
            handled++;
        }

        return handled;
    }

    public bool Send(ReadOnlySpan<byte> frame)
    {
        try
        {
            _device.SendPacket(frame, null!);
            return true;
        }
        catch (PcapException)
        {
            return false;
        }
    }

    public CaptureStatistics ReadStatistics()
    {
        var stats = _device.Statistics;
        Interlocked.Exchange(ref _received, stats.ReceivedPackets);
        Interlocked.Exchange(ref _dropped, stats.DroppedPackets);
        return new CaptureStatistics(_received, _dropped);
    }

    public void Dispose()
    {
        _device.Close();
        _device.Dispose();
    }
}
