namespace SafeKit.Dataplane.Parsing;

/// <summary>The layer-3 protocol of a parsed frame.</summary>
public enum NetworkLayer : byte
{
    None,
    Arp,
    IPv4,
    IPv6,
}
