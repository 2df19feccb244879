using System.Runtime.InteropServices;

namespace SafeKit.Native.Interop;

/// <summary>A failed syscall: what was attempted, the errno and its text.</summary>
public sealed class NativeException : Exception
{
    public NativeException(string operation, int errno)
        : base($"{operation} failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})")
    {
        Operation = operation;
        Errno = errno;
    }

    public NativeException()
    {
        Operation = string.Empty;
    }

    public NativeException(string message)
        : base(message)
    {
        Operation = string.Empty;
    }

    public NativeException(string message, Exception innerException)
        : base(message, innerException)
    {
        Operation = string.Empty;
    }

    public string Operation { get; }

    public int Errno { get; }

    internal static NativeException FromLastError(string operation) =>
        new(operation, Marshal.GetLastPInvokeError());
}
