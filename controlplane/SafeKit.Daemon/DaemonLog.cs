using Microsoft.Extensions.Logging;

namespace SafeKit.Daemon;

/// <summary>Source-generated log messages of the daemon's lifecycle.</summary>
internal static partial class DaemonLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "safekitd running as node {Node} of cluster {Cluster}: {Farms} farm module(s), status in {StateDirectory}")]
    public static partial void Started(ILogger logger, string node, string cluster, int farms, string stateDirectory);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "safekitd node {Node} stopping")]
    public static partial void Stopping(ILogger logger, string node);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "configuration reloaded from {File}: {Changes}")]
    public static partial void Reloaded(ILogger logger, string file, string changes);

    [LoggerMessage(EventId = 4, Level = LogLevel.Error, Message = "configuration reload refused, the running configuration stays in force: {Problem}")]
    public static partial void ReloadRefused(ILogger logger, string problem);

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "configuration reload: {Note}")]
    public static partial void ReloadNote(ILogger logger, string note);

    [LoggerMessage(EventId = 6, Level = LogLevel.Information, Message = "API listening on {Scheme}://{Address}:{Port}")]
    public static partial void ApiListening(ILogger logger, string scheme, string address, int port);

    [LoggerMessage(EventId = 20, Level = LogLevel.Warning, Message = "not configured: {File} does not exist; answering \"not configured\" on port {Port} until it does (then SIGHUP or restart)")]
    public static partial void NotConfigured(ILogger logger, string file, int port);
}
