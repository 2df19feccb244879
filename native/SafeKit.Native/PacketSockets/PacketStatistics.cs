namespace SafeKit.Native.PacketSockets;

/// <summary>
/// Kernel counters of one packet socket since the previous read (PACKET_STATISTICS resets them).
/// </summary>
/// <param name="Packets">Frames that passed the filter.</param>
/// <param name="Drops">Frames lost because the ring was full.</param>
/// <param name="FreezeCount">Times the ring was frozen (TPACKET_V3).</param>
public readonly record struct PacketStatistics(uint Packets, uint Drops, uint FreezeCount);
