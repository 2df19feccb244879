namespace SafeKit.Replication.Resync;

/// <summary>The target could not apply a request (its errno and message name the path), or the connection failed mid-resync.</summary>
public sealed class ResyncException : Exception
{
    public ResyncException()
    {
    }

    public ResyncException(string message)
        : base(message)
    {
    }

    public ResyncException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public ResyncException(string message, int errno)
        : base(message)
    {
        Errno = errno;
    }

    /// <summary>The target's errno (0 when the failure was not a syscall's).</summary>
    public int Errno { get; }
}
