using System.Diagnostics;

namespace SafeKit.Native.Host;

/// <summary>Result of a finished command.</summary>
/// <param name="ExitCode">Process exit code (-1 when it was killed for taking too long).</param>
/// <param name="Output">Standard output.</param>
/// <param name="Error">Standard error.</param>
public sealed record CommandResult(int ExitCode, string Output, string Error)
{
    public bool Succeeded => ExitCode == 0;
}

/// <summary>
/// Runs system tools (ip, nft, sysctl...) on slow paths. Arguments are passed as a list, never
/// through a shell; a command that overruns its timeout is killed with its children.
/// </summary>
public static class CommandRunner
{
    /// <summary>Runs <paramref name="file"/> and waits for it.</summary>
    public static CommandResult Run(string file, IEnumerable<string> arguments, string? input = null, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = input is not null,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {file}");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (input is not null)
        {
            process.StandardInput.Write(input);
            process.StandardInput.Close();
        }

        if (!process.WaitForExit(timeout ?? TimeSpan.FromSeconds(30)))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            return new CommandResult(-1, output.Result, $"{file} timed out; {error.Result}");
        }

        return new CommandResult(process.ExitCode, output.Result, error.Result);
    }

    /// <summary>Runs a command and throws with its standard error when it fails.</summary>
    public static string RunChecked(string file, IEnumerable<string> arguments, string? input = null, TimeSpan? timeout = null)
    {
        var list = arguments.ToList();
        var result = Run(file, list, input, timeout);
        if (!result.Succeeded)
        {
            throw new InvalidOperationException($"'{file} {string.Join(' ', list)}' failed ({result.ExitCode}): {result.Error.Trim()}");
        }

        return result.Output;
    }
}
