using System.Diagnostics;
using System.Net;
using SafeKit.Native.Fuse;
using SafeKit.Replication.Channel;
using SafeKit.Replication.Mirror;

namespace SafeKit.Replication.Resync;

/// <summary>
/// Compares PRIM's copy of one replicated directory with SECOND's while the application keeps
/// writing (<c>safekit verify</c>). A live pass compares everything (listings, then every
/// regular file's blocks by XxHash128); what differs there may only be a write on its way, so it
/// is compared again — live while it is much, then once with the file system frozen (writes wait,
/// reads go on) after SECOND acknowledged every change sent: only what still differs then is
/// reported. Nothing is changed on either copy.
/// </summary>
public sealed class DirectoryVerify : IAsyncDisposable
{
    /// <summary>Directories few enough to recheck frozen (a short hold on the application's writes).</summary>
    public const int SmallEnough = 64;

    private const int LiveRechecks = 3;
    private static readonly TimeSpan AcknowledgeTimeout = TimeSpan.FromSeconds(5);

    private readonly PassthroughFileSystem _fileSystem;
    private readonly ReplicationLink _link;
    private readonly ResyncSource _source;

    private DirectoryVerify(PassthroughFileSystem fileSystem, ReplicationLink link, ResyncSource source)
    {
        _fileSystem = fileSystem;
        _link = link;
        _source = source;
    }

    public ResyncStatistics Statistics => _source.Statistics;

    /// <summary>Connects to SECOND's verify listener (a compare-only target).</summary>
    public static async Task<DirectoryVerify> ConnectAsync(PassthroughFileSystem fileSystem, ReplicationLink link, IPEndPoint second, ReplicationChannelOptions options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(fileSystem);
        ArgumentNullException.ThrowIfNull(link);
        var connection = await ResyncConnection.ConnectAsync(second, options, cancellationToken);
        return new DirectoryVerify(fileSystem, link, new ResyncSource(fileSystem.DataDirectory, connection));
    }

    /// <summary>Runs the verify; the report lists only what differs with every write applied on both sides.</summary>
    public async Task<VerifyReport> RunAsync(CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var candidates = await _source.VerifyAsync(null, cancellationToken);
        var live = candidates.Count;
        var compared = (_source.Statistics.FilesCompared, _source.Statistics.BytesCompared, _source.Statistics.Directories);
        for (var i = 0; i < LiveRechecks && Directories(candidates).Count > SmallEnough; i++)
        {
            candidates = await _source.VerifyAsync(Directories(candidates), cancellationToken);
        }

        var frozenFor = TimeSpan.Zero;
        var unconfirmed = 0;
        if (candidates.Count > 0 && Directories(candidates).Count <= SmallEnough)
        {
            var frozen = _fileSystem.Freeze();
            var since = Stopwatch.GetTimestamp();
            try
            {
                if (!await _link.WaitAcknowledgedAsync(AcknowledgeTimeout))
                {
                    throw new ResyncException("SECOND did not acknowledge the changes in flight (the link is alone or slow): nothing to compare with");
                }

                candidates = await _source.VerifyAsync(Directories(candidates), cancellationToken);
            }
            finally
            {
                frozen.Dispose();
                frozenFor = Stopwatch.GetElapsedTime(since);
            }
        }
        else
        {
            unconfirmed = candidates.Count;
        }

        return new VerifyReport(
            compared.Directories,
            compared.FilesCompared,
            compared.BytesCompared,
            Stopwatch.GetElapsedTime(started),
            frozenFor,
            live - (unconfirmed > 0 ? unconfirmed : candidates.Count),
            unconfirmed > 0 ? [] : candidates,
            unconfirmed > 0 ? candidates : []);
    }

    /// <summary>The directories whose entries a recheck compares: each difference's own directory.</summary>
    private static HashSet<string> Directories(IReadOnlyList<VerifyDifference> differences) =>
        differences.Select(d => d.Path.LastIndexOf('/') is var slash and >= 0 ? d.Path[..slash] : "").ToHashSet(StringComparer.Ordinal);

    public ValueTask DisposeAsync() => _source.DisposeAsync();
}

/// <summary>What a verify of one directory found.</summary>
/// <param name="Directories">Directories compared in the full pass.</param>
/// <param name="Files">Regular files whose blocks were compared.</param>
/// <param name="Bytes">Bytes of those files read on this side (the peer read as many).</param>
/// <param name="Elapsed">The whole verify.</param>
/// <param name="Frozen">How long the application's writes were held back for the final recheck.</param>
/// <param name="Dismissed">Differences of the live pass that were writes on their way (equal once applied).</param>
/// <param name="Differences">What differs with every write applied on both copies.</param>
/// <param name="Unconfirmed">Too much kept changing to recheck it frozen: differences seen live only.</param>
public sealed record VerifyReport(long Directories, long Files, long Bytes, TimeSpan Elapsed, TimeSpan Frozen, int Dismissed, IReadOnlyList<VerifyDifference> Differences, IReadOnlyList<VerifyDifference> Unconfirmed);
