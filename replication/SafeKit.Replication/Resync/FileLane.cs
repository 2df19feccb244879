using System.IO.Hashing;
using System.Threading.Channels;
using Microsoft.Win32.SafeHandles;
using SafeKit.Native.Files;
using SafeKit.Native.Fuse;
using ZstdSharp;

namespace SafeKit.Replication.Resync;

/// <summary>A file whose content differs, with the target's hashes already asked or the ranges to send.</summary>
internal readonly record struct FileJob(string Path, TreeEntry Entry, long TargetSize, Task<UInt128[]>? Hashes, ByteRange[]? Ranges);

/// <summary>
/// One of a resync source's parallel streams, as it sends files: the files the pass hands it are
/// brought up to date one after the other (hashes compared, differing blocks sent), while the
/// other lanes do the same with theirs — on a node of several cores, or over a link one TCP
/// stream does not fill, the files travel side by side. A file stays on one lane for a pass, so
/// its data messages arrive in order.
/// </summary>
internal sealed class FileLane : IAsyncDisposable
{
    private const int DataMessageBytes = 1024 * 1024;

    private readonly string _root;
    private readonly ResyncStatistics _statistics;
    private readonly Compressor _compressor = new(1);
    private readonly byte[] _block = new byte[ResyncSource.BlockSize];
    private readonly byte[] _packed = new byte[Compressor.GetCompressBound(ResyncSource.BlockSize)];
    private Channel<FileJob>? _jobs;
    private Task _working = Task.CompletedTask;
    private long _queuedBytes;

    public FileLane(string root, ResyncStream stream, ResyncStatistics statistics)
    {
        _root = root;
        Stream = stream;
        _statistics = statistics;
    }

    public ResyncStream Stream { get; }

    /// <summary>While a verify runs: where what it finds goes (shared by the lanes; nothing is sent then).</summary>
    private List<VerifyDifference>? _differences;

    /// <summary>Bytes of the files handed to this lane and not yet done: a new file goes to the lane with the least.</summary>
    public long QueuedBytes => Interlocked.Read(ref _queuedBytes);

    /// <summary>What a file weighs on a lane: its bytes, and a block's worth for its round trips (so small files spread too).</summary>
    private static long Cost(FileJob job) => Math.Max(job.Entry.Size, 0) + ResyncSource.BlockSize;

    /// <summary>Starts taking files for a pass; at most <paramref name="ahead"/> wait, the hashes of each already asked.</summary>
    /// <param name="differences">For a verify: where the files' differences go (nothing is sent).</param>
    public void Start(int ahead, List<VerifyDifference>? differences, CancellationToken cancellationToken)
    {
        _differences = differences;
        var jobs = System.Threading.Channels.Channel.CreateBounded<FileJob>(new BoundedChannelOptions(ahead) { SingleReader = true, SingleWriter = true });
        _jobs = jobs;
        _working = Task.Run(() => WorkAsync(jobs, cancellationToken), CancellationToken.None);
    }

    /// <summary>Asks the target's hashes of a file's first blocks (on this lane's stream, so they come back to it).</summary>
    public Task<UInt128[]> AskHashesAsync(string relative, CancellationToken cancellationToken) => HashesAsync(relative, 0, cancellationToken);

    /// <summary>Hands a file to this lane; waits while the lane has enough ahead of it.</summary>
    public async Task AddAsync(FileJob job, CancellationToken cancellationToken)
    {
        Interlocked.Add(ref _queuedBytes, Cost(job));
        try
        {
            await _jobs!.Writer.WriteAsync(job, cancellationToken);
        }
        catch (ChannelClosedException)
        {
            await _working; // The lane failed: its reason, not the closed channel's.
            throw;
        }
    }

    /// <summary>Ends the pass on this lane: every file handed to it is done and every data message it sent was applied.</summary>
    public async Task FinishPassAsync()
    {
        _jobs?.Writer.TryComplete();
        await _working;
        await Stream.CheckSentAsync(all: true);
    }

