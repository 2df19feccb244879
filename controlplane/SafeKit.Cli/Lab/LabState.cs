using System.Text.Json;
using System.Text.Json.Serialization;

namespace SafeKit.Cli.Lab;

/// <summary>A process the lab started, identified by PID and kernel start time.</summary>
internal sealed record LabProcess(string Role, string Namespace, int Pid, long StartTime, string Log);

/// <summary>What <c>safekit lab up</c> built, saved in the lab's state directory for down/status.</summary>
internal sealed record LabState(
    string Prefix,
    int Nodes,
    string Affinity,
    string L2Mode,
    string Dataplane,
    string Capture,
    bool IPv6,
    DateTimeOffset Created,
    List<LabProcess> Processes,
    string? Kind = null)
{
    /// <summary>The lab's shape as its state says.</summary>
    [JsonIgnore]
    public LabTopology Topology => new(Prefix, Nodes, Kind == "mirror");

    public const string FileName = "lab.json";

    public static LabState? TryRead(string directory)
    {
        var path = Path.Combine(directory, FileName);
        try
        {
            return File.Exists(path) ? JsonSerializer.Deserialize(File.ReadAllText(path), LabJsonContext.Default.LabState) : null;
        }
        catch (Exception e) when (e is IOException or JsonException)
        {
            return null;
        }
    }

    public void Write(string directory)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, FileName), JsonSerializer.Serialize(this, LabJsonContext.Default.LabState));
    }
}

/// <summary>What <c>safekit lab status --json</c> prints.</summary>
internal sealed record LabStatusReport(string Prefix, bool Up, string? Dataplane, string? L2Mode, string? Affinity, string Vip, string? Vip6, List<LabNodeReport> Nodes, List<LabProcessReport> Processes, LabApiTokens? Api, string Kind = "farm");

/// <summary>Node <c>api_url</c>: its HTTPS API (self-signed certificate), reachable from the client namespace.</summary>
internal sealed record LabNodeReport(string Name, string Namespace, string Address, bool SafekitdRunning, bool NginxRunning, string? State, int? OwnedBuckets, IReadOnlyDictionary<string, long>? Counters, long? CaptureDropped, string? ApiUrl, string? Reason = null);

/// <summary>Tokens every lab node's API accepts.</summary>
internal sealed record LabApiTokens(string AdminToken, string ReadToken, string CaFile);

internal sealed record LabProcessReport(string Role, string Namespace, int Pid, bool Running);

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(LabState))]
[JsonSerializable(typeof(LabStatusReport))]
internal sealed partial class LabJsonContext : JsonSerializerContext;
