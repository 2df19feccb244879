using System.Net.Sockets;
using SafeKit.Replication.Channel;

namespace SafeKit.Replication.Resync;

/// <summary>
/// Serves the sources that connect to a resync listener, each connection with a new target. A
/// source's first connection is served alone (one that arrives meanwhile waits until it ends);
/// the extra streams it opens join it and are served beside it.
/// </summary>
public static class ResyncServer
{
    /// <summary>Accepts and serves until stopped or no longer <paramref name="current"/> (the listener was replaced); then waits for the sessions still running.</summary>
    /// <param name="served">Called when a source's session ended well (not for its extra streams).</param>
    /// <param name="failed">Called when a source's session failed (a refused peer, a stop, or a lost extra stream are not reported).</param>
    public static async Task ServeAsync(ResyncListener listener, Func<ResyncTarget> create, Action<ResyncTarget>? served, Action<Exception>? failed, Func<bool> current, CancellationToken stop)
    {
        ArgumentNullException.ThrowIfNull(listener);
        ArgumentNullException.ThrowIfNull(create);
        ArgumentNullException.ThrowIfNull(current);
        using var sessions = new ResyncSessions();
        var serving = new List<Task>();
        try
        {
            while (!stop.IsCancellationRequested)
            {
                ResyncConnection connection;
                try
                {
                    connection = await listener.AcceptAsync(stop);
                }
                catch (ReplicationHandshakeException)
                {
                    continue; // A stray or refused peer: keep listening.
                }
                catch (Exception e) when ((e is OperationCanceledException or ObjectDisposedException or SocketException && stop.IsCancellationRequested) || !current())
                {
                    return; // Stopped, or handed over: no more sources.
                }
                catch (Exception e) when (e is IOException or SocketException)
                {
                    failed?.Invoke(e);
                    continue;
                }

                serving.RemoveAll(static t => t.IsCompleted);
                serving.Add(Task.Run(() => ServeOneAsync(connection, create(), sessions, served, failed, current, stop), CancellationToken.None));
            }
        }
        finally
        {
            await Task.WhenAll(serving);
        }
    }

    private static async Task ServeOneAsync(ResyncConnection connection, ResyncTarget target, ResyncSessions sessions, Action<ResyncTarget>? served, Action<Exception>? failed, Func<bool> current, CancellationToken stop)
    {
        await using (connection)
        {
            using (target)
            {
                try
                {
                    await target.ServeAsync(connection, sessions, stop);
                    if (!target.IsStream)
                    {
                        served?.Invoke(target);
                    }
                }
                catch (Exception e) when ((e is OperationCanceledException or ObjectDisposedException or SocketException && stop.IsCancellationRequested) || !current())
                {
                    // Stopped, or handed over.
                }
                catch (Exception e) when (e is IOException or ResyncException or SocketException or InvalidDataException)
                {
                    if (!target.IsStream)
                    {
                        failed?.Invoke(e);
                    }
                }
            }
        }
    }
}
