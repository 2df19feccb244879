using System.Text.RegularExpressions;
using SafeKit.Cli.Lab;
using SafeKit.Dataplane.Capture;
using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Engine;
using SafeKit.Dataplane.Flows;

namespace SafeKit.Cli.Commands;

/// <summary><c>safekit lab up|down|status|exec</c>.</summary>
internal static partial class LabCommand
{
    public const string Usage = """
          safekit lab up     [--nodes N] [--affinity client-ip-port|client-ip] [--l2 unicast|multicast]
                             [--dataplane userspace|kernel] [--capture ring|pcap] [--workers N]
                             [--no-ipv6] [--prefix P]
          safekit lab up --mirror [--mode sync|fsync] [--data-mib N] [--no-ipv6] [--prefix P]
                             two nodes m1 (PRIM) and m2 (SECOND), /srv/www and /srv/pgdata
                             replicated (in that mode), NGINX and PostgreSQL on 198.18.0.200;
                             --data-mib: each node's /var/lib/safekit is a file system of N MiB
          safekit lab down   [--prefix P]
          safekit lab status [--json] [--prefix P]
          safekit lab exec   [--prefix P] client|br|n1..nN|m1|m2 -- COMMAND [ARGS...]
          safekit lab kill   [--prefix P] nX          kill -9 the node's safekitd (a crash; a mirror
                                                      node: everything it runs, its mounts, its VIP)
          safekit lab stop   [--prefix P] nX          SIGTERM: the node drains, then its safekitd exits
          safekit lab start  [--prefix P] nX          start it again (returns once it serves)
          safekit lab reload [--prefix P] nX          the node re-reads the lab's config file (SIGHUP)
          safekit lab link   [--prefix P] nX down|up  pull or plug the node's cable
          safekit lab app    [--prefix P] nX stop|start|break|fix   act on the node's NGINX
          safekit lab partition [--prefix P] [--oneway] nX nY   drop heartbeats between them
          safekit lab heal   [--prefix P]             remove every heartbeat partition
        """;

    private static readonly Dictionary<string, Affinity> Affinities = new(StringComparer.Ordinal) { ["client-ip-port"] = Affinity.ClientIpPort, ["client-ip"] = Affinity.ClientIp };
    private static readonly Dictionary<string, L2Mode> Modes = new(StringComparer.Ordinal) { ["unicast"] = L2Mode.Unicast, ["multicast"] = L2Mode.Multicast };
    private static readonly Dictionary<string, DataplaneMode> Dataplanes = new(StringComparer.Ordinal) { ["userspace"] = DataplaneMode.Userspace, ["kernel"] = DataplaneMode.Kernel };
    private static readonly Dictionary<string, string> MirrorModes = new(StringComparer.Ordinal) { ["sync"] = "sync", ["fsync"] = "fsync" };
    private static readonly Dictionary<string, CaptureKind> Captures = new(StringComparer.Ordinal) { ["ring"] = CaptureKind.Ring, ["pcap"] = CaptureKind.Pcap };

