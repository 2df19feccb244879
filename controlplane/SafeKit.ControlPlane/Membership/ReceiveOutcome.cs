namespace SafeKit.ControlPlane.Membership;

/// <summary>What the membership made of an authenticated heartbeat.</summary>
public enum ReceiveOutcome
{
    /// <summary>Newer than anything seen from the sender: merged.</summary>
    Accepted,

    /// <summary>The same heartbeat again (it is sent on every network): ignored.</summary>
    Duplicate,

    /// <summary>Older than one already accepted from the sender: a replay, ignored.</summary>
    Replayed,

    /// <summary>Claims to come from this node, or carries a newer incarnation of it: misconfiguration.</summary>
    IdentityConflict,

    /// <summary>The header and the sender's own state disagree.</summary>
    Inconsistent,
}
