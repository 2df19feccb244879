using System.Buffers.Binary;

namespace SafeKit.Native.Fuse;

/// <summary>
/// What PRIM's file system changed, as sent to SECOND. Nodes and open files are named by PRIM's
/// ids (node ids, file handles): SECOND keeps its own descriptor for each, so an operation means
/// exactly what it meant on PRIM — also for renamed directories, hard links and files unlinked
/// while open — without resolving paths again.
/// </summary>
public enum MutationKind : byte
{
    /// <summary>A node PRIM found by name: (parent, id, name). Sent before anything uses the id.</summary>
    Bind = 1,

    /// <summary>PRIM no longer uses the id: (id).</summary>
    Forget = 2,

    /// <summary>(parent, id, mode, rdev, uid, gid, name).</summary>
    Mknod = 3,

    /// <summary>(parent, id, mode, uid, gid, name).</summary>
    Mkdir = 4,

    /// <summary>(parent, id, uid, gid, name, target).</summary>
    Symlink = 5,

    /// <summary>(parent, name).</summary>
    Unlink = 6,

    /// <summary>(parent, name).</summary>
    Rmdir = 7,

    /// <summary>(parent, new parent, flags, name, new name).</summary>
    Rename = 8,

    /// <summary>(id, new parent, name).</summary>
    Link = 9,

    /// <summary>(id, handle, flags): O_TRUNC makes it a change; SECOND needs the handle for what follows.</summary>
    Open = 10,

    /// <summary>(parent, id, handle, flags, mode, uid, gid, name).</summary>
    Create = 11,

    /// <summary>(handle, offset, data): the offset actually written (O_APPEND resolved).</summary>
    Write = 12,

    /// <summary>(handle).</summary>
    Release = 13,

    /// <summary>(id, handle or -1, to_set, mode, uid, gid, size, atime, mtime): times as they resulted on PRIM.</summary>
    Setattr = 14,

    /// <summary>(handle, datasync): durable on SECOND before the ack.</summary>
    Fsync = 15,

    /// <summary>(id): the directory durable on SECOND before the ack.</summary>
    Fsyncdir = 16,

    /// <summary>(id, flags, name, value).</summary>
    Setxattr = 17,

    /// <summary>(id, name).</summary>
    Removexattr = 18,

    /// <summary>(handle, mode, offset, length).</summary>
    Fallocate = 19,

    /// <summary>(handle in, offset in, handle out, offset out, length copied on PRIM, flags).</summary>
    CopyFileRange = 20,

    /// <summary>
    /// (id, deleted, path): a node PRIM already held when SECOND attached, by its path from the
    /// data directory — or, deleted but still open, a file of its own with no name.
    /// </summary>
    BindPath = 21,

    /// <summary>
    /// (): SECOND starts making its whole copy durable (syncfs, in the background) and answers
    /// once the previous checkpoint's syncfs is done — so the answer to checkpoint N says every
    /// change sent before checkpoint N−1 is durable on SECOND, and PRIM's journal may forget them.
    /// </summary>
    Checkpoint = 22,
}

/// <summary>Writes a mutation's fields (little-endian; names and values length-prefixed) into a span.</summary>
public ref struct MutationWriter
{
    private readonly Span<byte> _buffer;

    public MutationWriter(Span<byte> buffer)
    {
        _buffer = buffer;
        Length = 0;
    }

    public int Length { get; private set; }

    public ReadOnlySpan<byte> Written => _buffer[..Length];

    public void U64(ulong value)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(_buffer[Length..], value);
        Length += 8;
    }

    public void I64(long value) => U64((ulong)value);

    public void U32(uint value)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(_buffer[Length..], value);
        Length += 4;
    }

    public void I32(int value) => U32((uint)value);

    public void Bytes(ReadOnlySpan<byte> value)
    {
        U32((uint)value.Length);
        value.CopyTo(_buffer[Length..]);
        Length += value.Length;
    }
}

/// <summary>Reads what <see cref="MutationWriter"/> wrote; a short record throws <see cref="FormatException"/>.</summary>
public ref struct MutationReader
{
    private readonly ReadOnlySpan<byte> _buffer;
    private int _position;

    public MutationReader(ReadOnlySpan<byte> buffer)
    {
        _buffer = buffer;
        _position = 0;
    }

    /// <summary>What follows the fields read so far (a write's data).</summary>
    public readonly ReadOnlySpan<byte> Rest => _buffer[_position..];

    public ulong U64()
    {
        Need(8);
        var value = BinaryPrimitives.ReadUInt64LittleEndian(_buffer[_position..]);
        _position += 8;
        return value;
    }

    public long I64() => (long)U64();

    public uint U32()
    {
        Need(4);
        var value = BinaryPrimitives.ReadUInt32LittleEndian(_buffer[_position..]);
        _position += 4;
        return value;
    }

    public int I32() => (int)U32();

    public ReadOnlySpan<byte> Bytes()
    {
        var length = (int)U32();
        Need(length);
        var value = _buffer.Slice(_position, length);
        _position += length;
        return value;
    }

    private readonly void Need(int count)
    {
        if (count < 0 || _buffer.Length - _position < count)
        {
            throw new FormatException("truncated mutation record");
        }
    }
}

