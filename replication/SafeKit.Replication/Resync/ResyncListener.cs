using System.Net;
using System.Net.Sockets;
using SafeKit.Replication.Channel;

namespace SafeKit.Replication.Resync;

/// <summary>The listening socket of a node waiting to be brought up to date (the resync target).</summary>
public sealed class ResyncListener : IDisposable
{
    private readonly Socket _socket;
    private readonly ReplicationChannelOptions _options;

    private ResyncListener(Socket socket, ReplicationChannelOptions options)
    {
        _socket = socket;
        _options = options;
    }

    public EndPoint LocalEndPoint => _socket.LocalEndPoint!;

    public static ResyncListener Listen(IPEndPoint endpoint, ReplicationChannelOptions options)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return new ResyncListener(ChannelSocket.Listen(endpoint), options);
    }

    /// <summary>Accepts one source and proves both ends.</summary>
    /// <exception cref="ReplicationHandshakeException">The connecting peer was refused (wrong key, cluster, node or role).</exception>
    public async Task<ResyncConnection> AcceptAsync(CancellationToken cancellationToken = default)
    {
        var socket = await _socket.AcceptAsync(cancellationToken);
        return await ResyncConnection.OpenAsync(socket, _options, ChannelRole.ResyncTarget, cancellationToken);
    }

    public void Dispose() => _socket.Dispose();
}
