namespace SafeKit.Replication.Mirror;

/// <summary>What a mirror node is doing (SafeKit's states).</summary>
public enum MirrorRole : byte
{
    /// <summary>Stopped: no application, nothing mounted but the guard.</summary>
    Stop = 0,

    /// <summary>Deciding, or refusing to run (stale or diverged data, no peer and no witness).</summary>
    Wait = 1,

    /// <summary>Receiving PRIM's changes; its copy readable, read-only, at the application's path.</summary>
    Second = 2,

    /// <summary>Running the application, every change replicated to SECOND.</summary>
    Prim = 3,

    /// <summary>Running the application without SECOND (which is behind from now on).</summary>
    Alone = 4,
}

/// <summary>
/// A mirror node's part of its heartbeats: its role and data generations, so the peer knows, on
/// every heartbeat network and before any TCP connection, which copy is newer and what to become.
/// </summary>
/// <param name="Role">The sender's role.</param>
/// <param name="SecondReady">As SECOND: its replication listeners are bound (PRIM may connect).</param>
/// <param name="Current">The sender's data generation.</param>
/// <param name="Parent">The generation it went alone from.</param>
/// <param name="ResyncReady">In WAIT with older data: its resync listeners are bound (the node with the newest data may bring it up to date).</param>
/// <param name="Forced">The sender's copy was chosen by <c>prim --force</c>: it outranks a diverged copy.</param>
public readonly record struct MirrorBeacon(MirrorRole Role, bool SecondReady, Guid Current, Guid Parent, bool ResyncReady = false, bool Forced = false)
{
    public const int Length = 40;
    private const byte Marker = (byte)'M';

    public void Write(Span<byte> output)
    {
        output[..Length].Clear();
        output[0] = Marker;
        output[1] = (byte)Role;
        output[2] = (byte)((SecondReady ? 1 : 0) | (ResyncReady ? 2 : 0) | (Forced ? 4 : 0));
        Current.TryWriteBytes(output[8..24]);
        Parent.TryWriteBytes(output[24..40]);
    }

    /// <summary>Reads a beacon; null when the bytes carry none (a farm node, an old heartbeat).</summary>
    public static MirrorBeacon? Read(ReadOnlySpan<byte> input)
    {
        if (input.Length < Length || input[0] != Marker || input[1] > (byte)MirrorRole.Alone)
        {
            return null;
        }

        return new MirrorBeacon((MirrorRole)input[1], (input[2] & 1) != 0, new Guid(input[8..24]), new Guid(input[24..40]), (input[2] & 2) != 0, (input[2] & 4) != 0);
    }
}