    public static int Run(IReadOnlyList<string> args)
    {
        if (args.Count == 0)
        {
            throw new CliException("lab needs a verb: up, down, status, exec, kill, stop, start, reload, link, app, partition or heal");
        }

        var runner = new LabRunner(Console.Out, Console.Error);
        var verb = args[0];
        var rest = args.Skip(1);
        switch (verb)
        {
            case "up":
            {
                var a = CliArguments.Parse(rest, ["--nodes", "--affinity", "--l2", "--dataplane", "--capture", "--workers", "--prefix", "--mode", "--data-mib"], ["--no-ipv6", "--mirror"]);
                NoPositionals(a);
                var options = new LabOptions
                {
                    Prefix = Prefix(a),
                    Nodes = a.Integer("--nodes", 3, 1, LabTopology.MaxNodes),
                    Affinity = a.Choice("--affinity", Affinity.ClientIpPort, Affinities),
                    L2Mode = a.Choice("--l2", L2Mode.Unicast, Modes),
                    Dataplane = a.Choice("--dataplane", DataplaneMode.Userspace, Dataplanes),
                    Capture = a.Choice("--capture", CaptureKind.Ring, Captures),
                    Workers = a.Integer("--workers", 1, 1, 16),
                    IPv6 = !a.Has("--no-ipv6"),
                    Mirror = a.Has("--mirror"),
                    MirrorMode = a.Choice("--mode", "sync", MirrorModes),
                    DataMiB = a.Integer("--data-mib", 0, 64, 1 << 20),
                };
                return runner.Up(options);
            }

            case "down":
            {
                var a = CliArguments.Parse(rest, ["--prefix"], []);
                NoPositionals(a);
                return runner.Down(Prefix(a));
            }

            case "status":
            {
                var a = CliArguments.Parse(rest, ["--prefix"], ["--json"]);
                NoPositionals(a);
                return runner.Status(Prefix(a), a.Has("--json"));
            }

            case "exec":
            {
                var a = CliArguments.Parse(rest, ["--prefix"], []);
                if (a.Positionals.Count != 1)
                {
                    throw new CliException("lab exec needs one namespace name (client, br, n1...) before --");
                }

                return runner.Exec(Prefix(a), a.Positionals[0], a.Rest);
            }

            case "kill":
            case "start":
            case "stop":
            case "reload":
            {
                var a = CliArguments.Parse(rest, ["--prefix"], []);
                if (a.Positionals.Count != 1)
                {
                    throw new CliException($"lab {verb} needs one node (n1, n2...)");
                }

                return verb switch
                {
                    "kill" => runner.Kill(Prefix(a), a.Positionals[0]),
                    "stop" => runner.Stop(Prefix(a), a.Positionals[0]),
                    "reload" => runner.Reload(Prefix(a), a.Positionals[0]),
                    _ => runner.Start(Prefix(a), a.Positionals[0]),
                };
            }

            case "link":
            {
                var a = CliArguments.Parse(rest, ["--prefix"], []);
                if (a.Positionals.Count != 2 || a.Positionals[1] is not ("up" or "down"))
                {
                    throw new CliException("usage: safekit lab link nX down|up");
                }

                return runner.Link(Prefix(a), a.Positionals[0], a.Positionals[1] == "up");
            }

            case "app":
            {
                var a = CliArguments.Parse(rest, ["--prefix"], []);
                if (a.Positionals.Count != 2)
                {
                    throw new CliException("usage: safekit lab app nX stop|start|break|fix");
                }

                return runner.App(Prefix(a), a.Positionals[0], a.Positionals[1]);
            }

            case "partition":
            {
                var a = CliArguments.Parse(rest, ["--prefix"], ["--oneway"]);
                if (a.Positionals.Count != 2)
                {
                    throw new CliException("usage: safekit lab partition [--oneway] nX nY");
                }

                return runner.Partition(Prefix(a), a.Positionals[0], a.Positionals[1], a.Has("--oneway"));
            }

            case "heal":
            {
                var a = CliArguments.Parse(rest, ["--prefix"], []);
                NoPositionals(a);
                return runner.Heal(Prefix(a));
            }

            default:
                throw new CliException($"unknown lab verb '{verb}' (up, down, status, exec, kill, stop, start, link, app, partition, heal)");
        }
    }

    private static void NoPositionals(CliArguments a)
    {
        if (a.Positionals.Count > 0)
        {
            throw new CliException($"unexpected argument '{a.Positionals[0]}'");
        }
    }

    private static string Prefix(CliArguments a)
    {
        var prefix = a.Value("--prefix") ?? "sk";
        return PrefixPattern().IsMatch(prefix) ? prefix : throw new CliException($"--prefix '{prefix}' must be 1-12 lowercase letters or digits, starting with a letter");
    }

    [GeneratedRegex("^[a-z][a-z0-9]{0,11}$")]
    private static partial Regex PrefixPattern();
}
