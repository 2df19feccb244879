using System.Buffers.Binary;
using System.Runtime.InteropServices;
using SafeKit.Native.Interop;

namespace SafeKit.Native.PacketSockets;

/// <summary>
/// An AF_PACKET socket bound to one interface, optionally with a TPACKET_V3 receive ring.
/// Options that the kernel only accepts before the ring exists (version, vnet header) are set
/// first; the filter is attached before bind so that no unfiltered frame is queued.
/// </summary>
public sealed unsafe class PacketSocket : IDisposable
{
    private const int SolPacket = 263;
    private const int PacketAddMembership = 1;
    private const int PacketRxRing = 5;
    private const int PacketStatisticsOption = 6;
    private const int PacketVersion = 10;
    private const int PacketVnetHdr = 15;
    private const int PacketFanout = 18;
    private const int PacketQdiscBypass = 20;
    private const int PacketIgnoreOutgoing = 23;
    private const int TpacketV3 = 2;
    private const ushort EthPAll = 0x0003;

    private readonly FileDescriptorHandle _fd;
    private readonly SockAddrLl _sendAddress;

    private readonly bool _vnetHeader;

    private PacketSocket(FileDescriptorHandle fd, int interfaceIndex, TpacketV3Ring? ring, bool vnetHeader)
    {
        _fd = fd;
        _vnetHeader = vnetHeader;
        InterfaceIndex = interfaceIndex;
        Ring = ring;
        _sendAddress = new SockAddrLl
        {
            Family = (ushort)Libc.AfPacket,
            Protocol = BinaryPrimitives.ReverseEndianness(EthPAll),
            InterfaceIndex = interfaceIndex,
            AddressLength = 6,
        };
    }

    /// <summary>Kernel index of the bound interface.</summary>
    public int InterfaceIndex { get; }

    /// <summary>The receive ring, if one was requested.</summary>
    public TpacketV3Ring? Ring { get; }

    public static PacketSocket Open(PacketSocketOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var index = (int)Libc.IfNameToIndex(options.Interface);
        if (index == 0)
        {
            throw new NativeException($"interface '{options.Interface}' not found", Marshal.GetLastPInvokeError());
        }

        // Protocol 0: the socket receives nothing until bind, so the filter is in place first.
        var raw = Libc.Socket(Libc.AfPacket, Libc.SockRaw | Libc.SockCloexec, 0);
        if (raw < 0)
        {
            throw NativeException.FromLastError("socket(AF_PACKET)");
        }

        var fd = new FileDescriptorHandle(raw);
        TpacketV3Ring? ring = null;
        try
        {
            if (options.Ring is not null)
            {
                SetInt(raw, SolPacket, PacketVersion, TpacketV3, "PACKET_VERSION");
            }

            if (options.VnetHeader)
            {
                SetInt(raw, SolPacket, PacketVnetHdr, 1, "PACKET_VNET_HDR");
            }

            if (options.IgnoreOutgoing)
            {
                SetInt(raw, SolPacket, PacketIgnoreOutgoing, 1, "PACKET_IGNORE_OUTGOING");
            }

            if (options.QdiscBypass)
            {
                SetInt(raw, SolPacket, PacketQdiscBypass, 1, "PACKET_QDISC_BYPASS");
            }

            if (options.ReceiveBufferBytes > 0)
            {
                SetInt(raw, Libc.SolSocket, Libc.SoRcvBufForce, options.ReceiveBufferBytes, "SO_RCVBUFFORCE");
            }

            if (options.SendBufferBytes > 0)
            {
                SetInt(raw, Libc.SolSocket, Libc.SoSndBufForce, options.SendBufferBytes, "SO_SNDBUFFORCE");
            }

            if (options.Filter is { Count: > 0 } filter)
            {
                AttachFilter(raw, filter);
            }

            if (options.Ring is { } geometry)
            {
                ring = TpacketV3Ring.Create(raw, geometry, options.VnetHeader);
            }

            var address = new SockAddrLl
            {
                Family = (ushort)Libc.AfPacket,
                Protocol = BinaryPrimitives.ReverseEndianness(EthPAll),
                InterfaceIndex = index,
            };
            if (Libc.Bind(raw, &address, (uint)sizeof(SockAddrLl)) != 0)
            {
                throw NativeException.FromLastError($"bind(AF_PACKET, {options.Interface})");
            }

            foreach (var membership in options.Memberships)
            {
                AddMembership(raw, index, membership);
            }

            if (options.FanoutGroup != 0)
            {
                SetInt(raw, SolPacket, PacketFanout, options.FanoutGroup | (options.FanoutMode << 16), "PACKET_FANOUT");
            }

            return new PacketSocket(fd, index, ring, options.VnetHeader);
        }
        catch
        {
            ring?.Dispose();
            fd.Dispose();
            throw;
        }
    }

