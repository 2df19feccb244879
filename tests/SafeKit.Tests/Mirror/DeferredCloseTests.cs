using System.IO.Pipes;
using SafeKit.Native.Files;

namespace SafeKit.Tests.Mirror;

/// <summary>Descriptors whose last close may take seconds (an unlinked file's) are closed off the caller's thread.</summary>
public sealed class DeferredCloseTests
{
    [Fact]
    public async Task HandedOverDescriptor_IsClosedByTheCloser()
    {
        using var reader = new AnonymousPipeServerStream(PipeDirection.In);
        var writeEnd = reader.ClientSafePipeHandle;
        var fd = (int)writeEnd.DangerousGetHandle();
        writeEnd.SetHandleAsInvalid(); // The descriptor is the closer's now.

        DeferredClose.Close(fd);

        // The pipe's only write end closed: its reader sees the end of the stream.
        var read = await reader.ReadAsync(new byte[1], TestContext.Current.CancellationToken).AsTask().WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        Assert.Equal(0, read);
        Assert.True(DeferredClose.WaitIdle(TimeSpan.FromSeconds(10)));
    }
}
