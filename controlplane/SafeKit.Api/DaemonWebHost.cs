using Microsoft.AspNetCore.Builder;

namespace SafeKit.Api;

/// <summary>How safekitd's web servers are built.</summary>
internal static class DaemonWebHost
{
    /// <summary>
    /// A slim builder whose content root is the program's own directory, never the working
    /// directory, and which watches no configuration file: a watcher on "/" walks every mount below
    /// it — the mirror's FUSE mounts too — and a crashed daemon's watcher thread then waits forever
    /// on its own dead mount, keeping the process (and its ports) alive.
    /// </summary>
    public static WebApplicationBuilder CreateBuilder() => WebApplication.CreateSlimBuilder(new WebApplicationOptions
    {
        EnvironmentName = "Production",
        ApplicationName = "safekitd",
        ContentRootPath = AppContext.BaseDirectory,
        Args = ["--hostBuilder:reloadConfigOnChange=false"],
    });
}
