using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Parsing;

namespace SafeKit.Dataplane.Fragments;

/// <summary>
/// Decides a fragmented datagram as a whole when the flow key needs ports that only the first
/// fragment carries. The first fragment's verdict is remembered per (source, destination,
/// protocol, identification); later fragments follow it. Fragments that overtake the first one
/// are copied aside (bounded memory) and released or discarded when it arrives.
/// All storage is preallocated: a flood of fragments that never complete evicts tracked datagrams
/// (pending ones first) and drops held fragments, it never grows memory. Thread-safe: capture
/// workers that share an interface share one tracker, because the fragments of one datagram can
/// reach different workers; the lock is only taken for fragments.
/// </summary>
[SkipLocalsInit]
public sealed class FragmentTracker
{
    /// <summary>Largest fragment that can be held back (jumbo fragments are dropped if early).</summary>
    public const int SlotSize = 2048;

    private const byte StateFree = 0;
    private const byte StatePending = 1;
    private const byte StateAccepted = 2;
    private const byte StateRejected = 3;
    private const int EvictionScan = 8;

    private readonly Entry[] _entries;
    private readonly int[] _heads;
    private readonly int _headMask;
    private readonly byte[] _slots;
    private readonly int[] _slotNext;
    private readonly int[] _slotLength;
    private readonly long _timeout;
    // A plain monitor: System.Threading.Lock allocated on this path in measurements (tier-up), Monitor does not.
    private readonly object _lock = new();
    private int _freeEntry;
    private int _freeSlot;
    private int _clock;
    private int _releaseHead = -1;

    public FragmentTracker(FragmentTrackerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxDatagrams, 1);
        _timeout = options.TimeoutMilliseconds;
        _entries = new Entry[options.MaxDatagrams];
        var headCount = (int)BitOperations.RoundUpToPowerOf2((uint)options.MaxDatagrams * 2);
        _heads = new int[headCount];
        _headMask = headCount - 1;
        Array.Fill(_heads, -1);
        for (var i = 0; i < _entries.Length; i++)
        {
            _entries[i].Next = i + 1 < _entries.Length ? i + 1 : -1;
            _entries[i].HeldHead = -1;
        }

