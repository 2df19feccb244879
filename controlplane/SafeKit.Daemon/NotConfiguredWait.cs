using Microsoft.Extensions.Logging;
using SafeKit.Api;
using SafeKit.ControlPlane.Configuration;

namespace SafeKit.Daemon;

/// <summary>
/// safekitd started with <c>--wait-for-config</c> before its configuration file exists (an appliance
/// booted without a seed): it tells systemd it is ready with the status "not configured", keeps the
/// watchdog fed, and answers every API request "not configured" (503, problem+json) until a SIGHUP
/// finds the file — the node then starts as usual — or SIGTERM/SIGINT stops it.
/// </summary>
internal static class NotConfiguredWait
{
    /// <summary>Returns true when the configuration file now exists, false when asked to stop.</summary>
    /// <exception cref="IOException">The API port cannot be bound.</exception>
    public static async Task<bool> RunAsync(string configPath, ILogger logger, TimeProvider time)
    {
        var detail = $"{configPath} does not exist. An appliance reads it from a seed volume labelled cidata (safekit/cluster.yaml, see the README); "
            + "on a server of your own, write it, then 'systemctl reload safekitd' (or restart).";
        using var signals = new DaemonSignals();
        using var certificate = ApiCertificate.CreateSelfSigned(Environment.MachineName, []);
        await using var api = await NotConfiguredApiServer.StartAsync(ApiConfig.DefaultHttpsPort, certificate, detail);
        DaemonLog.NotConfigured(logger, configPath, ApiConfig.DefaultHttpsPort);
        using var service = new ServiceManager(time);
        const string status = "not configured: no cluster configuration yet";
        service.Ready(status);
        while (true)
        {
            service.Tick(status);
            try
            {
                if (await signals.Reload.WaitAsync(service.LoopInterval, signals.Stop) && File.Exists(configPath))
                {
                    return true;
                }
            }
            catch (OperationCanceledException)
            {
                service.Stopping();
                return false;
            }
        }
    }
}
