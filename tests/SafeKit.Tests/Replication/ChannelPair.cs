using System.Net;
using SafeKit.Replication.Channel;

namespace SafeKit.Tests.Replication;

/// <summary>A sender (n1, PRIM) and a receiver (n2, SECOND) connected over TCP on 127.0.0.1.</summary>
internal sealed class ChannelPair : IAsyncDisposable
{
    public static readonly byte[] Key = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();

    private ChannelPair(ReplicationListener listener, ReplicationSender sender, ReplicationReceiver receiver)
    {
        Listener = listener;
        Sender = sender;
        Receiver = receiver;
    }

    public ReplicationListener Listener { get; }

    public ReplicationSender Sender { get; }

    public ReplicationReceiver Receiver { get; }

    /// <summary>Options of one end: cluster "lab", key <see cref="Key"/>, fast timers unless changed.</summary>
    public static ReplicationChannelOptions Options(string local, string peer) => new()
    {
        ClusterName = "lab",
        LocalNode = local,
        PeerNode = peer,
        Key = Key,
    };

    public static ReplicationListener Listen(ReplicationChannelOptions options)
        => ReplicationListener.Listen(new IPEndPoint(IPAddress.Loopback, 0), options);

    public static async Task<ChannelPair> StartAsync(
        IOperationApplier applier,
        Func<ReplicationChannelOptions, ReplicationChannelOptions>? sender = null,
        Func<ReplicationChannelOptions, ReplicationChannelOptions>? receiver = null)
    {
        var ct = TestContext.Current.CancellationToken;
        var receiverOptions = Options("n2", "n1");
        var listener = Listen(receiver?.Invoke(receiverOptions) ?? receiverOptions);
        var accepting = listener.AcceptAsync(applier, ct);
        var senderOptions = Options("n1", "n2");
        var connected = await ReplicationSender.ConnectAsync(listener.LocalEndPoint, sender?.Invoke(senderOptions) ?? senderOptions, cancellationToken: ct);
        return new ChannelPair(listener, connected, await accepting);
    }

    public async ValueTask DisposeAsync()
    {
        await Sender.DisposeAsync();
        await Receiver.DisposeAsync();
        Listener.Dispose();
    }
}
