using SafeKit.Replication.Channel;

namespace SafeKit.Tests.Replication;

/// <summary>Raw frames for tests that play a misbehaving peer.</summary>
internal static class FramesForTests
{
    public static void Op(Span<byte> frame, long sequence, int payloadLength)
        => Frames.WriteOpHeader(frame, 1, OpFlags.None, sequence, 0, payloadLength);
}
