using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;

namespace SafeKit.Api;

/// <summary>Another node's API as configured: its name and base address.</summary>
public sealed record ApiPeer(string Name, Uri BaseAddress);

/// <summary>What a peer answered (or why it did not).</summary>
/// <param name="Status">HTTP status; 0 when no answer came.</param>
/// <param name="Body">The body as received (JSON or problem+json).</param>
/// <param name="ContentType">Its content type.</param>
/// <param name="Error">Why there is no answer (connection refused, timeout, TLS…).</param>
public sealed record PeerAnswer(int Status, string Body, string? ContentType, string? Error)
{
    public bool Ok => Status is >= 200 and < 300;
}

/// <summary>
/// Calls the APIs of the other nodes with requests signed by <see cref="PeerSignature"/>. A peer's
/// certificate is accepted when it is trusted, signed by the configured authority (api.ca_file), or
/// — without one — when it is the self-signed kind safekitd makes (valid for the address called): the signature keeps the request from being
/// altered or replayed and carries no reusable secret; configure real certificates to have the
/// answers authenticated too.
/// </summary>
public sealed class PeerClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly PeerSignature? _signature;

    private readonly X509Certificate2? _authority;

    /// <param name="authority">The CA that signed the nodes' certificates (then required), or null.</param>
    public PeerClient(ApiPeer self, IReadOnlyList<ApiPeer> peers, PeerSignature? signature, X509Certificate2? authority)
    {
        _authority = authority;
        Self = self;
        Peers = peers;
        _signature = signature;
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(2),
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
            SslOptions = { RemoteCertificateValidationCallback = AcceptPeerCertificate },
        };
        _http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
    }

    /// <summary>This node's API as the others reach it.</summary>
    public ApiPeer Self { get; }

    /// <summary>The other nodes (this node excluded).</summary>
    public IReadOnlyList<ApiPeer> Peers { get; }

    public ApiPeer? Find(string name) => Peers.FirstOrDefault(p => p.Name == name);

    /// <summary>Sends one request to <paramref name="peer"/> within <paramref name="timeout"/>.</summary>
    public async Task<PeerAnswer> SendAsync(ApiPeer peer, HttpMethod method, string pathAndQuery, byte[]? body, TimeSpan timeout, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(peer);
        if (_signature is null)
        {
            return new PeerAnswer(0, "", null, "no cluster key: nodes cannot query each other");
        }

        using var request = new HttpRequestMessage(method, new Uri(peer.BaseAddress, pathAndQuery));
        request.Headers.TryAddWithoutValidation("Authorization", _signature.Sign(method.Method, request.RequestUri!.PathAndQuery, peer.Name, body ?? []));
        if (body is not null)
        {
            request.Content = new ByteArrayContent(body);
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        deadline.CancelAfter(timeout);
        try
        {
            using var response = await _http.SendAsync(request, deadline.Token);
            var text = await response.Content.ReadAsStringAsync(deadline.Token);
            return new PeerAnswer((int)response.StatusCode, text, response.Content.Headers.ContentType?.MediaType, null);
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
            return new PeerAnswer(0, "", null, $"no answer within {timeout.TotalSeconds:0.#} s");
        }
        catch (HttpRequestException e)
        {
            return new PeerAnswer(0, "", null, e.InnerException?.Message ?? e.Message);
        }
    }

    /// <summary>GETs JSON from <paramref name="peer"/>; the error says why there is none.</summary>
    public async Task<(T? Value, string? Error)> GetAsync<T>(ApiPeer peer, string pathAndQuery, JsonSerializerOptions json, TimeSpan timeout, CancellationToken cancel)
        where T : class
    {
        var answer = await SendAsync(peer, HttpMethod.Get, pathAndQuery, null, timeout, cancel);
        if (answer.Error is not null)
        {
            return (null, answer.Error);
        }

        if (!answer.Ok)
        {
            return (null, $"HTTP {answer.Status}: {ProblemDetail(answer.Body)}");
        }

        try
        {
            return (JsonSerializer.Deserialize<T>(answer.Body, json), null);
        }
        catch (JsonException e)
        {
            return (null, $"unreadable answer: {e.Message}");
        }
    }

    private static string ProblemDetail(string body)
    {
        try
        {
            using var problem = JsonDocument.Parse(body);
            return problem.RootElement.TryGetProperty("detail", out var detail) ? detail.GetString() ?? "" : body;
        }
        catch (JsonException)
        {
            return body.Length > 200 ? body[..200] : body;
        }
    }

    public void Dispose() => _http.Dispose();

    private bool AcceptPeerCertificate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (errors == SslPolicyErrors.None)
        {
            return true;
        }

        if (errors != SslPolicyErrors.RemoteCertificateChainErrors || certificate is null)
        {
            return false;
        }

        if (_authority is null)
        {
            // safekitd's own self-signed kind.
            return certificate.Subject == certificate.Issuer;
        }

        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        custom.ChainPolicy.CustomTrustStore.Add(_authority);
        using var presented = new X509Certificate2(certificate);
        return custom.Build(presented);
    }
}
