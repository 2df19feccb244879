namespace SafeKit.Replication.Resync;

/// <summary>
/// The sessions of one resync listener. A source's first connection is served alone: one that
/// arrives meanwhile waits until it ends, so two sources never write the same copy at once. Its
/// extra streams join it with the token its options answer gave; once it ends, the token is void.
/// </summary>
internal sealed class ResyncSessions : IDisposable
{
    private readonly SemaphoreSlim _one = new(1, 1);
    private readonly Lock _gate = new();
    private Guid _token;
    private ResyncTarget? _current;

    /// <summary>Waits until no other source is served, then makes <paramref name="target"/> the one; returns its token.</summary>
    public async Task<Guid> EnterAsync(ResyncTarget target, CancellationToken cancellationToken)
    {
        await _one.WaitAsync(cancellationToken);
        lock (_gate)
        {
            _token = Guid.NewGuid();
            _current = target;
            return _token;
        }
    }

    /// <summary>The session of <paramref name="target"/> ended: the next source may come in.</summary>
    public void Leave(ResyncTarget target)
    {
        lock (_gate)
        {
            if (_current != target)
            {
                return;
            }

            _current = null;
            _token = Guid.Empty;
        }

        _one.Release();
    }

    /// <summary>The target being served under <paramref name="token"/>; null when none is (it ended, or the token is not its).</summary>
    public ResyncTarget? Join(Guid token)
    {
        lock (_gate)
        {
            return _current is { } current && token != Guid.Empty && token == _token ? current : null;
        }
    }

    public void Dispose() => _one.Dispose();
}
