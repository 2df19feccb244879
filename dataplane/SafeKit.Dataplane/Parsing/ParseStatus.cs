namespace SafeKit.Dataplane.Parsing;

/// <summary>Outcome of parsing one frame.</summary>
public enum ParseStatus : byte
{
    /// <summary>Every header the packet path needs was found and is consistent.</summary>
    Ok,

    /// <summary>The frame ends before a header it announces.</summary>
    Truncated,

    /// <summary>A header is inconsistent (bad version, length, option or extension chain).</summary>
    Malformed,

    /// <summary>Well-formed but not something the farm handles (another EtherType, ARP for non-IPv4).</summary>
    Unsupported,
}
