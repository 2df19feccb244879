using System.Buffers;
using ZstdSharp;
using ZstdSharp.Unsafe;

namespace SafeKit.Replication.Resync;

/// <summary>The reading end of a <see cref="StreamCompressor"/>: one zstd stream per connection direction.</summary>
internal sealed unsafe class StreamDecompressor : IDisposable
{
    /// <summary>The largest window a peer may make this side keep (8 MiB; level 1 uses 512 KiB).</summary>
    private const int WindowLogMax = 23;

    private readonly Lock _gate = new();
    private ZSTD_DCtx_s* _context;

    public StreamDecompressor()
    {
        _context = Methods.ZSTD_createDCtx();
        if (_context is null)
        {
            throw new OutOfMemoryException("zstd could not allocate a decompression context");
        }

        Check(Methods.ZSTD_DCtx_setParameter(_context, ZSTD_dParameter.ZSTD_d_windowLogMax, WindowLogMax));
    }

    /// <summary>
    /// Decodes from <paramref name="input"/> into <paramref name="output"/> until the input is used
    /// up or the output is full, and says how much of each it used. After a call that filled the
    /// output, call again (with empty input if need be) once there is room: the context may hold
    /// decoded bytes that did not fit.
    /// </summary>
    /// <exception cref="InvalidDataException">The bytes are not a valid zstd stream.</exception>
    public void Read(in ReadOnlySequence<byte> input, Span<byte> output, out long consumed, out int produced)
    {
        lock (_gate)
        {
            Decompress(input, output, out consumed, out produced);
        }
    }

    private void Decompress(in ReadOnlySequence<byte> input, Span<byte> output, out long consumed, out int produced)
    {
        ObjectDisposedException.ThrowIf(_context is null, this);
        consumed = 0;
        fixed (byte* destination = output)
        {
            var decoded = new ZSTD_outBuffer_s { dst = destination, size = (nuint)output.Length, pos = 0 };
            if (input.IsEmpty)
            {
                var none = new ZSTD_inBuffer_s { src = null, size = 0, pos = 0 };
                Check(Methods.ZSTD_decompressStream(_context, &decoded, &none));
            }

            foreach (var segment in input)
            {
                fixed (byte* source = segment.Span)
                {
                    var encoded = new ZSTD_inBuffer_s { src = source, size = (nuint)segment.Length, pos = 0 };
                    while (encoded.pos < encoded.size && decoded.pos < decoded.size)
                    {
                        var (inBefore, outBefore) = (encoded.pos, decoded.pos);
                        Check(Methods.ZSTD_decompressStream(_context, &decoded, &encoded));
                        if (encoded.pos == inBefore && decoded.pos == outBefore)
                        {
                            throw new InvalidDataException("the resync peer sent a compressed stream that does not decode");
                        }
                    }

                    consumed += (long)encoded.pos;
                    if (encoded.pos < encoded.size)
                    {
                        break;
                    }
                }
            }

            produced = (int)decoded.pos;
        }
    }

    /// <summary>Frees the context; safe while another thread decodes (it waits for it).</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_context is not null)
            {
                Methods.ZSTD_freeDCtx(_context);
                _context = null;
            }
        }
    }

    private static nuint Check(nuint code) => Methods.ZSTD_isError(code)
        ? throw new InvalidDataException($"the resync peer sent a corrupt compressed stream: {Methods.ZSTD_getErrorName(code)}")
        : code;
}
