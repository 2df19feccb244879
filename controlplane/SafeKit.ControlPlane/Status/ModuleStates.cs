namespace SafeKit.ControlPlane.Status;

/// <summary>States of a module on a node (SafeKit's names).</summary>
public static class ModuleStates
{
    /// <summary>Not running on this node.</summary>
    public const string Stop = "STOP";

    /// <summary>Running, but not taking traffic: not in the view yet, not ready, or yielding.</summary>
    public const string Wait = "WAIT";

    /// <summary>Taking its share of the traffic.</summary>
    public const string Up = "UP";

    /// <summary>Mirror: runs the application, every change replicated to SECOND.</summary>
    public const string Prim = "PRIM";

    /// <summary>Mirror: follows PRIM's changes, ready to take over.</summary>
    public const string Second = "SECOND";

    /// <summary>Mirror: runs the application without SECOND.</summary>
    public const string Alone = "ALONE";
}

/// <summary>One state change of a module.</summary>
public sealed record StateTransition(DateTimeOffset At, string From, string To, string Reason);

/// <summary>The current state of a module and its recent transitions (thread-safe).</summary>
public sealed class ModuleStateHistory
{
    private const int Kept = 100;
    private readonly Lock _gate = new();
    private readonly LinkedList<StateTransition> _transitions = new();
    private readonly TimeProvider _time;

    public ModuleStateHistory(TimeProvider time)
    {
        _time = time;
    }

    public string Current { get; private set; } = ModuleStates.Stop;

    /// <summary>The reason of the current state.</summary>
    public string Reason { get; private set; } = "not started";

    /// <summary>Raised after a transition is recorded (on the thread that set the state).</summary>
    public event Action<StateTransition>? Changed;

    /// <summary>Moves to <paramref name="state"/>; records a transition when the state or its reason changes.</summary>
    public void Set(string state, string reason)
    {
        StateTransition transition;
        lock (_gate)
        {
            if (state == Current && reason == Reason)
            {
                return;
            }

            Reason = reason;
            transition = new StateTransition(_time.GetUtcNow(), Current, state, reason);
            _transitions.AddLast(transition);
            if (_transitions.Count > Kept)
            {
                _transitions.RemoveFirst();
            }

            Current = state;
        }

        Changed?.Invoke(transition);
    }

    public IReadOnlyList<StateTransition> Transitions()
    {
        lock (_gate)
        {
            return [.. _transitions];
        }
    }
}
