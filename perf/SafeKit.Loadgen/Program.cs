using SafeKit.Loadgen;

// sk-loadgen: traffic generator for the lab tests and benchmarks; prints one JSON object.
const string usage = """
    usage: sk-loadgen http   --host IP [--port 80] --count N [--concurrency C] [--timeout-ms T]
           sk-loadgen udp    --host IP [--port 5300] --count N [--size BYTES]
           sk-loadgen frames --interface IF --dst-mac MAC --dst-ip IP [--count N|--seconds S]
                             [--rate PPS] [--src-net NET/LEN] [--dport P] [--size B] [--seed S]
                             [--malformed PERCENT]
           sk-loadgen udp-raw --interface IF --dst-mac MAC --src-ip A --dst-ip B --sport P --dport P
                             --payload-hex HEX [--count N]
           sk-loadgen probe  --host IP --seconds S [--new N] [--keepalive K] [--interval-ms 20]
                             [--timeout-ms 3000]
           sk-loadgen pg     --host IP --seconds S [--port 5432] [--interval-ms 20] [--timeout-ms 1000]
                             [--table rpo]
    """;
if (args.Length == 0)
{
    Console.Error.WriteLine(usage);
    return 64;
}

try
{
    var options = new Options(args.Skip(1));
    return args[0] switch
    {
        "http" => await HttpCommand.RunAsync(options),
        "udp" => await UdpCommand.RunAsync(options),
        "frames" => FramesCommand.Run(options),
        "udp-raw" => UdpRawCommand.Run(options),
        "probe" => await ProbeCommand.RunAsync(options),
        "pg" => await PostgresCommand.RunAsync(options),
        _ => throw new ArgumentException($"unknown command '{args[0]}'"),
    };
}
catch (Exception e) when (e is ArgumentException or FormatException or SafeKit.Native.Interop.NativeException)
{
    Console.Error.WriteLine($"sk-loadgen: {e.Message}");
    return 64;
}
