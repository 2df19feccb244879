using SafeKit.Native.Host;

namespace SafeKit.Cli.Lab;

/// <summary>iproute2 operations on the lab's network namespaces.</summary>
internal static class Netns
{
    public static IReadOnlyList<string> List()
    {
        var result = CommandRunner.Run("ip", ["netns", "list"]);
        return result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line.Split(' ')[0])
            .ToList();
    }

    public static void Add(string name) => Ip("netns", "add", name);

    public static void Delete(string name) => CommandRunner.Run("ip", ["netns", "delete", name]);

    /// <summary>PIDs of every process whose network namespace is <paramref name="name"/>.</summary>
    public static IReadOnlyList<int> Pids(string name) =>
        CommandRunner.Run("ip", ["netns", "pids", name]).Output
            .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(p => int.TryParse(p, out var pid) ? pid : 0)
            .Where(p => p > 0)
            .ToList();

    /// <summary>Runs <c>ip ARGS</c>, throwing with stderr on failure.</summary>
    public static void Ip(params string[] arguments) => CommandRunner.RunChecked("ip", arguments);

    /// <summary>Runs a command inside a namespace and throws on failure.</summary>
    public static string Exec(string name, params string[] command) =>
        CommandRunner.RunChecked("ip", ["netns", "exec", name, .. command]);

    /// <summary>Sets a sysctl inside a namespace.</summary>
    public static void Sysctl(string name, string key, string value) =>
        Exec(name, "sysctl", "-q", "-w", $"{key}={value}");
}
