using System.Runtime.InteropServices;

namespace SafeKit.Native.Files;

/// <summary>
/// Writes two buffers to a blocking stream descriptor (a connected socket) with writev, so a
/// frame's header and its payload leave together without first being copied into one buffer.
/// </summary>
public static unsafe class GatherWrite
{
    private const int EINTR = 4;

    /// <summary>Blocks until both are written; 0, or the errno that stopped it (EPIPE once the socket is shut down).</summary>
    public static int WriteAll(SafeHandle descriptor, ReadOnlySpan<byte> first, ReadOnlySpan<byte> second)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        var added = false;
        descriptor.DangerousAddRef(ref added); // Not closed and reused under the call.
        try
        {
            var fd = (int)descriptor.DangerousGetHandle();
            var vectors = stackalloc Posix.IoVector[2];
            fixed (byte* a = first)
            fixed (byte* b = second)
            {
                byte* head = a, tail = b;
                nuint headLeft = (nuint)first.Length, tailLeft = (nuint)second.Length;
                while (headLeft + tailLeft > 0)
                {
                    var count = 0;
                    if (headLeft > 0)
                    {
                        vectors[count++] = new Posix.IoVector { Base = head, Length = headLeft };
                    }

                    if (tailLeft > 0)
                    {
                        vectors[count++] = new Posix.IoVector { Base = tail, Length = tailLeft };
                    }

                    var written = Posix.WriteV(fd, vectors, count);
                    if (written < 0)
                    {
                        var errno = Posix.Errno;
                        if (errno == EINTR)
                        {
                            continue;
                        }

                        return errno;
                    }

                    // A signal may cut a blocking write short: go on from where it stopped.
                    var fromHead = Math.Min((nuint)written, headLeft);
                    head += fromHead;
                    headLeft -= fromHead;
                    tail += (nuint)written - fromHead;
                    tailLeft -= (nuint)written - fromHead;
                }
            }

            return 0;
        }
        finally
        {
            if (added)
            {
                descriptor.DangerousRelease();
            }
        }
    }
}
