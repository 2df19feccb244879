using System.Globalization;
using System.Net;
using SafeKit.Api;
using SafeKit.ControlPlane.Events;
using SafeKit.ControlPlane.Status;
using SafeKit.Replication.Channel;
using SafeKit.Replication.Mirror;
using SafeKit.Replication.Resync;

namespace SafeKit.Daemon;

/// <summary>
/// <c>safekit verify</c>: PRIM compares its copy of every replicated directory with SECOND's while
/// the application runs (<see cref="DirectoryVerify"/>: every listing, every file's blocks by
/// hash, what differs rechecked once every write in flight is applied). SECOND serves it
/// read-only on its verify ports (the ports after the replication ones).
/// </summary>
internal sealed partial class MirrorModuleHost
{
    /// <summary>Differences listed in the status and the answer (the count is always whole).</summary>
    private const int DifferencesShown = 100;

    private VerifyStatus? _lastVerify;

    /// <summary>The TCP port of directory <paramref name="index"/>'s verify listener on SECOND.</summary>
    private int VerifyPort(int index) => _module.ReplicationPort + _directories.Count + index;

    /// <summary>On PRIM: compares both copies; the copies differing is refused (409) with the differences, so scripts see it.</summary>
    public async Task<string> VerifyAsync()
    {
        var targets = new List<(MirrorDirectory Directory, IPEndPoint Second)>();
        await _gate.WaitAsync();
        try
        {
            if (_role != MirrorRole.Prim || _directories.Any(d => d.Link?.State != LinkState.Mirroring || d.FileSystem is null))
            {
                throw new ModuleActionException(409, _role == MirrorRole.Prim
                    ? $"{_module.Name} is not mirroring every directory to {_peer.Name} now: nothing to compare with"
                    : $"verify runs on the PRIM node; {_module.Name} is {_state.Current} on {_self.Name}{(_peerBeacon is { Role: MirrorRole.Prim } ? $" ({_peer.Name} is PRIM)" : "")}");
            }

            var address = _peer.Addresses[_module.ReplicationNetwork];
            targets.AddRange(_directories.Select((d, i) => (d, new IPEndPoint(address, VerifyPort(i)))));
        }
        finally
        {
            _gate.Release();
        }

        // Not under the gate: a verify may take minutes, and the node must keep deciding meanwhile
        // (a SECOND lost during it ends it with an error).
        var started = DateTimeOffset.UtcNow;
        var reports = new List<(string Path, VerifyReport Report)>();
        try
        {
            foreach (var (directory, second) in targets)
            {
                if (directory.FileSystem is not { } fileSystem || directory.Link is not { } link)
                {
                    throw new ResyncException($"{directory.Config.Path} is no longer mounted here");
                }

                using var timeout = new CancellationTokenSource(TimeSpan.FromHours(6));
                await using var verify = await DirectoryVerify.ConnectAsync(fileSystem, link, second, ChannelOptions(), timeout.Token);
                reports.Add((directory.Config.Path, await verify.RunAsync(timeout.Token)));
            }
        }
        catch (Exception e) when (e is ResyncException or IOException or System.Net.Sockets.SocketException or ReplicationHandshakeException or OperationCanceledException or InvalidDataException)
        {
            var failed = $"verify of {_module.Name} failed: {e.Message}";
            _lastVerify = new VerifyStatus(DateTimeOffset.UtcNow, (DateTimeOffset.UtcNow - started).TotalSeconds, 0, 0, 0, 0, 0, [], [], $"failed: {e.Message}");
            _journal.Record(EventKinds.Action, _module.Name, EventSeverities.Error, failed);
            throw new ModuleActionException(409, failed);
        }

        var status = Summarise(reports);
        _lastVerify = status;
        var message = Describe(status, reports);
        _journal.Record(EventKinds.Action, _module.Name, status.Outcome == "equal" ? EventSeverities.Info : EventSeverities.Error, message);
        return status.Outcome == "equal" ? message : throw new ModuleActionException(409, message);
    }

    private static VerifyStatus Summarise(List<(string Path, VerifyReport Report)> reports)
    {
        var elapsed = reports.Sum(r => r.Report.Elapsed.TotalSeconds);
        var bytes = reports.Sum(r => r.Report.Bytes);
        var differences = reports.SelectMany(r => r.Report.Differences.Select(d => $"{Path.Join(r.Path, d.Path)}: {d.What}")).ToList();
        var unconfirmed = reports.SelectMany(r => r.Report.Unconfirmed.Select(d => $"{Path.Join(r.Path, d.Path)}: {d.What}")).ToList();
        return new VerifyStatus(
            DateTimeOffset.UtcNow,
            Math.Round(elapsed, 3),
            reports.Sum(r => r.Report.Files),
            bytes,
            elapsed > 0 ? Math.Round(bytes / elapsed) : 0,
            Math.Round(reports.Sum(r => r.Report.Frozen.TotalMilliseconds), 1),
            reports.Sum(r => r.Report.Dismissed),
            differences.Count > DifferencesShown ? [.. differences.Take(DifferencesShown), $"… and {differences.Count - DifferencesShown} more"] : differences,
            unconfirmed.Count > DifferencesShown ? [.. unconfirmed.Take(DifferencesShown), $"… and {unconfirmed.Count - DifferencesShown} more"] : unconfirmed,
            differences.Count > 0 ? "different" : unconfirmed.Count > 0 ? "unconfirmed" : "equal");
    }

    private string Describe(VerifyStatus status, List<(string Path, VerifyReport Report)> reports)
    {
        var figures = string.Create(CultureInfo.InvariantCulture, $"{status.Files} files, {status.Bytes / 1e6:0.0} MB compared with {_peer.Name}'s copy in {status.ElapsedSeconds:0.00} s ({status.BytesPerSecond / 1e9:0.00} GB/s; writes held back {status.FrozenMilliseconds:0} ms; {status.Dismissed} differences were writes in flight)");
        var directories = string.Join(", ", reports.Select(r => r.Path));
        return status.Outcome switch
        {
            "equal" => $"verify of {_module.Name} ({directories}): the copies are equal; {figures}",
            "different" => $"verify of {_module.Name} ({directories}): the copies DIFFER; {figures}:\n" + string.Join('\n', status.Differences.Select(d => "  " + d)),
            _ => $"verify of {_module.Name} ({directories}): differences seen while the files kept changing, not confirmed (rerun when writes are fewer); {figures}:\n" + string.Join('\n', status.Unconfirmed.Select(d => "  " + d)),
        };
    }
}
