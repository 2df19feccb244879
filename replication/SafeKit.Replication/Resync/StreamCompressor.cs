using System.Buffers;
using ZstdSharp;
using ZstdSharp.Unsafe;

namespace SafeKit.Replication.Resync;

/// <summary>
/// One direction of a resync connection compressed as a single zstd stream: each message is
/// flushed whole (the peer can decode it at once), and every message after the first is compressed
/// with the ones before it as context — names, modes and times that repeat from file to file cost
/// a few bytes instead of their full size, which a message compressed alone cannot achieve.
/// </summary>
internal sealed unsafe class StreamCompressor : IDisposable
{
    /// <summary>Fast: the stream carries metadata and file blocks at network speed.</summary>
    private const int Level = 1;

    /// <summary>What one compression step is given to write into at least (zstd's ZSTD_CStreamOutSize).</summary>
    private const int OutputStep = 128 * 1024;

    private readonly Lock _gate = new();
    private ZSTD_CCtx_s* _context;

    public StreamCompressor()
    {
        _context = Methods.ZSTD_createCCtx();
        if (_context is null)
        {
            throw new OutOfMemoryException("zstd could not allocate a compression context");
        }

        Check(Methods.ZSTD_CCtx_setParameter(_context, ZSTD_cParameter.ZSTD_c_compressionLevel, Level));
    }

    /// <summary>
    /// Compresses <paramref name="plain"/> into <paramref name="output"/>, flushed so the peer can
    /// decode everything written so far; returns the compressed bytes written.
    /// </summary>
    public long Write(ReadOnlySpan<byte> plain, IBufferWriter<byte> output, bool flush)
    {
        lock (_gate)
        {
            return Compress(plain, output, flush);
        }
    }

    private long Compress(ReadOnlySpan<byte> plain, IBufferWriter<byte> output, bool flush)
    {
        ObjectDisposedException.ThrowIf(_context is null, this);
        long written = 0;
        fixed (byte* source = plain)
        {
            var input = new ZSTD_inBuffer_s { src = source, size = (nuint)plain.Length, pos = 0 };
            var directive = flush ? ZSTD_EndDirective.ZSTD_e_flush : ZSTD_EndDirective.ZSTD_e_continue;
            nuint remaining;
            do
            {
                var span = output.GetSpan(OutputStep);
                fixed (byte* destination = span)
                {
                    var step = new ZSTD_outBuffer_s { dst = destination, size = (nuint)span.Length, pos = 0 };
                    remaining = Check(Methods.ZSTD_compressStream2(_context, &step, &input, directive));
                    output.Advance((int)step.pos);
                    written += (long)step.pos;
                }
            }
            while (input.pos < input.size || (flush && remaining != 0));
        }

        return written;
    }

    /// <summary>Frees the context; safe while another thread compresses (it waits for it).</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_context is not null)
            {
                Methods.ZSTD_freeCCtx(_context);
                _context = null;
            }
        }
    }

    private static nuint Check(nuint code) => Methods.ZSTD_isError(code)
        ? throw new ZstdException(ZSTD_ErrorCode.ZSTD_error_GENERIC, $"zstd stream compression failed: {Methods.ZSTD_getErrorName(code)}")
        : code;
}
