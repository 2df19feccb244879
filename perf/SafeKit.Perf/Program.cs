using SafeKit.Perf;

// sk-bench: end-to-end benchmarks in the local lab (root). Each compares the dataplane with its
// peer, the in-kernel nftables jhash filter, in the same run, prints a BENCH line and writes
// RESULTS/NAME.json.
//   sk-bench http [--results DIR] [--rounds 3] [--seconds 8] [--connections 64]
//   sk-bench pps  [--results DIR] [--seconds 3]
//   sk-bench failover [--results DIR] [--kills 20]
//   sk-bench rejoin [--results DIR] [--cycles 20]
//   sk-bench mirror [--results DIR] [--rounds 3] [--seconds 6] [--size-mib 512] [--only plain,plain_twice,passthrough_ll,alone,sync,fsync,sync_own_disk,fsync_own_disk]
//   sk-bench mirror-failover [--results DIR] [--rounds 20] [--seed 1]
//   sk-bench mirror-resync [--results DIR] [--files 100000] [--mib 2300] [--percent 1] [--kill-survivor]
//   sk-bench mirror-resync --small-files [--files 1000000] [--mib 2000] ...   (dataset (b): no big file)
//   sk-bench mirror-pgbench [--results DIR] [--rounds 3] [--seconds 30] [--scale 10]
//   sk-bench mirror-journal-cost [--results DIR] [--files 3000] [--rounds 3]
//   sk-bench mirror-swap [--results DIR] [--swaps 10]
//   sk-bench mirror-verify [--results DIR] [--files 20000] [--mib 2000]
string Option(string name, string fallback)
{
    var index = Array.IndexOf(args, "--" + name);
    return index >= 0 && index + 1 < args.Length ? args[index + 1] : fallback;
}

var results = Option("results", Path.Combine("perf", "results"));
// Caught here so that the benchmark's lab is disposed on the way out: an exception left unhandled
// ends the process without running its cleanup, leaving namespaces, mounts and gigabytes behind.
try
{
    switch (args.FirstOrDefault())
    {
        case "http":
            HttpBenchmark.Run(results, int.Parse(Option("rounds", "3")), int.Parse(Option("seconds", "8")), int.Parse(Option("connections", "64")));
            return 0;
        case "failover":
            FailoverBenchmark.Run(results, int.Parse(Option("kills", "20")));
            return 0;
        case "rejoin":
            RejoinBenchmark.Run(results, int.Parse(Option("cycles", "20")));
            return 0;
        case "mirror":
            MirrorBenchmark.Run(results, int.Parse(Option("rounds", "3")), int.Parse(Option("seconds", "6")), int.Parse(Option("size-mib", "512")), Option("only", "") is { Length: > 0 } only ? only : null);
            return 0;
        case "mirror-failover":
            MirrorFailoverBenchmark.Run(results, int.Parse(Option("rounds", "20")), int.Parse(Option("seed", "1")));
            return 0;
        case "mirror-resync":
            var smallFiles = args.Contains("--small-files");
            MirrorResyncBenchmark.Run(results, int.Parse(Option("files", smallFiles ? "1000000" : "100000")), int.Parse(Option("mib", smallFiles ? "2000" : "2300")), double.Parse(Option("percent", "1"), System.Globalization.CultureInfo.InvariantCulture), args.Contains("--kill-survivor"), smallFiles);
            return 0;
        case "mirror-verify":
            MirrorVerifyBenchmark.Run(results, int.Parse(Option("files", "20000")), int.Parse(Option("mib", "2000")));
            return 0;
        case "mirror-swap":
            MirrorSwapBenchmark.Run(results, int.Parse(Option("swaps", "10")));
            return 0;
        case "mirror-journal-cost":
            JournalCostBenchmark.Run(results, int.Parse(Option("files", "3000")), int.Parse(Option("rounds", "3")));
            return 0;
        case "mirror-pgbench":
            MirrorPgbenchBenchmark.Run(results, int.Parse(Option("seconds", "30")), int.Parse(Option("scale", "10")), int.Parse(Option("rounds", "3")));
            return 0;
        case "pps":
            PacketRateBenchmark.Run(results, int.Parse(Option("seconds", "3")));
            return 0;
        default:
            Console.Error.WriteLine("usage: sk-bench http|pps|failover|rejoin|mirror|mirror-failover|mirror-pgbench|mirror-resync|mirror-journal-cost [--results DIR] [options]");
            return 64;
    }
}
#pragma warning disable CA1031 // Any failure: reported, and the lab already torn down by then.
catch (Exception e)
#pragma warning restore CA1031
{
    Console.Error.WriteLine($"sk-bench {args.FirstOrDefault()} failed: {e}");
    return 1;
}
