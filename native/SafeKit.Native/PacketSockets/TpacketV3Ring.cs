using System.Runtime.InteropServices;
using SafeKit.Native.Interop;

namespace SafeKit.Native.PacketSockets;

/// <summary>
/// A TPACKET_V3 receive ring mapped into this process. The kernel fills blocks of variable-size
/// frames and hands each block over whole (when full or after the retire timeout); the reader walks
/// its frames in place and gives the block back. One reader thread per ring.
/// </summary>
public sealed unsafe class TpacketV3Ring : IDisposable
{
    private const int SolPacket = 263;
    private const int PacketRxRing = 5;
    private const uint StatusKernel = 0;
    private const uint StatusUser = 1;
    private const int BlockStatusOffset = 8;
    private const int FrameSize = 2048;

    private readonly byte* _base;
    private readonly nuint _length;
    private readonly int _blockSize;
    private readonly int _blockCount;
    private readonly bool _vnetHeader;
    private int _current;
    private bool _disposed;

    private TpacketV3Ring(byte* mapped, nuint length, int blockSize, int blockCount, bool vnetHeader)
    {
        _base = mapped;
        _length = length;
        _blockSize = blockSize;
        _blockCount = blockCount;
        _vnetHeader = vnetHeader;
    }

    /// <summary>Largest frame the ring can hold whole (GSO super-packets included).</summary>
    public int MaxFrameLength => _blockSize - 64;

    internal static TpacketV3Ring Create(int fd, RingGeometry geometry, bool vnetHeader)
    {
        if (geometry.BlockSize % Environment.SystemPageSize != 0 || geometry.BlockSize < 4 * FrameSize)
        {
            throw new ArgumentException($"ring block size {geometry.BlockSize} must be a multiple of the page size and at least {4 * FrameSize}", nameof(geometry));
        }

        var request = new TpacketReq3
        {
            BlockSize = (uint)geometry.BlockSize,
            BlockCount = (uint)geometry.BlockCount,
            FrameSize = FrameSize,
            FrameCount = (uint)(geometry.BlockSize / FrameSize * geometry.BlockCount),
            RetireBlockTimeout = (uint)geometry.RetireTimeoutMilliseconds,
        };
        if (Libc.SetSockOpt(fd, SolPacket, PacketRxRing, &request, (uint)sizeof(TpacketReq3)) != 0)
        {
            throw NativeException.FromLastError("setsockopt(PACKET_RX_RING)");
        }

        var length = (nuint)geometry.BlockSize * (nuint)geometry.BlockCount;
        var mapped = Libc.Mmap(null, length, Libc.ProtRead | Libc.ProtWrite, Libc.MapShared | Libc.MapPopulate, fd, 0);
        if (mapped == Libc.MapFailed)
        {
            throw NativeException.FromLastError("mmap(PACKET_RX_RING)");
        }

        return new TpacketV3Ring((byte*)mapped, length, geometry.BlockSize, geometry.BlockCount, vnetHeader);
    }

    /// <summary>Takes the next block if the kernel has handed it over.</summary>
    public bool TryAcquire(out RingBlock block)
    {
        var descriptor = _base + ((nuint)_current * (nuint)_blockSize);
        var status = Volatile.Read(ref *(uint*)(descriptor + BlockStatusOffset));
        if ((status & StatusUser) == 0)
        {
            block = default;
            return false;
        }

        block = new RingBlock(descriptor, _vnetHeader);
        return true;
    }

    /// <summary>Gives the block taken by <see cref="TryAcquire"/> back to the kernel.</summary>
    public void Release()
    {
        var descriptor = _base + ((nuint)_current * (nuint)_blockSize);
        Volatile.Write(ref *(uint*)(descriptor + BlockStatusOffset), StatusKernel);
        _current = _current + 1 == _blockCount ? 0 : _current + 1;
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _ = Libc.Munmap(_base, _length);
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct TpacketReq3
    {
        public uint BlockSize;
        public uint BlockCount;
        public uint FrameSize;
        public uint FrameCount;
        public uint RetireBlockTimeout;
        public uint SizeofPriv;
        public uint FeatureRequestWord;
    }
}

/// <summary>A block of frames owned by user space until released.</summary>
public readonly unsafe ref struct RingBlock
{
    private readonly byte* _descriptor;
    private readonly bool _vnetHeader;

    internal RingBlock(byte* descriptor, bool vnetHeader)
    {
        _descriptor = descriptor;
        _vnetHeader = vnetHeader;
    }

    /// <summary>Number of frames in the block.</summary>
    public int FrameCount => (int)*(uint*)(_descriptor + 12);

    public Enumerator GetEnumerator() => new(_descriptor, _vnetHeader);

    /// <summary>Walks the frames of a block in arrival order.</summary>
    public ref struct Enumerator
    {
        private readonly bool _vnetHeader;
        private byte* _next;
        private byte* _current;
        private uint _remaining;

        internal Enumerator(byte* descriptor, bool vnetHeader)
        {
            _vnetHeader = vnetHeader;
            _remaining = *(uint*)(descriptor + 12);
            _next = descriptor + *(uint*)(descriptor + 16);
            _current = null;
        }

        public readonly RingFrame Current => new(_current, _vnetHeader);

        public bool MoveNext()
        {
            if (_remaining == 0)
            {
                return false;
            }

            _current = _next;
            _next = _current + *(uint*)_current;
            _remaining--;
            return true;
        }
    }
}

/// <summary>
/// One captured frame inside a ring block (struct tpacket3_hdr followed by the frame, with the
/// virtio_net_hdr just before the frame when requested).
/// </summary>
public readonly unsafe ref struct RingFrame
{
    /// <summary>The kernel only filled the pseudo-header part of the L4 checksum.</summary>
    public const uint StatusChecksumNotReady = 0x8;

    /// <summary><see cref="VlanTci"/> holds a tag the NIC removed from the frame.</summary>
    public const uint StatusVlanValid = 0x10;

    /// <summary>The kernel or NIC verified the L4 checksum.</summary>
    public const uint StatusChecksumValid = 0x80;

    private readonly byte* _header;
    private readonly bool _vnetHeader;

    internal RingFrame(byte* header, bool vnetHeader)
    {
        _header = header;
        _vnetHeader = vnetHeader;
    }

    /// <summary>Captured bytes, starting with the Ethernet header.</summary>
    public Span<byte> Frame => new(_header + *(ushort*)(_header + 24), (int)CapturedLength);

    /// <summary>Bytes captured (less than <see cref="WireLength"/> when the frame did not fit).</summary>
    public uint CapturedLength => *(uint*)(_header + 12);

    /// <summary>Length of the frame on the wire.</summary>
    public uint WireLength => *(uint*)(_header + 16);

    /// <summary>tp_status flags of this frame.</summary>
    public uint Status => *(uint*)(_header + 20);

    /// <summary>VLAN tag removed by the NIC, valid when <see cref="StatusVlanValid"/> is set.</summary>
    public ushort VlanTci => (ushort)*(uint*)(_header + 32);

    /// <summary>True when a virtio_net_hdr precedes the frame.</summary>
    public bool HasVnetHeader => _vnetHeader;

    /// <summary>The virtio_net_hdr the kernel wrote before the frame.</summary>
    public ref VirtioNetHeader VnetHeader => ref *(VirtioNetHeader*)(_header + *(ushort*)(_header + 24) - VirtioNetHeader.Size);
}
