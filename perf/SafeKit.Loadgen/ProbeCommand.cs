using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace SafeKit.Loadgen;

/// <summary>
/// <c>probe --host IP [--port 80] [--path /] --seconds S [--new N] [--keepalive K] [--interval-ms 20] [--timeout-ms 3000] [--local-port P]</c>:
/// N streams that each send one request per new connection and K streams that keep one
/// connection open (reconnecting at once after an error), each every interval, for S seconds.
/// The first keep-alive stream connects from local port P when given.
/// Prints every request (stream, start and end in Unix ms, success, serving node, retried after an idle
/// close, local port, error) so a benchmark
/// can measure how long clients stalled around a failure.
/// </summary>
internal static class ProbeCommand
{
    // One probe per process: every stream asks for the same path.
    private static string s_path = "/";

    public static async Task<int> RunAsync(Options options)
    {
        var host = IPAddress.Parse(options.String("host"));
        var port = options.Int("port", 80);
        s_path = options.String("path", "/");
        var seconds = options.Double("seconds", 10);
        var interval = TimeSpan.FromMilliseconds(options.Int("interval-ms", 20));
        var timeout = TimeSpan.FromMilliseconds(options.Int("timeout-ms", 3000));
        var fresh = options.Int("new", 4);
        var kept = options.Int("keepalive", 4);
        var localPort = options.Int("local-port", 0);
        var until = DateTimeOffset.UtcNow.AddSeconds(seconds);
        var streams = new List<Task<List<Sample>>>();
        for (var i = 0; i < fresh; i++)
        {
            var id = i;
            streams.Add(Task.Run(() => NewConnectionsAsync(id, host, port, interval, timeout, until)));
        }

        for (var i = 0; i < kept; i++)
        {
            var id = fresh + i;
            var bind = i == 0 ? localPort : 0;
            streams.Add(Task.Run(() => KeepAliveAsync(id, host, port, interval, timeout, until, bind)));
        }

        var samples = (await Task.WhenAll(streams)).SelectMany(s => s).ToList();
        var output = new StringBuilder();
        output.Append("{\"samples\":[");
        for (var i = 0; i < samples.Count; i++)
        {
            var s = samples[i];
            output.Append(i == 0 ? "" : ",").Append('[').Append(s.Stream).Append(',').Append(s.Kind).Append(',').Append(s.Start).Append(',').Append(s.End).Append(',').Append(s.Ok ? 1 : 0).Append(',').Append(JsonSerializer.Serialize(s.Node)).Append(',').Append(s.Retried ? 1 : 0).Append(',').Append(s.Port).Append(',').Append(JsonSerializer.Serialize(s.Error)).Append(']');
        }

        output.Append("]}");
        Console.WriteLine(output);
        return 0;
    }

    private static async Task<List<Sample>> NewConnectionsAsync(int id, IPAddress host, int port, TimeSpan interval, TimeSpan timeout, DateTimeOffset until)
    {
        var samples = new List<Sample>();
        while (DateTimeOffset.UtcNow < until)
        {
            var start = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            using var socket = new Socket(host.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            string? node = null;
            string? error = null;
            try
            {
                using var cancel = new CancellationTokenSource(timeout);
                await socket.ConnectAsync(new IPEndPoint(host, port), cancel.Token);
                node = await RequestAsync(socket, host, keepAlive: false, cancel.Token);
                error = node is null ? "status" : null;
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException or IOException or ServerClosedException)
            {
                error = Describe(e, socket.Connected);
            }

            samples.Add(new Sample(id, 0, start, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), node is not null, node, false, LocalPort(socket), error));
            await Task.Delay(interval);
        }

        return samples;
    }

    private static async Task<List<Sample>> KeepAliveAsync(int id, IPAddress host, int port, TimeSpan interval, TimeSpan timeout, DateTimeOffset until, int localPort)
    {
        var samples = new List<Sample>();
        Socket? socket = null;
        while (DateTimeOffset.UtcNow < until)
        {
            var start = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            string? node = null;
            string? error = null;
            var retried = false;
            var usedPort = 0;
            try
            {
                using var cancel = new CancellationTokenSource(timeout);
                if (socket is not null && ClosedByServer(socket))
                {
                    socket.Dispose();
                    socket = null;
                }

                var reused = socket is not null;
                socket ??= await ConnectAsync(host, port, localPort, cancel.Token);
                usedPort = LocalPort(socket);
                try
                {
                    node = await RequestAsync(socket, host, keepAlive: true, cancel.Token);
                }
                catch (ServerClosedException) when (reused)
                {
                    // The server closed the idle connection as the request left (RFC 9112 §9.3.1):
                    // like every HTTP client, retry the idempotent request once on a new connection.
                    retried = true;
                    socket.Dispose();
                    socket = await ConnectAsync(host, port, localPort, cancel.Token);
                    usedPort = LocalPort(socket);
                    node = await RequestAsync(socket, host, keepAlive: true, cancel.Token);
                }

                error = node is null ? "status" : null;
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException or IOException or ServerClosedException)
            {
                error = Describe(e, socket?.Connected ?? false);
            }

            if (node is null)
            {
                socket?.Dispose();
                socket = null;
            }

            samples.Add(new Sample(id, 1, start, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), node is not null, node, retried, usedPort, error));
            await Task.Delay(interval);
        }

