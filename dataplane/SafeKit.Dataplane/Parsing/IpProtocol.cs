namespace SafeKit.Dataplane.Parsing;

/// <summary>IANA protocol numbers the parser recognises.</summary>
public static class IpProtocol
{
    public const byte HopByHop = 0;
    public const byte Icmp = 1;
    public const byte Tcp = 6;
    public const byte Udp = 17;
    public const byte Dccp = 33;
    public const byte IPv6Routing = 43;
    public const byte IPv6Fragment = 44;
    public const byte Esp = 50;
    public const byte Ah = 51;
    public const byte IcmpV6 = 58;
    public const byte IPv6NoNext = 59;
    public const byte IPv6DestinationOptions = 60;
    public const byte Mobility = 135;
    public const byte Sctp = 132;
    public const byte UdpLite = 136;

    /// <summary>Protocols whose first four transport bytes are source and destination ports.</summary>
    public static bool HasPorts(byte protocol) =>
        protocol is Tcp or Udp or Sctp or Dccp or UdpLite;

    /// <summary>Minimum transport header length the parser requires for a protocol.</summary>
    public static int MinimumHeaderLength(byte protocol) => protocol switch
    {
        Tcp => 20,
        Udp or UdpLite => 8,
        Sctp => 12,
        Dccp => 12,
        Icmp or IcmpV6 => 4,
        _ => 0,
    };
}
