using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using SafeKit.Cli.Commands;

namespace SafeKit.Cli.Remote;

/// <summary>
/// The API of one node, as the CLI reaches it. Where: <c>--node URL</c>, else SAFEKIT_NODE, else
/// this machine's own safekitd (https://127.0.0.1:9453). Token: <c>--token</c>, SAFEKIT_TOKEN,
/// <c>--token-file</c>, SAFEKIT_TOKEN_FILE, else /etc/safekit/api-tokens (the admin token in it,
/// else the read one). Trust: the system's authorities, plus <c>--ca FILE</c> / SAFEKIT_CA (the
/// authority that signed the nodes' certificates, or one node's own certificate to pin it);
/// <c>--insecure</c> skips verification.
/// </summary>
internal sealed class ApiConnection : IDisposable
{
    public const string DefaultUrl = "https://127.0.0.1:9453";
    public const string DefaultTokensFile = "/etc/safekit/api-tokens";

    /// <summary>The options every API verb takes.</summary>
    public static readonly string[] ValuedOptions = ["--node", "--token", "--token-file", "--ca", "--timeout"];

    public static readonly string[] FlagOptions = ["--insecure", "--json"];

    public const string OptionsUsage = "[--node URL] [--token T | --token-file F] [--ca FILE | --insecure] [--timeout S] [--json]";

    private readonly HttpClient _http;
    private readonly X509Certificate2? _authority;

    private ApiConnection(Uri baseAddress, string token, X509Certificate2? authority, bool insecure, TimeSpan timeout)
    {
        BaseAddress = baseAddress;
        _authority = authority;
        var handler = new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(5) };
        handler.SslOptions.RemoteCertificateValidationCallback = insecure ? AcceptAny : Verify;
        _http = new HttpClient(handler) { BaseAddress = baseAddress, Timeout = timeout };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    public Uri BaseAddress { get; }

    public static ApiConnection Open(CliArguments args, int defaultTimeoutSeconds = 30)
    {
        ArgumentNullException.ThrowIfNull(args);
        var url = args.Value("--node") ?? Environment.GetEnvironmentVariable("SAFEKIT_NODE") ?? DefaultUrl;
        if (!Uri.TryCreate(url, UriKind.Absolute, out var address) || address.Scheme is not ("https" or "http"))
        {
            throw new CliException($"--node: '{url}' is not an http(s) URL (e.g. https://198.18.0.11:9453)");
        }

        var token = args.Value("--token") ?? Environment.GetEnvironmentVariable("SAFEKIT_TOKEN") ?? TokenFromFile(args.Value("--token-file") ?? Environment.GetEnvironmentVariable("SAFEKIT_TOKEN_FILE"));
        var caPath = args.Value("--ca") ?? Environment.GetEnvironmentVariable("SAFEKIT_CA");
        X509Certificate2? authority = null;
        if (!string.IsNullOrEmpty(caPath))
        {
            try
            {
                authority = X509CertificateLoader.LoadCertificateFromFile(caPath);
            }
            catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException)
            {
                throw new CliException($"--ca: {caPath}: not a readable certificate ({e.Message})");
            }
        }

