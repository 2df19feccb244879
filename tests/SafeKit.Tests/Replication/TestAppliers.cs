using System.Buffers;
using System.Buffers.Binary;
using SafeKit.Replication.Channel;

namespace SafeKit.Tests.Replication;

/// <summary>Returns 0 for everything and remembers nothing: the cheapest applier.</summary>
internal sealed class NullApplier : IOperationApplier
{
    public int Apply(in ReplicationOp op) => 0;
}

/// <summary>Checks operations arrive in order and records what the channel passed on.</summary>
internal sealed class RecordingApplier : IOperationApplier
{
    private readonly Func<long, int> _status;
    private readonly Lock _lock = new();
    private readonly List<(long Sequence, byte Type, OpFlags Flags)> _ops = [];
    private long _expected = 1;

    public RecordingApplier(Func<long, int>? status = null) => _status = status ?? (_ => 0);

    /// <summary>Sequences out of order (must stay 0), and the first payload word of each op seen.</summary>
    public int OutOfOrder { get; private set; }

    public int WrongPayload { get; private set; }

    public IReadOnlyList<(long Sequence, byte Type, OpFlags Flags)> Ops
    {
        get
        {
            lock (_lock)
            {
                return [.. _ops];
            }
        }
    }

    public int Apply(in ReplicationOp op)
    {
        if (op.Sequence != _expected)
        {
            OutOfOrder++;
        }

        _expected = op.Sequence + 1;

        // Senders in these tests put the sequence in the first 8 payload bytes.
        if (op.Payload.Length >= 8)
        {
            Span<byte> first = stackalloc byte[8];
            op.Payload.Slice(0, 8).CopyTo(first);
            if (BinaryPrimitives.ReadInt64BigEndian(first) != op.Sequence)
            {
                WrongPayload++;
            }
        }

        lock (_lock)
        {
            _ops.Add((op.Sequence, op.Type, op.Flags));
        }

        return _status(op.Sequence);
    }
}

/// <summary>Blocks inside its first apply until released: a stuck disk, or a SECOND that stopped acking.</summary>
internal sealed class GateApplier : IOperationApplier, IDisposable
{
    private readonly ManualResetEventSlim _open = new(false);
    private readonly TaskCompletionSource _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task Entered => _entered.Task;

    public int Apply(in ReplicationOp op)
    {
        _entered.TrySetResult();
        _open.Wait(TimeSpan.FromSeconds(30));
        return 0;
    }

    public void Release() => _open.Set();

    public void Dispose()
    {
        _open.Set();
        _open.Dispose();
    }
}

/// <summary>Applies through <paramref name="inner"/>, except while held: SECOND's stream then stops there (a slow or stuck SECOND).</summary>
internal sealed class HoldingApplier(IOperationApplier inner) : IOperationApplier, IDisposable
{
    private readonly ManualResetEventSlim _open = new(true);

    public void Hold() => _open.Reset();

    public void Release() => _open.Set();

    public int Apply(in ReplicationOp op)
    {
        _open.Wait(TimeSpan.FromSeconds(30));
        return inner.Apply(op);
    }

    public void Dispose()
    {
        _open.Set();
        _open.Dispose();
    }
}

/// <summary>Sleeps a little per op and checks it sees the payload the sender made.</summary>
internal sealed class SlowApplier(TimeSpan delay) : IOperationApplier
{
    public long Applied { get; private set; }

    public int Apply(in ReplicationOp op)
    {
        Thread.Sleep(delay);
        Applied = op.Sequence;
        return 0;
    }
}

internal static class Payloads
{
    /// <summary>A payload whose first 8 bytes are <paramref name="sequence"/> (what <see cref="RecordingApplier"/> checks).</summary>
    public static byte[] For(long sequence, int length)
    {
        var bytes = new byte[Math.Max(length, 8)];
        BinaryPrimitives.WriteInt64BigEndian(bytes, sequence);
        return bytes;
    }

    public static byte[] Copy(in ReadOnlySequence<byte> payload) => payload.ToArray();
}
