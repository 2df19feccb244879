using SafeKit.ControlPlane.Configuration;

namespace SafeKit.Api;

/// <summary>The effective configuration as the API shows it (addresses as text; secrets are never in it, only file paths).</summary>
public sealed record ConfigView(
    string Name,
    string File,
    string? KeyFile,
    HeartbeatConfig Heartbeat,
    ApiConfig Api,
    IReadOnlyList<NodeView> Nodes,
    IReadOnlyList<FarmView> Modules)
{
    public static ConfigView From(ClusterConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return new ConfigView(
            config.Name,
            config.SourceFile,
            config.KeyFile,
            config.Heartbeat,
            config.Api,
            config.Nodes.Select(n => new NodeView(n.Name, n.Addresses.Select(a => a.ToString()).ToList(), n.Weight)).ToList(),
            config.Farms.Select(f => new FarmView(
                f.Name,
                "farm",
                f.Vips.Select(v => v.ToString()).ToList(),
                f.Interface,
                f.L2Mode.ToString().ToLowerInvariant(),
                f.Affinity == SafeKit.Dataplane.Flows.Affinity.ClientIp ? "client-ip" : "client-ip-port",
                f.Buckets,
                f.Dataplane.ToString().ToLowerInvariant(),
                f.Capture.ToString().ToLowerInvariant(),
                f.Workers,
                f.DrainTimeoutMilliseconds,
                f.Scripts,
                f.Checkers.Select(c => new CheckerView(c.Kind.ToString().ToLowerInvariant(), c.Target, c.ExpectedStatus, c.IntervalMilliseconds, c.TimeoutMilliseconds, c.Failures)).ToList(),
                f.Restart)).ToList());
    }
}

public sealed record NodeView(string Name, IReadOnlyList<string> Addresses, int Weight);

public sealed record FarmView(
    string Name,
    string Type,
    IReadOnlyList<string> Vips,
    string Interface,
    string L2Mode,
    string Affinity,
    int Buckets,
    string Dataplane,
    string Capture,
    int Workers,
    int DrainTimeoutMs,
    ScriptsConfig Scripts,
    IReadOnlyList<CheckerView> Checkers,
    RestartConfig Restart);

public sealed record CheckerView(string Kind, string Target, int Status, int IntervalMs, int TimeoutMs, int Failures);
