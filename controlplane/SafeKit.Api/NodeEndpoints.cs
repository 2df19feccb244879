using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using SafeKit.ControlPlane.Checkers;
using SafeKit.ControlPlane.Membership;
using SafeKit.ControlPlane.Status;

namespace SafeKit.Api;

/// <summary>Read resources (any token): the node, its modules, buckets, peers, checks, configuration.</summary>
internal static class NodeEndpoints
{
    public static void Map(IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1").WithTags("node");
        api.MapGet("/node", (INodeControl node) => TypedResults.Ok(node.Status()))
            .WithSummary("This node: modules, membership, checks, configuration status");
        api.MapGet("/modules", (INodeControl node) => TypedResults.Ok(node.Status().Modules))
            .WithSummary("Modules on this node with state and transitions");
        api.MapGet("/modules/{name}", (string name, INodeControl node) =>
                node.Status().Modules.FirstOrDefault(m => m.Name == name) is { } module ? Results.Ok(module) : Problems.UnknownModule(name, node))
            .WithSummary("One module").Produces<ModuleStatus>().ProducesProblem(StatusCodes.Status404NotFound);
        api.MapGet("/modules/{name}/buckets", (string name, INodeControl node) =>
                node.Buckets(name) is { } ranges ? Results.Ok(ranges) : Problems.UnknownModule(name, node))
            .WithSummary("Owner of every bucket, as ranges").Produces<IReadOnlyList<BucketRange>>().ProducesProblem(StatusCodes.Status404NotFound);
        api.MapGet("/peers", (INodeControl node) => node.Status().Membership is { } membership ? Results.Ok(membership) : Results.Ok(new { }))
            .WithSummary("Membership: leader, epoch, members, every peer's health, heartbeat counters").Produces<MembershipSnapshot>();
        api.MapGet("/checks", (INodeControl node) => TypedResults.Ok(node.Status().Checks ?? []))
            .WithSummary("Last result of every checker").Produces<IReadOnlyList<CheckStatus>>();
        api.MapGet("/config", (INodeControl node) => TypedResults.Ok(ConfigView.From(node.Configuration)))
            .WithSummary("The configuration in force (file paths, never secrets)");
    }
}
