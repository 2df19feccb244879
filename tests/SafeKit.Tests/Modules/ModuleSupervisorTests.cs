using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using SafeKit.ControlPlane.Configuration;
using SafeKit.ControlPlane.Modules;
using SafeKit.Tests.Infrastructure;

namespace SafeKit.Tests.Modules;

/// <summary>The supervisor with real scripts and a real command checker (on lo, whose carrier is always up).</summary>
public sealed class ModuleSupervisorTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sk-supervisor-").FullName;

    private sealed record Module(string Name, IReadOnlyList<IPAddress> Vips, string Interface, ScriptsConfig Scripts, IReadOnlyList<CheckerConfig> Checkers, RestartConfig Restart) : IApplicationModule;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task RestartAskedByAFailingReport_OvertakenByAHealthyOne_NeitherRestartsNorGivesUp()
    {
        // A failing report hands its restart to another task; a healthy report may come first (seen
        // in the lab: the node was back in the farm while still marked "gave up", for good, since a
        // steady healthy application sends no further report).
        var healthy = Path.Combine(_directory, "healthy");
        var starts = Path.Combine(_directory, "starts");
        File.WriteAllText(healthy, "");
        var module = new Module(
            "app",
            [IPAddress.Loopback],
            "lo",
            new ScriptsConfig($"echo start >> {starts}", null),
            [new CheckerConfig(CheckerKind.Command, $"test -f {healthy}", IntervalMilliseconds: 100, Failures: 1)],
            new RestartConfig(Max: 1));
        var ready = false;
        await using var supervisor = new ModuleSupervisor(module, "n1", TimeProvider.System, NullLogger.Instance, r => ready = r, (_, _) => { });
        await supervisor.StartAsync();
        LabInstance.WaitUntil(() => ready, "the application is ready", 10);

        for (var i = 0; i < 3; i++)
        {
            await supervisor.RestartAsync("a check that failed before the healthy report", counted: true);
        }

        Assert.False(supervisor.GaveUp);
        Assert.Equal(0, supervisor.RecentRestarts);
        Assert.Single(File.ReadAllLines(starts));
        Assert.True(ready);

        // A real failure is still restarted, then given up on past the limit, then recovered from.
        File.Delete(healthy);
        LabInstance.WaitUntil(() => supervisor.GaveUp, "the supervisor gives up on an application that stays broken", 10);
        Assert.True(File.ReadAllLines(starts).Length >= 2);
        Assert.False(ready);
        File.WriteAllText(healthy, "");
        LabInstance.WaitUntil(() => ready && !supervisor.GaveUp, "back once the check passes", 10);
    }
}
