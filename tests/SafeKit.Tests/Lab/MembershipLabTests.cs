using System.Globalization;
using System.Net;
using System.Text.Json;
using SafeKit.Tests.Infrastructure;

namespace SafeKit.Tests.Lab;

/// <summary>
/// Membership and failover with real faults: a crashed daemon, a pulled cable, a saturated CPU,
/// forged and replayed heartbeats, partitions of the heartbeat network. Each test leaves the lab
/// whole again.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class MembershipLabTests : IClassFixture<FailureLab>, IDisposable
{
    private readonly FailureLab _lab;

    public MembershipLabTests(FailureLab lab)
    {
        _lab = lab;
    }

    [Fact]
    public async Task Kill_UnderContinuousRequests_EveryRequestAfterDetectionSucceedsAndTheNodeRejoins()
    {
        _lab.Require();
        var load = Task.Run(() => _lab.ExecJson("client", Tools.Loadgen, "http", "--host", "198.18.0.100", "--count", "6000", "--concurrency", "4", "--timeout-ms", "5000"));
        Thread.Sleep(1500);
        var killedAt = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        _lab.Lab("kill", "n2");
        LabInstance.WaitUntil(() => !_lab.Members(1).Contains(_lab.Prefix + "-n2") && !_lab.Members(3).Contains(_lab.Prefix + "-n2"), "the survivors drop n2", 5);
        var report = await load;

        var connections = report.GetProperty("connections").EnumerateArray().ToList();
        var late = connections.Where(c => c.GetProperty("start_ms").GetInt64() > killedAt + 1500).ToList();
        Assert.True(late.Count > 500, $"only {late.Count} requests ran after the detection window");
        Assert.All(late, c => Assert.True(c.GetProperty("error").ValueKind == JsonValueKind.Null, $"a request {c.GetProperty("start_ms").GetInt64() - killedAt} ms after the kill failed: {c.GetProperty("error")}"));
        Assert.DoesNotContain(late, c => c.GetProperty("body").GetString() == $"node {_lab.Prefix}-n2");
        Assert.Equal(4096, _lab.OwnedBuckets(1) + _lab.OwnedBuckets(3));
        // The survivors handed what n2 left unanswered (SYNs, requests) to their stacks at takeover.
        var replayed = new[] { 1, 3 }.Sum(i => _lab.NodeStatus(i).GetProperty("modules")[0].GetProperty("farm").GetProperty("counters").GetProperty("takeover_replayed").GetInt64());
        Assert.True(replayed > 0, "nothing was replayed at takeover");

        _lab.Lab("start", "n2");
        LabInstance.WaitUntil(() => Enumerable.Range(1, 3).All(i => _lab.Members(i).Count == 3), "n2 rejoins the view");
        Assert.Equal(3, _lab.HttpFollowingTheTable("198.18.0.100", 90).Count);
    }

    [Fact]
    public async Task Kill_AdopterHoldsTimeWaitForTheSame4Tuple_TheOrphanGetsAResetNotAStall()
    {
        _lab.Require();
        string N(int i) => $"{_lab.Prefix}-n{i}";
        // A client port whose flow n2 serves, and n1 when n2 is gone.
        var candidates = LabInstance.Ports(5, 33000, p => _lab.OwnerIn([N(1), N(2), N(3)], p) == N(2) && _lab.OwnerIn([N(1), N(3)], p) == N(1));
        _lab.Lab("kill", "n2");
        LabInstance.WaitUntil(() => !_lab.Members(1).Contains(N(2)) && !_lab.Members(3).Contains(N(2)), "the survivors drop n2", 5);

        // n1 serves a request that asks it to close: n1 closes first and keeps a TIME_WAIT socket.
        ushort port = 0;
        foreach (var candidate in candidates)
        {
            var text = candidate.ToString(CultureInfo.InvariantCulture);
            var body = _lab.Exec("client", "curl", "-s", "-m", "5", "--local-port", text, "-H", "Connection: close", "http://198.18.0.100/").Output.Trim();
            Assert.Equal($"node {N(1)}", body);
            Thread.Sleep(200);
            if (_lab.Exec("n1", "ss", "-Htan", "state", "time-wait", "dport", "= :" + text).Output.Contains("198.18.0.10:" + text, StringComparison.Ordinal)
                && !_lab.Exec("client", "ss", "-Htan", "state", "time-wait", "sport", "= :" + text).Output.Contains(text, StringComparison.Ordinal))
            {
                port = candidate;
                break;
            }
        }

        Assert.True(port != 0, "no client port left a TIME_WAIT socket on n1 only");
        _lab.Lab("start", "n2");
        LabInstance.WaitUntil(() => Enumerable.Range(1, 3).All(i => _lab.Members(i).Count == 3), "n2 rejoins the view");

        // A keep-alive client on the same port, now served by n2; n2 dies under it.
        var cleared = _lab.NodeStatus(1).GetProperty("modules")[0].GetProperty("farm").GetProperty("counters").GetProperty("time_wait_cleared").GetInt64();
        var probe = Task.Run(() => _lab.ExecJson("client", Tools.Loadgen, "probe", "--host", "198.18.0.100", "--seconds", "6", "--new", "0", "--keepalive", "1",
            "--interval-ms", "50", "--timeout-ms", "4000", "--local-port", port.ToString(CultureInfo.InvariantCulture)));
        Thread.Sleep(1500);
        _lab.Lab("kill", "n2");
        var samples = (await probe).GetProperty("samples").EnumerateArray().ToList();

        Assert.Contains(samples, s => s[4].GetInt32() == 1 && s[5].GetString() == $"node {N(2)}");
        var failures = samples.Where(s => s[4].GetInt32() == 0).Select(s => s[8].GetString()).ToList();
        // Without clearing, n1's TIME_WAIT socket answers with bare ACKs and the request times out.
        Assert.DoesNotContain("timeout", failures);
        Assert.Contains(samples.SkipWhile(s => s[5].GetString() != $"node {N(2)}"), s => s[4].GetInt32() == 1 && s[5].GetString() == $"node {N(1)}");
        var after = _lab.NodeStatus(1).GetProperty("modules")[0].GetProperty("farm").GetProperty("counters").GetProperty("time_wait_cleared").GetInt64();
        Assert.True(after > cleared, "n1 cleared no TIME_WAIT socket when it adopted n2's buckets");
    }

    [Fact]
    public void LinkDown_TheNodeLeavesAndWaits_LinkUp_ItRejoinsWithOneSynAckPerConnection()
    {
        _lab.Require();
        _lab.Lab("link", "n3", "down");
        LabInstance.WaitUntil(() => _lab.Members(1).Count == 2, "the others drop n3", 5);
        LabInstance.WaitUntil(() => _lab.NodeStatus(3).GetProperty("modules")[0].GetProperty("state").GetString() == "WAIT", "n3, without carrier, waits", 5);
        Assert.Equal(0, _lab.OwnedBuckets(3));
        Assert.Equal(2, _lab.HttpFollowingTheTable("198.18.0.100", 60).Count);

        _lab.Lab("link", "n3", "up");
        LabInstance.WaitUntil(() => Enumerable.Range(1, 3).All(i => _lab.Members(i).Count == 3), "n3 rejoins", 10);
        Assert.Equal(4096, Enumerable.Range(1, 3).Sum(_lab.OwnedBuckets));
        _lab.AssertOneSynAckPerConnection(100);
    }

    [Fact]
    public async Task CpuSaturatedOnEveryCore_NoNodeIsDeclaredDead()
    {
        _lab.Require();
        var changes = Enumerable.Range(1, 3).Select(i => _lab.MembershipCounter(i, "view_changes")).ToArray();
        var epoch = _lab.NodeStatus(1).GetProperty("membership").GetProperty("epoch").GetUInt32();
        var hogs = Enumerable.Range(0, 6).Select(i => Task.Run(() => _lab.Exec($"n{(i % 3) + 1}", "timeout", "8", "sh", "-c", "while :; do :; done"))).ToArray();
        var served = _lab.HttpFollowingTheTable("198.18.0.100", 200, concurrency: 2);
        await Task.WhenAll(hogs);

        Assert.Equal(3, served.Count);
        for (var i = 1; i <= 3; i++)
        {
            Assert.Equal(changes[i - 1], _lab.MembershipCounter(i, "view_changes"));
        }

        Assert.Equal(epoch, _lab.NodeStatus(1).GetProperty("membership").GetProperty("epoch").GetUInt32());
    }

    [Fact]
    public void ForgedReplayedAndForeignHeartbeats_AreDroppedCountedAndChangeNothing()
    {
        _lab.Require();
        // A real heartbeat from n1 to n2, captured on n2.
        var capture = _lab.Exec("n2", "tcpdump", "-Z", "root", "--immediate-mode", "-c", "1", "-x", "-n", "-i", "eth0", "udp port 4800 and src 198.18.0.11");
        var payload = UdpPayload(capture.Output);
        var mac = _lab.Exec("n2", "cat", "/sys/class/net/eth0/address").Output.Trim();
        var before = Counters();
        var epoch = _lab.NodeStatus(2).GetProperty("membership").GetProperty("epoch").GetUInt32();
        var tampered = (byte[])payload.Clone();
        tampered[30] ^= 0x40;
        var foreign = (byte[])payload.Clone();
        foreign[9] ^= 0x01;

        Send(mac, "198.18.0.11", payload, 20);
        Send(mac, "198.18.0.11", tampered, 20);
        Send(mac, "198.18.0.11", foreign, 20);
        Send(mac, "198.18.0.10", payload, 20);

        LabInstance.WaitUntil(() => Grew(before, Counters(), "heartbeats_replayed") && Grew(before, Counters(), "heartbeats_bad_mac") && Grew(before, Counters(), "heartbeats_foreign_cluster") && Grew(before, Counters(), "heartbeats_wrong_source"), "every forged heartbeat is counted", 5);
        Assert.Equal(before["view_changes"], Counters()["view_changes"]);
        Assert.Equal(epoch, _lab.NodeStatus(2).GetProperty("membership").GetProperty("epoch").GetUInt32());
        Assert.Equal(3, _lab.Members(2).Count);
    }

    [Fact]
    public void AsymmetricPartition_SettlesWithExactlyOneOwnerPerBucket()
    {
        _lab.Require();
        _lab.Lab("partition", "--oneway", "n1", "n2");
        _lab.Lab("partition", "--oneway", "n1", "n3");
        LabInstance.WaitUntil(() => _lab.NodeStatus(1).GetProperty("membership").GetProperty("yielding").GetBoolean() && _lab.Members(2).Count == 2, "n1, unheard, yields", 5);
        Thread.Sleep(1000);

        Assert.Equal(0, _lab.OwnedBuckets(1));
        Assert.Equal(4096, Enumerable.Range(1, 3).Sum(_lab.OwnedBuckets));
        _lab.AssertOneSynAckPerConnection(100);

        _lab.Lab("heal");
        LabInstance.WaitUntil(() => Enumerable.Range(1, 3).All(i => _lab.Members(i).Count == 3), "the partition heals", 10);
        Assert.Equal(4096, Enumerable.Range(1, 3).Sum(_lab.OwnedBuckets));
    }

    [Fact]
    public void PartialPartition_EveryoneStaysInTheView_OneOwnerPerBucket()
    {
        _lab.Require();
        _lab.Lab("partition", "n1", "n2");
        Thread.Sleep(1500);

        Assert.All(Enumerable.Range(1, 3), i => Assert.Equal(3, _lab.Members(i).Count));
        Assert.Equal(4096, Enumerable.Range(1, 3).Sum(_lab.OwnedBuckets));
        Assert.Equal(3, _lab.HttpFollowingTheTable("198.18.0.100", 90).Count);
    }

    [Fact]
    public async Task Rejoin_WhileLongDownloadsAndKeepAliveConnectionsRun_NoneBreaks()
    {
        _lab.Require();
        var n1 = _lab.Prefix + "-n1";
        var n2 = _lab.Prefix + "-n2";
        var n3 = _lab.Prefix + "-n3";
        _lab.Lab("kill", "n2");
        LabInstance.WaitUntil(() => _lab.Members(1).Count == 2 && _lab.Members(3).Count == 2, "n2 is out", 5);
        // Downloads that n2 will own once back (served meanwhile by n1 or n3), and others.
        var moving = LabInstance.Ports(4, 30000, p => _lab.OwnerIn([n1, n2, n3], p) == n2);
        var staying = LabInstance.Ports(2, 31000, p => _lab.OwnerIn([n1, n2, n3], p) != n2);
        var downloads = moving.Concat(staying).Select(_lab.DownloadAsync).ToList();
        var probe = Task.Run(() => _lab.ExecJson("client", Tools.Loadgen, "probe", "--host", "198.18.0.100", "--seconds", "9", "--new", "2", "--keepalive", "4", "--timeout-ms", "3000"));
        await Task.Delay(2000, TestContext.Current.CancellationToken);

        _lab.Lab("start", "n2");
        LabInstance.WaitUntil(() => _lab.OwnedBuckets(2) > 0, "n2 owns buckets again", 10);
        var results = await Task.WhenAll(downloads);
        var samples = (await probe).GetProperty("samples").EnumerateArray().ToList();

        Assert.All(results, r => Assert.Equal($"200 {8 << 20}", r));
        Assert.All(samples, s => Assert.True(s[4].GetInt32() == 1, $"a {(s[1].GetInt32() == 1 ? "keep-alive" : "new")} request failed during the rejoin"));
        Assert.Contains(samples, s => s[5].GetString() == $"node {n2}" && s[2].GetInt64() > 0);
    }

    [Fact]
    public async Task Drain_TheStoppedNodeFinishesItsConnectionsTakesNoNewOnesThenExits()
    {
        _lab.Require();
        var n2 = _lab.Prefix + "-n2";
        var all = new[] { _lab.Prefix + "-n1", n2, _lab.Prefix + "-n3" };
        var daemon = _lab.NodeStatus(2).GetProperty("pid").GetInt32();
        long Accepted() => _lab.NodeStatus(2).GetProperty("modules")[0].GetProperty("farm").GetProperty("counters").GetProperty("accepted").GetInt64();
        var acceptedBefore = Accepted();
        var downloads = LabInstance.Ports(3, 32000, p => _lab.OwnerIn(all, p) == n2).Select(_lab.DownloadAsync).ToList();
        // The downloads are under way through n2 (their ACKs reach it) before it is stopped.
        LabInstance.WaitUntil(() => Accepted() - acceptedBefore > 300, "the downloads flow through n2", 10);
        var before = _lab.NodeStatus(2).GetProperty("modules")[0].GetProperty("farm").GetProperty("counters").ToString();

        _lab.Lab("stop", "n2");
        try
        {
            LabInstance.WaitUntil(() => _lab.Members(1).Count == 2, "n2 leaves the view", 5);
            // Out of the view, n2 keeps the buckets of its downloads (read while they still run:
            // they end a few seconds later, and then so do the pins).
            LabInstance.WaitUntil(
                () => _lab.NodeStatus(2) is var status && status.GetProperty("modules").GetArrayLength() > 0 && status.GetProperty("modules")[0].GetProperty("farm").GetProperty("counters").GetProperty("pinned_buckets").GetInt64() > 0,
                $"n2 pins its downloads' buckets (before the stop: {before})",
                3);
            var served = _lab.HttpFollowingTheTable("198.18.0.100", 60);
            Assert.DoesNotContain(n2, served.Keys);
            Assert.False(SafeKit.Native.Host.ProcessControl.IsDead(daemon), "n2 stopped before its connections finished");

            var results = await Task.WhenAll(downloads);
            Assert.All(results, r => Assert.Equal($"200 {8 << 20}", r));
            LabInstance.WaitUntil(() => SafeKit.Native.Host.ProcessControl.IsDead(daemon), "n2's safekitd exits once drained", 45);
        }
        finally
        {
            // Whatever failed, the next test needs n2 startable: its draining daemon must be gone.
            var deadline = DateTime.UtcNow.AddSeconds(75);
            while (!SafeKit.Native.Host.ProcessControl.IsDead(daemon) && DateTime.UtcNow < deadline)
            {
                Thread.Sleep(200);
            }
        }
    }

    [Fact]
    public void ApplicationDies_ItsScriptsRestartIt_AndTheNodeKeepsServing()
    {
        _lab.Require();
        // n3 here, n2 in the next test: each node counts its own restarts in its window.
        _lab.Lab("app", "n3", "stop");

        LabInstance.WaitUntil(() => Application(3).GetProperty("recent_restarts").GetInt32() >= 1 && _lab.Members(1).Count == 3 && _lab.Status().GetProperty("nodes")[2].GetProperty("nginx_running").GetBoolean(), "n3's NGINX is restarted", 10);
        // n3 left and rejoined while restarting: until no node still pins flows of that handover, a
        // new connection reusing the 4-tuple of a pinned one belongs to the pinner, not the table.
        // Every node's view, not n1's alone: a node that has not yet seen the rejoin still accepts
        // the buckets of a two-node table (seen once in a full run: n3 served a flow of n1's).
        LabInstance.WaitUntil(() => Enumerable.Range(1, 3).All(i => _lab.Members(i).Count == 3 && _lab.NodeStatus(i).GetProperty("modules")[0].GetProperty("farm").GetProperty("counters") is var c && c.GetProperty("pinned_buckets").GetInt64() == 0 && c.GetProperty("waiting_buckets").GetInt64() == 0), "the handover settles on every node", 30);
        Assert.Equal(3, _lab.HttpFollowingTheTable("198.18.0.100", 60).Count);
        Assert.Contains(Transitions(3), t => t.Contains("restarting the application", StringComparison.Ordinal));
    }

    [Fact]
    public void ApplicationKeepsFailing_TheNodeLeavesTheFarm_AndReturnsOnceHealthy()
    {
        _lab.Require();
        _lab.Lab("app", "n2", "break");

        LabInstance.WaitUntil(() => Application(2).GetProperty("gave_up").GetBoolean(), "n2 gives up restarting", 15);
        // n1's status file is written once a second: the view without n2 shows there a moment later.
        LabInstance.WaitUntil(() => !_lab.Members(1).Contains(_lab.Prefix + "-n2"), "n2 out of n1's view", 5);
        var served = _lab.HttpFollowingTheTable("198.18.0.100", 60);
        Assert.Equal(2, served.Count);
        Assert.Contains(Transitions(2), t => t.Contains("left the farm", StringComparison.Ordinal));

        _lab.Lab("app", "n2", "fix");
        _lab.Lab("app", "n2", "start");
        try
        {
            LabInstance.WaitUntil(() => _lab.Members(1).Count == 3 && !Application(2).GetProperty("gave_up").GetBoolean(), "n2 is back once healthy", 60);
        }
        catch (Xunit.Sdk.XunitException)
        {
            // Seen rarely under the full suite and never alone: say where it stuck.
            Assert.Fail($"n2 not back once healthy: n1's view {string.Join(", ", _lab.Members(1))}; n2's application {Application(2)}; NGINX running {_lab.Status().GetProperty("nodes")[1].GetProperty("nginx_running")}");
        }

        Assert.Equal(3, _lab.HttpFollowingTheTable("198.18.0.100", 90).Count);
    }

    [Fact]
    public void Reload_AppliesWeightAndCheckersAtRuntime_RefusesRestartOnlyChangesAndBadFiles()
    {
        _lab.Require();
        var path = Path.Combine(_lab.StateDirectory, "cluster.yaml");
        var original = File.ReadAllText(path);
        var n2 = $"- name: {_lab.Prefix}-n2\n      address: 198.18.0.12";
        Assert.Contains(n2, original, StringComparison.Ordinal);
        try
        {
            // n2's weight 3 of 5: about 60% of the buckets, once n2 advertises it.
            File.WriteAllText(path, original.Replace(n2, n2 + "\n      weight: 3", StringComparison.Ordinal));
            Assert.Contains("applied cluster.nodes." + _lab.Prefix + "-n2.weight: 1 → 3", _lab.Lab("reload", "n2"), StringComparison.Ordinal);
            LabInstance.WaitUntil(() => _lab.OwnedBuckets(2) > 2200 && Enumerable.Range(1, 3).Sum(_lab.OwnedBuckets) == 4096, "n2 takes about 3/5 of the buckets", 5);
            Assert.Equal(3, _lab.HttpFollowingTheTable("198.18.0.100", 60).Count);

            // A restart-only change is refused as a whole: the weight stays, the VIPs too.
            File.WriteAllText(path, original.Replace("vips: [198.18.0.100]", "vips: [198.18.0.100, 198.18.0.101]", StringComparison.Ordinal));
            var refused = Tools.Run(Tools.Safekit, "lab", "reload", "--prefix", _lab.Prefix, "n2");
            Assert.Equal(1, refused.ExitCode);
            Assert.Contains("needs a restart of safekitd: modules.web.vips", refused.Error, StringComparison.Ordinal);
            Assert.True(_lab.OwnedBuckets(2) > 2200, "a refused reload changed the weight");

            // A broken file is refused with its file, line and key.
            File.WriteAllText(path, original.Replace("workers: 1", "workers: many", StringComparison.Ordinal));
            var broken = Tools.Run(Tools.Safekit, "lab", "reload", "--prefix", _lab.Prefix, "n2");
            Assert.Equal(1, broken.ExitCode);
            Assert.Matches(@"cluster\.yaml:\d+:\d+: modules\[0\]\.workers", broken.Error);

            // A new checker that fails on n2 only: n2 restarts its application, then leaves the farm.
            var failing = $"    checkers:\n      - command: \"test {{node}} != {_lab.Prefix}-n2\"\n        interval_ms: 200\n        failures: 1\n";
            File.WriteAllText(path, original.Replace("    checkers:\n", failing, StringComparison.Ordinal));
            Assert.Contains("modules.web.checkers: 2 → 3", _lab.Lab("reload", "n2"), StringComparison.Ordinal);
            LabInstance.WaitUntil(() => !_lab.Members(1).Contains(_lab.Prefix + "-n2"), "n2 leaves the farm", 15);
            Assert.Equal(2, _lab.HttpFollowingTheTable("198.18.0.100", 60).Count);
        }
        finally
        {
            File.WriteAllText(path, original);
        }

        _lab.Lab("reload", "n2");
        LabInstance.WaitUntil(() => _lab.Members(1).Count == 3 && _lab.OwnedBuckets(2) is > 1100 and < 1700, "n2 is back with weight 1", 15);
        var config = _lab.NodeStatus(2).GetProperty("config");
        Assert.True(config.GetProperty("last_reload").GetProperty("applied").GetBoolean());
    }

    private JsonElement Application(int node) => _lab.NodeStatus(node).GetProperty("modules")[0].GetProperty("application");

    private List<string> Transitions(int node) =>
        _lab.NodeStatus(node).GetProperty("modules")[0].GetProperty("transitions").EnumerateArray().Select(t => t.GetProperty("reason").GetString()!).ToList();

    public void Dispose()
    {
        if (_lab.UpError is not null || Tools.LabUnavailableReason() is not null)
        {
            return;
        }

        // Leave the lab whole for the next test.
        Tools.Run(Tools.Safekit, "lab", "heal", "--prefix", _lab.Prefix);
        for (var i = 1; i <= 3; i++)
        {
            Tools.Run(Tools.Safekit, "lab", "link", "--prefix", _lab.Prefix, $"n{i}", "up");
            Tools.Run(Tools.Safekit, "lab", "app", "--prefix", _lab.Prefix, $"n{i}", "fix");
            Tools.Run(Tools.Safekit, "lab", "app", "--prefix", _lab.Prefix, $"n{i}", "start");
            Tools.Run(Tools.Safekit, "lab", "start", "--prefix", _lab.Prefix, $"n{i}");
        }

        LabInstance.WaitUntil(() => Enumerable.Range(1, 3).All(i => _lab.Members(i).Count == 3), "the lab is whole again", 15);
    }

    private Dictionary<string, long> Counters() =>
        _lab.NodeStatus(2).GetProperty("membership").GetProperty("counters").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt64());

    private static bool Grew(Dictionary<string, long> before, Dictionary<string, long> after, string counter) =>
        after[counter] - before[counter] >= 10;

    private void Send(string mac, string source, byte[] payload, int count) =>
        _lab.ExecJson("client", Tools.Loadgen, "udp-raw", "--interface", "eth0", "--dst-mac", mac, "--src-ip", source, "--dst-ip", "198.18.0.12",
            "--sport", "4800", "--dport", "4800", "--payload-hex", Convert.ToHexString(payload), "--count", count.ToString(CultureInfo.InvariantCulture));

    /// <summary>The UDP payload of the single packet tcpdump -x printed (IPv4 header onwards, in hex).</summary>
    private static byte[] UdpPayload(string dump)
    {
        var hex = string.Concat(dump.Split('\n')
            .Where(l => l.TrimStart().StartsWith("0x", StringComparison.Ordinal))
            .Select(l => string.Concat(l[(l.IndexOf(':', StringComparison.Ordinal) + 1)..].Where(Uri.IsHexDigit))));
        var packet = Convert.FromHexString(hex);
        var headerLength = (packet[0] & 0x0f) * 4;
        Assert.Equal(IPAddress.Parse("198.18.0.11"), new IPAddress(packet.AsSpan(12, 4)));
        return packet[(headerLength + 8)..];
    }
}
