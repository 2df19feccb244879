using System.Text.Json;
using SafeKit.Api;
using SafeKit.ControlPlane.Status;

namespace SafeKit.Tests.Resync;

/// <summary>
/// A resync's progress as users read it: the Prometheus metrics of the node that runs it (files,
/// bytes, wire, ETA, active) and the line <c>safekit status</c> prints under the table, live and
/// once it ended.
/// </summary>
public sealed class ResyncProgressTests
{
    private static NodeStatus Node(ResyncProgress resync) => new(
        "lab",
        "m1",
        1,
        DateTimeOffset.UnixEpoch,
        DateTimeOffset.UnixEpoch,
        [new ModuleStatus("mirror", "mirror", "ALONE", null, Mirror: new MirrorStatus(
            "m2", true, "WAIT", Guid.NewGuid().ToString(), Guid.Empty.ToString(), "newer", "resynchronising m2",
            [new MirrorDirectoryStatus("/srv/www", "/var/lib/safekit/mirror/data/srv/www", "sync", "rw", "alone", 1234, 0, 0)],
            resync))]);

    private static readonly JsonSerializerOptions SnakeCase = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private static readonly ResyncProgress Live = new("m2", true, "pass 1", "1000 journaled paths (1000 here, 0 on the target)", 400, 380, 9_000_000, 5_500_000, 6_000_000, 2.0, 3_000_000, 3.1, null);

    [Fact]
    public void Metrics_ShowTheResyncThisNodeRuns_WithItsEstimate()
    {
        var text = MetricsWriter.Write(Node(Live), new ApiMetrics());
        Assert.Contains("safekit_mirror_state{node=\"m1\",module=\"mirror\",state=\"ALONE\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("safekit_mirror_changes_since_alone{node=\"m1\",module=\"mirror\",path=\"/srv/www\"} 1234", text, StringComparison.Ordinal);
        Assert.Contains("safekit_mirror_resync_active{node=\"m1\",module=\"mirror\",target=\"m2\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("safekit_mirror_resync_files_compared{node=\"m1\",module=\"mirror\",target=\"m2\"} 380", text, StringComparison.Ordinal);
        Assert.Contains("safekit_mirror_resync_bytes_sent{node=\"m1\",module=\"mirror\",target=\"m2\"} 5500000", text, StringComparison.Ordinal);
        Assert.Contains("safekit_mirror_resync_eta_seconds{node=\"m1\",module=\"mirror\",target=\"m2\"} 4", text, StringComparison.Ordinal);

        // Ended: no estimate any more, the figures stay.
        var ended = MetricsWriter.Write(Node(Live with { Active = false, Phase = "done", EtaSeconds = null, Outcome = "resynchronised" }), new ApiMetrics());
        Assert.Contains("safekit_mirror_resync_active{node=\"m1\",module=\"mirror\",target=\"m2\"} 0", ended, StringComparison.Ordinal);
        Assert.DoesNotContain("safekit_mirror_resync_eta_seconds{", ended, StringComparison.Ordinal);
    }

    [Fact]
    public void Status_PrintsTheResyncUnderTheTable_LiveWithRateAndEstimate_ThenHowItEnded()
    {
        string Render(ResyncProgress resync)
        {
            var status = JsonSerializer.SerializeToElement(Node(resync), SnakeCase);
            var cluster = JsonSerializer.SerializeToElement(new
            {
                cluster = "lab",
                answered_by = "m1",
                membership = (object?)null,
                nodes = new[] { new { name = "m1", alive = true, reachable = true, status } },
            });
            return SafeKit.Cli.Remote.StatusCommand.Render(cluster);
        }

        Assert.Contains("resync mirror m1 -> m2: pass 1 over 1000 journaled paths (1000 here, 0 on the target): 380 files compared, 5.5 MB changed, 6.0 MB on the wire (3.0 MB/s), about 4 s left", Render(Live), StringComparison.Ordinal);
        Assert.Contains("last resync mirror m1 -> m2: done after 2.0 s: 380 files compared", Render(Live with { Active = false, Phase = "done", EtaSeconds = null }), StringComparison.Ordinal);
    }
}
