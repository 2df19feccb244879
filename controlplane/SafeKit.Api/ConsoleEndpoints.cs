using System.Reflection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace SafeKit.Api;

/// <summary>
/// The web console: three static files compiled into the assembly, served without a token (they
/// hold no data; the page asks for a token and sends it with every API call) under a strict
/// content security policy.
/// </summary>
internal static class ConsoleEndpoints
{
    private static readonly Dictionary<string, (string Resource, string Type)> Files = new(StringComparer.Ordinal)
    {
        [""] = ("SafeKit.Api.Console.index.html", "text/html; charset=utf-8"),
        ["console.js"] = ("SafeKit.Api.Console.console.js", "text/javascript; charset=utf-8"),
        ["console.css"] = ("SafeKit.Api.Console.console.css", "text/css; charset=utf-8"),
    };

    private const string Policy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

    public static void Map(IEndpointRouteBuilder app)
    {
        var contents = Files.ToDictionary(f => f.Key, f => (Bytes: Load(f.Value.Resource), f.Value.Type), StringComparer.Ordinal);
        app.MapGet("/", () => Results.Redirect("/console/")).WithMetadata(new Anonymous()).ExcludeFromDescription();
        app.MapGet("/console/{file?}", (string? file, HttpContext context) =>
            {
                if (!contents.TryGetValue(file ?? "", out var content))
                {
                    return Problems.Problem(StatusCodes.Status404NotFound, "Not found", $"no console file '{file}'");
                }

                var headers = context.Response.Headers;
                headers.ContentSecurityPolicy = Policy;
                headers.XContentTypeOptions = "nosniff";
                headers.CacheControl = "no-cache";
                headers["Referrer-Policy"] = "no-referrer";
                return Results.Bytes(content.Bytes, content.Type);
            })
            .WithMetadata(new Anonymous())
            .ExcludeFromDescription();
    }

    private static byte[] Load(string resource)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"console file {resource} is missing from the build");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
