using System.Globalization;
using SafeKit.Native.Host;

namespace SafeKit.ControlPlane.Checkers;

/// <summary>The process whose PID the application wrote to its pid file is alive.</summary>
public sealed class ProcessCheck : ICheck
{
    private readonly string _pidFile;

    public ProcessCheck(string pidFile)
    {
        _pidFile = pidFile;
    }

    public string Name => $"process:{_pidFile}";

    public Task<CheckResult> RunAsync(CancellationToken cancellation)
    {
        try
        {
            var text = File.ReadAllText(_pidFile).Trim();
            if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var pid) || pid <= 0)
            {
                return Task.FromResult(new CheckResult(false, $"pid file holds '{text}'"));
            }

            return Task.FromResult(ProcessControl.IsDead(pid)
                ? new CheckResult(false, $"process {pid} is gone")
                : new CheckResult(true, $"process {pid} alive"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Task.FromResult(new CheckResult(false, $"no pid file ({e.Message})"));
        }
    }
}
