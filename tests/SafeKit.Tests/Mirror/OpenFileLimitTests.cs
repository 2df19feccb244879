using SafeKit.Native.Host;

namespace SafeKit.Tests.Mirror;

/// <summary>A pass-through file system holds a descriptor per known file: the daemon's limit must be far above the usual 1,024/20,000.</summary>
public sealed class OpenFileLimitTests
{
    [Fact]
    public void Raise_AsRoot_ReachesTheKernelCeiling()
    {
        Assert.SkipUnless(Privileges.IsRoot, "raising the hard limit needs root");
        var ceiling = ulong.Parse(File.ReadAllText("/proc/sys/fs/nr_open").Trim(), System.Globalization.CultureInfo.InvariantCulture);

        Assert.Equal(ceiling, OpenFileLimit.Raise());
        var soft = File.ReadAllLines("/proc/self/limits").Single(l => l.StartsWith("Max open files", StringComparison.Ordinal));
        Assert.Contains(ceiling.ToString(System.Globalization.CultureInfo.InvariantCulture), soft, StringComparison.Ordinal);
    }
}