        var timeout = TimeSpan.FromSeconds(args.Integer("--timeout", defaultTimeoutSeconds, 1, 3600));
        return new ApiConnection(address, token, authority, args.Has("--insecure"), timeout);
    }

    /// <summary>Sends a request; a transport failure or a refusal becomes an <see cref="ApiCallException"/> with its exit code.</summary>
    public async Task<JsonElement> SendAsync(HttpMethod method, string path, string? content = null, string contentType = "application/json", CancellationToken cancel = default)
    {
        using var request = new HttpRequestMessage(method, path);
        if (content is not null)
        {
            request.Content = new StringContent(content, Encoding.UTF8, contentType);
        }

        using var response = await SendRawAsync(request, HttpCompletionOption.ResponseContentRead, cancel);
        var text = await response.Content.ReadAsStringAsync(cancel);
        var body = Parse(text);
        if (!response.IsSuccessStatusCode)
        {
            throw ApiCallException.From((int)response.StatusCode, body, text);
        }

        return body;
    }

    /// <summary>Opens a streaming request (server-sent events); the caller reads and disposes the response.</summary>
    public async Task<HttpResponseMessage> OpenStreamAsync(string path, CancellationToken cancel)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        var response = await SendRawAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel);
        if (!response.IsSuccessStatusCode)
        {
            var text = await response.Content.ReadAsStringAsync(cancel);
            response.Dispose();
            throw ApiCallException.From((int)response.StatusCode, Parse(text), text);
        }

        return response;
    }

    private async Task<HttpResponseMessage> SendRawAsync(HttpRequestMessage request, HttpCompletionOption completion, CancellationToken cancel)
    {
        try
        {
            // With ResponseHeadersRead the client's timeout covers the headers only: a stream may last.
            return await _http.SendAsync(request, completion, cancel);
        }
        catch (TaskCanceledException) when (!cancel.IsCancellationRequested)
        {
            throw new ApiCallException(ExitCodes.Unreachable, $"{BaseAddress}: no answer within {_http.Timeout.TotalSeconds:0} s");
        }
        catch (HttpRequestException e) when (e.InnerException is AuthenticationException)
        {
            throw new ApiCallException(ExitCodes.Unreachable, $"{BaseAddress}: the server's TLS certificate is not trusted ({e.InnerException.Message}); pass --ca FILE (the authority or the node's api.pem) or --insecure");
        }
        catch (HttpRequestException e)
        {
            throw new ApiCallException(ExitCodes.Unreachable, $"{BaseAddress}: {e.InnerException?.Message ?? e.Message}");
        }
    }

    private static JsonElement Parse(string text)
    {
        if (text.Length == 0)
        {
            return default;
        }

        try
        {
            using var document = JsonDocument.Parse(text);
            return document.RootElement.Clone();
        }
        catch (JsonException)
        {
            return default;
        }
    }

    private static string TokenFromFile(string? path)
    {
        var file = path ?? DefaultTokensFile;
        if (!File.Exists(file))
        {
            throw new CliException(path is null
                ? $"no API token: pass --token, set SAFEKIT_TOKEN, or give --token-file (default {DefaultTokensFile} does not exist)"
                : $"{file}: API tokens file not found");
        }

        try
        {
            var lines = File.ReadAllLines(file).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).Select(l => l.Split(' ', 2, StringSplitOptions.TrimEntries)).ToList();
            return (lines.FirstOrDefault(l => l is ["admin", _]) ?? lines.FirstOrDefault(l => l is ["read", _]))?[1]
                ?? throw new CliException($"{file}: no 'admin TOKEN' or 'read TOKEN' line");
        }
        catch (UnauthorizedAccessException)
        {
            throw new CliException($"{file}: not readable (run as root, or pass --token)");
        }
    }

    private static bool AcceptAny(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors) => certificate is not null;

    private bool Verify(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (errors == SslPolicyErrors.None)
        {
            return true;
        }

        if (_authority is null || certificate is null || (errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
        {
            return false;
        }

        using var presented = new X509Certificate2(certificate);
        // The file may be the node's own certificate: pinned.
        if (presented.RawDataMemory.Span.SequenceEqual(_authority.RawDataMemory.Span))
        {
            return true;
        }

        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        custom.ChainPolicy.CustomTrustStore.Add(_authority);
        return custom.Build(presented);
    }

    public void Dispose()
    {
        _http.Dispose();
        _authority?.Dispose();
    }
}

/// <summary>The API refused or could not be reached; carries the CLI's exit code.</summary>
internal sealed class ApiCallException : Exception
{
    public ApiCallException(int exitCode, string message, JsonElement problem = default)
        : base(message)
    {
        ExitCode = exitCode;
        Problem = problem;
    }

    /// <summary>The problem+json body, when there was one.</summary>
    public JsonElement Problem { get; }

    public ApiCallException()
    {
    }

    public ApiCallException(string message)
        : base(message)
    {
    }

    public ApiCallException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public int ExitCode { get; } = ExitCodes.Failed;

    /// <summary>From an HTTP error: the problem's title and detail on one line.</summary>
    public static ApiCallException From(int status, JsonElement problem, string text)
    {
        var title = problem.ValueKind == JsonValueKind.Object && problem.TryGetProperty("title", out var t) ? t.GetString() : null;
        var detail = problem.ValueKind == JsonValueKind.Object && problem.TryGetProperty("detail", out var d) ? d.GetString() : null;
        var message = title is null ? $"HTTP {status}: {(text.Length > 200 ? text[..200] : text)}" : $"{title} ({status}){(string.IsNullOrEmpty(detail) ? "" : ": " + detail)}";
        return new ApiCallException(
            status switch
            {
                401 or 403 => ExitCodes.NotAuthorised,
                404 => ExitCodes.NotFound,
                502 => ExitCodes.Unreachable,
                _ => ExitCodes.Failed,
            },
            message,
            problem);
    }
}

/// <summary>What the CLI's exit codes mean.</summary>
internal static class ExitCodes
{
    public const int Ok = 0;

    /// <summary>Refused or failed (or, for status: a node or module is not UP).</summary>
    public const int Failed = 1;

    public const int NotFound = 2;

    /// <summary>The node (or the one asked for) did not answer.</summary>
    public const int Unreachable = 3;

    /// <summary>No token, a wrong one, or a read token for an action.</summary>
    public const int NotAuthorised = 4;

    public const int Usage = 64;
}
