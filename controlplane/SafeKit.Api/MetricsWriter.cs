using System.Globalization;
using System.Text;
using SafeKit.ControlPlane.Status;

namespace SafeKit.Api;

/// <summary>The node's status in the Prometheus text exposition format (version 0.0.4).</summary>
public static class MetricsWriter
{
    private static readonly string[] States = ["STOP", "WAIT", "UP", "PRIM", "SECOND", "ALONE"];

    /// <summary>Farm counters exported, with their metric name and help.</summary>
    private static readonly (string Counter, string Metric, string Help)[] FarmCounters =
    [
        ("frames", "safekit_farm_frames_total", "Frames captured on the farm interface."),
        ("accepted", "safekit_farm_packets_accepted_total", "Packets this node accepted (its buckets, its flows)."),
        ("accepted_bytes", "safekit_farm_accepted_bytes_total", "Bytes of the packets this node accepted."),
        ("rejected", "safekit_farm_packets_rejected_total", "Packets to a VIP left to another node."),
        ("malformed", "safekit_farm_malformed_frames_total", "Frames that failed to parse."),
        ("fragments_dropped", "safekit_farm_fragments_dropped_total", "Fragments dropped (limits, no first fragment)."),
        ("delivery_errors", "safekit_farm_delivery_errors_total", "Accepted packets the TUN refused."),
        ("takeover_replayed", "safekit_farm_takeover_replayed_total", "Packets replayed to the stack when buckets were adopted from a dead node."),
        ("time_wait_cleared", "safekit_farm_time_wait_cleared_total", "TIME_WAIT sockets cleared for adopted connections."),
    ];

    /// <summary>Mirror modules: the node's role, what the peer misses, and the resync this node runs (or ran last).</summary>
    private static void WriteMirrors(StringBuilder text, string node, List<ModuleStatus> mirrors)
    {
        Gauge(text, "safekit_mirror_state", "1 for the mirror module's current state on this node (STOP, WAIT, PRIM, SECOND, ALONE).",
            mirrors.SelectMany(m => States.Where(s => s != "UP").Select(s => ($"{{{node},{Label("module", m.Name)},{Label("state", s)}}}", m.State == s ? 1L : 0L))));
        var directories = mirrors.SelectMany(m => m.Mirror!.Directories.Select(d => (Labels: $"{{{node},{Label("module", m.Name)},{Label("path", d.Path)}}}", d))).ToList();
        Gauge(text, "safekit_mirror_changes_since_alone", "Changes made while the peer was away (it misses them until a resync).", directories.Select(d => (d.Labels, d.d.ChangesSinceAlone)));
        Gauge(text, "safekit_mirror_bytes_in_flight", "Bytes sent to SECOND and not yet acknowledged.", directories.Select(d => (d.Labels, d.d.BytesInFlight)));
        var resyncs = mirrors.Where(m => m.Mirror!.Resync is not null).Select(m => (Labels: $"{{{node},{Label("module", m.Name)},{Label("target", m.Mirror!.Resync!.Target)}}}", r: m.Mirror!.Resync!)).ToList();
        Gauge(text, "safekit_mirror_resync_active", "1 while this node resynchronises its peer.", resyncs.Select(r => (r.Labels, r.r.Active ? 1L : 0L)));
        Gauge(text, "safekit_mirror_resync_files_compared", "Files of the current (or last) resync whose blocks were compared.", resyncs.Select(r => (r.Labels, r.r.FilesCompared)));
        Gauge(text, "safekit_mirror_resync_bytes_sent", "Bytes of differing blocks the current (or last) resync sent, before compression.", resyncs.Select(r => (r.Labels, r.r.BytesSent)));
        Gauge(text, "safekit_mirror_resync_wire_bytes", "Bytes the current (or last) resync put on the wire, both ways.", resyncs.Select(r => (r.Labels, r.r.WireBytes)));
        Gauge(text, "safekit_mirror_resync_eta_seconds", "Estimated seconds left in the current resync pass (when known).",
            resyncs.Where(r => r.r.EtaSeconds is not null).Select(r => (r.Labels, (long)Math.Ceiling(r.r.EtaSeconds!.Value))));
    }

