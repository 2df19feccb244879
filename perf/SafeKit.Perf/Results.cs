using System.Globalization;
using System.Text;
using System.Text.Json;

namespace SafeKit.Perf;

/// <summary>Prints the one-line BENCH summary and writes perf/results/NAME.json.</summary>
internal static class Results
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static void Report(string directory, string name, IReadOnlyList<(string Key, double Value)> metrics, object details)
    {
        var line = new StringBuilder("BENCH ").Append(name);
        foreach (var (key, value) in metrics)
        {
            line.Append(' ').Append(key).Append('=').Append(value.ToString(value == Math.Floor(value) ? "F0" : "F3", CultureInfo.InvariantCulture));
        }

        Console.WriteLine(line);
        Directory.CreateDirectory(directory);
        var document = new Dictionary<string, object>
        {
            ["name"] = name,
            ["summary"] = metrics.ToDictionary(m => m.Key, m => (object)m.Value),
            ["details"] = details,
            ["machine"] = $"{Environment.ProcessorCount} cpus, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}",
            ["date"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture),
        };
        File.WriteAllText(Path.Combine(directory, name + ".json"), JsonSerializer.Serialize(document, Indented));
    }

    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? 0 : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>The nearest-rank percentile of already sorted values.</summary>
    public static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
}
