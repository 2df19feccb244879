namespace SafeKit.ControlPlane.Events;

/// <summary>
/// The node's recent events in memory (the newest <see cref="Capacity"/>), numbered so a reader
/// can ask for what came after the last one it saw, and a signal for readers that wait for news
/// (the API's event stream). Thread-safe; recording never blocks on readers.
/// </summary>
public sealed class EventJournal
{
    /// <summary>Events kept.</summary>
    public const int Capacity = 1000;

    private readonly Lock _gate = new();
    private readonly ClusterEvent[] _ring = new ClusterEvent[Capacity];
    private readonly TimeProvider _time;
    private long _last;
    private TaskCompletionSource _news = NewSignal();

    public EventJournal(string node, TimeProvider time)
    {
        Node = node;
        _time = time;
    }

    /// <summary>The node recording.</summary>
    public string Node { get; }

    /// <summary>Sequence of the newest event (0: none yet).</summary>
    public long Last
    {
        get
        {
            lock (_gate)
            {
                return _last;
            }
        }
    }

    /// <summary>Raised after an event is recorded (on the recording thread).</summary>
    public event Action<ClusterEvent>? Recorded;

    public ClusterEvent Record(string kind, string? module, string severity, string message)
    {
        ClusterEvent recorded;
        TaskCompletionSource news;
        lock (_gate)
        {
            _last++;
            recorded = new ClusterEvent(_last, _time.GetUtcNow(), Node, kind, module, severity, message);
            _ring[(int)(_last % Capacity)] = recorded;
            news = _news;
            _news = NewSignal();
        }

        news.TrySetResult();
        Recorded?.Invoke(recorded);
        return recorded;
    }

    /// <summary>Events after <paramref name="after"/> (oldest first), at most <paramref name="limit"/> of the newest.</summary>
    public IReadOnlyList<ClusterEvent> After(long after, int limit = Capacity)
    {
        lock (_gate)
        {
            var first = Math.Max(Math.Max(after + 1, _last - Capacity + 1), _last - limit + 1);
            var events = new List<ClusterEvent>((int)Math.Max(0, _last - first + 1));
            for (var sequence = Math.Max(first, 1); sequence <= _last; sequence++)
            {
                events.Add(_ring[(int)(sequence % Capacity)]);
            }

            return events;
        }
    }

    /// <summary>Completes when an event after <paramref name="after"/> exists (or at once if one does).</summary>
    public Task WaitAfterAsync(long after, CancellationToken cancel)
    {
        Task signal;
        lock (_gate)
        {
            if (_last > after)
            {
                return Task.CompletedTask;
            }

            signal = _news.Task;
        }

        return signal.WaitAsync(cancel);
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
