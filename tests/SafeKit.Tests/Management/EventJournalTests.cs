using SafeKit.ControlPlane.Events;

namespace SafeKit.Tests.Management;

/// <summary>The node's timeline: numbered, bounded, paged, and it wakes readers waiting for news.</summary>
public sealed class EventJournalTests
{
    [Fact]
    public void After_PagesInOrder_AndKeepsOnlyTheNewest()
    {
        var journal = new EventJournal("n1", TimeProvider.System);
        Assert.Empty(journal.After(0));
        for (var i = 1; i <= EventJournal.Capacity + 250; i++)
        {
            journal.Record(EventKinds.State, "web", EventSeverities.Info, $"event {i}");
        }

        Assert.Equal(EventJournal.Capacity + 250, journal.Last);
        var all = journal.After(0);
        Assert.Equal(EventJournal.Capacity, all.Count);
        Assert.Equal(251, all[0].Sequence);
        Assert.Equal("event 1250", all[^1].Message);
        Assert.True(all.Zip(all.Skip(1)).All(p => p.Second.Sequence == p.First.Sequence + 1));
        Assert.Equal([1249L, 1250L], journal.After(1248).Select(e => e.Sequence));
        Assert.Equal([1248L, 1249L, 1250L], journal.After(0, limit: 3).Select(e => e.Sequence));
        Assert.Empty(journal.After(1250));
        Assert.All(all, e => Assert.Equal("n1", e.Node));
    }

    [Fact]
    public async Task WaitAfter_CompletesWhenAnEventArrives_NotBefore()
    {
        var journal = new EventJournal("n1", TimeProvider.System);
        journal.Record(EventKinds.Daemon, null, EventSeverities.Info, "started");
        Assert.True(journal.WaitAfterAsync(0, CancellationToken.None).IsCompleted);
        var waiting = journal.WaitAfterAsync(1, TestContext.Current.CancellationToken);
        await Task.Delay(50, TestContext.Current.CancellationToken);
        Assert.False(waiting.IsCompleted);
        journal.Record(EventKinds.Peer, null, EventSeverities.Error, "n2 is dead");
        await waiting.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);

        using var cancel = new CancellationTokenSource();
        var cancelled = journal.WaitAfterAsync(2, cancel.Token);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
    }
}
