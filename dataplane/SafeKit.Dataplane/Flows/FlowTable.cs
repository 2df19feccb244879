using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace SafeKit.Dataplane.Flows;

/// <summary>
/// The flows one worker has seen, for connection pinning: which node accepted each (this one or
/// not), when it was last seen, whether the client is closing it. Open addressing with linear
/// probing and backward-shift deletion over one preallocated array of entries (one cache line
/// each): no allocation, bounded memory; a full table refuses new flows (counted) rather than
/// growing. Single-threaded (its worker).
/// </summary>
[SkipLocalsInit]
public sealed class FlowTable
{
    public const byte Mine = 1;
    public const byte Closing = 2;
    private const byte Used = 0x80;

    private readonly Entry[] _entries;
    private readonly int _mask;
    private readonly int _limit;

    public FlowTable(int capacity)
    {
        var slots = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(16, capacity * 4 / 3));
        _entries = GC.AllocateArray<Entry>(slots, pinned: false);
        _mask = slots - 1;
        _limit = capacity;
    }

    public int Count { get; private set; }

    /// <summary>Flows not recorded because the table was full (since start).</summary>
    public long Refused { get; private set; }

    /// <summary>Slot of <paramref name="key"/>, or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Find(in FlowKey key)
    {
        var slot = (int)(key.Mix() & (uint)_mask);
        while (true)
        {
            ref var entry = ref _entries[slot];
            if ((entry.Flags & Used) == 0)
            {
                return -1;
            }

            if (entry.Key == key)
            {
                return slot;
            }

            slot = (slot + 1) & _mask;
        }
    }

    /// <summary>
    /// Slot of <paramref name="key"/>; when absent it is recorded first (with <paramref name="mine"/>),
    /// and <paramref name="inserted"/> says so. -1 when absent and the table is full.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int FindOrInsert(in FlowKey key, int bucket, bool mine, long now, out bool inserted)
    {
        var slot = (int)(key.Mix() & (uint)_mask);
        while (true)
        {
            ref var entry = ref _entries[slot];
            if ((entry.Flags & Used) == 0)
            {
                inserted = true;
                return Claim(slot, key, bucket, mine, now);
            }

            if (entry.Key == key)
            {
                inserted = false;
                return slot;
            }

            slot = (slot + 1) & _mask;
        }
    }

    /// <summary>Records a flow (or restarts it: a new SYN on the same ports). Returns its slot, or -1 when full.</summary>
    public int Insert(in FlowKey key, int bucket, bool mine, long now)
    {
        var slot = FindOrInsert(key, bucket, mine, now, out var inserted);
        if (slot >= 0 && !inserted)
        {
            ref var entry = ref _entries[slot];
            entry.Bucket = (ushort)bucket;
            entry.Flags = (byte)(Used | (mine ? Mine : 0));
            entry.LastSeen = now;
        }

        return slot;
    }

    public bool IsMine(int slot) => (_entries[slot].Flags & Mine) != 0;

    public bool IsClosing(int slot) => (_entries[slot].Flags & Closing) != 0;

    public int BucketOf(int slot) => _entries[slot].Bucket;

    public long LastSeen(int slot) => _entries[slot].LastSeen;

    public void Touch(int slot, long now) => _entries[slot].LastSeen = now;

    public void MarkClosing(int slot, long now)
    {
        ref var entry = ref _entries[slot];
        entry.Flags |= Closing;
        entry.LastSeen = now;
    }

    /// <summary>Visits every flow; the visitor returns false to remove it.</summary>
    public void Sweep<TVisitor>(ref TVisitor visitor)
        where TVisitor : struct, IFlowVisitor
    {
        var slot = 0;
        while (slot <= _mask)
        {
            ref var entry = ref _entries[slot];
            if ((entry.Flags & Used) != 0 && !visitor.Keep(slot, entry.Key, entry.Bucket, (byte)(entry.Flags & ~Used), entry.LastSeen))
            {
                RemoveAt(slot);
                // The backward shift may have moved another entry into this slot: look again.
                continue;
            }

            slot++;
        }
    }

    private int Claim(int slot, in FlowKey key, int bucket, bool mine, long now)
    {
        if (Count >= _limit)
        {
            Refused++;
            return -1;
        }

        ref var entry = ref _entries[slot];
        entry.Key = key;
        entry.Bucket = (ushort)bucket;
        entry.Flags = (byte)(Used | (mine ? Mine : 0));
        entry.LastSeen = now;
        Count++;
        return slot;
    }

    private void RemoveAt(int slot)
    {
        _entries[slot].Flags = 0;
        Count--;
        var hole = slot;
        var next = (slot + 1) & _mask;
        while ((_entries[next].Flags & Used) != 0)
        {
            var home = (int)(_entries[next].Key.Mix() & (uint)_mask);
            // Move the entry back if its home is not in (hole, next] (cyclically).
            var moveBack = hole <= next ? home <= hole || home > next : home <= hole && home > next;
            if (moveBack)
            {
                _entries[hole] = _entries[next];
                _entries[next].Flags = 0;
                hole = next;
            }

            next = (next + 1) & _mask;
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Entry
    {
        public FlowKey Key;
        public long LastSeen;
        public ushort Bucket;
        public byte Flags;
    }
}

/// <summary>Decides, during a sweep, whether a flow stays.</summary>
public interface IFlowVisitor
{
    bool Keep(int slot, in FlowKey key, int bucket, byte flags, long lastSeen);
}
