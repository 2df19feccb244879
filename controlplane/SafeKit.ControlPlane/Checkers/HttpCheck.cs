namespace SafeKit.ControlPlane.Checkers;

/// <summary>An HTTP(S) GET answers with the expected status within the timeout.</summary>
public sealed class HttpCheck : ICheck, IDisposable
{
    private readonly Uri _url;
    private readonly int _status;
    private readonly HttpClient _client;

    public HttpCheck(Uri url, int status, TimeSpan timeout)
    {
        _url = url;
        _status = status;
        // A health check of the local application: no proxy, a fresh connection every time.
        _client = new HttpClient(new SocketsHttpHandler { UseProxy = false, PooledConnectionLifetime = TimeSpan.Zero })
        { Timeout = timeout };
    }

    public string Name => $"http:{_url}";

    public async Task<CheckResult> RunAsync(CancellationToken cancellation)
    {
        try
        {
            using var response = await _client.GetAsync(_url, HttpCompletionOption.ResponseHeadersRead, cancellation);
            var status = (int)response.StatusCode;
            return new CheckResult(status == _status, $"status {status}");
        }
        catch (HttpRequestException e)
        {
            return new CheckResult(false, e.Message);
        }
        catch (TaskCanceledException) when (!cancellation.IsCancellationRequested)
        {
            return new CheckResult(false, $"no answer within {_client.Timeout.TotalMilliseconds} ms");
        }
    }

    public void Dispose() => _client.Dispose();
}
