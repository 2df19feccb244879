using System.Runtime.InteropServices;
using System.Text;
using SafeKit.Native.Interop;
using SafeKit.Native.PacketSockets;

namespace SafeKit.Native.Tun;

/// <summary>
/// A layer-3 TUN device: every write hands one IP packet to the local kernel stack as if it had
/// arrived on that interface. Opened with IFF_VNET_HDR every packet carries a virtio_net_hdr, so
/// GSO super-packets and partial checksums captured on the wire are passed through unchanged.
/// The device disappears when the last descriptor closes.
/// </summary>
public sealed unsafe class TunDevice : IDisposable
{
    private const nuint TunSetIff = 0x400454ca;
    private const nuint TunSetVnetHdrSz = 0x400454d8;
    private const short IffTun = 0x0001;
    private const short IffNoPi = 0x1000;
    private const short IffMultiQueue = 0x0100;
    private const short IffVnetHdr = 0x4000;

    private readonly FileDescriptorHandle _fd;

    private TunDevice(FileDescriptorHandle fd, string name, bool vnetHeader)
    {
        _fd = fd;
        Name = name;
        HasVnetHeader = vnetHeader;
    }

    /// <summary>Kernel name of the device.</summary>
    public string Name { get; }

    /// <summary>True when every packet written must start with a virtio_net_hdr.</summary>
    public bool HasVnetHeader { get; }

    /// <summary>Creates (or attaches a queue to) the TUN device <paramref name="name"/>.</summary>
    public static TunDevice Open(string name, bool vnetHeader, bool multiQueue = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (Encoding.ASCII.GetByteCount(name) > 15)
        {
            throw new ArgumentException($"interface name '{name}' is longer than 15 characters", nameof(name));
        }

        var raw = Libc.Open("/dev/net/tun", Libc.ORdwr | Libc.OCloexec);
        if (raw < 0)
        {
            throw NativeException.FromLastError("open(/dev/net/tun)");
        }

        var fd = new FileDescriptorHandle(raw);
        try
        {
            var request = default(IfReq);
            Encoding.ASCII.GetBytes(name, new Span<byte>(request.Name, 16));
            request.Flags = (short)(IffTun | IffNoPi | (vnetHeader ? IffVnetHdr : 0) | (multiQueue ? IffMultiQueue : 0));
            if (Libc.Ioctl(raw, TunSetIff, &request) != 0)
            {
                throw NativeException.FromLastError($"ioctl(TUNSETIFF, {name})");
            }

            if (vnetHeader)
            {
                var size = VirtioNetHeader.Size;
                if (Libc.Ioctl(raw, TunSetVnetHdrSz, &size) != 0)
                {
                    throw NativeException.FromLastError("ioctl(TUNSETVNETHDRSZ)");
                }
            }

            var actual = Encoding.ASCII.GetString(new ReadOnlySpan<byte>(request.Name, 16)).TrimEnd('\0');
            return new TunDevice(fd, actual, vnetHeader);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>Hands one IP packet to the kernel with the given offload header.</summary>
    /// <returns>False when the kernel refused the packet (it is counted by the caller).</returns>
    public bool Write(in VirtioNetHeader header, ReadOnlySpan<byte> packet)
    {
        if (!HasVnetHeader)
        {
            return Write(packet);
        }

        var copy = header;
        fixed (byte* data = packet)
        {
            var vectors = stackalloc IoVec[2];
            vectors[0].Base = &copy;
            vectors[0].Length = VirtioNetHeader.Size;
            vectors[1].Base = data;
            vectors[1].Length = (nuint)packet.Length;
            return Libc.WriteV(_fd.Fd, vectors, 2) >= 0;
        }
    }

    /// <summary>Hands one IP packet to the kernel (no offload information).</summary>
    public bool Write(ReadOnlySpan<byte> packet)
    {
        if (HasVnetHeader)
        {
            var none = default(VirtioNetHeader);
            return Write(none, packet);
        }

        fixed (byte* data = packet)
        {
            return Libc.Write(_fd.Fd, data, (nuint)packet.Length) >= 0;
        }
    }

    /// <summary>errno of the last failed write on this thread.</summary>
    public static int LastError => Marshal.GetLastPInvokeError();

    public void Dispose() => _fd.Dispose();

    [StructLayout(LayoutKind.Sequential)]
    private struct IfReq
    {
        public fixed byte Name[16];
        public short Flags;
        public fixed byte Padding[22];
    }
}
