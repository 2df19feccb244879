using System.Globalization;
using System.Text.Json;
using SafeKit.Cli.Commands;

namespace SafeKit.Cli.Remote;

/// <summary>
/// <c>safekit events [--limit N] [--follow]</c>: the cluster's recent events merged by time, then
/// (with --follow) the node's new events as they happen, until interrupted.
/// </summary>
internal static class EventsCommand
{
    public static async Task<int> RunAsync(IReadOnlyList<string> args)
    {
        var a = CliArguments.Parse(args, [.. ApiConnection.ValuedOptions, "--limit"], [.. ApiConnection.FlagOptions, "--follow"]);
        if (a.Positionals.Count > 0)
        {
            throw new CliException($"events takes no argument ('{a.Positionals[0]}')");
        }

        var limit = a.Integer("--limit", 50, 1, 1000);
        var json = a.Has("--json");
        using var api = ApiConnection.Open(a);
        var page = await api.SendAsync(HttpMethod.Get, $"/api/v1/cluster/events?limit={limit}");
        foreach (var e in page.GetProperty("events").EnumerateArray())
        {
            Print(e, json);
        }

        foreach (var unreachable in page.GetProperty("unreachable").EnumerateObject())
        {
            Console.Error.WriteLine($"safekit: events of {unreachable.Name} unavailable: {unreachable.Value.GetString()}");
        }

        if (!a.Has("--follow"))
        {
            return ExitCodes.Ok;
        }

        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
        try
        {
            using var response = await api.OpenStreamAsync("/api/v1/events/stream", stop.Token);
            await using var stream = await response.Content.ReadAsStreamAsync(stop.Token);
            await foreach (var item in System.Net.ServerSentEvents.SseParser.Create(stream).EnumerateAsync(stop.Token))
            {
                if (item.EventType == "event")
                {
                    using var document = JsonDocument.Parse(item.Data);
                    Print(document.RootElement, json);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            return ExitCodes.Ok;
        }
        catch (Exception e) when (e is IOException or HttpRequestException)
        {
            throw new ApiCallException(ExitCodes.Unreachable, $"{api.BaseAddress}: the event stream broke ({e.Message})");
        }

        throw new ApiCallException(ExitCodes.Unreachable, $"{api.BaseAddress}: the event stream ended (safekitd stopped?)");
    }

    private static void Print(JsonElement e, bool json)
    {
        if (json)
        {
            Console.WriteLine(e.GetRawText());
            return;
        }

        var at = e.GetProperty("at").GetDateTimeOffset().ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss.fff", CultureInfo.InvariantCulture);
        var module = e.TryGetProperty("module", out var m) && m.ValueKind == JsonValueKind.String ? " " + m.GetString() : "";
        Console.WriteLine($"{at}  {e.GetProperty("node").GetString(),-8}  {e.GetProperty("severity").GetString(),-7}  {e.GetProperty("kind").GetString()}{module}: {e.GetProperty("message").GetString()}");
    }
}
