using System.Buffers;

namespace SafeKit.Replication.Channel;

/// <summary>
/// The buffers of one connection's pipes: 64 KiB blocks on the pinned object heap, reused.
/// <see cref="MemoryPool{T}.Shared"/> (the array pool) keeps only a few arrays per size, so with
/// megabytes in flight most segments were fresh arrays (a 1 MiB operation cost about its own size
/// in garbage); here a block freed by an ack is the next one written. The pool keeps what the
/// connection once used at its peak (at most the byte budget plus the receive window) and is
/// dropped with the connection.
/// </summary>
internal sealed class BlockPool : MemoryPool<byte>
{
    public const int BlockSize = 64 * 1024;

    private readonly Lock _lock = new();
    private readonly Stack<Block> _free = new();
    private readonly int _maxRetained;
    private bool _disposed;

    public BlockPool(long maxRetainedBytes) => _maxRetained = (int)Math.Min(int.MaxValue, (maxRetainedBytes / BlockSize) + 16);

    public override int MaxBufferSize => BlockSize;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, BlockSize);
        Block? block;
        lock (_lock)
        {
            _free.TryPop(out block);
        }

        block ??= new Block(this);
        block.Rented = true;
        return block;
    }

    protected override void Dispose(bool disposing)
    {
        lock (_lock)
        {
            _disposed = true;
            _free.Clear();
        }
    }

    private void Return(Block block)
    {
        lock (_lock)
        {
            if (!_disposed && _free.Count < _maxRetained)
            {
                _free.Push(block);
            }
        }
    }

    private sealed class Block(BlockPool pool) : IMemoryOwner<byte>
    {
        private readonly byte[] _array = GC.AllocateUninitializedArray<byte>(BlockSize, pinned: true);

        public bool Rented { get; set; }

        public Memory<byte> Memory => _array;

        public void Dispose()
        {
            // Once only: a block returned twice would be handed to two writers.
            if (Rented)
            {
                Rented = false;
                pool.Return(this);
            }
        }
    }
}
