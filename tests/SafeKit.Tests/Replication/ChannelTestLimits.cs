namespace SafeKit.Tests.Replication;

/// <summary>What the channel's failure and timing tests wait with.</summary>
internal static class ChannelTestLimits
{
    /// <summary>Far above any expected delay: only there so a bug fails the test instead of hanging it.</summary>
    public static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(8);

    public static CancellationToken Ct => TestContext.Current.CancellationToken;
}
