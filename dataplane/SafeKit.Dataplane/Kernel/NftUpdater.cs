using Microsoft.Extensions.Logging;
using SafeKit.Dataplane.Buckets;

namespace SafeKit.Dataplane.Kernel;

/// <summary>
/// Applies the kernel fast path's rules on its own thread, newest state only. Loading a ruleset
/// spawns nft (tens of milliseconds, seconds when the machine is busy): run on the membership
/// thread that publishes views, it delayed heartbeats until peers were declared dead, whose new
/// views loaded more rulesets — a storm. Here a view costs the membership nothing; the kernel's
/// rule follows a moment later.
/// </summary>
public sealed partial class NftUpdater : IDisposable
{
    private readonly NftFastPath _nft;
    private readonly ILogger _logger;
    private readonly AutoResetEvent _signal = new(false);
    private readonly Thread _thread;
    private ForwardingState? _pending;
    private volatile bool _stopping;

    public NftUpdater(NftFastPath nft, ILogger logger)
    {
        _nft = nft;
        _logger = logger;
        _thread = new Thread(Run) { IsBackground = true, Name = "sk-nft" };
        _thread.Start();
    }

    /// <summary>Asks for <paramref name="state"/> to be loaded (a newer one replaces it if not loaded yet).</summary>
    public void Post(ForwardingState state)
    {
        Volatile.Write(ref _pending, state);
        _signal.Set();
    }

    public void Dispose()
    {
        _stopping = true;
        _signal.Set();
        _thread.Join(TimeSpan.FromSeconds(35));
        _signal.Dispose();
    }

    private void Run()
    {
        while (!_stopping)
        {
            _signal.WaitOne();
            if (Interlocked.Exchange(ref _pending, null) is not { } state || _stopping)
            {
                continue;
            }

            try
            {
                _nft.Apply(state);
            }
            catch (InvalidOperationException e)
            {
                LogApplyFailed(_logger, e.Message);
                // Try again with the newest state on the next change or in a second.
                Interlocked.CompareExchange(ref _pending, state, null);
                _signal.WaitOne(TimeSpan.FromSeconds(1));
                _signal.Set();
            }
        }
    }

    [LoggerMessage(EventId = 105, Level = LogLevel.Error, Message = "nftables fast path not updated: {Reason}")]
    private static partial void LogApplyFailed(ILogger logger, string reason);
}
