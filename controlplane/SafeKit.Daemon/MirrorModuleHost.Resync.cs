using System.Net;
using Microsoft.Extensions.Logging;
using SafeKit.ControlPlane.Events;
using SafeKit.ControlPlane.Status;
using SafeKit.Replication.Channel;
using SafeKit.Replication.Mirror;
using SafeKit.Replication.Resync;

namespace SafeKit.Daemon;

/// <summary>
/// Failback: the node that ran alone brings the returning node's copy up to date while its
/// application keeps running, then mirrors to it. The returning node (WAIT, older data) listens
/// for the resync on its replication ports and says so in its heartbeats; the node serving ALONE
/// connects, runs the live passes, freezes its file systems for the last one, and hands over:
/// the returning node adopts this node's generation and becomes SECOND, and this node's links
/// attach to it — PRIM, without restarting the application.
/// </summary>
internal sealed partial class MirrorModuleHost
{
    private static readonly TimeSpan ResyncRetry = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan HandoverGateTimeout = TimeSpan.FromSeconds(10);

    private Task? _resync;
    private CancellationTokenSource? _resyncStop;
    private DateTimeOffset _nextResync;
    private string? _resyncProgress;

    /// <summary>File streams per directory resync: the configured number, else one per two cores (1 to 4).</summary>
    private int ResyncStreams => _module.ResyncStreams > 0 ? _module.ResyncStreams : SafeKit.ControlPlane.Configuration.MirrorModuleConfig.AutoResyncStreams(Environment.ProcessorCount);

    /// <summary>The resync running now (its directories once connected; empty while connecting), for the status.</summary>
    private DirectoryResync[]? _running;
    private long _runningSince;

    /// <summary>How the last resync ended, with its figures.</summary>
    private ResyncProgress? _lastResync;

    /// <summary>The resync this node runs, live, or the last one it ran.</summary>
    private ResyncProgress? ResyncStatus() =>
        Volatile.Read(ref _running) is { } running ? Progress(running, active: true, phase: running.Length == 0 ? "connecting" : running[^1].Phase, outcome: null) : _lastResync;

    private ResyncProgress Progress(IReadOnlyList<DirectoryResync> resyncs, bool active, string phase, string? outcome)
    {
        var elapsed = System.Diagnostics.Stopwatch.GetElapsedTime(_runningSince).TotalSeconds;
        var wire = resyncs.Sum(r => r.WireBytes);

        // Known only in a pass over journaled paths: the share of its directories done so far.
        double? eta = null;
        foreach (var resync in active ? resyncs : [])
        {
            var (planned, done) = (resync.Statistics.PassPlanned, resync.Statistics.PassDone);
            if (planned > 0 && done > 0)
            {
                var left = System.Diagnostics.Stopwatch.GetElapsedTime(resync.PassStarted).TotalSeconds * (planned - done) / done;
                eta = Math.Max(eta ?? 0, Math.Round(left, 1));
            }
        }

        return new ResyncProgress(
            _peer.Name,
            active,
            phase,
            string.Join("; ", resyncs.Select(r => r.FirstPassScope).Where(s => s.Length > 0)),
            resyncs.Sum(r => r.Statistics.Directories),
            resyncs.Sum(r => r.Statistics.FilesCompared),
            resyncs.Sum(r => r.Statistics.BytesCompared),
            resyncs.Sum(r => r.Statistics.BytesSent),
            wire,
            Math.Round(elapsed, 3),
            elapsed > 0 ? Math.Round(wire / elapsed) : 0,
            eta,
            outcome);
    }

    /// <summary>WAIT with older data and the newest copy served alone by the peer: listen for its resync (once warmed up, see <see cref="StartWarmup"/>).</summary>
    private void ListenForResync()
    {
        if (_directories.All(d => d.ResyncListening) || !_warmedUp.IsCompleted)
        {
            return;
        }

        var options = ChannelOptions();
        var address = _self.Addresses[_module.ReplicationNetwork];
        for (var i = 0; i < _directories.Count; i++)
        {
            if (!_directories[i].ResyncListening)
            {
                _directories[i].ListenForResync(new IPEndPoint(address, _module.ReplicationPort + i), options, HandOver, _record.Current);
            }
        }

        Publish();
    }

    private async Task StopResyncListeningAsync()
    {
        if (_directories.Any(d => d.ResyncListening))
        {
            foreach (var directory in _directories)
            {
                await directory.StopResyncListeningAsync();
            }

            Publish();
        }
    }

