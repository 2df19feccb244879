using Microsoft.AspNetCore.Http;

namespace SafeKit.Api;

/// <summary>
/// Every request needs <c>Authorization: Bearer TOKEN</c>: none or an unknown token is 401, a read
/// token on an admin endpoint is 403. Also counts requests by status for the metrics.
/// </summary>
internal sealed class BearerTokenMiddleware
{
    private readonly RequestDelegate _next;
    private readonly TokenStore _tokens;
    private readonly ApiMetrics _metrics;

    public BearerTokenMiddleware(RequestDelegate next, TokenStore tokens, ApiMetrics metrics)
    {
        _next = next;
        _tokens = tokens;
        _metrics = metrics;
    }

    public async Task InvokeAsync(HttpContext context)
    {
        try
        {
            var needed = context.GetEndpoint()?.Metadata.GetMetadata<RequiredRole>()?.Role ?? ApiRole.Read;
            var header = context.Request.Headers.Authorization.ToString();
            const string Scheme = "Bearer ";
            if (!header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
            {
                context.Response.Headers.WWWAuthenticate = "Bearer realm=\"safekit\"";
                await Problems.Problem(StatusCodes.Status401Unauthorized, "Authentication required", "send an API token: Authorization: Bearer TOKEN").ExecuteAsync(context);
                return;
            }

            var role = _tokens.Authenticate(header.AsSpan(Scheme.Length).Trim());
            if (role is null)
            {
                context.Response.Headers.WWWAuthenticate = "Bearer realm=\"safekit\", error=\"invalid_token\"";
                await Problems.Problem(StatusCodes.Status401Unauthorized, "Invalid token", "the API token is not one of this node's").ExecuteAsync(context);
                return;
            }

            if (needed == ApiRole.Admin && role != ApiRole.Admin)
            {
                await Problems.Problem(StatusCodes.Status403Forbidden, "Admin token required", "this action needs an admin token; the token given may only read").ExecuteAsync(context);
                return;
            }

            await _next(context);
        }
        finally
        {
            _metrics.Count(context.Response.StatusCode);
        }
    }
}
