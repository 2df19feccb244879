using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace SafeKit.Api;

/// <summary>
/// What a node without configuration serves (an appliance booted without a seed): on every address,
/// every request is answered 503 with a problem+json that says the node is not configured and how
/// to configure it. Nothing secret exists yet, so nothing is asked for and nothing is revealed but
/// the node's host name.
/// </summary>
public sealed class NotConfiguredApiServer : IAsyncDisposable
{
    public const string Title = "Node not configured";

    private readonly WebApplication _app;

    private NotConfiguredApiServer(WebApplication app)
    {
        _app = app;
    }

    /// <summary>Starts listening on every address (IPv4 and IPv6) at <paramref name="port"/>.</summary>
    /// <param name="port">TCP port (the API's default).</param>
    /// <param name="certificate">TLS certificate; null serves plain HTTP.</param>
    /// <param name="detail">What to do (names the missing configuration file).</param>
    /// <exception cref="IOException">The port cannot be bound.</exception>
    public static async Task<NotConfiguredApiServer> StartAsync(int port, X509Certificate2? certificate, string detail)
    {
        var builder = DaemonWebHost.CreateBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = 0;
            kestrel.ListenAnyIP(port, listen =>
            {
                listen.Protocols = HttpProtocols.Http1AndHttp2;
                if (certificate is not null)
                {
                    listen.UseHttps(certificate);
                }
            });
        });
        var app = builder.Build();
        var node = Environment.MachineName;
        app.Run(context => Results.Problem(
                detail: detail,
                statusCode: StatusCodes.Status503ServiceUnavailable,
                title: Title,
                extensions: new Dictionary<string, object?> { ["state"] = "not_configured", ["node"] = node })
            .ExecuteAsync(context));
        await app.StartAsync();
        return new NotConfiguredApiServer(app);
    }

    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(timeout.Token);
        await _app.DisposeAsync();
    }
}
