using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using SafeKit.Native.Interop;

namespace SafeKit.Native.Netlink;

/// <summary>Chooses sockets by their peer: address (4 or 16 bytes) and port.</summary>
public delegate bool PeerFilter(ReadOnlySpan<byte> address, ushort port);

/// <summary>Receives one socket: local and peer address (4 or 16 bytes) and port.</summary>
public delegate void SocketVisitor(ReadOnlySpan<byte> local, ushort localPort, ReadOnlySpan<byte> peer, ushort peerPort);

/// <summary>
/// The kernel's TCP sockets on given local addresses, through the sock_diag netlink interface
/// (CAP_NET_ADMIN to destroy). Two uses: a node that adopts the connections of a dead node may hold
/// TIME_WAIT sockets for the same 4-tuples (from connections it closed itself earlier, when the
/// client port was used before) — such a socket answers the orphan's segments with bare ACKs
/// instead of the reset that tells the client at once, so they are destroyed; and a draining node
/// learns which of its pinned connections still exist in its stack.
/// </summary>
public static unsafe class TcpSocketTable
{
    private const int NetlinkSockDiag = 4;
    private const ushort SockDiagByFamily = 20;
    private const ushort SockDestroy = 21;
    private const ushort NlmsgError = 2;
    private const ushort NlmsgDone = 3;
    private const ushort NlmFRequest = 0x1;
    private const ushort NlmFAck = 0x4;
    private const ushort NlmFDump = 0x300;
    private const int TcpTimeWait = 6;

