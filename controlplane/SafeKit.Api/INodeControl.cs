using SafeKit.ControlPlane.Configuration;
using SafeKit.ControlPlane.Events;
using SafeKit.ControlPlane.Status;

namespace SafeKit.Api;

/// <summary>What the API needs from the daemon of its node.</summary>
public interface INodeControl
{
    /// <summary>The configuration in force.</summary>
    ClusterConfig Configuration { get; }

    /// <summary>This node's name.</summary>
    string NodeName { get; }

    /// <summary>The node's recent events (its timeline).</summary>
    EventJournal Events { get; }

    /// <summary>Everything the node reports (the same document as status.json).</summary>
    NodeStatus Status();

    /// <summary>Owners of a module's buckets as ranges, or null for an unknown module.</summary>
    IReadOnlyList<BucketRange>? Buckets(string module);

    /// <summary>Re-reads the configuration file and applies it, or refuses (see <see cref="ReloadPlan"/>).</summary>
    Task<ReloadOutcome> ReloadAsync();

    /// <summary>Acts on a module on this node.</summary>
    /// <exception cref="ModuleActionException">The module is unknown or the action does not fit its state.</exception>
    Task<ModuleActionResult> ActAsync(string module, ModuleAction action);
}

/// <summary>Consecutive buckets with the same owner (null: nobody).</summary>
public sealed record BucketRange(int First, int Last, string? Owner);

/// <summary>Actions on a module (SafeKit's verbs).</summary>
public enum ModuleAction
{
    /// <summary>Start the application and offer to take traffic.</summary>
    Start,

    /// <summary>Leave the farm, let the connections finish (drain), stop the application.</summary>
    Stop,

    /// <summary>Restart the application with its scripts while the node keeps its place.</summary>
    Restart,

    /// <summary>Stop (drain) then start.</summary>
    Stopstart,

    /// <summary>Stop at once: leave the farm and stop the application without draining.</summary>
    Forcestop,

    /// <summary>Mirror: make this node's copy the reference and serve ALONE whatever the peer holds (<c>safekit prim --force</c>).</summary>
    Prim,

    /// <summary>Mirror, on the serving node: bring the peer's copy to this one by comparing every file, journal or not (<c>safekit resync --full</c>).</summary>
    Resync,

    /// <summary>Mirror, on PRIM: hand PRIM to SECOND with every acknowledged change (stop app, final sync, VIP move, start app there) (<c>safekit swap</c>).</summary>
    Swap,

    /// <summary>Mirror, on PRIM: compare both copies online, every file's blocks by hash; refused (409) with the differences when they differ (<c>safekit verify</c>).</summary>
    Verify,
}

/// <summary>What an action did.</summary>
public sealed record ModuleActionResult(string Module, string Action, string State, string Message);

/// <summary>An action that cannot be done: unknown module (404) or a state that does not allow it (409).</summary>
public sealed class ModuleActionException : Exception
{
    public ModuleActionException(int status, string message)
        : base(message)
    {
        Status = status;
    }

    public ModuleActionException()
    {
    }

    public ModuleActionException(string message)
        : base(message)
    {
    }

    public ModuleActionException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public int Status { get; } = 409;
}
