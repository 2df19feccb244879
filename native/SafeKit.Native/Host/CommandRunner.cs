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
    /// <param name="workingDirectory">Where it runs (null: this process's directory).</param>
    public static CommandResult Run(string file, IEnumerable<string> arguments, string? input = null, TimeSpan? timeout = null, string? workingDirectory = null)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        var start = new ProcessStartInfo(file)
        {
            WorkingDirectory = workingDirectory ?? string.Empty,
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
        // Dedicated reader threads, not thread-pool tasks: callers may run while the pool is busy
        // (timers, blocked continuations), and a command must never wait for a pool thread.
        var output = Reader(process.StandardOutput);
        var error = Reader(process.StandardError);
        if (input is not null)
        {
            process.StandardInput.Write(input);
            process.StandardInput.Close();
        }

        if (!process.WaitForExit(timeout ?? TimeSpan.FromSeconds(30)))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            return new CommandResult(-1, output.Text(), $"{file} timed out; {error.Text()}");
        }

        return new CommandResult(process.ExitCode, output.Text(), error.Text());
    }

    private static StreamText Reader(StreamReader stream)
    {
        var text = new StreamText(stream);
        text.Start();
        return text;
    }

    /// <summary>Reads a whole stream on its own thread.</summary>
    private sealed class StreamText(StreamReader stream)
    {
        private string _text = string.Empty;
        private Thread? _reader;

        public void Start()
        {
            _reader = new Thread(() => _text = stream.ReadToEnd()) { IsBackground = true, Name = "command-output" };
            _reader.Start();
        }

        public string Text()
        {
            _reader?.Join();
            return _text;
        }
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
