namespace SafeKit.Tests.Replication;

/// <summary>
/// Allocation counts over the whole process and throughput figures mean something only when no
/// other test runs meanwhile: these run alone.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class PerformanceCollection
{
    public const string Name = "replication performance";
}