    /// <summary>Sends one complete Ethernet frame out of the bound interface.</summary>
    /// <returns>True when the kernel took the frame; false when its queue is full (ENOBUFS/EAGAIN).</returns>
    public bool Send(ReadOnlySpan<byte> frame)
    {
        var address = _sendAddress;
        fixed (byte* data = frame)
        {
            // With PACKET_VNET_HDR the kernel reads a virtio_net_hdr in front of every frame sent
            // too: send an empty one (no offloads) ahead of the frame.
            var none = default(VirtioNetHeader);
            var vectors = stackalloc IoVec[2];
            vectors[0].Base = &none;
            vectors[0].Length = VirtioNetHeader.Size;
            vectors[1].Base = data;
            vectors[1].Length = (nuint)frame.Length;
            var message = new MsgHdr
            {
                Name = &address,
                NameLength = (uint)sizeof(SockAddrLl),
                Iov = _vnetHeader ? vectors : vectors + 1,
                IovLength = _vnetHeader ? 2u : 1u,
            };
            var sent = Libc.SendMsg(_fd.Fd, &message, 0);
            if (sent >= 0)
            {
                return true;
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno is Libc.ENoBufs or Libc.EAgain)
            {
                return false;
            }

            throw new NativeException("sendto(AF_PACKET)", errno);
        }
    }

    /// <summary>
    /// Sends up to <paramref name="count"/> frames of <paramref name="frameLength"/> bytes laid out
    /// back to back in <paramref name="frames"/> with one sendmmsg call.
    /// </summary>
    /// <returns>How many frames the kernel took.</returns>
    public int SendBatch(ReadOnlySpan<byte> frames, int frameLength, int count)
    {
        if (count <= 0)
        {
            return 0;
        }

        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, 1024);
        ArgumentOutOfRangeException.ThrowIfLessThan(frames.Length, frameLength * count);
        var address = _sendAddress;
        var vectors = stackalloc IoVec[count];
        var messages = stackalloc MMsgHdr[count];
        fixed (byte* data = frames)
        {
            for (var i = 0; i < count; i++)
            {
                vectors[i].Base = data + (i * frameLength);
                vectors[i].Length = (nuint)frameLength;
                messages[i] = default;
                messages[i].Header.Name = &address;
                messages[i].Header.NameLength = (uint)sizeof(SockAddrLl);
                messages[i].Header.Iov = &vectors[i];
                messages[i].Header.IovLength = 1;
            }

            var sent = Libc.SendMmsg(_fd.Fd, messages, (uint)count, 0);
            if (sent >= 0)
            {
                return sent;
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno is Libc.ENoBufs or Libc.EAgain)
            {
                return 0;
            }

            throw new NativeException("sendmmsg(AF_PACKET)", errno);
        }
    }

    /// <summary>Reads and resets the kernel's counters for this socket.</summary>
    public PacketStatistics ReadStatistics()
    {
        TpacketStatsV3 stats;
        var length = (uint)sizeof(TpacketStatsV3);
        if (Libc.GetSockOpt(_fd.Fd, SolPacket, PacketStatisticsOption, &stats, &length) != 0)
        {
            throw NativeException.FromLastError("getsockopt(PACKET_STATISTICS)");
        }

        return new PacketStatistics(stats.Packets, stats.Drops, Ring is null ? 0 : stats.FreezeCount);
    }

    /// <summary>Waits until the socket is readable (a ring block is ready) or the timeout passes.</summary>
    public bool WaitReadable(int timeoutMilliseconds)
    {
        var poll = new PollFd { Fd = _fd.Fd, Events = Libc.PollIn };
        var ready = Libc.Poll(&poll, 1, timeoutMilliseconds);
        if (ready < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno == Libc.EIntr)
            {
                return false;
            }

            throw new NativeException("poll(AF_PACKET)", errno);
        }

        return ready > 0;
    }

    public void Dispose()
    {
        Ring?.Dispose();
        _fd.Dispose();
    }

    private static void SetInt(int fd, int level, int name, int value, string what)
    {
        if (Libc.SetSockOpt(fd, level, name, &value, sizeof(int)) != 0)
        {
            throw NativeException.FromLastError($"setsockopt({what})");
        }
    }

    private static void AttachFilter(int fd, IReadOnlyList<BpfInstruction> filter)
    {
        var instructions = new BpfInstruction[filter.Count];
        for (var i = 0; i < instructions.Length; i++)
        {
            instructions[i] = filter[i];
        }

        fixed (BpfInstruction* code = instructions)
        {
            var program = new SockFprog { Length = (ushort)instructions.Length, Filter = code };
            if (Libc.SetSockOpt(fd, Libc.SolSocket, Libc.SoAttachFilter, &program, (uint)sizeof(SockFprog)) != 0)
            {
                throw NativeException.FromLastError("setsockopt(SO_ATTACH_FILTER)");
            }
        }
    }

    private static void AddMembership(int fd, int index, LinkMembership membership)
    {
        var request = new PacketMreq
        {
            InterfaceIndex = index,
            Type = (ushort)membership.Kind,
            AddressLength = (ushort)membership.Address.Length,
        };
        membership.Address.AsSpan().CopyTo(new Span<byte>(request.Address, 8));
        if (Libc.SetSockOpt(fd, SolPacket, PacketAddMembership, &request, (uint)sizeof(PacketMreq)) != 0)
        {
            throw NativeException.FromLastError($"setsockopt(PACKET_ADD_MEMBERSHIP, {membership.Kind})");
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct SockAddrLl
    {
        public ushort Family;
        public ushort Protocol;
        public int InterfaceIndex;
        public ushort HardwareType;
        public byte PacketType;
        public byte AddressLength;
        public fixed byte Address[8];
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PacketMreq
    {
        public int InterfaceIndex;
        public ushort Type;
        public ushort AddressLength;
        public fixed byte Address[8];
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct SockFprog
    {
        public ushort Length;
        public BpfInstruction* Filter;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct TpacketStatsV3
    {
        public uint Packets;
        public uint Drops;
        public uint FreezeCount;
    }
}