    /// <summary>Every state in which a connection still exists (all but TIME_WAIT, CLOSE and LISTEN).</summary>
    private const uint LiveStates = (1u << 1) | (1u << 2) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 8) | (1u << 9) | (1u << 11) | (1u << 12);
    private const int HeaderLength = 16;
    private const int RequestLength = HeaderLength + 56;
    private const int SockIdOffset = 4;
    private const int SockIdLength = 48;

    /// <summary>
    /// Destroys the TIME_WAIT sockets whose local address is one of <paramref name="localAddresses"/>
    /// and whose peer <paramref name="select"/> chooses.
    /// </summary>
    /// <returns>How many were destroyed.</returns>
    /// <exception cref="NativeException">The netlink socket failed (no CAP_NET_ADMIN, no sock_diag).</exception>
    public static int DestroyTimeWait(IReadOnlyCollection<IPAddress> localAddresses, PeerFilter select)
    {
        ArgumentNullException.ThrowIfNull(localAddresses);
        ArgumentNullException.ThrowIfNull(select);
        var destroyed = 0;
        foreach (var family in localAddresses.Select(a => a.AddressFamily).Distinct())
        {
            var locals = localAddresses.Where(a => a.AddressFamily == family).Select(a => a.GetAddressBytes()).ToList();
            var linuxFamily = (byte)(family == AddressFamily.InterNetwork ? 2 : 10);
            using var socket = Open();
            var victims = new List<byte[]>();
            Dump(socket, linuxFamily, 1u << TcpTimeWait, locals, (id, local, localPort, peer, peerPort) =>
            {
                if (select(peer, peerPort))
                {
                    victims.Add(id.ToArray());
                }
            });
            foreach (var id in victims)
            {
                destroyed += DestroyOne(socket, linuxFamily, id) ? 1 : 0;
            }
        }

        return destroyed;
    }

    /// <summary>Visits every connection that still exists (not TIME_WAIT) on <paramref name="localAddresses"/>.</summary>
    /// <exception cref="NativeException">The netlink socket failed.</exception>
    public static void ForEachLive(IReadOnlyCollection<IPAddress> localAddresses, SocketVisitor visit)
    {
        ArgumentNullException.ThrowIfNull(localAddresses);
        ArgumentNullException.ThrowIfNull(visit);
        foreach (var family in localAddresses.Select(a => a.AddressFamily).Distinct())
        {
            var locals = localAddresses.Where(a => a.AddressFamily == family).Select(a => a.GetAddressBytes()).ToList();
            using var socket = Open();
            Dump(socket, (byte)(family == AddressFamily.InterNetwork ? 2 : 10), LiveStates, locals, (_, local, localPort, peer, peerPort) => visit(local, localPort, peer, peerPort));
        }
    }

    private delegate void RawVisitor(ReadOnlySpan<byte> id, ReadOnlySpan<byte> local, ushort localPort, ReadOnlySpan<byte> peer, ushort peerPort);

    private static FileDescriptorHandle Open()
    {
        const int AfNetlink = 16;
        const int SockRaw = 3;
        const int SockCloexec = 0x80000;
        var fd = Libc.Socket(AfNetlink, SockRaw | SockCloexec, NetlinkSockDiag);
        if (fd < 0)
        {
            throw NativeException.FromLastError("socket(AF_NETLINK, NETLINK_SOCK_DIAG)");
        }

        var handle = new FileDescriptorHandle(fd);
        // Callers hold locks: an answer that never comes must not hold them forever.
        const int SolSocket = 1;
        const int SoRcvTimeo = 20;
        var timeout = stackalloc long[2] { 1, 0 };
        if (Libc.SetSockOpt(fd, SolSocket, SoRcvTimeo, timeout, 16) < 0)
        {
            handle.Dispose();
            throw NativeException.FromLastError("setsockopt(SO_RCVTIMEO)");
        }

        return handle;
    }

    private static void Dump(FileDescriptorHandle socket, byte family, uint states, List<byte[]> locals, RawVisitor visit)
    {
        Span<byte> request = stackalloc byte[RequestLength];
        WriteRequest(request, SockDiagByFamily, NlmFRequest | NlmFDump, family, states, default);
        Send(socket, request);
        var addressLength = family == 2 ? 4 : 16;
        var buffer = new byte[64 * 1024];
        while (true)
        {
            var length = Receive(socket, buffer);
            for (var at = 0; at + HeaderLength <= length;)
            {
                var messageLength = (int)BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(at));
                if (messageLength < HeaderLength || at + messageLength > length)
                {
                    throw new NativeException("sock_diag dump: a malformed netlink message");
                }

                var message = buffer.AsSpan(at, messageLength);
                var type = BinaryPrimitives.ReadUInt16LittleEndian(message[4..]);
                if (type == NlmsgDone)
                {
                    return;
                }

                if (type == NlmsgError)
                {
                    throw new NativeException("sock_diag dump", -BinaryPrimitives.ReadInt32LittleEndian(message[HeaderLength..]));
                }

                var id = message.Slice(HeaderLength + SockIdOffset, SockIdLength);
                var local = id.Slice(4, addressLength);
                var peer = id.Slice(20, addressLength);
                var peerPort = BinaryPrimitives.ReadUInt16BigEndian(id[2..]);
                if ((states & (1u << message[HeaderLength + 1])) != 0 && IsLocal(locals, local))
                {
                    visit(id, local, BinaryPrimitives.ReadUInt16BigEndian(id), peer, peerPort);
                }

                at += (messageLength + 3) & ~3;
            }
        }
    }

    private static bool IsLocal(List<byte[]> locals, ReadOnlySpan<byte> address)
    {
        foreach (var local in locals)
        {
            if (address.SequenceEqual(local))
            {
                return true;
            }
        }

        return false;
    }

    private static bool DestroyOne(FileDescriptorHandle socket, byte family, byte[] id)
    {
        Span<byte> request = stackalloc byte[RequestLength];
        WriteRequest(request, SockDestroy, NlmFRequest | NlmFAck, family, 1u << TcpTimeWait, id);
        Send(socket, request);
        var buffer = new byte[4096];
        var length = Receive(socket, buffer);
        if (length < HeaderLength + 4 || BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(4)) != NlmsgError)
        {
            return false;
        }

        var error = -BinaryPrimitives.ReadInt32LittleEndian(buffer.AsSpan(HeaderLength));
        const int ENoEnt = 2;
        // Gone meanwhile (it expired): nothing to do. Anything else (EOPNOTSUPP: a kernel without
        // CONFIG_INET_DIAG_DESTROY, EPERM) is worth telling.
        return error switch
        {
            0 => true,
            ENoEnt => false,
            _ => throw new NativeException("sock_diag destroy", error),
        };
    }

    private static void WriteRequest(Span<byte> request, ushort type, ushort flags, byte family, uint states, ReadOnlySpan<byte> id)
    {
        request.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(request, (uint)request.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(request[4..], type);
        BinaryPrimitives.WriteUInt16LittleEndian(request[6..], flags);
        request[HeaderLength] = family;
        request[HeaderLength + 1] = (byte)ProtocolType.Tcp;
        BinaryPrimitives.WriteUInt32LittleEndian(request[(HeaderLength + 4)..], states);
        id.CopyTo(request[(HeaderLength + 8)..]);
    }

    private static void Send(FileDescriptorHandle socket, ReadOnlySpan<byte> request)
    {
        fixed (byte* p = request)
        {
            if (Libc.SendTo(socket.Fd, p, (nuint)request.Length, 0, null, 0) < 0)
            {
                throw NativeException.FromLastError("send(sock_diag)");
            }
        }
    }

    private static int Receive(FileDescriptorHandle socket, byte[] buffer)
    {
        fixed (byte* p = buffer)
        {
            var length = Libc.Recv(socket.Fd, p, (nuint)buffer.Length, 0);
            return length < 0 ? throw NativeException.FromLastError("recv(sock_diag)") : (int)length;
        }
    }
}
