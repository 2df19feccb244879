using System.Net;
using System.Net.Sockets;

namespace SafeKit.ControlPlane.Checkers;

/// <summary>A TCP connection to the application's port succeeds within the timeout.</summary>
public sealed class TcpCheck : ICheck
{
    private readonly IPEndPoint _target;
    private readonly TimeSpan _timeout;

    public TcpCheck(IPEndPoint target, TimeSpan timeout)
    {
        _target = target;
        _timeout = timeout;
    }

    public string Name => $"tcp:{_target}";

    public async Task<CheckResult> RunAsync(CancellationToken cancellation)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        timeout.CancelAfter(_timeout);
        using var socket = new Socket(_target.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(_target, timeout.Token);
            return new CheckResult(true, "connected");
        }
        catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
        {
            return new CheckResult(false, $"no answer within {_timeout.TotalMilliseconds} ms");
        }
        catch (SocketException e)
        {
            return new CheckResult(false, e.SocketErrorCode.ToString());
        }
    }
}
