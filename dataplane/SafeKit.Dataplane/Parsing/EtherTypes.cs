namespace SafeKit.Dataplane.Parsing;

/// <summary>EtherType values the parser recognises.</summary>
public static class EtherTypes
{
    public const ushort IPv4 = 0x0800;
    public const ushort Arp = 0x0806;
    public const ushort Vlan = 0x8100;
    public const ushort QinQ = 0x88a8;
    public const ushort IPv6 = 0x86dd;
}
