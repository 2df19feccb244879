using Microsoft.Extensions.Logging;
using SafeKit.Replication.Resync;

namespace SafeKit.Daemon;

/// <summary>
/// The resync warm-up (<see cref="ResyncWarmup"/>): run once in the background when the module
/// starts. Until it ends, this node neither listens for a resync nor starts one: a failback
/// that began meanwhile would pay for the code's first calls while the application waits on
/// the same cores, and the warm-up takes well under a second.
/// </summary>
internal sealed partial class MirrorModuleHost
{
    private static readonly TimeSpan WarmupTimeout = TimeSpan.FromSeconds(30);

    private Task _warmedUp = Task.CompletedTask;

    private void StartWarmup() => _warmedUp = Task.Run(WarmUpAsync);

    private async Task WarmUpAsync()
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            timeout.CancelAfter(WarmupTimeout);
            var outcome = await ResyncWarmup.RunAsync(Path.Join(_module.StateDirectory, "resync-warmup"), _self.Addresses[_module.ReplicationNetwork], ResyncStreams, timeout.Token);
            LogWarmedUp(_logger, _module.Name, (long)outcome.Elapsed.TotalMilliseconds);
        }
#pragma warning disable CA1031 // Best effort: a node whose warm-up failed resyncs all the same, only slower at first.
        catch (Exception e)
#pragma warning restore CA1031
        {
            LogWarmupFailed(_logger, _module.Name, e.Message);
        }
        finally
        {
            _wake.Release();
        }
    }

    [LoggerMessage(EventId = 722, Level = LogLevel.Information, Message = "mirror {Module}: resync code warmed up in {Milliseconds} ms")]
    private static partial void LogWarmedUp(ILogger logger, string module, long milliseconds);

    [LoggerMessage(EventId = 723, Level = LogLevel.Warning, Message = "mirror {Module}: the resync warm-up failed ({Reason}); resyncs work, their start is slower")]
    private static partial void LogWarmupFailed(ILogger logger, string module, string reason);
}
