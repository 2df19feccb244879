namespace SafeKit.Replication.Channel;

/// <summary>Which end of the link: the sender (PRIM, connects) or the receiver (SECOND, listens).</summary>
internal enum ChannelRole : byte
{
    Sender = 1,
    Receiver = 2,
}