        var slotCount = Math.Max(1, options.MaxHeldBytes / SlotSize);
        _slots = GC.AllocateArray<byte>(slotCount * SlotSize, pinned: true);
        _slotNext = new int[slotCount];
        _slotLength = new int[slotCount];
        for (var i = 0; i < slotCount; i++)
        {
            _slotNext[i] = i + 1 < slotCount ? i + 1 : -1;
        }
    }

    /// <summary>Datagrams currently tracked.</summary>
    public int TrackedCount { get; private set; }

    /// <summary>Fragments currently held back.</summary>
    public int HeldCount { get; private set; }

    /// <summary>Tracked datagrams dropped to make room (since start).</summary>
    public long Evictions { get; private set; }

    /// <summary>Held fragments discarded because their datagram was evicted or expired (since start).</summary>
    public long HeldDiscarded { get; private set; }

    /// <summary>Records the verdict of a datagram from its first fragment.</summary>
    /// <returns>Number of held fragments now waiting in <see cref="TryTakeReleased"/> (accept only).</returns>
    public int OnFirstFragment(ReadOnlySpan<byte> frame, in ParsedPacket packet, bool accept, long now)
    {
        var key = KeyOf(frame, packet);
        lock (_lock)
        {
            return RecordFirst(key, accept, now);
        }
    }

    /// <summary>Decides a fragment that carries no transport header.</summary>
    /// <returns>Accept or Reject when the datagram is decided; FragmentHeld or FragmentDropped otherwise.</returns>
    public Verdict OnLaterFragment(ReadOnlySpan<byte> frame, in ParsedPacket packet, long now)
    {
        var key = KeyOf(frame, packet);
        lock (_lock)
        {
            return DecideLater(key, frame[packet.L3Offset..packet.L3End], now);
        }
    }

    /// <summary>
    /// Copies the next held fragment (an IP datagram) released by an accepting first fragment into
    /// <paramref name="destination"/> (at least <see cref="SlotSize"/> bytes).
    /// </summary>
    public bool TryTakeReleased(Span<byte> destination, out int length)
    {
        lock (_lock)
        {
            if (_releaseHead < 0)
            {
                length = 0;
                return false;
            }

            var slot = _releaseHead;
            _releaseHead = _slotNext[slot];
            length = _slotLength[slot];
            _slots.AsSpan(slot * SlotSize, length).CopyTo(destination);
            _slotNext[slot] = _freeSlot;
            _freeSlot = slot;
            return true;
        }
    }

    private int RecordFirst(in FragmentKey key, bool accept, long now)
    {
        var index = Find(key, now);
        if (index < 0)
        {
            index = Insert(key, now);
        }

        ref var entry = ref _entries[index];
        entry.State = accept ? StateAccepted : StateRejected;
        entry.Expires = now + _timeout;
        var released = entry.HeldCount;
        if (released == 0)
        {
            return 0;
        }

        if (accept)
        {
            AppendToRelease(entry.HeldHead);
        }
        else
        {
            FreeSlots(entry.HeldHead);
            released = 0;
        }

        HeldCount -= entry.HeldCount;
        entry.HeldHead = -1;
        entry.HeldCount = 0;
        return released;
    }

    private Verdict DecideLater(in FragmentKey key, ReadOnlySpan<byte> datagram, long now)
    {
        var index = Find(key, now);
        if (index >= 0)
        {
            ref var found = ref _entries[index];
            if (found.State == StateAccepted)
            {
                return Verdict.Accept;
            }

            if (found.State == StateRejected)
            {
                return Verdict.Reject;
            }
        }
        else
        {
            index = Insert(key, now);
            _entries[index].State = StatePending;
            _entries[index].Expires = now + _timeout;
        }

        if (datagram.Length > SlotSize || _freeSlot < 0)
        {
            return Verdict.FragmentDropped;
        }

        var slot = _freeSlot;
        _freeSlot = _slotNext[slot];
        datagram.CopyTo(_slots.AsSpan(slot * SlotSize, SlotSize));
        _slotLength[slot] = datagram.Length;
        ref var entry = ref _entries[index];
        _slotNext[slot] = entry.HeldHead;
        entry.HeldHead = slot;
        entry.HeldCount++;
        HeldCount++;
        return Verdict.FragmentHeld;
    }

    private static FragmentKey KeyOf(ReadOnlySpan<byte> frame, in ParsedPacket packet)
    {
        var length = packet.AddressLength;
        return new FragmentKey(
            ReadAddress(frame.Slice(packet.SourceOffset, length)),
            ReadAddress(frame.Slice(packet.DestinationOffset, length)),
            packet.FragmentId,
            packet.Protocol,
            length);
    }

    private static UInt128 ReadAddress(ReadOnlySpan<byte> address) =>
        address.Length == 16 ? BinaryPrimitives.ReadUInt128BigEndian(address) : BinaryPrimitives.ReadUInt32BigEndian(address);

    private int Find(in FragmentKey key, long now)
    {
        var head = HeadOf(key);
        var previous = -1;
        var index = _heads[head];
        while (index >= 0)
        {
            ref var entry = ref _entries[index];
            if (entry.Key.Equals(key))
            {
                if (entry.Expires > now)
                {
                    return index;
                }

                Unlink(head, previous, index);
                Free(index);
                return -1;
            }

            previous = index;
            index = entry.Next;
        }

        return -1;
    }

    private int Insert(in FragmentKey key, long now)
    {
        if (_freeEntry < 0)
        {
            Evict(now);
        }

        var index = _freeEntry;
        ref var entry = ref _entries[index];
        _freeEntry = entry.Next;
        var head = HeadOf(key);
        entry.Key = key;
        entry.State = StatePending;
        entry.HeldHead = -1;
        entry.HeldCount = 0;
        entry.Next = _heads[head];
        _heads[head] = index;
        TrackedCount++;
        return index;
    }

    private void Evict(long now)
    {
        // Prefer an expired entry, then one still waiting for its first fragment (a flood never
        // sends first fragments), then whatever the clock hand points at.
        var victim = -1;
        var pending = -1;
        for (var i = 0; i < EvictionScan; i++)
        {
            var candidate = (_clock + i) % _entries.Length;
            ref var entry = ref _entries[candidate];
            if (entry.Expires <= now)
            {
                victim = candidate;
                break;
            }

            if (pending < 0 && entry.State == StatePending)
            {
                pending = candidate;
            }
        }

        if (victim < 0)
        {
            victim = pending >= 0 ? pending : _clock;
        }

        _clock = (victim + 1) % _entries.Length;
        var key = _entries[victim].Key;
        var head = HeadOf(key);
        var previous = -1;
        var index = _heads[head];
        while (index >= 0 && index != victim)
        {
            previous = index;
            index = _entries[index].Next;
        }

        Unlink(head, previous, victim);
        Free(victim);
        Evictions++;
    }

    private void Unlink(int head, int previous, int index)
    {
        if (previous < 0)
        {
            _heads[head] = _entries[index].Next;
        }
        else
        {
            _entries[previous].Next = _entries[index].Next;
        }
    }

    private void Free(int index)
    {
        ref var entry = ref _entries[index];
        if (entry.HeldCount > 0)
        {
            HeldDiscarded += entry.HeldCount;
            HeldCount -= entry.HeldCount;
            FreeSlots(entry.HeldHead);
        }

        entry.State = StateFree;
        entry.HeldHead = -1;
        entry.HeldCount = 0;
        entry.Expires = 0;
        entry.Next = _freeEntry;
        _freeEntry = index;
        TrackedCount--;
    }

    private void FreeSlots(int slot)
    {
        while (slot >= 0)
        {
            var next = _slotNext[slot];
            _slotNext[slot] = _freeSlot;
            _freeSlot = slot;
            slot = next;
        }
    }

    private void AppendToRelease(int slot)
    {
        // Held fragments are chained newest first; order does not matter to reassembly.
        while (slot >= 0)
        {
            var next = _slotNext[slot];
            _slotNext[slot] = _releaseHead;
            _releaseHead = slot;
            slot = next;
        }
    }

    private int HeadOf(in FragmentKey key) => (int)(key.Mix() & (uint)_headMask);

    private struct Entry
    {
        public FragmentKey Key;
        public long Expires;
        public int Next;
        public int HeldHead;
        public int HeldCount;
        public byte State;
    }

    private readonly record struct FragmentKey(UInt128 Source, UInt128 Destination, uint Id, byte Protocol, byte AddressLength)
    {
        public ulong Mix()
        {
            var x = (ulong)Source ^ (ulong)(Source >> 64) ^ ((ulong)Destination * 0x9e3779b97f4a7c15UL)
                ^ ((ulong)(Destination >> 64) << 1) ^ ((ulong)Id << 32) ^ ((ulong)Protocol << 8) ^ AddressLength;
            x ^= x >> 33;
            x *= 0xff51afd7ed558ccdUL;
            x ^= x >> 33;
            return x;
        }
    }
}
