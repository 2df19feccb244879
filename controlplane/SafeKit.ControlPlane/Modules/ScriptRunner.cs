using System.Diagnostics;
using System.Text;

namespace SafeKit.ControlPlane.Modules;

/// <summary>The outcome of a script.</summary>
/// <param name="ExitCode">Its exit code (-1: it did not finish in time and was killed, or could not start).</param>
/// <param name="Output">What it printed (stdout and stderr, interleaved as read, at most 64 KiB).</param>
/// <param name="Duration">How long it ran.</param>
public sealed record ScriptResult(int ExitCode, string Output, TimeSpan Duration)
{
    public bool Succeeded => ExitCode == 0;

    /// <summary>One line for status and logs.</summary>
    public string Summary => ExitCode switch
    {
        0 => $"exit 0 in {Duration.TotalMilliseconds:F0} ms",
        -1 => $"killed or not started after {Duration.TotalMilliseconds:F0} ms",
        _ => $"exit {ExitCode} in {Duration.TotalMilliseconds:F0} ms",
    };
}

/// <summary>
/// Runs a user's shell command (scripts, command checkers) with a timeout. A command that overruns
/// is killed with everything it started; its output is kept for the node's log.
/// </summary>
public static class ScriptRunner
{
    private const int MaxOutput = 64 * 1024;

    public static async Task<ScriptResult> RunAsync(string command, TimeSpan timeout, CancellationToken cancellation, IReadOnlyDictionary<string, string>? environment = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(command);
        var start = new ProcessStartInfo("/bin/sh")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(command);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }
        var clock = Stopwatch.StartNew();
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException("no process");
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return new ScriptResult(-1, e.Message, clock.Elapsed);
        }

        using (process)
        {
            process.StandardInput.Close();
            var output = new StringBuilder();
            var readers = new[] { Drain(process.StandardOutput, output), Drain(process.StandardError, output) };
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
            limit.CancelAfter(timeout);
            try
            {
                await process.WaitForExitAsync(limit.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync(CancellationToken.None);
                await Task.WhenAll(readers);
                return new ScriptResult(-1, Text(output), clock.Elapsed);
            }

            // A daemon started by the script may keep the pipes open: do not wait for them long.
            await Task.WhenAny(Task.WhenAll(readers), Task.Delay(200, CancellationToken.None));
            return new ScriptResult(process.ExitCode, Text(output), clock.Elapsed);
        }
    }

    private static string Text(StringBuilder output)
    {
        lock (output)
        {
            return output.ToString();
        }
    }

    private static async Task Drain(StreamReader reader, StringBuilder output)
    {
        try
        {
            string? line;
            while ((line = await reader.ReadLineAsync()) is not null)
            {
                lock (output)
                {
                    if (output.Length < MaxOutput)
                    {
                        output.AppendLine(line);
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
        }
    }
}
