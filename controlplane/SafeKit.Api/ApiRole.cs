namespace SafeKit.Api;

/// <summary>What a token may do: read everything, or also act (start, stop, reload…).</summary>
public enum ApiRole
{
    Read,
    Admin,
}

/// <summary>Endpoint metadata: the least role that may call it (read when absent).</summary>
/// <param name="Role">The role needed.</param>
public sealed record RequiredRole(ApiRole Role);
