using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using SafeKit.ControlPlane.Events;
using SafeKit.ControlPlane.Status;

namespace SafeKit.Api;

/// <summary>
/// The cluster from any node: the answering node asks every peer's API (signed with the cluster
/// key, in parallel, each within <see cref="PeerTimeout"/>) and forwards actions meant for another node.
/// </summary>
internal static class ClusterEndpoints
{
    /// <summary>How long a peer may take to answer a read (a dead node must not stall the answer).</summary>
    private static readonly TimeSpan PeerTimeout = TimeSpan.FromSeconds(2);

    /// <summary>How long a forwarded action may take (a stop drains connections).</summary>
    private static readonly TimeSpan ActionTimeout = TimeSpan.FromMinutes(5);

    public static void Map(IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1/cluster").WithTags("cluster");
        api.MapGet("", ClusterAsync)
            .WithSummary("Every node of the cluster: liveness and membership as this node sees them, and each reachable node's own status")
            .Produces<ClusterStatus>();
        api.MapGet("/events", EventsAsync)
            .WithSummary("Recent events of every reachable node, merged by time (oldest first)")
            .Produces<ClusterEvents>();
        api.MapGet("/nodes/{node}", NodeAsync)
            .WithSummary("One node's status, asked from whichever node answers")
            .Produces<NodeStatus>()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status502BadGateway);
        api.MapPost("/nodes/{node}/modules/{name}/actions", ActAsync)
            .WithMetadata(new RequiredRole(ApiRole.Admin))
            .WithSummary("Act on a module of any node (forwarded to that node): start, stop, restart, stopstart, forcestop")
            .Accepts<ActionRequest>("application/json")
            .Produces<ModuleActionResult>()
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status502BadGateway);
        api.MapPost("/nodes/{node}/config/reload", ReloadAsync)
            .WithMetadata(new RequiredRole(ApiRole.Admin))
            .WithSummary("Reload the configuration file of any node (forwarded to that node)")
            .Produces<SafeKit.ControlPlane.Status.ReloadOutcome>()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity)
            .ProducesProblem(StatusCodes.Status502BadGateway);
    }

    private static async Task<IResult> ReloadAsync(string node, INodeControl self, PeerClient peers, HttpContext context)
    {
        if (node == self.NodeName)
        {
            return await ActionEndpoints.ReloadAsync(self);
        }

        if (peers.Find(node) is not { } peer)
        {
            return UnknownNode(node, self);
        }

        return Relay(await peers.SendAsync(peer, HttpMethod.Post, "/api/v1/config/reload", null, ActionTimeout, context.RequestAborted), node);
    }

    private static async Task<IResult> ClusterAsync(INodeControl node, PeerClient peers, IOptions<JsonOptions> json, HttpContext context)
    {
        var status = node.Status();
        var membership = status.Membership;
        var answers = await Task.WhenAll(peers.Peers.Select(async peer =>
        {
            var (value, error) = await peers.GetAsync<NodeStatus>(peer, "/api/v1/node", json.Value.SerializerOptions, PeerTimeout, context.RequestAborted);
            return (peer, value, error);
        }));
        var nodes = new List<ClusterNode>();
        foreach (var configured in node.Configuration.Nodes)
        {
            var seen = membership?.Peers.FirstOrDefault(p => p.Name == configured.Name);
            var member = membership?.Members.Contains(configured.Name) ?? false;
            if (configured.Name == node.NodeName)
            {
                nodes.Add(new ClusterNode(configured.Name, peers.Self.BaseAddress.ToString().TrimEnd('/'), true, member, true, null, status));
                continue;
            }

            var (peer, value, error) = answers.First(a => a.peer.Name == configured.Name);
            nodes.Add(new ClusterNode(configured.Name, peer.BaseAddress.ToString().TrimEnd('/'), seen?.Alive ?? false, member, value is not null, error, value));
        }

        return Results.Ok(new ClusterStatus(status.Cluster, node.NodeName, DateTimeOffset.UtcNow, membership, nodes));
    }

    private static async Task<IResult> EventsAsync(INodeControl node, PeerClient peers, IOptions<JsonOptions> json, HttpContext context, int? limit)
    {
        if (limit is < 1 or > EventJournal.Capacity)
        {
            return Problems.Problem(StatusCodes.Status400BadRequest, "Bad limit", $"limit must be between 1 and {EventJournal.Capacity}");
        }

        var count = limit ?? 200;
        var events = new List<ClusterEvent>(node.Events.After(0, count));
        var unreachable = new Dictionary<string, string>(StringComparer.Ordinal);
        var answers = await Task.WhenAll(peers.Peers.Select(async peer =>
            (peer, answer: await peers.GetAsync<EventPage>(peer, $"/api/v1/events?limit={count}", json.Value.SerializerOptions, PeerTimeout, context.RequestAborted))));
        foreach (var (peer, (page, error)) in answers)
        {
            if (page is null)
            {
                unreachable[peer.Name] = error ?? "no answer";
            }
            else
            {
                events.AddRange(page.Events);
            }
        }

        var merged = events.OrderBy(e => e.At).ThenBy(e => e.Node, StringComparer.Ordinal).ThenBy(e => e.Sequence).ToList();
        return Results.Ok(new ClusterEvents(merged.Count > count ? merged[^count..] : merged, unreachable));
    }

    private static async Task<IResult> NodeAsync(string node, INodeControl self, PeerClient peers, HttpContext context)
    {
        if (node == self.NodeName)
        {
            return Results.Ok(self.Status());
        }

        if (peers.Find(node) is not { } peer)
        {
            return UnknownNode(node, self);
        }

        return Relay(await peers.SendAsync(peer, HttpMethod.Get, "/api/v1/node", null, PeerTimeout, context.RequestAborted), node);
    }

    private static async Task<IResult> ActAsync(string node, string name, INodeControl self, PeerClient peers, HttpContext context)
    {
        using var reader = new StreamReader(context.Request.Body, Encoding.UTF8);
        var body = await reader.ReadToEndAsync(context.RequestAborted);
        if (node == self.NodeName)
        {
            ActionRequest? request;
            try
            {
                request = JsonSerializer.Deserialize<ActionRequest>(body, context.RequestServices.GetRequiredService<IOptions<JsonOptions>>().Value.SerializerOptions);
            }
            catch (JsonException e)
            {
                return Problems.Problem(StatusCodes.Status400BadRequest, "Invalid JSON", e.Message);
            }

            return await ActionEndpoints.ActAsync(name, request, self);
        }

        if (peers.Find(node) is not { } peer)
        {
            return UnknownNode(node, self);
        }

        return Relay(await peers.SendAsync(peer, HttpMethod.Post, $"/api/v1/modules/{Uri.EscapeDataString(name)}/actions", Encoding.UTF8.GetBytes(body), ActionTimeout, context.RequestAborted), node);
    }

    /// <summary>Hands a peer's answer on as it is; no answer becomes a 502 that says why.</summary>
    private static IResult Relay(PeerAnswer answer, string node) =>
        answer.Error is not null
            ? Problems.Problem(StatusCodes.Status502BadGateway, "Node unreachable", $"{node}: {answer.Error}")
            : Results.Content(answer.Body, answer.ContentType ?? "application/json", Encoding.UTF8, answer.Status);

    private static IResult UnknownNode(string node, INodeControl self) =>
        Problems.Problem(StatusCodes.Status404NotFound, "Unknown node", $"no node '{node}' in cluster {self.Configuration.Name}; nodes: {string.Join(", ", self.Configuration.Nodes.Select(n => n.Name))}");
}
