using System.Runtime.InteropServices;
using SafeKit.Native.Host;

namespace SafeKit.Daemon;

/// <summary>
/// How an operator talks to a running safekitd: SIGTERM/SIGINT cancel <see cref="Stop"/> (the
/// daemon drains and exits), SIGHUP releases <see cref="Reload"/> once per signal.
/// </summary>
internal sealed class DaemonSignals : IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly PosixSignalRegistration _sigterm;
    private readonly PosixSignalRegistration _sigint;
    private readonly PosixSignalRegistration _sighup;

    public DaemonSignals()
    {
        _sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; _stop.Cancel(); });
        _sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; _stop.Cancel(); });
        // SIGHUP must work even when whoever started the daemon ignored it (nohup: the lab's
        // reload was lost under such a parent, which left it ignored across exec).
        ProcessControl.RestoreDefault(ProcessControl.SigHup);
        _sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c => { c.Cancel = true; Reload.Release(); });
    }

    /// <summary>Cancelled by SIGTERM or SIGINT.</summary>
    public CancellationToken Stop => _stop.Token;

    /// <summary>Released once per SIGHUP.</summary>
    public SemaphoreSlim Reload { get; } = new(0);

    public void Dispose()
    {
        _sighup.Dispose();
        _sigint.Dispose();
        _sigterm.Dispose();
        Reload.Dispose();
        _stop.Dispose();
    }
}