    public static string Write(NodeStatus status, ApiMetrics api)
    {
        ArgumentNullException.ThrowIfNull(status);
        ArgumentNullException.ThrowIfNull(api);
        var text = new StringBuilder();
        var node = Label("node", status.Node);
        Gauge(text, "safekit_up", "1 while safekitd runs.", [($"{{{node}}}", 1)]);

        var modules = status.Modules.Where(m => m.Farm is not null).ToList();
        Gauge(text, "safekit_module_state", "1 for the module's current state (STOP, WAIT, UP).",
            modules.SelectMany(m => States.Select(s => ($"{{{node},{Label("module", m.Name)},{Label("state", s)}}}", m.State == s ? 1L : 0L))));
        Gauge(text, "safekit_farm_buckets_owned", "Buckets this node owns.", modules.Select(m => ($"{{{node},{Label("module", m.Name)}}}", (long)m.Farm!.OwnedBuckets)));
        Gauge(text, "safekit_farm_buckets", "Buckets of the farm.", modules.Select(m => ($"{{{node},{Label("module", m.Name)}}}", (long)m.Farm!.Buckets)));
        Gauge(text, "safekit_farm_buckets_pinned", "Buckets given away whose flows this node still serves.", modules.Select(m => ($"{{{node},{Label("module", m.Name)}}}", m.Farm!.Counters.GetValueOrDefault("pinned_buckets"))));
        foreach (var (counter, metric, help) in FarmCounters)
        {
            Counter(text, metric, help, modules.Select(m => ($"{{{node},{Label("module", m.Name)}}}", m.Farm!.Counters.GetValueOrDefault(counter))));
        }

        var vips = modules.SelectMany(m => (m.Farm!.Vips ?? []).Select(v => (Labels: $"{{{node},{Label("module", m.Name)},{Label("vip", v.Address)}}}", v))).ToList();
        Counter(text, "safekit_farm_vip_packets_accepted_total", "Packets to the VIP this node accepted (userspace dataplane).", vips.Select(v => (v.Labels, v.v.Accepted)));
        Counter(text, "safekit_farm_vip_packets_rejected_total", "Packets to the VIP left to another node (userspace dataplane).", vips.Select(v => (v.Labels, v.v.Rejected)));
        Counter(text, "safekit_farm_capture_dropped_total", "Frames the kernel dropped before capture.", modules.Select(m => ($"{{{node},{Label("module", m.Name)}}}", m.Farm!.CaptureDropped)));
        WriteMirrors(text, node, status.Modules.Where(m => m.Mirror is not null).ToList());
        Gauge(text, "safekit_application_recent_restarts", "Application restarts in the current restart window.",
            status.Modules.Where(m => m.Application is not null).Select(m => ($"{{{node},{Label("module", m.Name)}}}", (long)m.Application!.RecentRestarts)));

        if (status.Membership is { } membership)
        {
            Gauge(text, "safekit_view_epoch", "Epoch of the view this node follows.", [($"{{{node}}}", membership.Epoch)]);
            Gauge(text, "safekit_view_members", "Nodes in the view this node follows.", [($"{{{node}}}", membership.Members.Count)]);
            Gauge(text, "safekit_peer_up", "1 while the peer is alive as seen from this node.", membership.Peers.Select(p => ($"{{{node},{Label("peer", p.Name)}}}", p.Alive ? 1L : 0L)));
            Gauge(text, "safekit_peer_last_heard_milliseconds", "Since the peer's state last progressed.",
                membership.Peers.Where(p => p.LastHeardMilliseconds is not null).Select(p => ($"{{{node},{Label("peer", p.Name)}}}", p.LastHeardMilliseconds!.Value)));
            var links = membership.Peers.SelectMany(p => p.Links.Select(l => (Labels: $"{{{node},{Label("peer", p.Name)},{Label("network", l.Network)}}}", l))).ToList();
            Counter(text, "safekit_heartbeats_received_total", "Heartbeats received from the peer on the network.", links.Select(l => (l.Labels, l.l.Received)));
            Counter(text, "safekit_heartbeats_lost_total", "Heartbeats of the peer missing on the network (gaps in its sequence).", links.Select(l => (l.Labels, l.l.Lost)));
            foreach (var (name, value) in membership.Counters.OrderBy(c => c.Key, StringComparer.Ordinal))
            {
                var metric = name switch
                {
                    "view_changes" => "safekit_view_changes_total",
                    "failovers" => "safekit_failovers_total",
                    _ => $"safekit_{Sanitize(name)}_total",
                };
                var help = name == "failovers" ? "Members lost because they died (their buckets taken over), as seen from this node." : $"Membership counter {name}.";
                Counter(text, metric, help, [($"{{{node}}}", value)]);
            }
        }

        var checks = status.Checks ?? [];
        Gauge(text, "safekit_check_healthy", "1 while the checker is healthy.", checks.Select(c => ($"{{{node},{Label("check", c.Name)}}}", c.Healthy ? 1L : 0L)));
        Gauge(text, "safekit_check_consecutive_failures", "Consecutive failed runs of the checker.", checks.Select(c => ($"{{{node},{Label("check", c.Name)}}}", (long)c.ConsecutiveFailures)));
        Counter(text, "safekit_check_failures_total", "Failed runs of the checker.", checks.Select(c => ($"{{{node},{Label("check", c.Name)}}}", c.Failures)));
        Counter(text, "safekit_api_requests_total", "API requests answered, by status code.",
            api.ByStatus().Select(s => ($"{{{node},{Label("code", s.Key.ToString(CultureInfo.InvariantCulture))}}}", s.Value)));
        return text.ToString();
    }

    private static void Gauge(StringBuilder text, string name, string help, IEnumerable<(string Labels, long Value)> samples) =>
        Family(text, name, "gauge", help, samples);

    private static void Counter(StringBuilder text, string name, string help, IEnumerable<(string Labels, long Value)> samples) =>
        Family(text, name, "counter", help, samples);

    private static void Family(StringBuilder text, string name, string type, string help, IEnumerable<(string Labels, long Value)> samples)
    {
        text.Append("# HELP ").Append(name).Append(' ').Append(help.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal)).Append('\n');
        text.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
        foreach (var (labels, value) in samples)
        {
            text.Append(name).Append(labels).Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
    }

    private static string Label(string name, string value) =>
        $"{name}=\"{value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal)}\"";

    private static string Sanitize(string name) => new(name.Select(c => char.IsAsciiLetterOrDigit(c) ? char.ToLowerInvariant(c) : '_').ToArray());
}
