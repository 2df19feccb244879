namespace SafeKit.Dataplane.Buckets;

/// <summary>A farm member as the bucket assignment sees it: a stable name and a relative weight.</summary>
/// <param name="Name">Node name; the assignment depends on names, never on list order.</param>
/// <param name="Weight">Relative share of buckets (1..1000).</param>
public sealed record NodeWeight(string Name, int Weight);
