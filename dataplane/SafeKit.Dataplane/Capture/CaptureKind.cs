namespace SafeKit.Dataplane.Capture;

/// <summary>Capture backends of the userspace dataplane.</summary>
public enum CaptureKind
{
    /// <summary>Our own TPACKET_V3 ring with virtio-net headers (native/).</summary>
    Ring,

    /// <summary>libpcap through SharpPcap; checksums are completed in user space.</summary>
    Pcap,
}
