namespace SafeKit.Dataplane.Engine;

/// <summary>Where the accept rule runs.</summary>
public enum DataplaneMode
{
    /// <summary>In safekitd: AF_PACKET capture, decision, TUN delivery (flow-aware, fragment-safe).</summary>
    Userspace,

    /// <summary>
    /// In the kernel: an nftables netdev ingress rule with the same jhash over the owned buckets.
    /// Fastest; ICMP errors and non-first fragments follow the outer header (see README).
    /// </summary>
    Kernel,
}