    /// <summary>
    /// The target's part of the handover, on the resync session's thread before it answers the
    /// source: every copy is durable already (the source's finish requests synced them). This node
    /// takes the source's generation and becomes SECOND, listening for its replication links.
    /// </summary>
    private void HandOver(byte[] generations)
    {
        if (generations.Length != 32)
        {
            throw new InvalidDataException($"a handover carries two generations (32 bytes), not {generations.Length} bytes");
        }

        if (!_gate.Wait(HandoverGateTimeout))
        {
            throw new InvalidOperationException("the module is busy with another transition; handover refused");
        }

        try
        {
            if (_role != MirrorRole.Wait || _administratorStopped)
            {
                throw new InvalidOperationException($"this node is {_state.Current} now, not waiting for a resync");
            }

            foreach (var directory in _directories)
            {
                directory.StopAcceptingResync();

                // This copy is the source's now: what it changed as PRIM before it crashed is overwritten.
                Native.Fuse.ChangeJournal.Delete(directory.JournalDirectory);
            }

            var options = ChannelOptions();
            var address = _self.Addresses[_module.ReplicationNetwork];
            for (var i = 0; i < _directories.Count; i++)
            {
                _directories[i].ListenAndView(new IPEndPoint(address, _module.ReplicationPort + i), new IPEndPoint(address, VerifyPort(i)), options);
            }

            SaveRecord(new MirrorRecord(new Guid(generations.AsSpan(0, 16)), new Guid(generations.AsSpan(16, 16)), false, "SECOND"));
            var written = string.Join("; ", _directories.Select(d => d.LastResync).Where(r => r is not null));
            SetRole(MirrorRole.Second, $"resynchronised from {_peer.Name}; following it (PRIM)");
            _journal.Record(EventKinds.State, _module.Name, EventSeverities.Info, $"resynchronised from {_peer.Name}{(written.Length > 0 ? $" ({written})" : "")}: SECOND");
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>ALONE with the peer back, older and listening: starts (or retries) bringing it up to date.</summary>
    private void StartResyncIfDue()
    {
        if (_resync is { IsCompleted: false } || !_warmedUp.IsCompleted || _time.GetUtcNow() < _nextResync || _directories.Any(d => d.FileSystem is null || d.Link is null))
        {
            return;
        }

        _resyncProgress = $"resynchronising {_peer.Name}: connecting";
        _resyncStop?.Dispose();
        _resyncStop = new CancellationTokenSource();
        var stop = _resyncStop.Token;
        _resync = Task.Run(() => ResyncPeerAsync(stop));
    }

    /// <summary>The node leaves its role: a resync in progress stops (its freeze ends, nothing attaches).</summary>
    private async Task StopResyncAsync()
    {
        if (_resync is { IsCompleted: false } running && _resyncStop is { } stop)
        {
            await stop.CancelAsync();
            await running.WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { }, TaskScheduler.Default);
        }

        _resyncProgress = null;
    }

    private async Task ResyncPeerAsync(CancellationToken stop)
    {
        var resyncs = new List<DirectoryResync>();
        var handedOver = false;
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        _runningSince = started;
        Volatile.Write(ref _running, []);
        string? failure = null;
        string? summary = null;
        try
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token, stop);
            var ct = linked.Token;
            var options = ChannelOptions();
            var address = _peer.Addresses[_module.ReplicationNetwork];
            var cap = _module.ResyncMegabitsPerSecond > 0 ? new BandwidthCap(_module.ResyncMegabitsPerSecond * 125_000L) : null;
            var phases = new ResyncPhases();
            for (var i = 0; i < _directories.Count; i++)
            {
                resyncs.Add(await DirectoryResync.ConnectAsync(_directories[i].FileSystem!, new IPEndPoint(address, _module.ReplicationPort + i), options, ct, cap, ResyncStreams));
            }

            Volatile.Write(ref _running, resyncs.ToArray());
            var progress = new Progress<string>(p => _resyncProgress = $"resynchronising {_peer.Name}: {p}");
            // Directories in parallel, each on its own connection: the slowest sets the time, not their sum.
            phases.Done("connected");
            await Task.WhenAll(resyncs.Select(r => r.PrecopyAsync(progress, ct)));
            phases.Done("live passes");

            // From here until the links attach, the application's writes wait.
            await Task.WhenAll(resyncs.Select(r => r.FreezeAndCatchUpAsync(ct)));
            phases.Done("frozen pass");

            for (var i = 0; i < resyncs.Count - 1; i++)
            {
                await resyncs[i].FinishAsync(null, ct);
            }

            var record = _record;
            var generations = new byte[32];
            record.Current.TryWriteBytes(generations.AsSpan(0, 16));
            record.Parent.TryWriteBytes(generations.AsSpan(16, 16));
            handedOver = true;
            await resyncs[^1].FinishAsync(generations, ct);
            phases.Done("durable there");

            // The peer holds this generation now: one shared history again. A link that fails
            // from here goes alone as on any PRIM (a new generation first).
            SaveRecord(_record with { Diverging = false, LastRole = "PRIM", Forced = false });
            foreach (var directory in _directories)
            {
                directory.FileSystem?.Journal?.Restart(_record.Current); // Equal copies: nothing to remember.
                directory.FileSystem?.StopTrackingChangedRanges();
            }
            for (var i = 0; i < _directories.Count; i++)
            {
                var link = _directories[i].Link!;
                var sender = await ReplicationSender.ConnectAsync(new IPEndPoint(address, _module.ReplicationPort + i), options, _logger, ct);
                await resyncs[i].AttachAsync(link, sender);
                link.WentAlone += OnWentAlone;
            }

            foreach (var resync in resyncs)
            {
                resync.Thaw();
            }

            phases.Done("attached");
            summary = $"in {System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds:0} ms: {Summarise(resyncs)}; writes held back {resyncs.Max(r => r.Frozen).TotalMilliseconds:0} ms; {phases}";
            // The node may be leaving meanwhile (it holds the gate and waits for this task).
            if (await _gate.WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None))
            {
                try
                {
                    _resyncProgress = null;
                    if (_role == MirrorRole.Alone)
                    {
                        SetRole(MirrorRole.Prim, $"replicating to {_peer.Name} (resynchronised it: {summary})");
                    }
                }
                finally
                {
                    _gate.Release();
                }
            }

