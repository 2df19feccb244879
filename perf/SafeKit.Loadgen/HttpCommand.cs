using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace SafeKit.Loadgen;

/// <summary>
/// <c>http --host IP --count N [--port P] [--concurrency C] [--timeout-ms T]</c>: N GET requests,
/// each on a new TCP connection (a new client port), and a JSON report of every connection: its
/// local port, the body's first line (so a test can check which node served which flow), when it
/// started (Unix ms) and how long it took.
/// </summary>
internal static class HttpCommand
{
    public static async Task<int> RunAsync(Options options)
    {
        var host = IPAddress.Parse(options.String("host"));
        var port = options.Int("port", 80);
        var count = options.Int("count", 100);
        var concurrency = options.Int("concurrency", 4);
        var timeout = TimeSpan.FromMilliseconds(options.Int("timeout-ms", 3000));
        var results = new Result[count];
        var next = -1;
        var workers = Enumerable.Range(0, concurrency).Select(async _ =>
        {
            int index;
            while ((index = Interlocked.Increment(ref next)) < count)
            {
                results[index] = await OneAsync(host, port, timeout);
            }
        });
        await Task.WhenAll(workers);
        var report = new Dictionary<string, object>
        {
            ["ok"] = results.Count(r => r.Error is null),
            ["errors"] = results.Count(r => r.Error is not null),
            ["connections"] = results.Select(r => new Dictionary<string, object?> { ["port"] = r.LocalPort, ["body"] = r.Body, ["error"] = r.Error, ["start_ms"] = r.StartMs, ["duration_ms"] = r.DurationMs }).ToList(),
        };
        Console.WriteLine(JsonSerializer.Serialize(report));
        return 0;
    }

    private static async Task<Result> OneAsync(IPAddress host, int port, TimeSpan timeout)
    {
        var started = DateTimeOffset.UtcNow;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var result = await AttemptAsync(host, port, timeout);
        return result with { StartMs = started.ToUnixTimeMilliseconds(), DurationMs = Math.Round(clock.Elapsed.TotalMilliseconds, 2) };
    }

    private static async Task<Result> AttemptAsync(IPAddress host, int port, TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        using var socket = new Socket(host.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        var localPort = 0;
        try
        {
            await socket.ConnectAsync(new IPEndPoint(host, port), cancel.Token);
            localPort = ((IPEndPoint)socket.LocalEndPoint!).Port;
            var hostHeader = host.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{host}]" : host.ToString();
            await socket.SendAsync(Encoding.ASCII.GetBytes($"GET / HTTP/1.1\r\nHost: {hostHeader}\r\nConnection: close\r\n\r\n"), cancel.Token);
            var buffer = new byte[4096];
            var response = new MemoryStream();
            int read;
            while ((read = await socket.ReceiveAsync(buffer, cancel.Token)) > 0)
            {
                response.Write(buffer, 0, read);
            }

            var text = Encoding.ASCII.GetString(response.ToArray());
            var split = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (!text.StartsWith("HTTP/1.1 200", StringComparison.Ordinal) || split < 0)
            {
                return new Result(localPort, null, $"unexpected response: {text[..Math.Min(60, text.Length)]}");
            }

            return new Result(localPort, text[(split + 4)..].Trim(), null);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or IOException)
        {
            return new Result(localPort, null, e.GetType().Name + ": " + e.Message);
        }
    }

    private sealed record Result(int LocalPort, string? Body, string? Error, long StartMs = 0, double DurationMs = 0);
}
