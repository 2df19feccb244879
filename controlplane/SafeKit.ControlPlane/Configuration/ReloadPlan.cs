namespace SafeKit.ControlPlane.Configuration;

/// <summary>
/// What a reload of the configuration would change on one node. A reload is all or nothing: when a
/// setting that only a restart can change differs, nothing is applied and the running configuration
/// stays in force (a half-applied file would leave the node in a state no file describes).
/// </summary>
/// <param name="Changes">Settings that change at runtime, as "key: old → new".</param>
/// <param name="RestartRequired">Settings that differ but need safekitd restarted.</param>
/// <param name="Notes">Differences that are another node's business (its weight: it advertises its own).</param>
public sealed record ReloadPlan(IReadOnlyList<string> Changes, IReadOnlyList<string> RestartRequired, IReadOnlyList<string> Notes)
{
    /// <summary>Whether the reload can be applied.</summary>
    public bool Applicable => RestartRequired.Count == 0;

    /// <summary>Compares the running configuration of <paramref name="self"/> with a new one.</summary>
    public static ReloadPlan Compare(ClusterConfig running, ClusterConfig next, string self)
    {
        ArgumentNullException.ThrowIfNull(running);
        ArgumentNullException.ThrowIfNull(next);
        var changes = new List<string>();
        var restart = new List<string>();
        var notes = new List<string>();

        Differ(restart, "cluster.name", running.Name, next.Name);
        Differ(restart, "cluster.key_file", running.KeyFile, next.KeyFile);
        Differ(restart, "cluster.heartbeat.port", running.Heartbeat.Port, next.Heartbeat.Port);
        Differ(restart, "cluster.api", running.Api, next.Api);
        Differ(changes, "cluster.heartbeat.interval_ms", running.Heartbeat.IntervalMilliseconds, next.Heartbeat.IntervalMilliseconds);
        Differ(changes, "cluster.heartbeat.timeout_ms", running.Heartbeat.TimeoutMilliseconds, next.Heartbeat.TimeoutMilliseconds);
        CompareNodes(running, next, self, changes, restart, notes);

        var names = running.Farms.Select(f => f.Name).ToList();
        if (!names.SequenceEqual(next.Farms.Select(f => f.Name)))
        {
            restart.Add($"modules: {string.Join(",", names)} → {string.Join(",", next.Farms.Select(f => f.Name))}");
        }
        else
        {
            for (var i = 0; i < running.Farms.Count; i++)
            {
                CompareFarm(running.Farms[i], next.Farms[i], changes, restart);
            }
        }

        Differ(restart, "modules (mirror)", string.Join(" | ", running.Mirrors.Select(Describe)), string.Join(" | ", next.Mirrors.Select(Describe)));
        return new ReloadPlan(changes, restart, notes);
    }

    /// <summary>A mirror's whole configuration as text: any change to a mirror needs a restart in this version.</summary>
    private static string Describe(MirrorModuleConfig m) =>
        $"{m.Name} vips={string.Join(",", m.Vips)} interface={m.Interface} directories={string.Join(",", m.Directories.Select(d => $"{d.Path}:{d.Data}:{d.Mode}"))} " +
        $"port={m.ReplicationPort} network={m.ReplicationNetwork} stall={m.StallTimeoutMilliseconds}ms resync_mbps={m.ResyncMegabitsPerSecond} resync_streams={m.ResyncStreams} witness={string.Join(",", m.Witnesses)} wait={m.StartupWaitMilliseconds}ms " +
        $"state={m.StateDirectory} {Show(m.Scripts)} {Show(m.Restart)} checkers={string.Join(",", m.Checkers)}";

    private static void CompareNodes(ClusterConfig running, ClusterConfig next, string self, List<string> changes, List<string> restart, List<string> notes)
    {
        var before = running.Nodes.Select(n => n.Name).ToList();
        if (!before.SequenceEqual(next.Nodes.Select(n => n.Name)))
        {
            restart.Add($"cluster.nodes: {string.Join(",", before)} → {string.Join(",", next.Nodes.Select(n => n.Name))}");
            return;
        }

        for (var i = 0; i < running.Nodes.Count; i++)
        {
            var (a, b) = (running.Nodes[i], next.Nodes[i]);
            Differ(restart, $"cluster.nodes.{a.Name}.addresses", string.Join(",", a.Addresses), string.Join(",", b.Addresses));
            if (a.Weight != b.Weight)
            {
                if (a.Name == self)
                {
                    changes.Add($"cluster.nodes.{a.Name}.weight: {a.Weight} → {b.Weight}");
                }
                else
                {
                    notes.Add($"cluster.nodes.{a.Name}.weight: {a.Weight} → {b.Weight} takes effect when {a.Name} reloads (each node advertises its own weight)");
                }
            }
        }
    }

    private static void CompareFarm(FarmModuleConfig a, FarmModuleConfig b, List<string> changes, List<string> restart)
    {
        var at = $"modules.{a.Name}";
        Differ(restart, at + ".vips", string.Join(",", a.Vips), string.Join(",", b.Vips));
        Differ(restart, at + ".interface", a.Interface, b.Interface);
        Differ(restart, at + ".l2_mode", a.L2Mode, b.L2Mode);
        Differ(restart, at + ".cluster_mac", a.ClusterMac is null ? null : Convert.ToHexString(a.ClusterMac), b.ClusterMac is null ? null : Convert.ToHexString(b.ClusterMac));
        Differ(restart, at + ".affinity", a.Affinity, b.Affinity);
        Differ(restart, at + ".buckets", a.Buckets, b.Buckets);
        Differ(restart, at + ".hash_seed", a.HashSeed, b.HashSeed);
        Differ(restart, at + ".dataplane", a.Dataplane, b.Dataplane);
        Differ(restart, at + ".capture", a.Capture, b.Capture);
        Differ(restart, at + ".tun", a.Tun, b.Tun);
        Differ(restart, at + ".workers", a.Workers, b.Workers);
        Differ(changes, at + ".drain_timeout_ms", a.DrainTimeoutMilliseconds, b.DrainTimeoutMilliseconds);
        Differ(changes, at + ".scripts", a.Scripts, b.Scripts);
        Differ(changes, at + ".restart", a.Restart, b.Restart);
        if (!a.Checkers.SequenceEqual(b.Checkers))
        {
            changes.Add($"{at}.checkers: {a.Checkers.Count} → {b.Checkers.Count} checker(s)");
        }
    }

    private static void Differ<T>(List<string> into, string key, T before, T after)
    {
        if (!EqualityComparer<T>.Default.Equals(before, after))
        {
            into.Add($"{key}: {Show(before)} → {Show(after)}");
        }
    }

    private static string Show<T>(T value) => value switch
    {
        null => "(none)",
        ScriptsConfig s => $"start={s.Start ?? "-"} stop={s.Stop ?? "-"} timeout={s.TimeoutMilliseconds}ms",
        RestartConfig r => $"max={r.Max} window={r.WindowMilliseconds}ms",
        _ => value.ToString() ?? "",
    };
}
