using Microsoft.Extensions.Logging;
using SafeKit.Daemon;

// safekitd: one per node. See NodeDaemon for what it does and README "safekitd" for its use.
var arguments = DaemonArguments.Parse(args, out var argumentError);
if (arguments is null)
{
    Console.Error.WriteLine($"safekitd: {argumentError}");
    Console.Error.WriteLine(DaemonArguments.Usage);
    return 64;
}

// Under systemd (stderr connected to the journal), lines carry their syslog priority (<6>, <4>…)
// and no timestamp of their own; elsewhere one line per event with a UTC timestamp.
var journald = Environment.GetEnvironmentVariable("JOURNAL_STREAM") is { Length: > 0 };
using var loggerFactory = LoggerFactory.Create(builder =>
{
    if (journald)
    {
        builder.AddSystemdConsole();
    }
    else
    {
        builder.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            o.UseUtcTimestamp = true;
        });
    }
});
return await new NodeDaemon(arguments, loggerFactory.CreateLogger("safekitd")).RunAsync();
