namespace SafeKit.Dataplane.Fragments;

/// <summary>Memory limits of fragment tracking.</summary>
/// <param name="MaxDatagrams">Fragmented datagrams tracked at once; the oldest make room for new ones.</param>
/// <param name="MaxHeldBytes">Memory for fragments that arrive before the first fragment of their datagram.</param>
/// <param name="TimeoutMilliseconds">How long a datagram's decision (or its held fragments) is kept.</param>
public sealed record FragmentTrackerOptions(int MaxDatagrams = 4096, int MaxHeldBytes = 1 << 20, int TimeoutMilliseconds = 10_000);
