using System.Collections.Concurrent;

namespace SafeKit.Api;

/// <summary>API requests answered, by status code (for /metrics).</summary>
public sealed class ApiMetrics
{
    private readonly ConcurrentDictionary<int, long> _byStatus = new();

    public void Count(int status) => _byStatus.AddOrUpdate(status, 1, (_, n) => n + 1);

    public IReadOnlyDictionary<int, long> ByStatus() => new SortedDictionary<int, long>(_byStatus);
}
