using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace SafeKit.Api;

/// <summary>Where and how the API listens.</summary>
/// <param name="Addresses">Addresses to listen on (the node's address on the VIP network).</param>
/// <param name="Port">TCP port.</param>
/// <param name="Certificate">TLS certificate; null serves plain HTTP.</param>
/// <param name="Tokens">The node's API tokens.</param>
/// <param name="Self">This node's API as the other nodes reach it.</param>
/// <param name="Peers">The other nodes' APIs (for the cluster resources).</param>
/// <param name="ClusterKey">The cluster key, which authenticates nodes to each other (null: no peer requests).</param>
/// <param name="Authority">The CA that signed the nodes' certificates (null: peers' self-signed certificates are accepted).</param>
public sealed record ApiServerOptions(IReadOnlyList<IPAddress> Addresses, int Port, X509Certificate2? Certificate, TokenStore Tokens, ApiPeer Self, IReadOnlyList<ApiPeer> Peers, byte[]? ClusterKey, X509Certificate2? Authority = null)
{
    /// <summary>Largest request body accepted (a configuration file to validate fits easily).</summary>
    public const long MaxRequestBodyBytes = 1024 * 1024;
}

/// <summary>
/// The node's HTTP control API (Kestrel, minimal APIs): read resources with a read token, actions
/// with an admin token, every error as problem+json, the OpenAPI document at /openapi/v1.json and
/// Prometheus metrics at /metrics.
/// </summary>
public sealed class ApiServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ApiServer(WebApplication app)
    {
        _app = app;
    }

    /// <summary>Builds the server and starts listening.</summary>
    /// <exception cref="IOException">The address or port cannot be bound.</exception>
    public static async Task<ApiServer> StartAsync(ApiServerOptions options, INodeControl node)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(node);
        var builder = DaemonWebHost.CreateBuilder();
        builder.Logging.ClearProviders();
        if (Environment.GetEnvironmentVariable("JOURNAL_STREAM") is { Length: > 0 })
        {
            builder.Logging.AddSystemdConsole();
        }
        else
        {
            builder.Logging.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
                o.UseUtcTimestamp = true;
            });
        }
        // Request lines and headers (with their tokens) never reach the log.
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = ApiServerOptions.MaxRequestBodyBytes;
            kestrel.Limits.MaxRequestHeadersTotalSize = 16 * 1024;
            foreach (var address in options.Addresses)
            {
                kestrel.Listen(address, options.Port, listen =>
                {
                    listen.Protocols = HttpProtocols.Http1AndHttp2;
                    if (options.Certificate is not null)
                    {
                        listen.UseHttps(options.Certificate);
                    }
                });
            }
        });
        builder.Services.ConfigureHttpJsonOptions(json => Configure(json.SerializerOptions));
        builder.Services.AddProblemDetails();
        builder.Services.AddOpenApi(openApi => openApi.AddDocumentTransformer<BearerSecurityTransformer>());
        builder.Services.AddSingleton(node);
        builder.Services.AddSingleton(options.Tokens);
        builder.Services.AddSingleton<ApiMetrics>();
        var signature = options.ClusterKey is { } key ? new PeerSignature(key, options.Self.Name, TimeProvider.System) : null;
        if (signature is not null)
        {
            builder.Services.AddSingleton(signature);
        }

        builder.Services.AddSingleton(new PeerClient(options.Self, options.Peers, signature, options.Authority));

        var app = builder.Build();
        app.UseExceptionHandler(new ExceptionHandlerOptions { StatusCodeSelector = Problems.StatusOf });
        app.UseStatusCodePages();
        app.UseRouting();
        app.UseMiddleware<BearerTokenMiddleware>();
        NodeEndpoints.Map(app);
        ActionEndpoints.Map(app);
        EventEndpoints.Map(app);
        ClusterEndpoints.Map(app);
        ConsoleEndpoints.Map(app);
        app.MapGet("/metrics", (INodeControl control, ApiMetrics metrics) => Results.Text(MetricsWriter.Write(control.Status(), metrics), "text/plain; version=0.0.4; charset=utf-8"))
            .WithSummary("Prometheus metrics of this node").ExcludeFromDescription();
        app.MapOpenApi("/openapi/{documentName}.json");
        await app.StartAsync();
        return new ApiServer(app);
    }

    /// <summary>JSON as everywhere in SafeKit: snake_case names, enums as lower-case text.</summary>
    public static void Configure(JsonSerializerOptions json)
    {
        ArgumentNullException.ThrowIfNull(json);
        json.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
        json.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower));
        json.Converters.Add(new IpAddressConverter());
    }

    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(timeout.Token);
        await _app.DisposeAsync();
    }

    private sealed class IpAddressConverter : JsonConverter<IPAddress>
    {
        public override IPAddress? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            IPAddress.TryParse(reader.GetString(), out var address) ? address : throw new JsonException("not an IP address");

        public override void Write(Utf8JsonWriter writer, IPAddress value, JsonSerializerOptions options) => writer.WriteStringValue(value.ToString());
    }
}
