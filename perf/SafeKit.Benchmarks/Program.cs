using System.Globalization;
using System.Text.Json;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using SafeKit.Benchmarks;

// Runs the packet-path micro-benchmarks and prints the summary line
// "BENCH dataplane-decide ns_per_packet=... allocated_bytes_per_packet=..." (and writes
// perf/results/dataplane-decide.json next to the other results).
var results = args.Length > 0 ? args[0] : Path.Combine("perf", "results");
var config = ManualConfig.CreateMinimumViable()
    .AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithWarmupCount(3).WithIterationCount(8).WithLaunchCount(1))
    .WithOptions(ConfigOptions.DisableLogFile)
    .WithArtifactsPath(Path.Combine(Path.GetTempPath(), "safekit-bdn"));
var summary = BenchmarkRunner.Run<DecideBenchmarks>(config);

double Mean(string method) => summary.Reports.First(r => r.BenchmarkCase.Descriptor.WorkloadMethod.Name == method).ResultStatistics!.Mean;
long Allocated(string method) => summary.Reports.First(r => r.BenchmarkCase.Descriptor.WorkloadMethod.Name == method).GcStats.GetBytesAllocatedPerOperation(summary.Reports.First(r => r.BenchmarkCase.Descriptor.WorkloadMethod.Name == method).BenchmarkCase) ?? -1;

var decide = Mean(nameof(DecideBenchmarks.ParseKeyHashDecide));
var tcp = Mean(nameof(DecideBenchmarks.DecideTcp));
var udp = Mean(nameof(DecideBenchmarks.DecideUdp));
var parse = Mean(nameof(DecideBenchmarks.ParseOnly));
var allocated = Allocated(nameof(DecideBenchmarks.ParseKeyHashDecide));
var line = string.Create(CultureInfo.InvariantCulture, $"BENCH dataplane-decide ns_per_packet={decide:F1} tcp_ns_per_packet={tcp:F1} udp_ns_per_packet={udp:F1} parse_ns_per_packet={parse:F1} allocated_bytes_per_packet={allocated} target_ns=25");
Console.WriteLine(line);
Directory.CreateDirectory(results);
File.WriteAllText(Path.Combine(results, "dataplane-decide.json"), JsonSerializer.Serialize(new Dictionary<string, object>
{
    ["name"] = "dataplane-decide",
    ["ns_per_packet"] = Math.Round(decide, 1),
    ["parse_ns_per_packet"] = Math.Round(parse, 1),
    ["tcp_ns_per_packet"] = Math.Round(tcp, 1),
    ["udp_ns_per_packet"] = Math.Round(udp, 1),
    ["allocated_bytes_per_packet"] = allocated,
    ["target_ns"] = 25,
    ["machine"] = $"{Environment.ProcessorCount} cpus, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}",
    ["date"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture),
}, new JsonSerializerOptions { WriteIndented = true }));
return allocated == 0 ? 0 : 1;
