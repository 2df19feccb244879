using SafeKit.Tests.Infrastructure;

namespace SafeKit.Tests.Lab;

/// <summary>safekitd refuses to start on a node that is not fit, with a message that says why.</summary>
[Collection(LabCollection.Name)]
public sealed class DaemonStartupTests
{
    private const string Config = """
        cluster:
          name: preflight
          nodes:
            - name: a
              address: 198.18.0.11
        modules:
          - name: web
            type: farm
            vips: [198.18.0.100]
            interface: {0}
        """;

    [Fact]
    public void Safekitd_VipOnTheFarmInterface_RefusesToStart()
    {
        Tools.RequireLab();
        using var ns = Node();
        ns.Ip("addr", "add", "198.18.0.100/24", "dev", "eth0");
        var file = WriteConfig(ns, "eth0");

        var result = ns.Exec(Tools.Safekitd, "--config", file, "--node", "a", "--state-dir", Path.GetDirectoryName(file)!);

        Assert.Equal(3, result.ExitCode);
        Assert.Contains("VIP 198.18.0.100 is configured on the farm interface eth0", result.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("sk-web", ns.ExecChecked("ip", "-o", "link"), StringComparison.Ordinal);
    }

    [Fact]
    public void Safekitd_WithoutPrivileges_RefusesToStartAndSaysWhatItNeeds()
    {
        Tools.RequireLab();
        using var ns = Node();
        var file = WriteConfig(ns, "eth0");
        File.SetUnixFileMode(ns.Directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);

        var result = ns.Exec("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
            "env", "DOTNET_CLI_HOME=/tmp", "HOME=/tmp", Tools.Safekitd, "--config", file, "--node", "a", "--state-dir", "/tmp/" + ns.Name + "-state");

        Assert.Equal(3, result.ExitCode);
        Assert.Contains("needs root or the CAP_NET_ADMIN and CAP_NET_RAW capabilities", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Safekitd_MissingInterface_RefusesToStartAndNamesIt()
    {
        Tools.RequireLab();
        using var ns = Node();
        var file = WriteConfig(ns, "eth7");

        var result = ns.Exec(Tools.Safekitd, "--config", file, "--node", "a", "--state-dir", Path.GetDirectoryName(file)!);

        Assert.Equal(3, result.ExitCode);
        Assert.Contains("interface 'eth7' does not exist", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Safekitd_BadConfig_ExitsWithFileLineAndKey()
    {
        Tools.RequireLab();
        using var ns = Node();
        var file = WriteConfig(ns, "eth0").Replace(".yaml", "-bad.yaml", StringComparison.Ordinal);
        File.WriteAllText(file, Config.Replace("{0}", "eth0", StringComparison.Ordinal).Replace("    vips:", "    vipz:", StringComparison.Ordinal));

        var result = ns.Exec(Tools.Safekitd, "--config", file, "--node", "a");

        Assert.Equal(2, result.ExitCode);
        Assert.Contains($"{file}:9:5: modules[0].vipz: unknown key", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Safekitd_Sigterm_RemovesTheTunAndLeavesSysctlsVerified()
    {
        Tools.RequireLab();
        using var ns = Node();
        var file = WriteConfig(ns, "eth0");
        var directory = Path.GetDirectoryName(file)!;
        using var daemon = System.Diagnostics.Process.Start("ip", ["netns", "exec", ns.Name, Tools.Safekitd, "--config", file, "--node", "a", "--state-dir", directory]);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!File.Exists(Path.Combine(directory, "status.json")) && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(50);
        }

        Assert.Contains("sk-web", ns.ExecChecked("ip", "-o", "addr"), StringComparison.Ordinal);
        Assert.Equal("1", ns.ExecChecked("sysctl", "-n", "net.ipv4.conf.eth0.arp_ignore").Trim());
        Assert.Equal("2", ns.ExecChecked("sysctl", "-n", "net.ipv4.conf.eth0.arp_announce").Trim());

        SafeKit.Native.Host.ProcessControl.Signal(daemon.Id, SafeKit.Native.Host.ProcessControl.SigTerm);

        Assert.True(daemon.WaitForExit(10_000));
        Assert.Equal(0, daemon.ExitCode);
        Assert.DoesNotContain("sk-web", ns.ExecChecked("ip", "-o", "link"), StringComparison.Ordinal);
    }

    private static TestNamespace Node()
    {
        var ns = new TestNamespace(Tools.RunTag() + "-node");
        ns.Ip("link", "add", "name", "eth0", "type", "veth", "peer", "name", "peer0");
        ns.Ip("link", "set", "eth0", "up");
        ns.Ip("link", "set", "peer0", "up");
        ns.Ip("addr", "add", "198.18.0.11/24", "dev", "eth0");
        return ns;
    }

    private static string WriteConfig(TestNamespace ns, string nic)
    {
        var file = Path.Combine(ns.Directory, "cluster.yaml");
        File.WriteAllText(file, Config.Replace("{0}", nic, StringComparison.Ordinal));
        return file;
    }
}
