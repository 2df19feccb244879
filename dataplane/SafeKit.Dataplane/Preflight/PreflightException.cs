namespace SafeKit.Dataplane.Preflight;

/// <summary>The node cannot run the dataplane; <see cref="Problems"/> says why, one line each.</summary>
public sealed class PreflightException : Exception
{
    public PreflightException(IReadOnlyList<string> problems)
        : base("the node is not ready for the farm dataplane:" + Environment.NewLine + string.Join(Environment.NewLine, problems.Select(p => "  - " + p)))
    {
        Problems = problems;
    }

    public PreflightException()
    {
        Problems = [];
    }

    public PreflightException(string message)
        : base(message)
    {
        Problems = [message];
    }

    public PreflightException(string message, Exception innerException)
        : base(message, innerException)
    {
        Problems = [message];
    }

    public IReadOnlyList<string> Problems { get; }
}
