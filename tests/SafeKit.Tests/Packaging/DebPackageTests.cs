using System.Security.Cryptography;
using SafeKit.Native.Host;
using SafeKit.Tests.Infrastructure;

namespace SafeKit.Tests.Packaging;

/// <summary>
/// The .deb of packaging/deb/build: the same commit builds the same bytes, and the package
/// installs with apt on a plain Debian 12 root (mmdebstrap; no .NET there), where safekitd runs
/// from it and serves its API over TLS to the safekit of the same package.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class DebPackageTests
{
    private const string Config = """
        cluster:
          name: debtest
          nodes:
            - name: d1
              address: 198.18.99.1
        """;

    [Fact]
    public void Deb_IsReproducible_InstallsOnPlainDebian12_AndItsDaemonServesTheApi()
    {
        Tools.RequireLab();
        var repository = Tools.RepositoryRoot() ?? throw new InvalidOperationException("the tests run outside the repository");
        var version = File.ReadAllText(Path.Combine(repository, "VERSION")).Trim();
        var ns = new TestNamespace("sk" + Tools.RunTag());
        var root = Path.Combine(ns.Directory, "root");
        try
        {
            var first = Build(repository, Path.Combine(ns.Directory, "a"));
            var second = Build(repository, Path.Combine(ns.Directory, "b"));
            Assert.Equal($"safekit_{version}_amd64.deb", Path.GetFileName(first));
            if (Sha256(first) != Sha256(second))
            {
                Assert.Fail($"two builds of one commit differ: {Difference(first, second, ns.Directory)}");
            }

            var contents = Checked("dpkg-deb", "--contents", first);
            Assert.Contains("-rwxr-xr-x root/root", Line(contents, "./opt/safekit/safekitd"), StringComparison.Ordinal);
            Assert.Contains("./usr/sbin/safekitd -> /opt/safekit/safekitd", contents, StringComparison.Ordinal);
            Assert.Contains("./usr/bin/safekit -> /opt/safekit/safekit", contents, StringComparison.Ordinal);
            Assert.Contains("./lib/systemd/system/safekitd.service", contents, StringComparison.Ordinal);
            Assert.DoesNotContain(".pdb", contents, StringComparison.Ordinal);

            // apt resolves the package's Depends from Debian's mirror: a missing one fails here.
            var bootstrap = CommandRunner.Run("mmdebstrap", ["--variant=apt", "--quiet",
                $"--customize-hook=copy-in {first} /tmp",
                $"--customize-hook=chroot \"$1\" apt-get install -y -q /tmp/{Path.GetFileName(first)}",
                "bookworm", root], timeout: TimeSpan.FromMinutes(6));
            Assert.True(bootstrap.Succeeded, $"mmdebstrap: {bootstrap.Output}{bootstrap.Error}");
            Assert.False(Directory.Exists(Path.Combine(root, "usr/share/dotnet")), "the Debian root has no .NET of its own");
            Assert.Contains("Status: install ok installed", InRoot(ns, root, "dpkg", "-s", "safekit"), StringComparison.Ordinal);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.Combine(root, "etc/safekit")));
            Assert.Contains(version, InRoot(ns, root, "/usr/bin/safekit", "version"), StringComparison.Ordinal);

            File.WriteAllText(Path.Combine(root, "etc/safekit/cluster.yaml"), Config + "\n  bogus: 1\n");
            var refused = ns.Exec([.. Chroot(root), "/usr/sbin/safekitd", "--config", "/etc/safekit/cluster.yaml"]);
            Assert.Equal(2, refused.ExitCode);
            Assert.Contains("/etc/safekit/cluster.yaml:6:", refused.Error, StringComparison.Ordinal);

            File.WriteAllText(Path.Combine(root, "etc/safekit/cluster.yaml"), Config);
            ns.Ip("addr", "add", "198.18.99.1/32", "dev", "lo");
            using var daemon = System.Diagnostics.Process.Start("ip", ["netns", "exec", ns.Name, .. Chroot(root), "/usr/sbin/safekitd", "--config", "/etc/safekit/cluster.yaml", "--state-dir", "/var/lib/safekit"]);
            string? status = null;
            for (var attempt = 0; attempt < 120 && status is null; attempt++)
            {
                Thread.Sleep(500);
                var result = ns.Exec([.. Chroot(root), "/usr/bin/safekit", "status", "--json", "--node", "https://198.18.99.1:9453",
                    "--ca", "/var/lib/safekit/api.pem", "--token-file", "/var/lib/safekit/api-tokens", "--timeout", "5"]);
                status = result.Output.Contains("\"answered_by\": \"d1\"", StringComparison.Ordinal) ? result.Output : null;
            }

            Assert.True(status is not null, "safekitd installed from the .deb answers safekit status over TLS within 60 s");
            Assert.Contains("\"cluster\": \"debtest\"", status, StringComparison.Ordinal);
        }
        finally
        {
            UnmountUnder(root);
            ns.Dispose();
        }
    }

    /// <summary>
    /// Runs in a mount namespace of its own with /proc, /dev and /sys mounted in the root: those
    /// mounts end with the process, so nothing is left mounted under the scratch directory.
    /// </summary>
    private static string[] Chroot(string root) =>
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         "mount -t proc proc \"$0/proc\" && mount --rbind /dev \"$0/dev\" && mount -t sysfs sys \"$0/sys\" && exec chroot \"$0\" \"$@\"", root];

    private static string InRoot(TestNamespace ns, string root, params string[] command) => ns.ExecChecked([.. Chroot(root), .. command]);

    private static string Build(string repository, string output)
    {
        var result = CommandRunner.Run(Path.Combine(repository, "packaging/deb/build"), [output], timeout: TimeSpan.FromMinutes(6));
        Assert.True(result.Succeeded, $"packaging/deb/build: {result.Output}{result.Error}");
        return result.Output.Trim();
    }

    private static string Checked(string file, params string[] arguments)
    {
        var result = CommandRunner.Run(file, arguments, timeout: TimeSpan.FromMinutes(1));
        Assert.True(result.Succeeded, $"{file}: {result.Error}");
        return result.Output;
    }

    private static string Line(string text, string suffix) =>
        text.Split('\n').FirstOrDefault(l => l.EndsWith(" " + suffix, StringComparison.Ordinal)) ?? $"(no line for {suffix})";

    private static string Sha256(string file) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file)));

    /// <summary>What tells two builds apart: their control fields, their file lists, or the files whose bytes differ.</summary>
    private static string Difference(string first, string second, string scratch)
    {
        var controls = (Checked("dpkg-deb", "--field", first), Checked("dpkg-deb", "--field", second));
        if (controls.Item1 != controls.Item2)
        {
            return $"control\n{controls.Item1}\nagainst\n{controls.Item2}";
        }

        var lists = (Checked("dpkg-deb", "--contents", first).Split('\n'), Checked("dpkg-deb", "--contents", second).Split('\n'));
        if (!lists.Item1.SequenceEqual(lists.Item2))
        {
            return "entries\n" + string.Join('\n', lists.Item1.Except(lists.Item2)) + "\nagainst\n" + string.Join('\n', lists.Item2.Except(lists.Item1));
        }

        var trees = (Path.Combine(scratch, "x1"), Path.Combine(scratch, "x2"));
        Checked("dpkg-deb", "--extract", first, trees.Item1);
        Checked("dpkg-deb", "--extract", second, trees.Item2);
        var differing = Directory.EnumerateFiles(trees.Item1, "*", SearchOption.AllDirectories)
            .Where(f => new FileInfo(f).LinkTarget is null)
            .Select(f => Path.GetRelativePath(trees.Item1, f))
            .Where(f => Sha256(Path.Combine(trees.Item1, f)) != Sha256(Path.Combine(trees.Item2, f)));
        return "files " + string.Join(", ", differing) + " (or only the archives' framing)";
    }

    /// <summary>
    /// mmdebstrap mounts /proc and /dev in the root while its hooks run; a run cut short may leave
    /// them. Unmounted here so that the scratch directory's removal never walks into the host's /dev.
    /// </summary>
    private static void UnmountUnder(string root)
    {
        var prefix = root.TrimEnd('/') + "/";
        foreach (var mount in File.ReadAllLines("/proc/self/mountinfo").Select(l => l.Split(' ')[4]).Where(m => m.StartsWith(prefix, StringComparison.Ordinal)).OrderByDescending(m => m.Length))
        {
            CommandRunner.Run("umount", ["-l", mount]);
        }
    }
}
