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

    [Fact]
    public void Safekitd_StartedWithSighupIgnored_StillReloadsOnSighup()
    {
        Tools.RequireLab();
        using var ns = Node();
        var file = WriteConfig(ns, "eth0");
        var directory = Path.GetDirectoryName(file)!;
        // As under nohup: the parent ignores SIGHUP and the daemon inherits that across exec.
        using var daemon = System.Diagnostics.Process.Start("ip", ["netns", "exec", ns.Name, "sh", "-c", "trap '' HUP; exec \"$0\" \"$@\"", Tools.Safekitd, "--config", file, "--node", "a", "--state-dir", directory]);
        try
        {
            LabInstance.WaitUntil(() => SafeKit.ControlPlane.Status.StatusFile.TryRead(directory) is not null, "the node writes its status", 20);

            Assert.Null(SafeKit.ControlPlane.Status.StatusFile.TryRead(directory)?.Config?.LastReload);
            SafeKit.Native.Host.ProcessControl.Signal(daemon.Id, SafeKit.Native.Host.ProcessControl.SigHup);
            LabInstance.WaitUntil(() => SafeKit.ControlPlane.Status.StatusFile.TryRead(directory)?.Config?.LastReload is not null, "the node records a reload", 20);

            Assert.True(SafeKit.ControlPlane.Status.StatusFile.TryRead(directory)?.Config?.LastReload?.Applied, "the reload asked by SIGHUP was applied");
        }
        finally
        {
            SafeKit.Native.Host.ProcessControl.Signal(daemon.Id, SafeKit.Native.Host.ProcessControl.SigTerm);
            daemon.WaitForExit(10_000);
        }
    }

    [Fact]
    public void Safekitd_WaitForConfig_SaysNotConfiguredUntilTheFileExists_ThenStartsOnSighup()
    {
        Tools.RequireLab();
        using var ns = Node();
        var file = Path.Combine(ns.Directory, "cluster.yaml");
        var directory = Path.Combine(ns.Directory, "state");
        using var daemon = System.Diagnostics.Process.Start("ip", ["netns", "exec", ns.Name, Tools.Safekitd, "--config", file, "--node", "a", "--state-dir", directory, "--wait-for-config"]);
        try
        {
            (string Code, string Type, string Body) Get()
            {
                var result = ns.Exec("curl", "-sk", "-m", "5", "-o", "-", "-w", "\n%{http_code} %{content_type}", "https://198.18.0.11:9453/api/v1/cluster");
                var last = result.Output.LastIndexOf('\n');
                var tail = last < 0 ? ["000", ""] : result.Output[(last + 1)..].Split(' ', 2);
                return (tail[0], tail.Length > 1 ? tail[1] : "", last < 0 ? "" : result.Output[..last]);
            }

            LabInstance.WaitUntil(() => Get().Code == "503", "the not-configured API answers", 30);
            // A SIGHUP while the file is still missing changes nothing.
            SafeKit.Native.Host.ProcessControl.Signal(daemon.Id, SafeKit.Native.Host.ProcessControl.SigHup);
            var (_, type, body) = Get();
            Assert.StartsWith("application/problem+json", type, StringComparison.Ordinal);
            var problem = System.Text.Json.JsonDocument.Parse(body).RootElement;
            Assert.Equal("Node not configured", problem.GetProperty("title").GetString());
            Assert.Equal("not_configured", problem.GetProperty("state").GetString());
            Assert.Contains(file, problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
            var status = ns.Exec(Tools.Safekit, "status", "--node", "https://198.18.0.11:9453", "--insecure", "--token", "x");
            Assert.Equal(1, status.ExitCode);
            Assert.Contains("Node not configured (503)", status.Error, StringComparison.Ordinal);
            Assert.False(daemon.HasExited);
            Assert.Null(SafeKit.ControlPlane.Status.StatusFile.TryRead(directory));

            File.WriteAllText(file, Config.Replace("{0}", "eth0", StringComparison.Ordinal));
            SafeKit.Native.Host.ProcessControl.Signal(daemon.Id, SafeKit.Native.Host.ProcessControl.SigHup);
            LabInstance.WaitUntil(() => SafeKit.ControlPlane.Status.StatusFile.TryRead(directory) is not null, "the node starts once its configuration exists", 30);
            LabInstance.WaitUntil(() => Get().Code == "401", "the real API (tokens required) replaces the not-configured one", 30);
        }
        finally
        {
            SafeKit.Native.Host.ProcessControl.Signal(daemon.Id, SafeKit.Native.Host.ProcessControl.SigTerm);
            Assert.True(daemon.WaitForExit(30_000));
        }

        Assert.Equal(0, daemon.ExitCode);
    }

    [Fact]
    public void Safekitd_UnderSystemd_NotifiesReady_PetsTheWatchdog_SaysStopping_AndLogsWithPriorities()
    {
        Tools.RequireLab();
        using var ns = Node();
        var file = WriteConfig(ns, "eth0");
        var directory = Path.GetDirectoryName(file)!;
        // The service manager's side of sd_notify: a datagram socket named by NOTIFY_SOCKET.
        var socketPath = Path.Combine(directory, "notify.sock");
        using var manager = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Unspecified);
        manager.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(socketPath));
        manager.ReceiveTimeout = 1000;
        var start = new System.Diagnostics.ProcessStartInfo("ip", ["netns", "exec", ns.Name, Tools.Safekitd, "--config", file, "--node", "a", "--state-dir", directory])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        start.Environment["NOTIFY_SOCKET"] = socketPath;
        start.Environment["WATCHDOG_USEC"] = "1000000";
        start.Environment["JOURNAL_STREAM"] = "8:12345";
        using var daemon = System.Diagnostics.Process.Start(start)!;
        var log = new System.Collections.Concurrent.ConcurrentQueue<string>();
        daemon.ErrorDataReceived += (_, e) => { if (e.Data is not null) log.Enqueue(e.Data); };
        daemon.OutputDataReceived += (_, e) => { if (e.Data is not null) log.Enqueue(e.Data); };
        daemon.BeginErrorReadLine();
        daemon.BeginOutputReadLine();

        var messages = new List<string>();
        string? Next(TimeSpan within)
        {
            var deadline = DateTime.UtcNow + within;
            var buffer = new byte[4096];
            while (DateTime.UtcNow < deadline)
            {
                try
                {
                    var length = manager.Receive(buffer);
                    var message = System.Text.Encoding.UTF8.GetString(buffer, 0, length);
                    messages.Add(message);
                    return message;
                }
                catch (System.Net.Sockets.SocketException)
                {
                }
            }

            return null;
        }

        string? ready = null;
        while (ready is null && Next(TimeSpan.FromSeconds(30)) is { } message)
        {
            ready = message.Contains("READY=1", StringComparison.Ordinal) ? message : null;
        }

        Assert.True(ready is not null, $"no READY=1 within 30 s; got: {string.Join(" | ", messages)}");
        Assert.Contains("STATUS=web ", ready, StringComparison.Ordinal);
        Assert.Contains($"MAINPID=", ready, StringComparison.Ordinal);
        // A 1 s watchdog: pinged at least every half second, so three pings within 3 s.
        var pings = 0;
        var until = DateTime.UtcNow.AddSeconds(3);
        while (DateTime.UtcNow < until && Next(until - DateTime.UtcNow) is { } message)
        {
            pings += message.Split('\n').Count(l => l == "WATCHDOG=1");
        }

        Assert.True(pings >= 3, $"{pings} watchdog pings in 3 s; got: {string.Join(" | ", messages)}");

        SafeKit.Native.Host.ProcessControl.Signal(daemon.Id, SafeKit.Native.Host.ProcessControl.SigTerm);
        var stopping = false;
        while (!stopping && Next(TimeSpan.FromSeconds(10)) is { } message)
        {
            stopping = message.Contains("STOPPING=1", StringComparison.Ordinal);
        }

        Assert.True(stopping, $"no STOPPING=1; got: {string.Join(" | ", messages)}");
        Assert.True(daemon.WaitForExit(30_000));
        daemon.WaitForExit();
        Assert.Equal(0, daemon.ExitCode);
        // journald reads the priority from the line's "<N>" prefix; no timestamp of our own.
        Assert.Contains(log, l => l.StartsWith("<6>", StringComparison.Ordinal) && l.Contains("safekitd", StringComparison.Ordinal));
        Assert.DoesNotContain(log, l => l.StartsWith("20", StringComparison.Ordinal));
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
