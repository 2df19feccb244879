using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace SafeKit.Loadgen;

/// <summary>
/// <c>udp --host IP --port P --count N [--size BYTES]</c>: N datagrams, each from a new socket
/// (a new client port), waiting for one answer each. Sizes above the MTU are fragmented by the
/// kernel, which exercises fragment tracking on the nodes.
/// </summary>
internal static class UdpCommand
{
    public static async Task<int> RunAsync(Options options)
    {
        var host = IPAddress.Parse(options.String("host"));
        var port = options.Int("port", 5300);
        var count = options.Int("count", 50);
        var size = options.Int("size", 32);
        var timeout = TimeSpan.FromMilliseconds(options.Int("timeout-ms", 2000));
        var payload = new byte[size];
        Array.Fill(payload, (byte)'x');
        var results = new List<Dictionary<string, object?>>();
        for (var i = 0; i < count; i++)
        {
            using var socket = new Socket(host.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            socket.Connect(new IPEndPoint(host, port));
            var localPort = ((IPEndPoint)socket.LocalEndPoint!).Port;
            using var cancel = new CancellationTokenSource(timeout);
            try
            {
                await socket.SendAsync(payload, cancel.Token);
                var buffer = new byte[2048];
                var read = await socket.ReceiveAsync(buffer, cancel.Token);
                results.Add(new() { ["port"] = localPort, ["body"] = Encoding.ASCII.GetString(buffer, 0, read).Trim(), ["error"] = null });
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException)
            {
                results.Add(new() { ["port"] = localPort, ["body"] = null, ["error"] = e.GetType().Name });
            }
        }

        Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["ok"] = results.Count(r => r["error"] is null),
            ["errors"] = results.Count(r => r["error"] is not null),
            ["datagrams"] = results,
        }));
        return 0;
    }
}
