using SafeKit.ControlPlane.Modules;

namespace SafeKit.ControlPlane.Checkers;

/// <summary>A command of the user's exits with 0 within the timeout.</summary>
public sealed class CommandCheck : ICheck
{
    private readonly string _command;
    private readonly TimeSpan _timeout;

    public CommandCheck(string command, TimeSpan timeout)
    {
        _command = command;
        _timeout = timeout;
    }

    public string Name => $"command:{_command}";

    public async Task<CheckResult> RunAsync(CancellationToken cancellation)
    {
        var result = await ScriptRunner.RunAsync(_command, _timeout, cancellation);
        return new CheckResult(result.Succeeded, result.Summary);
    }
}
