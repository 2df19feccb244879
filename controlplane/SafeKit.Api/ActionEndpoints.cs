using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using SafeKit.ControlPlane.Configuration;
using SafeKit.ControlPlane.Status;

namespace SafeKit.Api;

/// <summary>Actions (admin token): module start/stop/restart/stopstart/forcestop, configuration reload and validation.</summary>
internal static class ActionEndpoints
{
    private static readonly RequiredRole Admin = new(ApiRole.Admin);

    public static void Map(IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1").WithTags("actions").WithMetadata(Admin);
        api.MapPost("/modules/{name}/actions", ActAsync)
            .WithSummary("Act on a module: start, stop (drain), restart, stopstart, forcestop; mirror: prim (--force), resync (--full), swap, verify")
            .Accepts<ActionRequest>("application/json")
            .Produces<ModuleActionResult>()
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);
        api.MapPost("/config/reload", ReloadAsync)
            .WithSummary("Re-read the configuration file and apply what may change at runtime")
            .Produces<ReloadOutcome>()
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity);
        api.MapPost("/config/validate", ValidateAsync)
            .WithSummary("Validate a configuration (YAML body) and tell what a reload of it would change")
            .Accepts<string>("application/yaml", "text/plain")
            .Produces<ValidationResult>()
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity);
    }

    internal static async Task<IResult> ActAsync(string name, ActionRequest? request, INodeControl node)
    {
        if (request?.Action is not { } text)
        {
            return Problems.Problem(StatusCodes.Status400BadRequest, "Missing action", "the body must be {\"action\": \"start|stop|restart|stopstart|forcestop|prim|resync|swap|verify\"}");
        }

        if (!Enum.TryParse<ModuleAction>(text, ignoreCase: true, out var action) || !Enum.IsDefined(action) || int.TryParse(text, out _))
        {
            return Problems.Problem(StatusCodes.Status400BadRequest, "Unknown action", $"'{text}' is not one of: start, stop, restart, stopstart, forcestop, prim, resync, swap, verify");
        }

        if (node.Configuration.Farms.All(f => f.Name != name) && node.Configuration.Mirrors.All(m => m.Name != name))
        {
            return Problems.UnknownModule(name, node);
        }

        try
        {
            return Results.Ok(await node.ActAsync(name, action));
        }
        catch (ModuleActionException e)
        {
            return Problems.Problem(e.Status, "Action not possible", e.Message);
        }
    }

    internal static async Task<IResult> ReloadAsync(INodeControl node)
    {
        var outcome = await node.ReloadAsync();
        return outcome.Applied
            ? Results.Ok(outcome)
            : Problems.Problem(StatusCodes.Status422UnprocessableEntity, "Reload refused", string.Join("; ", outcome.Problems), new Dictionary<string, object?> { ["problems"] = outcome.Problems, ["changes"] = outcome.Changes });
    }

    private static async Task<IResult> ValidateAsync(HttpRequest request, INodeControl node)
    {
        using var reader = new StreamReader(request.Body, Encoding.UTF8);
        var text = await reader.ReadToEndAsync(request.HttpContext.RequestAborted);
        if (text.Length == 0)
        {
            return Problems.Problem(StatusCodes.Status400BadRequest, "Empty body", "send the configuration file (YAML) as the request body");
        }

        var (config, errors) = ConfigLoader.Parse(text, "(request)");
        if (config is null)
        {
            return Problems.Problem(StatusCodes.Status422UnprocessableEntity, "Invalid configuration", $"{errors.Count} error(s)", new Dictionary<string, object?> { ["errors"] = errors.Select(e => e.ToString()).ToList() });
        }

        var plan = ReloadPlan.Compare(node.Configuration, config, node.NodeName);
        return Results.Ok(new ValidationResult(true, plan.Applicable, plan.Changes, plan.RestartRequired, plan.Notes));
    }
}

/// <summary>Body of a module action.</summary>
/// <param name="Action">start, stop, restart, stopstart or forcestop.</param>
public sealed record ActionRequest(string? Action);

/// <summary>What validating a configuration found.</summary>
public sealed record ValidationResult(bool Valid, bool Reloadable, IReadOnlyList<string> Changes, IReadOnlyList<string> RestartRequired, IReadOnlyList<string> Notes);
