using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace SafeKit.Native.Host;

/// <summary>
/// The sd_notify protocol without libsystemd: datagrams such as <c>READY=1</c> sent to the socket
/// named by NOTIFY_SOCKET (a path, or '@' for the abstract namespace). Inert when systemd did not
/// start the process. The watchdog interval comes from WATCHDOG_USEC (and WATCHDOG_PID, when set,
/// must be this process).
/// </summary>
public sealed class SystemdNotifier : IDisposable
{
    private readonly Socket? _socket;
    private readonly UnixDomainSocketEndPoint? _target;

    private SystemdNotifier(Socket? socket, UnixDomainSocketEndPoint? target, TimeSpan? watchdog)
    {
        _socket = socket;
        _target = target;
        WatchdogInterval = watchdog;
    }

    /// <summary>Whether a service manager listens.</summary>
    public bool Enabled => _socket is not null;

    /// <summary>How often systemd expects WATCHDOG=1 at the latest (null: no watchdog).</summary>
    public TimeSpan? WatchdogInterval { get; }

    /// <summary>Reads the environment systemd sets for a Type=notify service.</summary>
    public static SystemdNotifier FromEnvironment()
    {
        var path = Environment.GetEnvironmentVariable("NOTIFY_SOCKET");
        TimeSpan? watchdog = null;
        if (long.TryParse(Environment.GetEnvironmentVariable("WATCHDOG_USEC"), NumberStyles.None, CultureInfo.InvariantCulture, out var usec) && usec > 0
            && (Environment.GetEnvironmentVariable("WATCHDOG_PID") is not { Length: > 0 } pid || pid == Environment.ProcessId.ToString(CultureInfo.InvariantCulture)))
        {
            watchdog = TimeSpan.FromMicroseconds(usec);
        }

        if (string.IsNullOrEmpty(path) || (path[0] != '/' && path[0] != '@'))
        {
            return new SystemdNotifier(null, null, watchdog);
        }

        var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        return new SystemdNotifier(socket, new UnixDomainSocketEndPoint(path[0] == '@' ? "\0" + path[1..] : path), watchdog);
    }

    /// <summary>Sends one notification (several NAME=value lines); errors are ignored, as sd_notify's callers do.</summary>
    public bool Notify(string state)
    {
        if (_socket is null)
        {
            return false;
        }

        try
        {
            _socket.SendTo(Encoding.UTF8.GetBytes(state), SocketFlags.None, _target!);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    public void Dispose() => _socket?.Dispose();
}
