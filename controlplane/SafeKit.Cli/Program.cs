using SafeKit.Cli.Commands;
using SafeKit.Cli.Remote;

// safekit: the operator's command line. Errors are one line on stderr.
const string usage = """
    usage:
      safekit status [--json]                    the whole cluster (any node answers for all)
      safekit start|stop|restart|stopstart|forcestop MODULE [--on NODE]
      safekit prim --force MODULE [--on NODE]   mirror: serve ALONE with this node's copy, whatever the peer holds
      safekit resync --full MODULE [--on NODE]  mirror: on the serving node, compare every file with the peer's copy and send what differs
      safekit swap MODULE                        mirror: move PRIM to the other node (stop app, final sync, VIP move, start app there)
      safekit verify MODULE                      mirror: compare both copies online (every block, by hash); exit 1 if they differ
      safekit events [--limit N] [--follow]      recent events of every node, then live ones
    """ + "\n" + ConfigCommand.Usage + """

      safekit version

    API options (status, actions, events, config diff|reload):
      --node URL         the node to ask (default $SAFEKIT_NODE, else https://127.0.0.1:9453)
      --token T          API token (default $SAFEKIT_TOKEN, else --token-file / $SAFEKIT_TOKEN_FILE,
      --token-file F       else /etc/safekit/api-tokens: its admin token, else its read token)
      --ca FILE          trust this authority or pinned certificate (default $SAFEKIT_CA)
      --insecure         do not verify the node's TLS certificate
      --timeout S        seconds to wait for an answer
      --json             machine-readable output

    lab (a local cluster in network namespaces):
    """ + LabCommand.Usage + """

    exit codes: 0 ok; 1 refused or failed (status: a node or module is not UP); 2 not found;
                3 node unreachable; 4 not authorised; 64 usage; 69 missing dependency; 77 needs root.
    """;

if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
{
    Console.WriteLine(usage);
    return args.Length == 0 ? ExitCodes.Usage : ExitCodes.Ok;
}

try
{
    return args[0] switch
    {
        "status" => await StatusCommand.RunAsync(args[1..]),
        "events" => await EventsCommand.RunAsync(args[1..]),
        "config" => await ConfigCommand.RunAsync(args[1..]),
        "lab" => LabCommand.Run(args[1..]),
        "version" => Version(),
        var verb when ModuleCommand.Verbs.Contains(verb) => await ModuleCommand.RunAsync(verb, args[1..]),
        _ => throw new CliException($"unknown command '{args[0]}' (see safekit --help)"),
    };
}
catch (CliException e)
{
    Console.Error.WriteLine($"safekit: {e.Message}");
    return ExitCodes.Usage;
}
catch (ApiCallException e)
{
    Console.Error.WriteLine($"safekit: {e.Message}");
    return e.ExitCode;
}

static int Version()
{
    // VERSION (the file at the repository's root) and the commit it was built from.
    var assembly = typeof(CliException).Assembly;
    var version = assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
        .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion ?? assembly.GetName().Version?.ToString();
    Console.WriteLine($"safekit {version}");
    return 0;
}
