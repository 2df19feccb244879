using System.Globalization;
using System.Text.Json;
using SafeKit.Tests.Infrastructure;

namespace SafeKit.Tests.Lab;

/// <summary>
/// The HTTP control API of real safekitd nodes in a lab, called over HTTPS from the client
/// namespace with curl: the token matrix, resources, actions, bad inputs, metrics, OpenAPI.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class ApiLabTests : IClassFixture<ApiLab>
{
    private readonly ApiLab _lab;

    public ApiLabTests(ApiLab lab)
    {
        _lab = lab;
    }

    private (string Admin, string Read, string Url) Access(int node)
    {
        var status = _lab.Status();
        var api = status.GetProperty("api");
        return (api.GetProperty("admin_token").GetString()!, api.GetProperty("read_token").GetString()!, status.GetProperty("nodes")[node - 1].GetProperty("api_url").GetString()!);
    }

    /// <summary>One request from the client namespace: status code, content type, body.</summary>
    private (int Status, string Type, string Body) Call(string method, string path, string? token, string? body = null, string contentType = "application/json", int node = 1, string? bodyFile = null)
    {
        var (_, _, url) = Access(node);
        var command = new List<string> { "curl", "-sk", "-m", "60", "-X", method, "-o", "-", "-w", "\n%{http_code} %{content_type}", url + path };
        if (token is not null)
        {
            command.AddRange(["-H", "Authorization: Bearer " + token]);
        }

        if (body is not null)
        {
            command.AddRange(["-H", "Content-Type: " + contentType, "--data-binary", body]);
        }

        if (bodyFile is not null)
        {
            command.AddRange(["-H", "Content-Type: " + contentType, "--data-binary", "@" + bodyFile]);
        }

        var result = _lab.Exec("client", [.. command]);
        Assert.True(result.Succeeded, $"curl {method} {path}: {result.Error}");
        var last = result.Output.LastIndexOf('\n');
        var tail = result.Output[(last + 1)..].Split(' ', 2);
        return (int.Parse(tail[0], CultureInfo.InvariantCulture), tail.Length > 1 ? tail[1] : "", result.Output[..last]);
    }

    private static void AssertProblem((int Status, string Type, string Body) response, int status)
    {
        Assert.True(status == response.Status, $"expected {status}, got {response.Status}: {response.Body}");
        Assert.StartsWith("application/problem+json", response.Type, StringComparison.Ordinal);
        var problem = JsonDocument.Parse(response.Body).RootElement;
        Assert.Equal(status, problem.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("title").GetString()));
        Assert.DoesNotContain("   at ", response.Body, StringComparison.Ordinal);
    }

    [Fact]
    public void Tokens_NoneOrWrongIs401_ReadOnAnActionIs403_AdminMayDoBoth()
    {
        _lab.Require();
        var (admin, read, _) = Access(1);

        AssertProblem(Call("GET", "/api/v1/node", null), 401);
        AssertProblem(Call("GET", "/api/v1/node", "not-a-token-of-this-cluster"), 401);
        AssertProblem(Call("POST", "/api/v1/config/reload", null), 401);
        Assert.Equal(200, Call("GET", "/api/v1/node", read).Status);
        AssertProblem(Call("POST", "/api/v1/config/reload", read), 403);
        AssertProblem(Call("POST", "/api/v1/modules/web/actions", read, """{"action":"restart"}"""), 403);
        Assert.Equal(200, Call("GET", "/api/v1/node", admin).Status);
        var reload = Call("POST", "/api/v1/config/reload", admin);
        Assert.Equal(200, reload.Status);
        Assert.True(JsonDocument.Parse(reload.Body).RootElement.GetProperty("applied").GetBoolean());

        // No token ever reaches a log.
        foreach (var log in Directory.GetFiles(_lab.StateDirectory, "safekitd.log", SearchOption.AllDirectories))
        {
            var text = File.ReadAllText(log);
            Assert.DoesNotContain(admin, text, StringComparison.Ordinal);
            Assert.DoesNotContain(read, text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Resources_DescribeTheNodeItsBucketsPeersChecksAndConfiguration()
    {
        _lab.Require();
        var (_, read, _) = Access(2);

        var node = JsonDocument.Parse(Call("GET", "/api/v1/node", read, node: 2).Body).RootElement;
        Assert.Equal($"{_lab.Prefix}-n2", node.GetProperty("node").GetString());
        Assert.Equal("UP", node.GetProperty("modules")[0].GetProperty("state").GetString());

        var ranges = JsonDocument.Parse(Call("GET", "/api/v1/modules/web/buckets", read, node: 2).Body).RootElement.EnumerateArray().ToList();
        Assert.Equal(0, ranges[0].GetProperty("first").GetInt32());
        Assert.Equal(4095, ranges[^1].GetProperty("last").GetInt32());
        var owned = ranges.Where(r => r.GetProperty("owner").GetString() == $"{_lab.Prefix}-n2").Sum(r => r.GetProperty("last").GetInt32() - r.GetProperty("first").GetInt32() + 1);
        Assert.Equal(_lab.OwnedBuckets(2), owned);

        var peers = JsonDocument.Parse(Call("GET", "/api/v1/peers", read, node: 2).Body).RootElement;
        Assert.Equal(3, peers.GetProperty("members").GetArrayLength());
        Assert.All(peers.GetProperty("peers").EnumerateArray(), p => Assert.True(p.GetProperty("alive").GetBoolean()));
        var checks = JsonDocument.Parse(Call("GET", "/api/v1/checks", read, node: 2).Body).RootElement;
        Assert.Contains(checks.EnumerateArray(), c => c.GetProperty("name").GetString()!.StartsWith("tcp:", StringComparison.Ordinal) && c.GetProperty("healthy").GetBoolean());

        var config = Call("GET", "/api/v1/config", read, node: 2).Body;
        Assert.Contains("\"key_file\"", config, StringComparison.Ordinal);
        var key = Convert.ToHexString(File.ReadAllBytes(Path.Combine(_lab.StateDirectory, "cluster.key")));
        Assert.DoesNotContain(key, config, StringComparison.OrdinalIgnoreCase);
        AssertProblem(Call("GET", "/api/v1/modules/nope", read), 404);
        AssertProblem(Call("GET", "/api/v1/nothing-here", read), 404);
    }

    [Fact]
    public void BadRequests_GetProblemJsonWithTheRightStatus()
    {
        _lab.Require();
        var (admin, _, _) = Access(1);

        AssertProblem(Call("POST", "/api/v1/modules/web/actions", admin, "{"), 400);
        AssertProblem(Call("POST", "/api/v1/modules/web/actions", admin, """{"action": 5}"""), 400);
        var unknown = Call("POST", "/api/v1/modules/web/actions", admin, """{"action": "explode"}""");
        AssertProblem(unknown, 400);
        Assert.Contains("stopstart", unknown.Body, StringComparison.Ordinal);
        AssertProblem(Call("POST", "/api/v1/modules/web/actions", admin, "{}"), 400);
        AssertProblem(Call("POST", "/api/v1/modules/nope/actions", admin, """{"action": "stop"}"""), 404);
        AssertProblem(Call("DELETE", "/api/v1/node", admin), 405);
        AssertProblem(Call("POST", "/api/v1/config/validate", admin, "cluster: [", "application/yaml"), 422);
        var valid = Call("POST", "/api/v1/config/validate", admin, File.ReadAllText(Path.Combine(_lab.StateDirectory, "cluster.yaml")), "application/yaml");
        Assert.Equal(200, valid.Status);
        Assert.True(JsonDocument.Parse(valid.Body).RootElement.GetProperty("reloadable").GetBoolean());

        var huge = Path.Combine(_lab.StateDirectory, "huge.json");
        File.WriteAllText(huge, "{\"action\":\"" + new string('x', 3 * 1024 * 1024) + "\"}");
        try
        {
            AssertProblem(Call("POST", "/api/v1/modules/web/actions", admin, bodyFile: huge), 413);
        }
        finally
        {
            File.Delete(huge);
        }
    }

    [Fact]
    public void Actions_StopDrainsTheNodeOutOfTheFarm_StartBringsItBack()
    {
        _lab.Require();
        var (admin, _, _) = Access(3);

        var stopped = Call("POST", "/api/v1/modules/web/actions", admin, """{"action":"stop"}""", node: 3);
        Assert.Equal(200, stopped.Status);
        Assert.Equal("STOP", JsonDocument.Parse(stopped.Body).RootElement.GetProperty("state").GetString());
        LabInstance.WaitUntil(() => _lab.Members(1).Count == 2 && _lab.OwnedBuckets(1) + _lab.OwnedBuckets(2) == 4096, "n1 and n2 own every bucket", 10);
        Assert.Equal(2, _lab.HttpFollowingTheTable("198.18.0.100", 40).Count);
        AssertProblem(Call("POST", "/api/v1/modules/web/actions", admin, """{"action":"stop"}""", node: 3), 409);

        Assert.Equal(200, Call("POST", "/api/v1/modules/web/actions", admin, """{"action":"start"}""", node: 3).Status);
        LabInstance.WaitUntil(() => Enumerable.Range(1, 3).All(i => _lab.Members(i).Count == 3), "n3 is back in the farm", 15);
        Assert.Equal(3, _lab.HttpFollowingTheTable("198.18.0.100", 60).Count);
        var transitions = _lab.NodeStatus(3).GetProperty("modules")[0].GetProperty("transitions").EnumerateArray().Select(t => t.GetProperty("to").GetString()).ToList();
        Assert.Contains("STOP", transitions);
    }

    [Fact]
    public void Metrics_ParseWithThePrometheusParser_AndOpenApiListsTheEndpoints()
    {
        _lab.Require();
        var (_, read, _) = Access(1);

        Assert.Equal(200, Call("GET", "/api/v1/node", read).Status);
        // Traffic to the VIP, so the per-VIP counters have something to count.
        for (var i = 0; i < 10; i++)
        {
            _lab.Exec("client", "curl", "-s", "-m", "5", "http://198.18.0.100/");
        }

        var metrics = Call("GET", "/metrics", read);
        Assert.Equal(200, metrics.Status);
        var file = Path.Combine(_lab.StateDirectory, "metrics.txt");
        File.WriteAllText(file, metrics.Body);
        // The reference parser (Debian's python3-prometheus-client, for /usr/bin/python3) reads every family and sample.
        var parsed = Tools.Run("/usr/bin/python3", "-c", """
            import sys
            from prometheus_client.parser import text_string_to_metric_families
            for family in text_string_to_metric_families(open(sys.argv[1]).read()):
                for sample in family.samples:
                    print(family.type, sample.name, sample.labels.get("module", ""), sample.value, sample.labels.get("vip", ""), sample.labels.get("peer", ""), sample.labels.get("network", ""))
            """, file);
        Assert.True(parsed.Succeeded, parsed.Error);
        var lines = parsed.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains(lines, l => l.StartsWith("gauge safekit_farm_buckets_owned web ", StringComparison.Ordinal) && double.Parse(l.Split(' ')[3], CultureInfo.InvariantCulture) > 0);
        Assert.Contains(lines, l => l.StartsWith("counter safekit_farm_packets_accepted_total web ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("gauge safekit_peer_up ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("counter safekit_api_requests_total ", StringComparison.Ordinal));
        double Value(string line) => double.Parse(line.Split(' ')[3], CultureInfo.InvariantCulture);
        var vip = lines.Where(l => l.StartsWith("counter safekit_farm_vip_packets_", StringComparison.Ordinal) && l.Split(' ')[4] == "198.18.0.100").ToList();
        Assert.Equal(2, vip.Count);
        Assert.True(vip.Sum(Value) > 0, string.Join('\n', vip));
        var received = lines.Where(l => l.StartsWith("counter safekit_heartbeats_received_total ", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, received.Count);
        Assert.All(received, l => Assert.True(Value(l) > 0 && l.Split(' ')[5].Length > 0 && l.Split(' ')[6] == "198.18.0.11", l));
        Assert.Equal(2, lines.Count(l => l.StartsWith("counter safekit_heartbeats_lost_total ", StringComparison.Ordinal)));
        Assert.Contains(lines, l => l.StartsWith("counter safekit_failovers_total ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("counter safekit_check_failures_total ", StringComparison.Ordinal));

        var openApi = JsonDocument.Parse(Call("GET", "/openapi/v1.json", read).Body).RootElement;
        var paths = openApi.GetProperty("paths").EnumerateObject().Select(p => p.Name).ToList();
        Assert.Contains("/api/v1/node", paths);
        Assert.Contains("/api/v1/modules/{name}/actions", paths);
        Assert.Contains("/api/v1/config/reload", paths);
        Assert.Contains("/api/v1/cluster", paths);
        Assert.Contains("/api/v1/cluster/events", paths);
        Assert.Contains("/api/v1/cluster/nodes/{node}/modules/{name}/actions", paths);
        Assert.Contains("/api/v1/cluster/nodes/{node}/config/reload", paths);
        Assert.Contains("/api/v1/events", paths);
        Assert.Contains("/api/v1/events/stream", paths);
        Assert.DoesNotContain(paths, p => p.StartsWith("/console", StringComparison.Ordinal));
        Assert.True(openApi.GetProperty("components").GetProperty("securitySchemes").TryGetProperty("bearer", out _));
    }
}
