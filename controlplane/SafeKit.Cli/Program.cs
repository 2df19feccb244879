using SafeKit.Cli.Commands;

// safekit: the operator's command line. Errors are one line on stderr; exit codes:
// 0 ok, 1 failed, 2 not found, 3 not up, 64 usage, 69 missing dependency, 77 needs root.
const string usage = """
    usage:
      safekit config check FILE
    """ + "\n" + LabCommand.Usage + """

      safekit version
    """;

if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
{
    Console.WriteLine(usage);
    return args.Length == 0 ? 64 : 0;
}

try
{
    return args[0] switch
    {
        "config" => ConfigCommand.Run(args[1..]),
        "lab" => LabCommand.Run(args[1..]),
        "version" => Version(),
        _ => throw new CliException($"unknown command '{args[0]}' (see safekit --help)"),
    };
}
catch (CliException e)
{
    Console.Error.WriteLine($"safekit: {e.Message}");
    return 64;
}

static int Version()
{
    Console.WriteLine($"safekit {typeof(CliException).Assembly.GetName().Version}");
    return 0;
}
