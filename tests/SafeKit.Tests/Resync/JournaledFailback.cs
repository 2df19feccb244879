using System.Net;
using SafeKit.Native.Fuse;
using SafeKit.Replication.Resync;
using SafeKit.Tests.Replication;

namespace SafeKit.Tests.Resync;

/// <summary>What a failback's resync did, as its source tells it.</summary>
internal sealed record FailbackResult(bool FromJournal, string FirstPassScope, ResyncStatistics Statistics);

/// <summary>
/// A whole failback's resync over real TCP, as the daemon runs it: live passes, the frozen one,
/// finish. The target's copy is at <paramref name="generation"/>, with its own journal in
/// <paramref name="targetJournalDirectory"/> (what it changed as PRIM beyond it).
/// </summary>
internal static class JournaledFailback
{
    public static async Task<FailbackResult> RunAsync(PassthroughFileSystem source, string targetData, Guid generation, string targetJournalDirectory, CancellationToken ct)
    {
        using var resyncListener = ResyncListener.Listen(new IPEndPoint(IPAddress.Loopback, 0), ChannelPair.Options("n2", "n1"));
        using var target = new ResyncTarget(targetData) { Journal = () => TargetJournal.Of(generation, ChangeJournal.Read(targetJournalDirectory)) };
        var accepting = resyncListener.AcceptAsync(ct);
        await using var resync = await DirectoryResync.ConnectAsync(source, (IPEndPoint)resyncListener.LocalEndPoint, ChannelPair.Options("n1", "n2"), ct);
        await using var targetConnection = await accepting;
        var serving = target.ServeAsync(targetConnection, ct);
        await resync.PrecopyAsync(null, ct);
        await resync.FreezeAndCatchUpAsync(ct);
        await resync.FinishAsync(null, ct);
        resync.Thaw();
        await targetConnection.DisposeAsync();
        await serving.WaitAsync(TimeSpan.FromSeconds(5), ct);
        return new FailbackResult(resync.FromJournal, resync.FirstPassScope, resync.Statistics);
    }
}