        socket?.Dispose();
        return samples;
    }

    private static async Task<Socket> ConnectAsync(IPAddress host, int port, int localPort, CancellationToken cancel)
    {
        var socket = new Socket(host.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (localPort > 0)
            {
                socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                socket.Bind(new IPEndPoint(host.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, localPort));
            }

            await socket.ConnectAsync(new IPEndPoint(host, port), cancel);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static int LocalPort(Socket socket) => socket.LocalEndPoint is IPEndPoint local ? local.Port : 0;

    /// <summary>Why a request failed: connect-timeout, timeout, reset, refused, eof or the socket error.</summary>
    private static string Describe(Exception e, bool connected) => e switch
    {
        OperationCanceledException => connected ? "timeout" : "connect-timeout",
        ServerClosedException => "closed-before-answer",
        SocketException { SocketErrorCode: SocketError.ConnectionReset } => "reset",
        SocketException { SocketErrorCode: SocketError.ConnectionRefused } => "refused",
        SocketException s => s.SocketErrorCode.ToString(),
        IOException { InnerException: SocketException { SocketErrorCode: SocketError.ConnectionReset } } => "reset",
        _ => e.GetType().Name,
    };

    /// <summary>An idle keep-alive connection the server has closed: readable with nothing to read.</summary>
    private static bool ClosedByServer(Socket socket)
    {
        try
        {
            return socket.Poll(0, SelectMode.SelectRead) && socket.Available == 0;
        }
        catch (SocketException)
        {
            return true;
        }
    }

    /// <summary>One GET; returns the body's first line, or null when the answer is not a 200.</summary>
    private static async Task<string?> RequestAsync(Socket socket, IPAddress host, bool keepAlive, CancellationToken cancel)
    {
        var hostHeader = host.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{host}]" : host.ToString();
        var buffer = new byte[4096];
        var received = 0;
        try
        {
            await socket.SendAsync(Encoding.ASCII.GetBytes($"GET {s_path} HTTP/1.1\r\nHost: {hostHeader}\r\nConnection: {(keepAlive ? "keep-alive" : "close")}\r\n\r\n"), cancel);
            return await ReceiveAsync();
        }
        catch (SocketException e) when (received == 0 && e.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted or SocketError.Shutdown)
        {
            // Closed or reset before a byte of the answer: the server closed the connection as
            // the request arrived (a reset when the request was already in its buffer).
            throw new ServerClosedException();
        }

        async Task<string?> ReceiveAsync()
        {
            while (true)
            {
                var read = await socket.ReceiveAsync(buffer.AsMemory(received), cancel);
                if (read == 0)
                {
                    return received == 0 ? throw new ServerClosedException() : null;
                }

                received += read;
                var text = Encoding.ASCII.GetString(buffer, 0, received);
                var split = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
                if (split < 0)
                {
                    continue;
                }

                var lengthAt = text.IndexOf("Content-Length:", StringComparison.OrdinalIgnoreCase);
                if (lengthAt < 0 || !text.StartsWith("HTTP/1.1 200", StringComparison.Ordinal))
                {
                    return null;
                }

                var lengthEnd = text.IndexOf("\r\n", lengthAt, StringComparison.Ordinal);
                var length = int.Parse(text.AsSpan(lengthAt + 15, lengthEnd - lengthAt - 15).Trim(), System.Globalization.CultureInfo.InvariantCulture);
                if (received - (split + 4) >= length)
                {
                    return text.Substring(split + 4, length).Trim();
                }
            }
        }
    }

    private sealed record Sample(int Stream, int Kind, long Start, long End, bool Ok, string? Node, bool Retried, int Port, string? Error);

    /// <summary>The server closed the connection before answering a byte.</summary>
    private sealed class ServerClosedException : Exception;
}
