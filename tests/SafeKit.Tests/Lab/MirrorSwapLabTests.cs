using SafeKit.Tests.Infrastructure;

namespace SafeKit.Tests.Lab;

/// <summary>
/// <c>safekit swap</c> in a real lab pair: PRIM moves to the other node and back while a writer
/// appends fsync'd records on the serving node; every acknowledged record is on the new PRIM,
/// both copies stay equal, the application (NGINX, PostgreSQL) serves from the new PRIM through
/// the VIP, and no resync is needed (same generation).
/// </summary>
[Collection(LabCollection.Name)]
public sealed class MirrorSwapLabTests
{
    private const string Data = "/var/lib/safekit/mirror/data/srv/www";

    [Fact]
    public void Swap_MovesPrimBothWays_WithEveryAcknowledgedRecord_AndTheApplicationFollows()
    {
        using var lab = new MirrorLab("--mode", "fsync");
        lab.Require();
        var generation = lab.Module(1).GetProperty("mirror").GetProperty("generation").GetString();
        Assert.True(lab.Sql("CREATE TABLE swapped (n int); INSERT INTO swapped VALUES (1)").Succeeded);

        // Asked of SECOND: refused, naming PRIM.
        var refused = lab.Exec("client", Tools.Safekit, "swap", "mirror", "--on", lab.M(2));
        Assert.False(refused.Succeeded);
        Assert.Contains(lab.M(1), refused.Error, StringComparison.Ordinal);

        for (var (from, to) = (1, 2); ; (from, to) = (to, from))
        {
            var acknowledged = new List<string>();
            var log = $"/srv/www/swap-{from}.log";
            using (var writer = MirrorLabTests.StartWriter(lab, $"m{from}", log, acknowledged))
            {
                LabInstance.WaitUntil(() => MirrorLabTests.Count(acknowledged) >= 100, $"100 fsync'd records acknowledged on m{from}", 60);

                // No --on: the command finds PRIM itself.
                var swap = lab.Exec("client", Tools.Safekit, "swap", "mirror");
                Assert.True(swap.Succeeded, swap.Output + swap.Error);
                Assert.Contains($"{lab.M(to)} is PRIM", swap.Output, StringComparison.Ordinal);
                Assert.True(writer.WaitForExit(20_000), "the writer stops once its node no longer serves");
            }

            lab.WaitForState(to, "PRIM");
            lab.WaitForState(from, "SECOND");

            string[] acked;
            lock (acknowledged)
            {
                acked = [.. acknowledged];
            }

            var copy = lab.Exec($"m{to}", "cat", log).Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.True(copy.Length >= acked.Length, $"{acked.Length} records acknowledged on m{from}, {copy.Length} on m{to}");
            Assert.Equal(acked, copy[..acked.Length]);

            var (code, servedBy, _) = lab.Get("/served-by");
            Assert.Equal("200", code);
            Assert.Equal(lab.M(to), servedBy);
            var rows = lab.Sql("INSERT INTO swapped VALUES (2) RETURNING n");
            Assert.True(rows.Succeeded, rows.Error);

            // Still mirroring, now the other way: a change on the new PRIM reaches the new SECOND.
            Assert.True(lab.Exec($"m{to}", "sh", "-c", $"echo after > /srv/www/after-{to}.txt").Succeeded);
            LabInstance.WaitUntil(() => lab.Exec($"m{from}", "cat", $"{Data}/after-{to}.txt").Output == "after\n", $"m{from} holds m{to}'s new file", 10);
            if (to == 1)
            {
                break;
            }
        }

        // Swaps keep the generation both copies share: nothing to resynchronise.
        Assert.Equal(generation, lab.Module(1).GetProperty("mirror").GetProperty("generation").GetString());
        Assert.Equal(generation, lab.Module(2).GetProperty("mirror").GetProperty("generation").GetString());
        Assert.Equal("3", lab.Sql("SELECT count(*) FROM swapped").Output.Trim());
        var events = lab.Exec("client", Tools.Safekit, "events").Output;
        Assert.Contains("swap of mirror done", events, StringComparison.Ordinal);
    }
}
