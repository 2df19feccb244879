using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using SafeKit.Api;
using SafeKit.ControlPlane.Configuration;
using SafeKit.ControlPlane.Events;
using SafeKit.ControlPlane.Membership;
using SafeKit.ControlPlane.Status;
using SafeKit.Dataplane.Preflight;

namespace SafeKit.Daemon;

/// <summary>
/// The composition root of safekitd: configuration, identity, membership, modules, status, and an
/// orderly stop that hands this node's buckets over before it goes.
/// </summary>
internal sealed class NodeDaemon
{
    private readonly DaemonArguments _arguments;
    private readonly ILogger _logger;
    private readonly TimeProvider _time = TimeProvider.System;

    public NodeDaemon(DaemonArguments arguments, ILogger logger)
    {
        _arguments = arguments;
        _logger = logger;
    }

    /// <summary>Runs until SIGTERM/SIGINT; returns the process exit code.</summary>
    public async Task<int> RunAsync()
    {
        if (_arguments.WaitForConfig && !File.Exists(_arguments.ConfigPath))
        {
            try
            {
                if (!await NotConfiguredWait.RunAsync(_arguments.ConfigPath, _logger, _time))
                {
                    return 0;
                }
            }
            catch (IOException e)
            {
                Console.Error.WriteLine($"safekitd: cannot serve the 'not configured' API: {e.Message}");
                return 3;
            }
        }

        ClusterConfig config;
        NodeConfig self;
        byte[] key;
        try
        {
            config = ConfigLoader.Load(_arguments.ConfigPath);
            self = NodeIdentity.Resolve(config, _arguments.Node);
            key = config.KeyFile is { } file ? ClusterKey.Load(file) : RandomNumberGenerator.GetBytes(32);
        }
        catch (ConfigException e)
        {
            foreach (var error in e.Errors)
            {
                Console.Error.WriteLine($"safekitd: {error}");
            }

            return 2;
        }
        catch (InvalidOperationException e)
        {
            Console.Error.WriteLine($"safekitd: {e.Message}");
            return 2;
        }

        var stateDirectory = _arguments.StateDirectory.Length > 0 ? _arguments.StateDirectory : Path.Combine("/run/safekit", self.Name);
        var started = _time.GetUtcNow();
        var farms = new List<FarmModuleHost>();
        var mirrors = new List<MirrorModuleHost>();
        var journal = new EventJournal(self.Name, _time);
        MembershipService? membership = null;
        NodeReadiness readiness;
        try
        {
            foreach (var module in config.Farms)
            {
                farms.Add(FarmModuleHost.Start(config, module, self, journal, _time, _logger));
            }

            membership = new MembershipService(config, self, key, IncarnationStore.Next(stateDirectory, started), _time, _logger);
            membership.ViewChanged += (view, peers) => farms.ForEach(f => f.ApplyView(view, peers));
            membership.PeersChanged += peers => farms.ForEach(f => f.UpdatePeers(peers));
            MembershipEventFeed.Attach(membership, journal);
            foreach (var module in config.Mirrors)
            {
                mirrors.Add(MirrorModuleHost.Start(config, module, self, membership, key, journal, _time, _logger));
            }

            var pinning = membership;
            farms.ForEach(f => f.PinningChanged += () => pinning.Pinning = farms.Any(x => x.Pinning));
            membership.Start();
            // The node takes traffic while every module's application is healthy (and it is not stopping).
            readiness = new NodeReadiness(membership, farms.Count);
            for (var i = 0; i < farms.Count; i++)
            {
                var index = i;
                await farms[i].StartApplicationAsync(healthy => readiness.SetHealthy(index, healthy));
            }
        }
        catch (PreflightException e)
        {
            foreach (var problem in e.Problems)
            {
                Console.Error.WriteLine($"safekitd: {problem}");
            }

            Stop(farms, membership);
            return 3;
        }
        catch (Exception e) when (e is SafeKit.Native.Interop.NativeException or InvalidOperationException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"safekitd: cannot start: {e.Message}");
            await StopMirrorsAsync(mirrors);
            Stop(farms, membership);
            return 3;
        }

        using var signals = new DaemonSignals();
        using var reloader = new ConfigReloader(_arguments.ConfigPath, config, self.Name, journal, _time, _logger);
        using var actions = new ModuleActions(farms, mirrors, readiness, () => reloader.Running, journal);
        var control = new DaemonControl(self.Name, reloader, farms, mirrors, membership, actions, journal, started, _time);
        ApiServer? api;
        try
        {
            api = await StartApiAsync(config, self, config.KeyFile is null ? null : key, stateDirectory, control);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException)
        {
            Console.Error.WriteLine($"safekitd: cannot start the API: {e.Message}");
            await StopMirrorsAsync(mirrors);
            Stop(farms, membership);
            return 3;
        }

