using SafeKit.ControlPlane.Configuration;

namespace SafeKit.Cli.Commands;

/// <summary><c>safekit config check FILE</c>: validates a configuration file and lists every problem.</summary>
internal static class ConfigCommand
{
    public static int Run(IReadOnlyList<string> args)
    {
        if (args.Count != 2 || args[0] != "check")
        {
            throw new CliException("usage: safekit config check FILE");
        }

        try
        {
            var config = ConfigLoader.Load(args[1]);
            Console.WriteLine($"{args[1]}: ok (cluster {config.Name}, {config.Nodes.Count} nodes, {config.Farms.Count} farm module(s))");
            return 0;
        }
        catch (ConfigException e)
        {
            foreach (var error in e.Errors)
            {
                Console.Error.WriteLine(error);
            }

            return 1;
        }
    }
}
