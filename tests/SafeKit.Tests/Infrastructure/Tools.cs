using SafeKit.Native.Host;

namespace SafeKit.Tests.Infrastructure;

/// <summary>The project's executables (copied beside the tests) and the system tools tests need.</summary>
internal static class Tools
{
    public static string Safekit => Path.Combine(AppContext.BaseDirectory, "safekit");

    public static string Safekitd => Path.Combine(AppContext.BaseDirectory, "safekitd");

    public static string Loadgen => Path.Combine(AppContext.BaseDirectory, "sk-loadgen");

    /// <summary>Why lab tests cannot run here, or null when they can.</summary>
    public static string? LabUnavailableReason()
    {
        if (!Privileges.IsRoot)
        {
            return "needs root (network namespaces, AF_PACKET, TUN)";
        }

        foreach (var tool in new[] { "/usr/sbin/ip", "/usr/sbin/nft", "/usr/sbin/nginx", "/usr/bin/tcpdump", "/usr/bin/ping" })
        {
            if (!File.Exists(tool))
            {
                return $"{tool} is missing (the test command installs it)";
            }
        }

        return null;
    }

    /// <summary>Skips the calling test when the lab cannot run on this machine.</summary>
    public static void RequireLab()
    {
        var reason = LabUnavailableReason();
        Assert.SkipWhen(reason is not null, reason ?? string.Empty);
    }

    /// <summary>Skips when this machine cannot mount FUSE file systems (root, /dev/fuse, libfuse3).</summary>
    public static void RequireFuse()
    {
        string? reason = !SafeKit.Native.Host.Privileges.IsRoot ? "FUSE mounts need root"
            : !File.Exists("/dev/fuse") ? "/dev/fuse is missing"
            : !File.Exists("/usr/lib/x86_64-linux-gnu/libfuse3.so.3") ? "libfuse3 is not installed (./setup installs it)"
            : null;
        Assert.SkipWhen(reason is not null, reason ?? string.Empty);
    }

    /// <summary>The repository the tests were built from (the folder of SafeKitAppliance.sln), or null.</summary>
    public static string? RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "SafeKitAppliance.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName;
    }

    /// <summary>A short random tag for names of namespaces and labs this run creates.</summary>
    public static string RunTag() => "t" + Guid.NewGuid().ToString("N")[..7];

    public static CommandResult Run(string file, params string[] arguments) =>
        CommandRunner.Run(file, arguments, timeout: TimeSpan.FromMinutes(2));
}
