using Microsoft.Extensions.Logging;

namespace SafeKit.Daemon;

/// <summary>Source-generated log messages of the daemon's lifecycle.</summary>
internal static partial class DaemonLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "safekitd running as node {Node} of cluster {Cluster}: {Farms} farm module(s), status in {StateDirectory}")]
    public static partial void Started(ILogger logger, string node, string cluster, int farms, string stateDirectory);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "safekitd node {Node} stopping")]
    public static partial void Stopping(ILogger logger, string node);
}
