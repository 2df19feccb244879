using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace SafeKit.Replication.Channel;

/// <summary>
/// SECOND's listening socket for the replication link. Each <see cref="AcceptAsync"/> takes one
/// connection and runs the handshake; a refused peer is logged and reported to the caller, and the
/// listener stays usable for the next attempt.
/// </summary>
public sealed class ReplicationListener : IDisposable
{
    private readonly Socket _socket;
    private readonly ReplicationChannelOptions _options;
    private readonly ILogger _logger;

    private ReplicationListener(Socket socket, ReplicationChannelOptions options, ILogger logger)
    {
        _socket = socket;
        _options = options;
        _logger = logger;
    }

    /// <summary>The bound address (with the port the kernel chose when asked for port 0).</summary>
    public EndPoint LocalEndPoint => _socket.LocalEndPoint!;

    /// <summary>Binds and listens on <paramref name="endpoint"/>.</summary>
    public static ReplicationListener Listen(IPEndPoint endpoint, ReplicationChannelOptions options, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return new ReplicationListener(ChannelSocket.Listen(endpoint), options, logger ?? NullLogger.Instance);
    }

    /// <summary>
    /// Accepts one connection, proves both ends and starts applying its operations with
    /// <paramref name="applier"/>.
    /// </summary>
    /// <exception cref="ReplicationHandshakeException">The connecting peer was refused or refused this node; the message says why.</exception>
    public async Task<ReplicationReceiver> AcceptAsync(IOperationApplier applier, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(applier);
        var socket = await _socket.AcceptAsync(cancellationToken);
        var remote = socket.RemoteEndPoint?.ToString() ?? "?";
        ChannelConnection? connection = null;
        try
        {
            connection = ChannelSocket.Open(socket, _options, $"replication {_options.PeerNode}->{_options.LocalNode}");
            await Handshake.RunAsync(connection, _options, ChannelRole.Receiver, remote, cancellationToken);
            var receiver = new ReplicationReceiver(connection, _options, applier, _logger, remote);
            receiver.Start();
            ReplicationLog.LinkUp(_logger, _options.LocalNode, _options.PeerNode, remote, "receiver");
            return receiver;
        }
        catch (ReplicationHandshakeException ex)
        {
            ReplicationLog.Refused(_logger, remote, ex.Failure, ex.Message);
            if (connection is not null)
            {
                await ChannelSocket.CloseRefusedAsync(connection, _options.TimeProvider);
            }

            throw;
        }
        catch
        {
            if (connection is null)
            {
                socket.Dispose();
            }
            else
            {
                connection.Dispose();
            }

            throw;
        }
    }

    /// <summary>Stops listening; established links are not affected.</summary>
    public void Dispose() => _socket.Dispose();
}
