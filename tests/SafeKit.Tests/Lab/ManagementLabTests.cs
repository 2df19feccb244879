using System.Globalization;
using System.Text.Json;
using SafeKit.Native.Host;
using SafeKit.Tests.Infrastructure;

namespace SafeKit.Tests.Lab;

/// <summary>
/// The operator's tools against a real lab: the <c>safekit</c> CLI over the API (run in the lab's
/// namespaces by <c>lab exec</c>, which gives it the lab's URL, token file and CA), the cluster
/// resources any node answers, the event timeline and its live stream, TLS verification.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class ManagementLabTests : IClassFixture<ManagementLab>
{
    private readonly ManagementLab _lab;

    public ManagementLabTests(ManagementLab lab)
    {
        _lab = lab;
    }

    private string N(int i) => $"{_lab.Prefix}-n{i}";

    private CommandResult Cli(string where, params string[] arguments) => _lab.Exec(where, [Tools.Safekit, .. arguments]);

    private JsonElement ClusterJson(string where = "client")
    {
        var result = Cli(where, "status", "--json");
        Assert.True(result.ExitCode is 0 or 1, $"status --json: {result.ExitCode} {result.Error}");
        return JsonDocument.Parse(result.Output).RootElement;
    }

    private string Token(string role) =>
        File.ReadAllLines(Path.Combine(_lab.StateDirectory, "api-tokens")).First(l => l.StartsWith(role + " ", StringComparison.Ordinal)).Split(' ')[1];

    private void WaitAllUp() =>
        LabInstance.WaitUntil(() => Cli("client", "status").ExitCode == 0, "every node UP in safekit status", 60);

    [Fact]
    public void Status_ShowsEveryNode_FromAnyNode_AsATableAndAsJson()
    {
        _lab.Require();
        WaitAllUp();
        var table = Cli("client", "status");
        Assert.Equal(0, table.ExitCode);
        var lines = table.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith($"cluster {_lab.Prefix}-lab: view ", lines[0], StringComparison.Ordinal);
        Assert.StartsWith("NODE", lines[1], StringComparison.Ordinal);
        for (var i = 1; i <= 3; i++)
        {
            Assert.Contains(lines, l => l.StartsWith(N(i) + " ", StringComparison.Ordinal) && l.Contains(" alive ", StringComparison.Ordinal) && l.Contains(" UP ", StringComparison.Ordinal));
        }

        // Each node answers for all, also on its loopback address (the CLI's default on a node).
        for (var i = 1; i <= 3; i++)
        {
            var result = Cli(N(i), "status", "--json", "--node", "https://127.0.0.1:9453");
            Assert.True(result.ExitCode == 0, $"{N(i)}: {result.ExitCode} {result.Error}");
            var cluster = JsonDocument.Parse(result.Output).RootElement;
            Assert.Equal(N(i), cluster.GetProperty("answered_by").GetString());
            var nodes = cluster.GetProperty("nodes").EnumerateArray().ToList();
            Assert.Equal(3, nodes.Count);
            Assert.All(nodes, n => Assert.True(n.GetProperty("reachable").GetBoolean() && n.GetProperty("alive").GetBoolean(), n.ToString()));
            Assert.All(nodes, n => Assert.Equal(n.GetProperty("name").GetString(), n.GetProperty("status").GetProperty("node").GetString()));
            var links = cluster.GetProperty("membership").GetProperty("peers").EnumerateArray().Where(p => p.GetProperty("name").GetString() != N(i)).SelectMany(p => p.GetProperty("links").EnumerateArray()).ToList();
            Assert.Equal(2, links.Count);
            Assert.All(links, l => Assert.True(l.GetProperty("received").GetInt64() > 0));
        }
    }

    [Fact]
    public void ExitCodes_SayWhatWentWrong_InOneLine()
    {
        _lab.Require();
        var badToken = Cli("client", "status", "--token", "not-a-token");
        Assert.Equal(4, badToken.ExitCode);
        Assert.Equal("safekit: Invalid token (401): the API token is not one of this node's", badToken.Error.Trim());
        var readOnAction = Cli("client", "restart", "web", "--token", Token("read"));
        Assert.Equal(4, readOnAction.ExitCode);
        Assert.Contains("Admin token required (403)", readOnAction.Error, StringComparison.Ordinal);
        var unknownModule = Cli("client", "stop", "nope");
        Assert.Equal(2, unknownModule.ExitCode);
        Assert.Contains("no module 'nope'", unknownModule.Error, StringComparison.Ordinal);
        var unknownNode = Cli("client", "stop", "web", "--on", "nobody");
        Assert.Equal(2, unknownNode.ExitCode);
        Assert.Contains("no node 'nobody'", unknownNode.Error, StringComparison.Ordinal);
        var unreachable = Cli("client", "status", "--node", "https://198.18.0.99:9453", "--timeout", "3");
        Assert.Equal(3, unreachable.ExitCode);
        var usage = Cli("client", "status", "--nodes", "x");
        Assert.Equal(64, usage.ExitCode);
        Assert.Equal("safekit: unknown option --nodes", usage.Error.Trim());
        Assert.Equal(64, Cli("client", "status", "--node", "ftp://x").ExitCode);

        // TLS is verified: without the lab's CA the certificate is not trusted; pinning another
        // node's certificate does not trust this one; --insecure skips the check.
        var untrusted = _lab.Exec("client", "env", "-u", "SAFEKIT_CA", Tools.Safekit, "status");
        Assert.Equal(3, untrusted.ExitCode);
        Assert.Contains("TLS certificate is not trusted", untrusted.Error, StringComparison.Ordinal);
        var otherPin = Cli("client", "status", "--ca", Path.Combine(_lab.StateDirectory, N(2), "api.pem"));
        Assert.Equal(3, otherPin.ExitCode);
        Assert.Equal(0, Cli("client", "status", "--ca", Path.Combine(_lab.StateDirectory, N(1), "api.pem")).ExitCode);
        Assert.Equal(0, _lab.Exec("client", "env", "-u", "SAFEKIT_CA", Tools.Safekit, "status", "--insecure").ExitCode);
        Assert.DoesNotContain(new[] { badToken, readOnAction, unknownModule, unknownNode, unreachable, untrusted }, r => r.Error.Contains("   at ", StringComparison.Ordinal));
    }

    [Fact]
    public void Actions_OnAnotherNode_AreForwarded_AndShowInStatusAndEvents()
    {
        _lab.Require();
        WaitAllUp();
        var stop = Cli("client", "stop", "web", "--on", N(3));
        Assert.True(stop.ExitCode == 0, $"{stop.ExitCode} {stop.Error}");
        Assert.Equal($"stop of web done on {N(3)} (state STOP)", stop.Output.Trim());
        var stopped = Cli("client", "status");
        Assert.Equal(1, stopped.ExitCode);
        Assert.Contains(stopped.Output.Split('\n'), l => l.StartsWith(N(3) + " ", StringComparison.Ordinal) && l.Contains(" STOP ", StringComparison.Ordinal));
        Assert.DoesNotContain(N(3), ClusterJson().GetProperty("membership").GetProperty("members").EnumerateArray().Select(m => m.GetString()));

        var twice = Cli("client", "stop", "web", "--on", N(3));
        Assert.Equal(1, twice.ExitCode);
        Assert.Contains("already stopped", twice.Error, StringComparison.Ordinal);

        var start = Cli("client", "start", "web", "--on", N(3));
        Assert.True(start.ExitCode == 0, $"{start.ExitCode} {start.Error}");
        WaitAllUp();

        var events = Cli("client", "events", "--limit", "200");
        Assert.Equal(0, events.ExitCode);
        Assert.Contains(events.Output.Split('\n'), l => l.Contains(N(3), StringComparison.Ordinal) && l.Contains("action web: stop requested by an administrator", StringComparison.Ordinal));
        Assert.Contains(events.Output.Split('\n'), l => l.Contains(N(3), StringComparison.Ordinal) && l.Contains("UP → ", StringComparison.Ordinal));
        Assert.Contains(events.Output.Split('\n'), l => l.Contains("action web: start done", StringComparison.Ordinal));
        var json = Cli("client", "events", "--json", "--limit", "5");
        Assert.Equal(5, json.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("sequence").GetInt64()).Count());
    }

    [Fact]
    public void Config_DiffAndReload_ThroughTheApi()
    {
        _lab.Require();
        var config = Path.Combine(_lab.StateDirectory, "cluster.yaml");
        var same = Cli("client", "config", "diff", config);
        Assert.True(same.ExitCode == 0, same.Error);
        Assert.StartsWith("valid; a reload applies it:", same.Output, StringComparison.Ordinal);
        var changed = Path.Combine(_lab.StateDirectory, "changed.yaml");
        File.WriteAllText(changed, File.ReadAllText(config).Replace("interval_ms: 300", "interval_ms: 400", StringComparison.Ordinal).Replace($"  name: {_lab.Prefix}-lab", "  name: other", StringComparison.Ordinal));
        var refused = Cli("client", "config", "diff", changed);
        Assert.Equal(1, refused.ExitCode);
        Assert.StartsWith("valid, but a reload would be refused:", refused.Output, StringComparison.Ordinal);
        Assert.Contains(refused.Output.Split('\n'), l => l.StartsWith("  change: ", StringComparison.Ordinal) && l.Contains(".checkers", StringComparison.Ordinal));
        Assert.Contains("  needs a restart of safekitd: cluster.name", refused.Output, StringComparison.Ordinal);
        var broken = Path.Combine(_lab.StateDirectory, "broken.yaml");
        File.WriteAllText(broken, File.ReadAllText(config).Replace("    vips:", "    vipz:", StringComparison.Ordinal));
        var errors = Cli("client", "config", "diff", broken);
        Assert.Equal(1, errors.ExitCode);
        Assert.Contains($"{broken}:", errors.Error, StringComparison.Ordinal);
        Assert.Contains("modules[0].vipz: unknown key", errors.Error, StringComparison.Ordinal);

        // `events --follow` prints the reloads as they happen.
        var followed = Path.Combine(_lab.StateDirectory, "follow.txt");
        using var follow = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("sh",
            ["-c", $"{Tools.Safekit} lab exec --prefix {_lab.Prefix} client -- timeout 8 {Tools.Safekit} events --follow --limit 1 > {followed} 2>&1"]))!;
        Thread.Sleep(2500);
        var reload = Cli("client", "config", "reload", "--all");
        Assert.True(reload.ExitCode == 0, reload.Error);
        Assert.True(follow.WaitForExit(20_000));
        Assert.Contains($"{N(1)}  info     config: configuration reloaded: nothing changed", File.ReadAllText(followed), StringComparison.Ordinal);
        for (var i = 1; i <= 3; i++)
        {
            Assert.Contains($"{N(i)}: reloaded (nothing changed)", reload.Output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void KilledNode_TurnsDead_InStatusEventsAndTheLiveStream()
    {
        _lab.Require();
        WaitAllUp();
        var token = Token("read");
        var ca = Path.Combine(_lab.StateDirectory, "api-ca.pem");
        // The live stream of node 1, read by curl in the client namespace while node 3 is killed.
        var streamFile = Path.Combine(_lab.StateDirectory, "stream.txt");
        using var stream = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("ip",
            ["netns", "exec", _lab.Prefix + "-client", "curl", "-sN", "--max-time", "12", "--cacert", ca, "-H", "Authorization: Bearer " + token, "-o", streamFile, "https://198.18.0.11:9453/api/v1/events/stream"]))!;
        Thread.Sleep(1500);
        _lab.Lab("kill", "n3");
        try
        {
            LabInstance.WaitUntil(() => Cli("client", "status").Output.Split('\n').Any(l => l.StartsWith(N(3) + " ", StringComparison.Ordinal) && l.Contains(" DEAD ", StringComparison.Ordinal)), "node 3 DEAD in safekit status", 10);
            var cluster = ClusterJson();
            var dead = cluster.GetProperty("nodes").EnumerateArray().Single(n => n.GetProperty("name").GetString() == N(3));
            Assert.False(dead.GetProperty("alive").GetBoolean());
            Assert.False(dead.GetProperty("reachable").GetBoolean());
            Assert.False(string.IsNullOrEmpty(dead.GetProperty("error").GetString()));

            var events = Cli("client", "events", "--limit", "100");
            Assert.Contains(events.Output.Split('\n'), l => l.Contains("failover: " + N(3) + " died", StringComparison.Ordinal));
            Assert.Contains($"events of {N(3)} unavailable", events.Error, StringComparison.Ordinal);

            Assert.True(stream.WaitForExit(20_000));
            var sse = File.ReadAllText(streamFile);
            Assert.Contains("event: hello", sse, StringComparison.Ordinal);
            Assert.Contains("event: event", sse, StringComparison.Ordinal);
            Assert.Contains($"{N(3)} is dead", sse, StringComparison.Ordinal);
            var ids = sse.Split('\n').Where(l => l.StartsWith("id: ", StringComparison.Ordinal)).Select(l => long.Parse(l[4..], CultureInfo.InvariantCulture)).ToList();
            Assert.NotEmpty(ids);
            Assert.Equal(ids.Order(), ids);

            var metrics = _lab.Exec("client", "curl", "-s", "--cacert", ca, "-H", "Authorization: Bearer " + token, "https://198.18.0.11:9453/metrics").Output;
            Assert.Contains(metrics.Split('\n'), l => l.StartsWith("safekit_failovers_total{", StringComparison.Ordinal) && !l.EndsWith(" 0", StringComparison.Ordinal));
        }
        finally
        {
            _lab.Lab("start", "n3");
        }

        WaitAllUp();
    }

    [Fact]
    public void PeerRequests_NeedTheClusterKey_AndTheConsoleHoldsNoData()
    {
        _lab.Require();
        var ca = Path.Combine(_lab.StateDirectory, "api-ca.pem");
        var forged = _lab.Exec("client", "curl", "-s", "--cacert", ca, "-w", "\n%{http_code}", "-H",
            $"Authorization: SafeKit-Peer node={N(2)}, ts={DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()}, nonce=00112233445566778899aabbccddeeff, sig={new string('0', 64)}",
            "https://198.18.0.11:9453/api/v1/node");
        Assert.EndsWith("\n401", forged.Output, StringComparison.Ordinal);
        Assert.Contains("bad peer signature", forged.Output, StringComparison.Ordinal);

        var page = _lab.Exec("client", "curl", "-s", "-D", "-", "--cacert", ca, "https://198.18.0.11:9453/console/");
        Assert.Contains("content-security-policy: default-src 'none'", page.Output, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("<title>SafeKit console</title>", page.Output, StringComparison.Ordinal);
        var script = _lab.Exec("client", "curl", "-s", "-w", "\n%{http_code} %{content_type}", "--cacert", ca, "https://198.18.0.11:9453/console/console.js");
        Assert.EndsWith("200 text/javascript; charset=utf-8", script.Output, StringComparison.Ordinal);
        var root = _lab.Exec("client", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "--cacert", ca, "https://198.18.0.11:9453/");
        Assert.Equal("302 https://198.18.0.11:9453/console/", root.Output);
        var missing = _lab.Exec("client", "curl", "-s", "-w", "\n%{http_code}", "--cacert", ca, "https://198.18.0.11:9453/console/secret.txt");
        Assert.EndsWith("\n404", missing.Output, StringComparison.Ordinal);
        var data = _lab.Exec("client", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", ca, "https://198.18.0.11:9453/api/v1/cluster");
        Assert.Equal("401", data.Output);
    }
}