    /// <summary>After a failure elsewhere: stops taking files and waits for the lane to stop (its own failure, if any, is not the one to report).</summary>
    public async Task AbandonPassAsync()
    {
        _jobs?.Writer.TryComplete();
        await _working.ContinueWith(static _ => { }, TaskScheduler.Default);
    }

    private async Task WorkAsync(Channel<FileJob> jobs, CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var job in jobs.Reader.ReadAllAsync(cancellationToken))
            {
                await SyncFileAsync(job, cancellationToken);
                Interlocked.Add(ref _queuedBytes, -Cost(job));
            }
        }
        catch (Exception e)
        {
            // The pass must not wait for room on a lane that stopped.
            jobs.Writer.TryComplete(e);
            Interlocked.Exchange(ref _queuedBytes, 0);
            throw;
        }
    }

    private string Full(string relative) => Path.Join(_root, relative);

    /// <summary>Sends the blocks of one file the target lacks (or its ranges), then its size and metadata as listed.</summary>
    private async Task SyncFileAsync(FileJob job, CancellationToken cancellationToken)
    {
        var (relative, listed, targetSize, firstHashes, ranges) = job;
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(Full(relative), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            if (firstHashes is not null)
            {
                await firstHashes; // Its answer is on the way: take it, or a failure surfaces here.
            }

            return; // Removed since the listing: the next pass removes it there too.
        }

        using (handle)
        {
            _statistics.FileCompared();
            var size = RandomAccess.GetLength(handle);
            if (ranges is not null)
            {
                // If a rename put another file here since the listing, these bytes are its: the
                // rename is tracked, and the next pass compares this path whole.
                await SendRangesAsync(relative, handle, size, ranges, listed, cancellationToken);
                return;
            }

            var blocks = (size + ResyncSource.BlockSize - 1) / ResyncSource.BlockSize;
            UInt128[] theirs = firstHashes is null ? [] : await firstHashes;
            long theirsFrom = 0;
            var chunk = new BlockBatch();
            var differingBlocks = 0L;
            var firstDifference = -1L;
            try
            {
                for (long b = 0; b < blocks; b++)
                {
                    // Hashes are worth a round trip only where the target has data.
                    if (targetSize > 0 && b * ResyncSource.BlockSize < targetSize && b - theirsFrom >= theirs.Length && b > 0)
                    {
                        theirsFrom = b;
                        theirs = await HashesAsync(relative, b, cancellationToken);
                    }

                    var read = ResyncTarget.ReadFully(handle, _block, b * ResyncSource.BlockSize);
                    _statistics.Read(read);
                    var index = b - theirsFrom;
                    if (index < theirs.Length && XxHash128.HashToUInt128(_block.AsSpan(0, read)) == theirs[index])
                    {
                        continue;
                    }

                    if (_differences is not null)
                    {
                        differingBlocks++;
                        firstDifference = firstDifference < 0 ? b * ResyncSource.BlockSize : firstDifference;
                        continue;
                    }

                    chunk = await AddBlockAsync(relative, chunk, b * ResyncSource.BlockSize, read, cancellationToken);
                }

                if (_differences is { } found)
                {
                    if (differingBlocks > 0)
                    {
                        lock (found)
                        {
                            found.Add(new VerifyDifference(relative, string.Create(System.Globalization.CultureInfo.InvariantCulture, $"content: {differingBlocks} of {blocks} blocks of 64 KiB differ, the first at offset {firstDifference}")));
                        }
                    }

                    return;
                }

                await SendDataAsync(relative, chunk, last: listed with { Size = size }, cancellationToken);
            }
            finally
            {
                chunk.Dispose();
            }
        }
    }

    /// <summary>Sends a file's changed bytes (up to its size), then its size and metadata as listed.</summary>
    private async Task SendRangesAsync(string relative, SafeFileHandle handle, long size, ByteRange[] ranges, TreeEntry listed, CancellationToken cancellationToken)
    {
        _statistics.FileByRanges();
        var chunk = new BlockBatch();
        try
        {
            foreach (var (start, end) in ranges)
            {
                for (var offset = start; offset < Math.Min(end, size); offset += ResyncSource.BlockSize)
                {
                    var read = ResyncTarget.ReadFully(handle, _block, offset, (int)Math.Min(ResyncSource.BlockSize, Math.Min(end, size) - offset));
                    _statistics.Read(read);
                    chunk = await AddBlockAsync(relative, chunk, offset, read, cancellationToken);
                }
            }

            await SendDataAsync(relative, chunk, last: listed with { Size = size }, cancellationToken);
        }
        finally
        {
            chunk.Dispose();
        }
    }

    /// <summary>Adds the first <paramref name="read"/> bytes of <see cref="_block"/> at <paramref name="offset"/>; a full batch is sent, and a new one returned.</summary>
    private async Task<BlockBatch> AddBlockAsync(string relative, BlockBatch chunk, long offset, int read, CancellationToken cancellationToken)
    {
        // Inside a compressed stream a block travels raw: the stream compresses it, with the
        // blocks before it as context.
        var packed = Stream.CompressesWrites ? read : _compressor.Wrap(_block.AsSpan(0, read), _packed);
        chunk.Add(offset, _block.AsSpan(0, read), packed < read ? _packed.AsSpan(0, packed) : default);
        _statistics.BlockSent(read);
        if (chunk.Bytes < DataMessageBytes)
        {
            return chunk;
        }

        await SendDataAsync(relative, chunk, last: null, cancellationToken);
        chunk.Dispose();
        return new BlockBatch();
    }

    private async Task<UInt128[]> HashesAsync(string relative, long first, CancellationToken cancellationToken)
    {
        _statistics.HashesAsked();
        byte[] message;
        using (var request = new MessageWriter(ResyncMessageType.Hashes))
        {
            request.Body.Write(relative);
            request.Body.Write(ResyncSource.BlockSize);
            request.Body.Write(first);
            request.Body.Write(ResyncSource.HashesPerRequest);
            message = request.ToArray();
        }

        using var reader = ResyncStream.Check(await await Stream.SendAsync(message, cancellationToken), ResyncMessageType.Hashes, $"hashes of '{relative}'");
        _ = reader.Body.ReadInt64();
        var count = reader.Body.ReadInt32();
        var hashes = new UInt128[count];
        for (var i = 0; i < count; i++)
        {
            var low = reader.Body.ReadUInt64();
            var high = reader.Body.ReadUInt64();
            hashes[i] = new UInt128(high, low);
        }

        return hashes;
    }

    private async Task SendDataAsync(string relative, BlockBatch chunk, TreeEntry? last, CancellationToken cancellationToken)
    {
        byte[] message;
        using (var data = new MessageWriter(ResyncMessageType.Data))
        {
            data.Body.Write(relative);
            data.Body.Write(last is not null);
            data.Entry(last ?? default);
            data.Body.Write(chunk.Count);
            chunk.WriteTo(data.Body);
            message = data.ToArray();
        }

        await Stream.SendDataAsync(message, relative, cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        await AbandonPassAsync();
        _compressor.Dispose();
    }

    /// <summary>Blocks gathered for one data message.</summary>
    private sealed class BlockBatch : IDisposable
    {
        private readonly MemoryStream _bytes = new();
        private readonly BinaryWriter _writer;

        public BlockBatch()
        {
            _writer = new BinaryWriter(_bytes);
        }

        public int Count { get; private set; }

        public long Bytes => _bytes.Length;

        /// <summary>Adds a block: compressed when that is smaller (<paramref name="packed"/> non-empty), else raw.</summary>
        public void Add(long offset, ReadOnlySpan<byte> raw, ReadOnlySpan<byte> packed)
        {
            var stored = packed.IsEmpty ? raw : packed;
            _writer.Write(offset);
            _writer.Write(raw.Length);
            _writer.Write(stored.Length);
            _writer.Write(stored);
            Count++;
        }

        public void WriteTo(BinaryWriter destination)
        {
            _writer.Flush();
            destination.Write(_bytes.GetBuffer(), 0, (int)_bytes.Length);
        }

        public void Dispose()
        {
            _writer.Dispose();
            _bytes.Dispose();
        }
    }
}