/// <summary>Where PRIM's file system sends what it changed (the replication channel, or nothing).</summary>
public interface IReplicationSink
{
    /// <summary>
    /// Queues a change, in the order the file system made it (called under its sequencing lock, so
    /// it must not block long: back-pressure only). <paramref name="record"/> and
    /// <paramref name="data"/> are only valid during the call.
    /// </summary>
    /// <param name="durable">SECOND must make it durable before acknowledging (fsync and O_SYNC writes).</param>
    /// <param name="changes">It changes files (false for bookkeeping: binds, forgets, plain opens, releases).</param>
    ReplicationTicket Enqueue(MutationKind kind, ReadOnlySpan<byte> record, ReadOnlySpan<byte> data, bool durable, bool changes);

    /// <summary>
    /// A change already queued did not happen here (PRIM's own disk refused a write sent ahead of
    /// it): SECOND's copy no longer matches this one, so it must stop counting as up to date.
    /// </summary>
    void Diverged(string reason);
}

/// <summary>A queued change: wait on it (when the mode asks to) before answering the application.</summary>
public readonly struct ReplicationTicket : IEquatable<ReplicationTicket>
{
    private readonly ValueTask _completion;

    public ReplicationTicket(ValueTask completion, bool mustWait)
    {
        _completion = completion;
        MustWait = mustWait;
    }

    /// <summary>Nothing to wait for (no sink, or a change the mode lets go ahead).</summary>
    public static ReplicationTicket None => default;

    /// <summary>The application's call returns only once SECOND acknowledged (or was given up).</summary>
    public bool MustWait { get; }

    /// <summary>Blocks the calling (libfuse) thread until the change is acknowledged or given up.</summary>
    public void Wait()
    {
        if (MustWait && !_completion.IsCompleted)
        {
            TicketWaiter.Current.Wait(_completion);
        }
        else if (MustWait)
        {
            _completion.GetAwaiter().GetResult();
        }
    }

    /// <summary>The application's call must still wait: SECOND has not acknowledged yet.</summary>
    public bool IsPending => MustWait && !_completion.IsCompleted;

    /// <summary>
    /// Runs <paramref name="continuation"/> once the change is acknowledged or given up, on the
    /// thread that completes it (PRIM's receive thread, for an acknowledgement): keep it short,
    /// and call <see cref="Observe"/> in it.
    /// </summary>
    public void OnCompleted(Action continuation) => _completion.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(continuation);

    /// <summary>Takes the result of a completed ticket (once).</summary>
    public void Observe() => _completion.GetAwaiter().GetResult();

    /// <summary>
    /// The acknowledgement itself, to await once (for a caller that is not answering the
    /// application). Its continuation runs on the thread pool: an acknowledgement completes on
    /// the thread that reads them, which must not run the caller's code.
    /// </summary>
    public async ValueTask AsValueTask()
    {
        await _completion;
        await Task.Yield();
    }

    public bool Equals(ReplicationTicket other) => _completion.Equals(other._completion) && MustWait == other.MustWait;

    public override bool Equals(object? obj) => obj is ReplicationTicket other && Equals(other);

    public override int GetHashCode() => HashCode.Combine(_completion, MustWait);

    public static bool operator ==(ReplicationTicket left, ReplicationTicket right) => left.Equals(right);

    public static bool operator !=(ReplicationTicket left, ReplicationTicket right) => !left.Equals(right);
}

/// <summary>
/// Blocks a libfuse worker until its change is acknowledged, without spinning first: on a small
/// machine the threads that carry the acknowledgement need the core a spinning waiter would hold
/// (a Task wait spins, yielding, before it sleeps). One per thread, reused: no allocation per wait.
/// </summary>
internal sealed class TicketWaiter
{
    [ThreadStatic]
    private static TicketWaiter? t_current;

    private readonly object _gate = new(); // Monitor.Wait needs a monitor, not a Lock.
    private readonly Action _signal;
    private bool _signaled;

    private TicketWaiter() => _signal = Signal;

    public static TicketWaiter Current => t_current ??= new TicketWaiter();

    public void Wait(ValueTask completion)
    {
        _signaled = false;
        // Runs where the completion completes, which then only wakes this thread.
        completion.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(_signal);
        lock (_gate)
        {
            while (!_signaled)
            {
                Monitor.Wait(_gate);
            }
        }

        completion.GetAwaiter().GetResult();
    }

    private void Signal()
    {
        lock (_gate)
        {
            _signaled = true;
            Monitor.Pulse(_gate);
        }
    }
}