        using var service = new ServiceManager(_time);
        DaemonLog.Started(_logger, self.Name, config.Name, farms.Count + mirrors.Count, stateDirectory);
        service.Ready(Summary(control.Status()));
        journal.Record(EventKinds.Daemon, null, EventSeverities.Info, $"safekitd started (pid {Environment.ProcessId}, incarnation {membership.Incarnation})");
        try
        {
            while (!signals.Stop.IsCancellationRequested)
            {
                var status = control.Status();
                StatusFile.Write(stateDirectory, status);
                service.Tick(Summary(status));
                try
                {
                    if (await signals.Reload.WaitAsync(service.LoopInterval, signals.Stop))
                    {
                        service.Reloading();
                        await reloader.ReloadAsync(membership, farms);
                        service.Reloaded();
                    }
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
        finally
        {
            DaemonLog.Stopping(_logger, self.Name);
            service.Stopping();
            journal.Record(EventKinds.Daemon, null, EventSeverities.Warning, "safekitd stopping: draining this node");
            readiness.Stopping();
            config = reloader.Running;
            // Status keeps being written while the node drains (the stop script may take a while).
            using var left = new CancellationTokenSource();
            var statusWriter = WriteStatusUntilAsync(stateDirectory, control, service, left.Token);
            await LeaveAsync(config, membership, farms);
            // A mirror stops its application, releases the VIP and unmounts before the heartbeats say STOP.
            if (mirrors.Count > 0)
            {
                await StopMirrorsAsync(mirrors);
                // Let a few heartbeats tell the peer STOP: it then takes over at once, without a witness.
                await Task.Delay(TimeSpan.FromMilliseconds(3 * config.Heartbeat.IntervalMilliseconds), _time);
            }

            await left.CancelAsync();
            await statusWriter;
            if (api is not null)
            {
                await api.DisposeAsync();
            }

            Stop(farms, membership);
            StatusFile.Write(stateDirectory, new NodeStatus(config.Name, self.Name, Environment.ProcessId, started, _time.GetUtcNow(), [], null));
        }

        return 0;
    }

    private async Task WriteStatusUntilAsync(string stateDirectory, DaemonControl control, ServiceManager service, CancellationToken until)
    {
        while (!until.IsCancellationRequested)
        {
            StatusFile.Write(stateDirectory, control.Status());
            // The drain may last longer than the watchdog interval: it is progress, not a hang.
            service.Tick("draining: finishing the connections this node serves");
            await Task.Delay(service.LoopInterval, _time, until).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    /// <summary>The one-line status systemd shows.</summary>
    private static string Summary(NodeStatus status)
    {
        var modules = string.Join(", ", status.Modules.Select(m => m.Farm is { } farm ? $"{m.Name} {m.State} ({farm.OwnedBuckets}/{farm.Buckets} buckets)" : $"{m.Name} {m.State}"));
        return status.Membership is { } membership ? $"{modules}; view {membership.Epoch}, {membership.Members.Count} members" : modules;
    }

    /// <summary>
    /// Drains the node: stops offering to take traffic, waits (a few heartbeat intervals at most)
    /// until the view no longer counts it — the others take its buckets at once instead of after a
    /// timeout — then lets the connections it still serves finish, up to the drain timeout.
    /// </summary>
    private static async Task LeaveAsync(ClusterConfig config, MembershipService membership, List<FarmModuleHost> farms)
    {
        membership.Ready = false;
        await Task.WhenAll(farms.Select(f => f.DrainAsync(config.Heartbeat, waitForPins: true)));
    }

    /// <summary>Starts the HTTP API on this node's VIP-network address (null when the config disables it).</summary>
    private async Task<ApiServer?> StartApiAsync(ClusterConfig config, NodeConfig self, byte[]? key, string stateDirectory, DaemonControl control)
    {
        var settings = config.Api;
        if (!settings.Enabled)
        {
            return null;
        }

        var tokens = TokenStore.Load(settings.TokensFile ?? Path.Combine(stateDirectory, "api-tokens"), createIfMissing: settings.TokensFile is null);
        var certificate = settings.PlainHttp ? null : ApiCertificate.LoadOrCreate(settings.Certificate?.Replace("{node}", self.Name, StringComparison.Ordinal), Path.Combine(stateDirectory, "api.pfx"), self.Name, self.Addresses);
        if (certificate is not null)
        {
            ApiCertificate.ExportPublic(certificate, Path.Combine(stateDirectory, "api.pem"));
        }

        var scheme = settings.PlainHttp ? "http" : "https";
        ApiPeer Peer(NodeConfig node) => new(node.Name, new Uri($"{scheme}://{(node.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{node.Address}]" : node.Address.ToString())}:{settings.Port}/"));
        var authority = settings.CaFile is { } ca ? ApiCertificate.LoadAuthority(ca) : null;
        // Loopback too: `safekit` on the node itself talks to its own daemon there by default.
        var loopback = self.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? System.Net.IPAddress.IPv6Loopback : System.Net.IPAddress.Loopback;
        var options = new ApiServerOptions([self.Address, loopback], settings.Port, certificate, tokens, Peer(self), config.Nodes.Where(n => n.Name != self.Name).Select(Peer).ToList(), key, authority);
        var server = await ApiServer.StartAsync(options, control);
        var address = self.Address.ToString();
        DaemonLog.ApiListening(_logger, settings.PlainHttp ? "http" : "https", address, settings.Port);
        return server;
    }

    private static async Task StopMirrorsAsync(List<MirrorModuleHost> mirrors)
    {
        foreach (var mirror in mirrors)
        {
            await mirror.DisposeAsync();
        }

        mirrors.Clear();
    }

    private static void Stop(List<FarmModuleHost> farms, MembershipService? membership)
    {
        membership?.Dispose();
        farms.ForEach(f => f.Dispose());
    }
}
