using SafeKit.Native.Host;

namespace SafeKit.Tests.Mirror;

/// <summary>A pass-through file system holds a descriptor per known file: the daemon's limit must be far above the usual 1,024/20,000.</summary>
public sealed class OpenFileLimitTests
{
    [Fact]
    public void Raise_ReachesTheKernelCeiling_OrAtLeastTheHardLimit()
    {
        // Beyond the hard limit takes CAP_SYS_RESOURCE (a container may withhold it; systemd's
        // LimitNOFILE in our unit sets both limits anyway).
        var capabilities = Convert.ToUInt64(File.ReadAllLines("/proc/self/status").Single(l => l.StartsWith("CapEff:", StringComparison.Ordinal))[7..].Trim(), 16);
        var mayExceedHard = (capabilities & (1UL << 24)) != 0;
        var hard = File.ReadAllLines("/proc/self/limits").Single(l => l.StartsWith("Max open files", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[4];
        var ceiling = mayExceedHard ? ulong.Parse(File.ReadAllText("/proc/sys/fs/nr_open").Trim(), System.Globalization.CultureInfo.InvariantCulture) : ulong.Parse(hard, System.Globalization.CultureInfo.InvariantCulture);

        Assert.Equal(ceiling, OpenFileLimit.Raise());
        var soft = File.ReadAllLines("/proc/self/limits").Single(l => l.StartsWith("Max open files", StringComparison.Ordinal));
        Assert.Contains(ceiling.ToString(System.Globalization.CultureInfo.InvariantCulture), soft, StringComparison.Ordinal);
    }
}
