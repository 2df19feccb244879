using SafeKit.Native.Host;

namespace SafeKit.Tests.Infrastructure;

/// <summary>
/// A network namespace owned by one test: created with a per-run name, commands run inside it
/// with <c>ip netns exec</c> (the test process never switches namespace), and on dispose every
/// process left in it is stopped by PID and the namespace is deleted.
/// </summary>
internal sealed class TestNamespace : IDisposable
{
    public TestNamespace(string name)
    {
        Name = name;
        Directory = System.IO.Directory.CreateTempSubdirectory(name + "-").FullName;
        CommandRunner.RunChecked("ip", ["netns", "add", name]);
        Ip("link", "set", "lo", "up");
    }

    public string Name { get; }

    /// <summary>A scratch directory removed with the namespace.</summary>
    public string Directory { get; }

    public void Ip(params string[] arguments) => CommandRunner.RunChecked("ip", ["-n", Name, .. arguments]);

    public CommandResult Exec(params string[] command) =>
        CommandRunner.Run("ip", ["netns", "exec", Name, .. command], timeout: TimeSpan.FromMinutes(2));

    public string ExecChecked(params string[] command)
    {
        var result = Exec(command);
        Assert.True(result.Succeeded, $"'{string.Join(' ', command)}' failed in {Name}: {result.Error}");
        return result.Output;
    }

    public string ExecWithInput(string input, params string[] command) =>
        CommandRunner.RunChecked("ip", ["netns", "exec", Name, .. command], input);

    public void Dispose()
    {
        foreach (var line in CommandRunner.Run("ip", ["netns", "pids", Name]).Output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (int.TryParse(line.Trim(), out var pid) && ProcessControl.StartTime(pid) is { } start)
            {
                ProcessControl.Stop(pid, start, TimeSpan.FromSeconds(2));
            }
        }

        CommandRunner.Run("ip", ["netns", "delete", Name]);
        System.IO.Directory.Delete(Directory, recursive: true);
    }
}