            LogResynced(_logger, _module.Name, _peer.Name, summary);
            _journal.Record(EventKinds.State, _module.Name, EventSeverities.Info, $"{_peer.Name} resynchronised ({summary}); mirroring again");
        }
#pragma warning disable CA1031 // Any failure leaves this node serving alone; the resync is retried.
        catch (Exception e)
#pragma warning restore CA1031
        {
            if (handedOver && _directories.Any(d => d.Link?.State != LinkState.Mirroring))
            {
                // The peer may have taken this generation: what this node writes from now on it lacks.
                SaveRecord(_record.Branched());
                foreach (var directory in _directories)
                {
                    if (directory.Link is { State: LinkState.Mirroring } link)
                    {
                        await link.AbandonAsync($"the resync of {_peer.Name} failed: {e.Message}");
                    }
                }
            }

            failure = e.Message;
            _resyncProgress = $"resynchronising {_peer.Name} failed: {e.Message}; retrying";
            _nextResync = _time.GetUtcNow() + ResyncRetry;
            LogResyncFailed(_logger, _module.Name, _peer.Name, e.Message);
        }
        finally
        {
            _lastResync = Progress(resyncs, active: false, phase: summary is not null ? "done" : "failed", outcome: summary is not null ? $"resynchronised {summary}" : $"failed: {failure ?? "stopped"}");
            Volatile.Write(ref _running, null);
            foreach (var resync in resyncs)
            {
                await resync.DisposeAsync();
            }

            _wake.Release();
        }
    }

    private string Summarise(List<DirectoryResync> resyncs)
    {
        // Each directory's own first pass too: they run side by side, and the slowest one is the failback's time.
        var passes = resyncs.Max(r => r.Passes);
        var files = resyncs.Sum(r => r.Statistics.FilesCompared);
        var each = string.Join("; ", resyncs.Select((r, i) =>
            $"{_directories[i].Config.Path}: {r.Statistics.FilesByRanges} files by changed ranges, {r.Statistics.BytesSent} bytes changed, {r.Statistics.WireBytes} bytes on the wire, first pass {r.FirstPass.TotalMilliseconds:0} ms, {r.Connections} connection{(r.Connections == 1 ? "" : "s")}"));
        var sent = resyncs.Sum(r => r.Statistics.BytesSent);
        var wire = resyncs.Sum(r => r.Statistics.WireBytes);
        var first = resyncs.Max(r => r.FirstPass.TotalMilliseconds); // They run side by side.
        var scope = string.Join("; ", resyncs.Select(r => r.FirstPassScope));
        return $"{passes} live passes (the first over {scope}: {first:0} ms), {files} files compared, {sent} bytes changed, {wire} bytes on the wire [{each}]";
    }

    [LoggerMessage(EventId = 720, Level = LogLevel.Information, Message = "mirror {Module}: {Peer} resynchronised ({Summary}); mirroring again")]
    private static partial void LogResynced(ILogger logger, string module, string peer, string summary);

    [LoggerMessage(EventId = 721, Level = LogLevel.Warning, Message = "mirror {Module}: resynchronising {Peer} failed: {Reason}; retrying")]
    private static partial void LogResyncFailed(ILogger logger, string module, string peer, string reason);
}
