using SafeKit.Native.Files;

namespace SafeKit.Native.Fuse;

/// <summary>An open directory being listed: the libc DIR stream, its descriptor, where the kernel is.</summary>
internal sealed unsafe class DirectoryHandle
{
    public DirectoryHandle(nint stream, int fd, ulong node)
    {
        Stream = stream;
        Fd = fd;
        Node = node;
    }

    /// <summary>The directory's node id.</summary>
    public ulong Node { get; }

    public nint Stream { get; }

    /// <summary>The stream's descriptor (for fsyncdir).</summary>
    public int Fd { get; }

    /// <summary>Offset the stream is at, as the kernel counts (0 = start).</summary>
    public long Offset { get; set; }

    /// <summary>An entry read but not yet handed over (it did not fit in the last reply).</summary>
    public DirEnt* Pending { get; set; }

    /// <summary>Serializes listing calls on this handle.</summary>
    public Lock Gate { get; } = new();
}
