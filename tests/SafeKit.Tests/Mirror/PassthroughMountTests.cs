using SafeKit.Native.Fuse;
using SafeKit.Native.Host;
using SafeKit.Tests.Infrastructure;

namespace SafeKit.Tests.Mirror;

/// <summary>
/// The FUSE pass-through file system on a real mount (libfuse3, /dev/fuse): the operations real
/// applications do give the same results, errors and metadata as on a plain directory, the real
/// files behind the mount hold exactly that, and files belong to the user who made them.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class PassthroughMountTests
{
    private static readonly string Workload = Path.Combine(AppContext.BaseDirectory, "Mirror", "fs_workload.py");

    private sealed class MountedDirectory : IDisposable
    {
        private readonly DirectoryInfo _base = Directory.CreateTempSubdirectory("sk-fuse-");
        private readonly PassthroughFileSystem _fileSystem;
        private readonly FuseMount _mount;

        public MountedDirectory()
        {
            File.SetUnixFileMode(_base.FullName, (UnixFileMode)0x1ED);
            Data = Directory.CreateDirectory(Path.Combine(_base.FullName, "data")).FullName;
            Mountpoint = Directory.CreateDirectory(Path.Combine(_base.FullName, "mnt")).FullName;
            Plain = Directory.CreateDirectory(Path.Combine(_base.FullName, "plain")).FullName;
            _fileSystem = PassthroughFileSystem.Open(Data);
            _mount = FuseMount.Mount(_fileSystem, Mountpoint, "safekit-test");
        }

        public string Data { get; }

        public string Mountpoint { get; }

        public string Plain { get; }

        public int Nodes => _fileSystem.NodeCount;

        public PassthroughFileSystem FileSystem => _fileSystem;

        /// <summary>Unmounts now (as the daemon does when the node stops serving).</summary>
        public void Unmount() => _mount.Dispose();

        public void Dispose()
        {
            _mount.Dispose();
            _fileSystem.Dispose();
            _base.Delete(recursive: true);
        }
    }

    private static string Python(params string[] arguments)
    {
        var result = CommandRunner.Run("/usr/bin/python3", arguments, timeout: TimeSpan.FromMinutes(2));
        Assert.True(result.Succeeded, $"python3 {string.Join(' ', arguments)}: {result.Output}{result.Error}");
        return result.Output;
    }

    private static bool Mounted(string path) => File.ReadAllLines("/proc/self/mountinfo").Any(l => l.Split(' ')[4] == path);

    [Fact]
    public void Workload_OnTheMount_MatchesAPlainDirectory_AndTheRealFilesHoldIt()
    {
        Tools.RequireFuse();
        string onMount;
        string mountTree;
        string dataTree;
        string mountpoint;
        using (var dir = new MountedDirectory())
        {
            mountpoint = dir.Mountpoint;
            Assert.True(Mounted(dir.Mountpoint));
            var plain = Python(Workload, dir.Plain);
            onMount = Python(Workload, dir.Mountpoint);
            Assert.Equal(plain, onMount);
            mountTree = Python(Workload, dir.Mountpoint, "dump");
            dataTree = Python(Workload, dir.Data, "dump");
        }

        Assert.Equal(mountTree, dataTree);
        Assert.Contains("append: ok b'first line\\nsecond line\\nthird line\\n'", onMount, StringComparison.Ordinal);
        Assert.Contains("rename exchange: ok", onMount, StringComparison.Ordinal);
        // Set-user-ID and set-group-ID cleared by a user's write, truncate, O_TRUNC open, fallocate and
        // copy_file_range and by root's chown; set-group-ID kept where the group cannot execute.
        Assert.Contains("privileges cleared: ok [0, 0, 0, 0, 0, 0, '0o100775', '0o100775', '0o100775', '0o100775', '0o102764', '0o100775', '0o100775']", onMount, StringComparison.Ordinal);
        Assert.Contains("acl=user::rw-;user:4321:rw-", mountTree, StringComparison.Ordinal);
        Assert.False(Mounted(mountpoint), "the mount is gone after dispose");
    }

    [Fact]
    public void Writes_DoNotEachAskTheDaemonForTheFilesCapabilities()
    {
        Tools.RequireFuse();
        using var dir = new MountedDirectory();
        var path = Path.Combine(dir.Mountpoint, "written");
        File.WriteAllBytes(path, new byte[4096]);
        var before = dir.FileSystem.XattrLookups;
        using (var file = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.None, bufferSize: 0))
        {
            for (var i = 0; i < 200; i++)
            {
                file.Position = 0;
                file.Write(new byte[4096]);
            }
        }

        // The kernel took over FUSE_HANDLE_KILLPRIV_V2, so it checks security.capability once per
        // inode, not before each write (200 getxattr round trips without it).
        Assert.True(dir.FileSystem.HandlesKillPriv, "the kernel did not take FUSE_HANDLE_KILLPRIV_V2");
        Assert.InRange(dir.FileSystem.XattrLookups - before, 0, 2);
    }

    [Fact]
    public void FilesBelongToTheCaller_AndPermissionsAreEnforced()
    {
        Tools.RequireFuse();
        using var dir = new MountedDirectory();
        var shared = Path.Combine(dir.Mountpoint, "shared");
        Directory.CreateDirectory(shared);
        File.SetUnixFileMode(shared, (UnixFileMode)0x3FF); // 1777
        var closed = Path.Combine(dir.Mountpoint, "closed");
        Directory.CreateDirectory(closed);
        File.SetUnixFileMode(closed, (UnixFileMode)0x1ED); // 0755, root's

        var asNobody = CommandRunner.Run("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", $$"""
            import os
            os.umask(0o027)
            open("{{shared}}/mine", "w").write("x")
            os.mkdir("{{shared}}/mydir", 0o777)
            os.symlink("mine", "{{shared}}/mylink")
            try:
                open("{{closed}}/theirs", "w")
                print("written")
            except PermissionError:
                print("EACCES")
            """]);
        Assert.True(asNobody.Succeeded, asNobody.Error);
        Assert.Equal("EACCES", asNobody.Output.Trim());
        foreach (var (name, mode) in new[] { ("mine", "100640"), ("mydir", "40750"), ("mylink", "120777") })
        {
            var stat = CommandRunner.RunChecked("stat", ["-c", "%u:%g %f", Path.Combine(dir.Data, "shared", name)]).Trim().Split(' ');
            Assert.Equal("65534:65534", stat[0]);
            Assert.Equal(mode, Convert.ToString(Convert.ToInt32(stat[1], 16), 8));
        }

        Assert.False(File.Exists(Path.Combine(dir.Data, "closed", "theirs")));
    }

    [Fact]
    public void ACreateMeetingAFileMadeBehindTheMountsBack_OpensIt_AndLeavesItsOwnerAlone()
    {
        Tools.RequireFuse();
        using var dir = new MountedDirectory();
        var data = Directory.CreateDirectory(Path.Combine(dir.Data, "race")).FullName;
        File.SetUnixFileMode(data, (UnixFileMode)0x1FF); // 0777: the other user may create there
        var mounted = Path.Combine(dir.Mountpoint, "race");
        const uint Other = 4321;
        const int Rounds = 3000;
        var created = new bool[Rounds];
        var go = -1;
        var done = -1;

        // Each round, the other user creates name i in the real directory a few microseconds after
        // the application's open(O_CREAT) of the same name on the mount starts: some rounds land
        // between the kernel's LOOKUP (ENOENT) and its CREATE.
        var racer = new Thread(() =>
        {
            ForeignCreator.BecomeOnThisThread(Other, Other);
            var random = new Random(6);
            for (var i = 0; i < Rounds; i++)
            {
                if (!SpinWait.SpinUntil(() => Volatile.Read(ref go) >= i, TimeSpan.FromSeconds(10)))
                {
                    return; // The application's side failed; its assertion says why.
                }

                var until = System.Diagnostics.Stopwatch.GetTimestamp() + (System.Diagnostics.Stopwatch.Frequency * random.Next(0, 120) / 1_000_000);
                while (System.Diagnostics.Stopwatch.GetTimestamp() < until)
                {
                    Thread.SpinWait(1);
                }

                created[i] = ForeignCreator.CreateNew(Path.Combine(data, $"f{i}"), 0x180); // 0600
                Volatile.Write(ref done, i);
            }
        })
        { IsBackground = true, Name = "foreign-creator" };
        racer.Start();

        for (var i = 0; i < Rounds; i++)
        {
            Volatile.Write(ref go, i);
            using (File.OpenHandle(Path.Combine(mounted, $"f{i}"), FileMode.OpenOrCreate, FileAccess.Write, FileShare.ReadWrite))
            {
            }

            Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref done) >= i, TimeSpan.FromSeconds(10)), $"the other user's thread stopped at round {i}");
        }

        Assert.True(racer.Join(TimeSpan.FromSeconds(10)));
        var theirs = Enumerable.Range(0, Rounds).Where(i => created[i]).Select(i => Path.Combine(data, $"f{i}")).ToArray();
        var hijacked = CommandRunner.RunChecked("stat", ["-c", "%n %u:%g %a", .. theirs]).Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Where(line => !line.EndsWith($" {Other}:{Other} 600", StringComparison.Ordinal)).ToList();
        Assert.True(theirs.Length > 0, "the other user never created a file first");
        Assert.True(dir.FileSystem.CreatesThatFoundAFile > 0, $"no create met a file made behind the mount's back in {Rounds} rounds ({theirs.Length} made by the other user)");
        Assert.Empty(hijacked);
    }

    [Fact]
    public void ManyFilesAndConcurrentWriters_LeaveNoNodeBehindAfterTheKernelForgets()
    {
        Tools.RequireFuse();
        using var dir = new MountedDirectory();
        Parallel.For(0, 8, writer =>
        {
            var folder = Directory.CreateDirectory(Path.Combine(dir.Mountpoint, $"w{writer}")).FullName;
            for (var i = 0; i < 200; i++)
            {
                File.WriteAllBytes(Path.Combine(folder, $"f{i}"), new byte[1000 + i]);
            }
        });
        for (var writer = 0; writer < 8; writer++)
        {
            var files = Directory.GetFiles(Path.Combine(dir.Data, $"w{writer}"));
            Assert.Equal(200, files.Length);
            Assert.All(files, f => Assert.Equal(1000 + int.Parse(Path.GetFileName(f)[1..], System.Globalization.CultureInfo.InvariantCulture), new FileInfo(f).Length));
        }

        // Dropping the kernel's caches makes it forget every node it does not use.
        File.WriteAllText("/proc/sys/vm/drop_caches", "2");
        LabInstance.WaitUntil(() => dir.Nodes <= 2, "the kernel forgot the nodes", 10);
    }

    /// <summary>Holds a file open on the mount, then writes to it when told (a line on stdin), printing the outcome.</summary>
    private const string Holder = """
        import os, sys
        fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
        print("open", flush=True)
        sys.stdin.readline()
        try:
            os.write(fd, b"after the unmount\n")
            print("written", flush=True)
        except OSError as e:
            print("refused", e.errno, flush=True)
        """;

    [Fact]
    public void AProcessHoldingAFileOpen_CannotChangeTheRealFilesOnceTheMountIsClosed()
    {
        Tools.RequireFuse();
        using var dir = new MountedDirectory();
        File.WriteAllText(Path.Combine(dir.Mountpoint, "held.txt"), "before\n");
        var start = new System.Diagnostics.ProcessStartInfo("/usr/bin/python3") { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(Holder);
        start.ArgumentList.Add(Path.Combine(dir.Mountpoint, "held.txt"));
        using var holder = System.Diagnostics.Process.Start(start)!;
        try
        {
            Assert.Equal("open", holder.StandardOutput.ReadLine());

            // Busy: detached lazily, and the connection the open file keeps alive is aborted.
            dir.Unmount();
            Assert.False(Mounted(dir.Mountpoint));
            holder.StandardInput.WriteLine();
            holder.StandardInput.Flush();
            Assert.Equal("refused 107", holder.StandardOutput.ReadLine()); // ENOTCONN
            Assert.True(holder.WaitForExit(10_000));
            Assert.Equal("before\n", File.ReadAllText(Path.Combine(dir.Data, "held.txt")));
        }
        finally
        {
            if (!holder.HasExited)
            {
                holder.Kill();
            }
        }
    }
}
