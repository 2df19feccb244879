namespace SafeKit.Tests.Infrastructure;

/// <summary>
/// Tests that build namespaces and run traffic share the machine's two cores: they run one at a
/// time, never in parallel with each other.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class LabCollection
{
    public const string Name = "lab";
}
