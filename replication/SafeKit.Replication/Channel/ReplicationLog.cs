using Microsoft.Extensions.Logging;

namespace SafeKit.Replication.Channel;

/// <summary>Source-generated log messages of the replication channel (event ids 500–509).</summary>
internal static partial class ReplicationLog
{
    [LoggerMessage(EventId = 500, Level = LogLevel.Information, Message = "replication link {Local} -> {Peer} ({Remote}) up as {Role}")]
    public static partial void LinkUp(ILogger logger, string local, string peer, string remote, string role);

    [LoggerMessage(EventId = 501, Level = LogLevel.Warning, Message = "replication connection with {Remote} refused ({Failure}): {Reason}")]
    public static partial void Refused(ILogger logger, string remote, HandshakeFailure failure, string reason);

    [LoggerMessage(EventId = 502, Level = LogLevel.Warning, Message = "{Detail}")]
    public static partial void LinkLost(ILogger logger, string detail, Exception? cause);

    [LoggerMessage(EventId = 503, Level = LogLevel.Information, Message = "{Detail}")]
    public static partial void LinkClosed(ILogger logger, string detail);
}
