using SafeKit.Tests.Infrastructure;

namespace SafeKit.Tests.Lab;

/// <summary>
/// <c>safekit verify</c> in a real lab pair: while a writer appends fsync'd records on PRIM and
/// PostgreSQL serves, the copies are found equal; a difference planted in SECOND's real files is
/// found and named (exit status 1), and the result stays in the module's status.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class MirrorVerifyLabTests
{
    private const string Data = "/var/lib/safekit/mirror/data/srv/www";

    [Fact]
    public void Verify_UnderAWriter_FindsNoDifference_ThenFindsTheOnePlantedOnSecond()
    {
        using var lab = new MirrorLab();
        lab.Require();
        var write = lab.Exec("m1", "sh", "-c", "mkdir -p /srv/www/v && head -c 3000000 /dev/urandom > /srv/www/v/big.bin && echo small > /srv/www/v/small.txt");
        Assert.True(write.Succeeded, write.Error);

        // Asked of SECOND: refused, naming PRIM.
        var refused = lab.Exec("client", Tools.Safekit, "verify", "mirror", "--on", lab.M(2));
        Assert.False(refused.Succeeded);
        Assert.Contains(lab.M(1), refused.Error, StringComparison.Ordinal);

        var acknowledged = new List<string>();
        using (var writer = MirrorLabTests.StartWriter(lab, "m1", "/srv/www/verify.log", acknowledged))
        {
            LabInstance.WaitUntil(() => MirrorLabTests.Count(acknowledged) >= 50, "50 fsync'd records acknowledged", 60);
            var equal = lab.Exec("client", Tools.Safekit, "verify", "mirror");
            Assert.True(equal.Succeeded, equal.Output + equal.Error);
            Assert.Contains("the copies are equal", equal.Output, StringComparison.Ordinal);
            Assert.True(MirrorLabTests.Count(acknowledged) > 50, "the writer kept going during the verify");

            // One byte of SECOND's real file, its size and time kept: no journal and no quick check sees it.
            var damage = lab.Exec("m2", "sh", "-c", $"touch -r {Data}/v/big.bin /tmp/big.time && printf X | dd of={Data}/v/big.bin bs=1 seek=2000000 conv=notrunc status=none && touch -r /tmp/big.time {Data}/v/big.bin");
            Assert.True(damage.Succeeded, damage.Error);
            var different = lab.Exec("client", Tools.Safekit, "verify", "mirror");
            Assert.False(different.Succeeded);
            Assert.Contains("the copies DIFFER", different.Error, StringComparison.Ordinal);
            Assert.Contains("/srv/www/v/big.bin: content: 1 of 46 blocks of 64 KiB differ, the first at offset 1966080", different.Error, StringComparison.Ordinal);
            Assert.DoesNotContain("verify.log", different.Error, StringComparison.Ordinal);
            writer.Kill();
        }

        // The status file is rewritten every moment: the last verify shows there once it is.
        LabInstance.WaitUntil(() => lab.Module(1).GetProperty("mirror").GetProperty("verify") is { ValueKind: System.Text.Json.JsonValueKind.Object } v && v.GetProperty("outcome").GetString() == "different", "the status shows the verify's outcome", 10);
        var verify = lab.Module(1).GetProperty("mirror").GetProperty("verify");
        Assert.Single(verify.GetProperty("differences").EnumerateArray());
        Assert.True(verify.GetProperty("files").GetInt64() >= 3);
        Assert.Contains("the copies DIFFER", lab.Exec("client", Tools.Safekit, "events").Output, StringComparison.Ordinal);
    }
}
