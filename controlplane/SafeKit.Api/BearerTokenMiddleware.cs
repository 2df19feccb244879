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
    private readonly PeerSignature? _peers;

    public BearerTokenMiddleware(RequestDelegate next, TokenStore tokens, ApiMetrics metrics, IServiceProvider services)
    {
        _next = next;
        _tokens = tokens;
        _metrics = metrics;
        _peers = (PeerSignature?)services.GetService(typeof(PeerSignature));
    }

    public async Task InvokeAsync(HttpContext context)
    {
        try
        {
            var metadata = context.GetEndpoint()?.Metadata;
            if (metadata?.GetMetadata<Anonymous>() is not null)
            {
                await _next(context);
                return;
            }

            var needed = metadata?.GetMetadata<RequiredRole>()?.Role ?? ApiRole.Read;
            var header = context.Request.Headers.Authorization.ToString();
            if (header.StartsWith(PeerSignature.Scheme + " ", StringComparison.Ordinal))
            {
                if (await VerifyPeerAsync(context, header) is { } refused)
                {
                    await Problems.Problem(StatusCodes.Status401Unauthorized, "Peer not authenticated", refused).ExecuteAsync(context);
                    return;
                }

                await _next(context);
                return;
            }

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

    /// <summary>Checks a request another node signed with the cluster key (it may read and act).</summary>
    private async Task<string?> VerifyPeerAsync(HttpContext context, string header)
    {
        if (_peers is null)
        {
            return "this node accepts no peer requests (no cluster key)";
        }

        context.Request.EnableBuffering();
        using var body = new MemoryStream();
        await context.Request.Body.CopyToAsync(body, context.RequestAborted);
        context.Request.Body.Position = 0;
        var target = context.Request.Path.ToUriComponent() + context.Request.QueryString.ToUriComponent();
        return _peers.Verify(header, context.Request.Method, target, body.GetBuffer().AsSpan(0, (int)body.Length));
    }
}

/// <summary>Endpoint metadata: served without a token (the console's static files, which hold no data).</summary>
public sealed record Anonymous;
