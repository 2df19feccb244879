using System.Globalization;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Hosting;
using SafeKit.ControlPlane.Events;

namespace SafeKit.Api;

/// <summary>The node's timeline: a page of recent events, and a live stream of them (server-sent events).</summary>
internal static class EventEndpoints
{
    /// <summary>A stream sends a ping this often when nothing happens, so proxies and clients see it alive.</summary>
    private static readonly TimeSpan Ping = TimeSpan.FromSeconds(10);

    public static void Map(IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1").WithTags("events");
        api.MapGet("/events", (INodeControl node, long? after, int? limit) =>
            {
                if (after is < 0 || limit is < 1 or > EventJournal.Capacity)
                {
                    return Problems.Problem(StatusCodes.Status400BadRequest, "Bad range", $"after must be ≥ 0 and limit between 1 and {EventJournal.Capacity}");
                }

                return Results.Ok(new EventPage(node.Events.After(after ?? 0, limit ?? 200), node.Events.Last));
            })
            .WithSummary("Recent events of this node (state transitions, views, failovers, checks, actions, reloads), oldest first")
            .Produces<EventPage>()
            .ProducesProblem(StatusCodes.Status400BadRequest);
        api.MapGet("/events/stream", (INodeControl node, HttpContext context, IHostApplicationLifetime lifetime, long? after) =>
            {
                var from = after ?? (long.TryParse(context.Request.Headers["Last-Event-ID"], NumberStyles.None, CultureInfo.InvariantCulture, out var last) ? last : node.Events.Last);
                // Streams end when the client goes or the API stops (a stopping node must not wait for its consoles).
                var until = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, lifetime.ApplicationStopping);
                context.Response.RegisterForDispose(until);
                return TypedResults.ServerSentEvents(StreamAsync(node.Events, from, until.Token));
            })
            .WithSummary("Live events of this node as server-sent events (event: event, id: sequence; event: ping every 10 s). Resumes after Last-Event-ID or ?after=.");
    }

    private static async IAsyncEnumerable<SseItem<ClusterEvent?>> StreamAsync(EventJournal journal, long after, [EnumeratorCancellation] CancellationToken cancel)
    {
        yield return new SseItem<ClusterEvent?>(null, "hello") { ReconnectionInterval = TimeSpan.FromSeconds(2) };
        while (!cancel.IsCancellationRequested)
        {
            foreach (var e in journal.After(after))
            {
                after = e.Sequence;
                yield return new SseItem<ClusterEvent?>(e, "event") { EventId = e.Sequence.ToString(CultureInfo.InvariantCulture) };
            }

            var news = journal.WaitAfterAsync(after, cancel);
            var first = await Task.WhenAny(news, Task.Delay(Ping, cancel));
            if (cancel.IsCancellationRequested)
            {
                yield break;
            }

            if (first != news)
            {
                yield return new SseItem<ClusterEvent?>(null, "ping");
            }
        }
    }
}
