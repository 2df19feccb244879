using Microsoft.AspNetCore.Http;

namespace SafeKit.Api;

/// <summary>Errors as RFC 9457 problem details, never a stack trace.</summary>
internal static class Problems
{
    /// <summary>The status an unhandled exception maps to (the body says only what is safe to say).</summary>
    public static int StatusOf(Exception exception) => exception switch
    {
        BadHttpRequestException bad => bad.StatusCode,
        ModuleActionException action => action.Status,
        _ => StatusCodes.Status500InternalServerError,
    };

    public static IResult Problem(int status, string title, string detail, IDictionary<string, object?>? extensions = null) =>
        Results.Problem(detail: detail, statusCode: status, title: title, extensions: extensions);

    public static IResult UnknownModule(string module, INodeControl node) =>
        Problem(StatusCodes.Status404NotFound, "Unknown module", $"no module '{module}' on this node; modules: {string.Join(", ", node.Configuration.Farms.Select(f => f.Name).Concat(node.Configuration.Mirrors.Select(m => m.Name)))}");
}
