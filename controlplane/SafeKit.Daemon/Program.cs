using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using SafeKit.ControlPlane.Configuration;
using SafeKit.ControlPlane.Status;
using SafeKit.Daemon;
using SafeKit.Dataplane.Preflight;

// safekitd: loads the cluster configuration, finds which node it is, starts the modules and
// reports their status until SIGTERM/SIGINT, then leaves the node as it found it.
var arguments = DaemonArguments.Parse(args, out var argumentError);
if (arguments is null)
{
    Console.Error.WriteLine($"safekitd: {argumentError}");
    Console.Error.WriteLine(DaemonArguments.Usage);
    return 64;
}

using var loggerFactory = LoggerFactory.Create(builder => builder.AddSimpleConsole(o =>
{
    o.SingleLine = true;
    o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
    o.UseUtcTimestamp = true;
}));
var logger = loggerFactory.CreateLogger("safekitd");

ClusterConfig config;
NodeConfig self;
try
{
    config = ConfigLoader.Load(arguments.ConfigPath);
    self = NodeIdentity.Resolve(config, arguments.Node);
}
catch (ConfigException e)
{
    foreach (var error in e.Errors)
    {
        Console.Error.WriteLine($"safekitd: {error}");
    }

    return 2;
}

var stateDirectory = arguments.StateDirectory.Length > 0 ? arguments.StateDirectory : Path.Combine("/run/safekit", self.Name);
var started = DateTimeOffset.UtcNow;
var farms = new List<FarmModuleHost>();
try
{
    foreach (var module in config.Farms)
    {
        farms.Add(FarmModuleHost.Start(config, module, self, logger));
    }
}
catch (PreflightException e)
{
    foreach (var problem in e.Problems)
    {
        Console.Error.WriteLine($"safekitd: {problem}");
    }

    farms.ForEach(f => f.Dispose());
    return 3;
}
catch (Exception e) when (e is SafeKit.Native.Interop.NativeException or InvalidOperationException or IOException)
{
    Console.Error.WriteLine($"safekitd: cannot start: {e.Message}");
    farms.ForEach(f => f.Dispose());
    return 3;
}

using var stop = new CancellationTokenSource();
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });
DaemonLog.Started(logger, self.Name, config.Name, farms.Count, stateDirectory);
try
{
    while (!stop.IsCancellationRequested)
    {
        var status = new NodeStatus(config.Name, self.Name, Environment.ProcessId, started, DateTimeOffset.UtcNow, farms.Select(f => f.Status()).ToList());
        StatusFile.Write(stateDirectory, status);
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(1), stop.Token);
        }
        catch (OperationCanceledException)
        {
            break;
        }
    }
}
finally
{
    DaemonLog.Stopping(logger, self.Name);
    farms.ForEach(f => f.Dispose());
    var final = new NodeStatus(config.Name, self.Name, Environment.ProcessId, started, DateTimeOffset.UtcNow, []);
    StatusFile.Write(stateDirectory, final);
}

return 0;
