using System.Globalization;
using System.Text.Json;
using SafeKit.Cli.Commands;

namespace SafeKit.Cli.Remote;

/// <summary>
/// <c>safekit status</c>: the whole cluster as one node's API sees it (any node answers for all).
/// Exit 0 when every node is alive and every module UP, 1 when not (still printed), 3 when the node
/// asked does not answer.
/// </summary>
internal static class StatusCommand
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static async Task<int> RunAsync(IReadOnlyList<string> args)
    {
        var a = CliArguments.Parse(args, ApiConnection.ValuedOptions, ApiConnection.FlagOptions);
        if (a.Positionals.Count > 0)
        {
            throw new CliException($"status takes no argument ('{a.Positionals[0]}')");
        }

        using var api = ApiConnection.Open(a);
        var cluster = await api.SendAsync(HttpMethod.Get, "/api/v1/cluster");
        var healthy = Healthy(cluster);
        if (a.Has("--json"))
        {
            Console.WriteLine(JsonSerializer.Serialize(cluster, Indented));
            return healthy ? ExitCodes.Ok : ExitCodes.Failed;
        }

        Console.Write(Render(cluster));
        return healthy ? ExitCodes.Ok : ExitCodes.Failed;
    }

    private static bool Healthy(JsonElement cluster) =>
        cluster.GetProperty("nodes").EnumerateArray().All(n =>
            n.GetProperty("alive").GetBoolean() && n.GetProperty("reachable").GetBoolean()
            && n.GetProperty("status").GetProperty("modules").EnumerateArray().All(m => m.GetProperty("state").GetString() is "UP" or "PRIM" or "SECOND"));

    internal static string Render(JsonElement cluster)
    {
        var membership = cluster.GetProperty("membership");
        var header = membership.ValueKind == JsonValueKind.Object
            ? $"cluster {cluster.GetProperty("cluster").GetString()}: view {membership.GetProperty("epoch").GetUInt32()}, leader {Text(membership, "leader")}, members {string.Join(", ", membership.GetProperty("members").EnumerateArray().Select(m => m.GetString()))} (answered by {cluster.GetProperty("answered_by").GetString()})"
            : $"cluster {cluster.GetProperty("cluster").GetString()} (answered by {cluster.GetProperty("answered_by").GetString()})";
        var table = new TextTable("NODE", "HEARTBEAT", "MODULE", "STATE", "BUCKETS", "CHECKS", "SINCE", "REASON");
        var resyncs = new List<string>();
        foreach (var node in cluster.GetProperty("nodes").EnumerateArray())
        {
            var name = node.GetProperty("name").GetString()!;
            var heartbeat = node.GetProperty("alive").GetBoolean() ? "alive" : "DEAD";
            if (!node.GetProperty("reachable").GetBoolean())
            {
                table.Add(name, heartbeat, "-", node.GetProperty("alive").GetBoolean() ? "?" : "-", "-", "-", "-", "API: " + Text(node, "error"));
                continue;
            }

            var status = node.GetProperty("status");
            var checks = status.TryGetProperty("checks", out var c) && c.ValueKind == JsonValueKind.Array ? c.EnumerateArray().ToList() : [];
            var failing = checks.Where(x => !x.GetProperty("healthy").GetBoolean()).Select(x => x.GetProperty("name").GetString()).ToList();
            var checkText = checks.Count == 0 ? "-" : failing.Count == 0 ? $"{checks.Count} ok" : $"failing: {string.Join(", ", failing)}";
            foreach (var module in status.GetProperty("modules").EnumerateArray())
            {
                var farm = module.GetProperty("farm");
                var buckets = farm.ValueKind == JsonValueKind.Object ? $"{farm.GetProperty("owned_buckets").GetInt32()}/{farm.GetProperty("buckets").GetInt32()}" : "-";
                var last = module.TryGetProperty("transitions", out var t) && t.ValueKind == JsonValueKind.Array && t.GetArrayLength() > 0 ? t[t.GetArrayLength() - 1] : default;
                var since = last.ValueKind == JsonValueKind.Object ? Ago(last.GetProperty("at").GetDateTimeOffset()) : "-";
                table.Add(name, heartbeat, module.GetProperty("name").GetString()!, module.GetProperty("state").GetString()!, buckets, checkText, since, last.ValueKind == JsonValueKind.Object ? Text(last, "reason") : "");
                if (module.TryGetProperty("mirror", out var mirror) && mirror.ValueKind == JsonValueKind.Object && mirror.TryGetProperty("resync", out var resync) && resync.ValueKind == JsonValueKind.Object)
                {
                    resyncs.Add(Resync(name, module.GetProperty("name").GetString()!, resync));
                }
            }
        }

        return header + "\n" + table + string.Concat(resyncs.Select(r => "\n" + r));
    }

    /// <summary>One line per resync: live figures with rate and ETA, or how the last one ended.</summary>
    private static string Resync(string node, string module, JsonElement resync)
    {
        var active = resync.GetProperty("active").GetBoolean();
        var figures = string.Create(CultureInfo.InvariantCulture, $"{resync.GetProperty("files_compared").GetInt64()} files compared, {Megabytes(resync.GetProperty("bytes_sent").GetInt64())} changed, {Megabytes(resync.GetProperty("wire_bytes").GetInt64())} on the wire ({Megabytes((long)resync.GetProperty("wire_bytes_per_second").GetDouble())}/s)");
        var eta = resync.TryGetProperty("eta_seconds", out var e) && e.ValueKind == JsonValueKind.Number ? string.Create(CultureInfo.InvariantCulture, $", about {Math.Ceiling(e.GetDouble())} s left") : "";
        return active
            ? $"resync {module} {node} -> {Text(resync, "target")}: {Text(resync, "phase")} over {Text(resync, "first_pass")}: {figures}{eta}"
            : string.Create(CultureInfo.InvariantCulture, $"last resync {module} {node} -> {Text(resync, "target")}: {Text(resync, "phase")} after {resync.GetProperty("elapsed_seconds").GetDouble():0.0} s: {figures}");
    }

    private static string Megabytes(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1e6:0.0} MB");

    private static string Text(JsonElement element, string property) =>
        element.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString()! : "-";

    private static string Ago(DateTimeOffset at)
    {
        var span = DateTimeOffset.UtcNow - at;
        return span.TotalSeconds < 90 ? $"{Math.Max(0, (int)span.TotalSeconds)}s ago"
            : span.TotalMinutes < 90 ? $"{(int)span.TotalMinutes}m ago"
            : span.TotalHours < 48 ? $"{(int)span.TotalHours}h ago"
            : at.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture);
    }
}
