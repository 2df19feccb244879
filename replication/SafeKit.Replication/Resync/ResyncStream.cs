namespace SafeKit.Replication.Resync;

/// <summary>
/// The source's end of one resync connection: requests written in order, each answered by one
/// response, matched as they come back. Up to <see cref="Window"/> requests are in flight, so
/// memory stays bounded. The first exchange agrees the stream's features (and, for an extra
/// stream of a source, joins it to the target's session) before anything else is sent.
/// </summary>
internal sealed class ResyncStream : IAsyncDisposable
{
    private const int Window = 32;

    private readonly ResyncConnection _connection;
    private readonly BandwidthCap? _cap;
    private readonly Queue<TaskCompletionSource<byte[]>> _pending = new();
    private readonly SemaphoreSlim _window = new(Window, Window);
    private readonly SemaphoreSlim _sendGate = new(1, 1);

    /// <summary>Data sent and not yet seen answered: a refused write ends the pass.</summary>
    private readonly List<(Task<byte[]> Response, string Path)> _sent = [];
    private readonly Task _reading;
    private Exception? _lost;

    /// <param name="offer">The features to ask for.</param>
    /// <param name="join">For an extra stream: the session token the target gave the source's first stream.</param>
    public ResyncStream(ResyncConnection connection, BandwidthCap? cap, ResyncFeatures offer, Guid? join = null)
    {
        _connection = connection;
        _cap = cap;
        _reading = Task.Run(ReadResponsesAsync);
        Negotiated = NegotiateAsync(offer, join);
    }

    /// <summary>What the target accepted, and the token extra streams join with (when it accepted <see cref="ResyncFeatures.ParallelStreams"/>).</summary>
    public Task<(ResyncFeatures Features, Guid? Token)> Negotiated { get; }

    public string Remote => _connection.Remote;

    /// <summary>Bytes on the connection so far, both ways.</summary>
    public long WireBytes => _connection.WireBytes;

    /// <summary>Whether blocks go raw (the whole stream is compressed).</summary>
    public bool CompressesWrites => _connection.CompressesWrites;

    /// <summary>Writes a request once the features are agreed and the window has room; the task it returns is the response.</summary>
    public async Task<Task<byte[]>> SendAsync(byte[] message, CancellationToken cancellationToken)
    {
        await Negotiated.WaitAsync(cancellationToken);
        return await SendNowAsync(message, cancellationToken);
    }

    /// <summary>Sends a data message, to be checked later (<see cref="CheckSentAsync"/>).</summary>
    public async Task SendDataAsync(byte[] message, string path, CancellationToken cancellationToken)
    {
        _sent.Add((await SendAsync(message, cancellationToken), path));
        await CheckSentAsync(all: false);
    }

    /// <summary>Looks at the data responses that arrived (all of them when <paramref name="all"/>): a refused write ends the pass.</summary>
    public async Task CheckSentAsync(bool all)
    {
        var done = 0;
        try
        {
            foreach (var (response, path) in _sent)
            {
                if (!all && !response.IsCompleted)
                {
                    break;
                }

                done++;
                using var _ = Check(await response, ResyncMessageType.Data, $"data of '{path}'");
            }
        }
        finally
        {
            _sent.RemoveRange(0, done);
        }
    }

    /// <summary>
    /// The first requests: for an extra stream, joins the source's session; then offers the
    /// features. Nothing else is sent until the answers came. A target from before the options
    /// request answers it with an error, and the resync goes on uncompressed, on one stream.
    /// </summary>
    private async Task<(ResyncFeatures, Guid?)> NegotiateAsync(ResyncFeatures offer, Guid? join)
    {
        if (join is { } token)
        {
            using var stream = new MessageWriter(ResyncMessageType.Stream);
            stream.Body.Write(token.ToByteArray());
            using var _ = Check(await await SendNowAsync(stream.ToArray(), CancellationToken.None), ResyncMessageType.Stream, "an extra stream");
        }

        byte[] request;
        using (var options = new MessageWriter(ResyncMessageType.Options))
        {
            options.Body.Write((int)offer);
            request = options.ToArray();
        }

        var answer = await await SendNowAsync(request, CancellationToken.None);
        var accepted = OptionsAnswer.Accepted(answer);
        if (accepted.HasFlag(ResyncFeatures.CompressedStream))
        {
            _connection.CompressWrites();
        }

        return (accepted, OptionsAnswer.Token(answer));
    }

    private async Task<Task<byte[]>> SendNowAsync(byte[] message, CancellationToken cancellationToken)
    {
        await _window.WaitAsync(cancellationToken);
        var response = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);

        // Requests sent from several tasks (hashes asked ahead): each is queued for its answer in
        // the order it is written.
        await _sendGate.WaitAsync(cancellationToken);
        try
        {
            if (_cap is { } cap)
            {
                // Before the request is queued for its answer: a wait cancelled here leaves nothing behind.
                await cap.WaitAsync(message.Length, cancellationToken);
            }

            lock (_pending)
            {
                if (_lost is { } lost)
                {
                    throw new ResyncException($"the resync connection to {_connection.Remote} was lost: {lost.Message}", lost);
                }

                _pending.Enqueue(response);
            }

            await _connection.WriteAsync(message, cancellationToken);
        }
        finally
        {
            _sendGate.Release();
        }

        return response.Task;
    }

    private async Task ReadResponsesAsync()
    {
        Exception lost;
        try
        {
            while (await _connection.ReadAsync() is { } message)
            {
                if (message is [(byte)ResyncMessageType.Options, ..] && OptionsAnswer.Accepted(message).HasFlag(ResyncFeatures.CompressedStream))
                {
                    // The answer to the options request: the target compresses everything after it.
                    _connection.DecompressReads();
                }

                TaskCompletionSource<byte[]> waiting;
                lock (_pending)
                {
                    if (!_pending.TryDequeue(out waiting!))
                    {
                        throw new InvalidDataException("the resync target answered a request that was not made");
                    }
                }

                _window.Release();
                waiting.SetResult(message);
            }

            lost = new IOException("the target closed the connection");
        }
#pragma warning disable CA1031 // Whatever ended the read loop fails every waiting request with it.
        catch (Exception e)
#pragma warning restore CA1031
        {
            lost = e;
        }

        lock (_pending)
        {
            _lost = lost;
            while (_pending.TryDequeue(out var waiting))
            {
                waiting.SetException(new ResyncException($"the resync connection to {_connection.Remote} was lost: {lost.Message}", lost));
            }
        }
    }

    /// <summary>Reads a response of the expected type; an error status becomes a <see cref="ResyncException"/> naming <paramref name="what"/>.</summary>
    public static MessageReader Check(byte[] response, ResyncMessageType expected, string what)
    {
        var reader = new MessageReader(response);
        if (reader.Type != expected)
        {
            reader.Dispose();
            throw new ResyncException($"the resync target answered {what} with a {reader.Type} response");
        }

        var status = reader.Body.ReadInt32();
        if (status != 0)
        {
            var message = reader.Body.ReadString();
            reader.Dispose();
            throw new ResyncException($"the resync target could not apply {what}: {message}", status);
        }

        return reader;
    }

    public async ValueTask DisposeAsync()
    {
        await _connection.DisposeAsync();
        await _reading;
        await Negotiated.ContinueWith(static _ => { }, TaskScheduler.Default); // Its failure, if any, reached every request.
        _window.Dispose();
        _sendGate.Dispose();
    }
}
