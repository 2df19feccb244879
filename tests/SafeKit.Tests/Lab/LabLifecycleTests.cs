using System.Text.Json;
using SafeKit.Native.Host;
using SafeKit.Tests.Infrastructure;

namespace SafeKit.Tests.Lab;

[Collection(LabCollection.Name)]
public sealed class LabLifecycleTests
{
    [Fact]
    public void LabDown_LeavesNoNamespaceLinkProcessOrState()
    {
        Tools.RequireLab();
        var prefix = Tools.RunTag();
        var up = Tools.Run(Tools.Safekit, "lab", "up", "--prefix", prefix, "--nodes", "2", "--no-ipv6");
        try
        {
            Assert.True(up.Succeeded, up.Output + up.Error);
            var status = JsonDocument.Parse(Tools.Run(Tools.Safekit, "lab", "status", "--json", "--prefix", prefix).Output).RootElement;
            var pids = status.GetProperty("processes").EnumerateArray().Select(p => p.GetProperty("pid").GetInt32()).ToList();
            Assert.Equal(2, pids.Count);
            // NGINX is started by safekitd's start script; its masters are in the pid files.
            pids.AddRange(Enumerable.Range(1, 2).Select(i => int.Parse(File.ReadAllText($"/run/safekit-lab/{prefix}/{prefix}-n{i}/nginx.pid").Trim(), System.Globalization.CultureInfo.InvariantCulture)));
            Assert.All(pids, pid => Assert.NotNull(ProcessControl.StartTime(pid)));
            var namespaces = Tools.Run("ip", "netns", "list").Output;
            Assert.Contains($"{prefix}-br", namespaces, StringComparison.Ordinal);
            Assert.Contains($"{prefix}-n2", namespaces, StringComparison.Ordinal);

            var down = Tools.Run(Tools.Safekit, "lab", "down", "--prefix", prefix);

            Assert.True(down.Succeeded, down.Error);
            Assert.DoesNotContain(prefix, Tools.Run("ip", "netns", "list").Output, StringComparison.Ordinal);
            Assert.All(pids, pid => Assert.True(ProcessControl.IsDead(pid), $"process {pid} survived lab down"));
            Assert.False(Directory.Exists($"/run/safekit-lab/{prefix}"));
            Assert.DoesNotContain(prefix, Tools.Run("ip", "-o", "link").Output, StringComparison.Ordinal);
            Assert.Equal(3, Tools.Run(Tools.Safekit, "lab", "status", "--prefix", prefix).ExitCode);
        }
        finally
        {
            Tools.Run(Tools.Safekit, "lab", "down", "--prefix", prefix);
        }
    }

    [Fact]
    public void LabUp_AfterACrashedRun_SweepsTheLeftovers()
    {
        Tools.RequireLab();
        var prefix = Tools.RunTag();
        try
        {
            // What a killed run leaves: namespaces and a process inside one, no state file.
            Tools.Run("ip", "netns", "add", $"{prefix}-n1");
            Tools.Run("ip", "netns", "add", $"{prefix}-br");
            using var sleeper = System.Diagnostics.Process.Start("ip", ["netns", "exec", $"{prefix}-n1", "sleep", "300"]);
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (!Tools.Run("ip", "netns", "pids", $"{prefix}-n1").Output.Contains(sleeper.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal))
            {
                Assert.True(DateTime.UtcNow < deadline, "the leftover process never entered its namespace");
                Thread.Sleep(20);
            }

            var up = Tools.Run(Tools.Safekit, "lab", "up", "--prefix", prefix, "--nodes", "1", "--no-ipv6");

            Assert.True(up.Succeeded, up.Output + up.Error);
            Assert.True(sleeper.WaitForExit(5000), "the leftover process was not stopped");
        }
        finally
        {
            Tools.Run(Tools.Safekit, "lab", "down", "--prefix", prefix);
        }
    }

    [Fact]
    public void LabExec_UnknownNamespace_IsAClearError()
    {
        Tools.RequireLab();
        var result = Tools.Run(Tools.Safekit, "lab", "exec", "--prefix", "tnolab", "n1", "--", "true");

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("no namespace 'n1'", result.Error, StringComparison.Ordinal);
    }
}
