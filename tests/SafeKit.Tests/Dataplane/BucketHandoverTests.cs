using SafeKit.Dataplane.Buckets;

namespace SafeKit.Tests.Dataplane;

public sealed class BucketHandoverTests
{
    private const int Buckets = 256;

    private static BucketTable Table(string local, params string[] members) =>
        BucketTable.Compute(members.Select(m => new NodeWeight(m, 1)).ToList(), Buckets, local);

    private static Dictionary<string, PeerHandover> Peers(params (string Name, PeerHandover State)[] peers) =>
        peers.ToDictionary(p => p.Name, p => p.State);

    [Fact]
    public void FirstView_OwnsItsBucketsAtOnce()
    {
        var handover = new BucketHandover(Buckets, "a");
        handover.Apply(Table("a", "a", "b"), 1, Peers(("b", new(true, 1, true, false))));

        var table = Table("a", "a", "b");
        for (var b = 0; b < Buckets; b++)
        {
            Assert.Equal(table.IsLocal(b) ? BucketMode.Owned : BucketMode.Foreign, handover.Modes[b]);
        }
    }

    [Fact]
    public void Join_GiverPinsTakerWaitsForTheGiverThenSharesThenOwns()
    {
        var giver = new BucketHandover(Buckets, "a");
        var taker = new BucketHandover(Buckets, "b");
        giver.Apply(Table("a", "a"), 1, Peers());
        taker.Apply(Table("b", "a"), 1, Peers(("a", new(true, 1, true, false))));
        var moved = Enumerable.Range(0, Buckets).Where(b => Table("b", "a", "b").IsLocal(b)).ToList();
        Assert.NotEmpty(moved);

        // The taker adopts view 2 first: the giver still serves view 1.
        taker.Apply(Table("b", "a", "b"), 2, Peers(("a", new(true, 1, true, false))));
        Assert.All(moved, b => Assert.Equal(BucketMode.Awaiting, taker.Modes[b]));

        // The giver adopts view 2: it pins what it served there and tells so.
        giver.Apply(Table("a", "a", "b"), 2, Peers(("b", new(true, 2, true, false))));
        Assert.All(moved, b => Assert.Equal(BucketMode.Pinned, giver.Modes[b]));
        Assert.True(giver.Pinning);

        Assert.True(taker.Update(Peers(("a", new(true, 2, true, true))), out var dead));
        Assert.Null(dead);
        Assert.All(moved, b => Assert.Equal(BucketMode.Shared, taker.Modes[b]));

        // The giver's last pinned flow ends.
        Assert.True(giver.Unpin());
        Assert.True(taker.Update(Peers(("a", new(true, 2, true, false))), out _));
        Assert.All(moved, b => Assert.Equal(BucketMode.Owned, taker.Modes[b]));
        Assert.All(moved, b => Assert.Equal(BucketMode.Foreign, giver.Modes[b]));
    }

    [Fact]
    public void Death_BucketsOfTheDeadAreOwnedAtOnceAndReportedForReplay()
    {
        var survivor = new BucketHandover(Buckets, "b");
        survivor.Apply(Table("b", "a", "b"), 1, Peers(("a", new(true, 1, true, false))));

        var gained = survivor.Apply(Table("b", "b"), 2, Peers(("a", new(false, 1, true, false))));

        Assert.NotNull(gained);
        var before = Table("b", "a", "b");
        for (var b = 0; b < Buckets; b++)
        {
            Assert.Equal(BucketMode.Owned, survivor.Modes[b]);
            Assert.Equal(!before.IsLocal(b), gained[b]);
        }
    }

    [Fact]
    public void Awaiting_GiverDiesBeforeReleasing_BucketsAreOwnedAndReportedForReplay()
    {
        var taker = new BucketHandover(Buckets, "b");
        taker.Apply(Table("b", "a"), 1, Peers(("a", new(true, 1, true, false))));
        taker.Apply(Table("b", "a", "b"), 2, Peers(("a", new(true, 1, true, false))));

        Assert.True(taker.Update(Peers(("a", new(false, 1, true, false))), out var dead));

        Assert.NotNull(dead);
        Assert.DoesNotContain(BucketMode.Awaiting, taker.Modes);
        Assert.Contains(BucketMode.Owned, taker.Modes);
    }

    [Fact]
    public void GiverThatClaimsNothing_HasReleased()
    {
        var taker = new BucketHandover(Buckets, "b");
        taker.Apply(Table("b", "a"), 1, Peers(("a", new(true, 1, true, false))));
        taker.Apply(Table("b", "a", "b"), 2, Peers(("a", new(true, 1, false, false))));

        Assert.DoesNotContain(BucketMode.Awaiting, taker.Modes);
    }

    [Fact]
    public void BucketComesBackWhileItsTakerStillWaits_NobodyAcceptsTwice()
    {
        var a = new BucketHandover(Buckets, "a");
        a.Apply(Table("a", "a"), 1, Peers());
        a.Apply(Table("a", "a", "b"), 2, Peers(("b", new(true, 1, true, false))));
        Assert.True(a.Pinning);

        // View 3 gives everything back to a, while b may have accepted flows under view 2.
        a.Apply(Table("a", "a"), 3, Peers(("b", new(true, 2, true, false))));
        var moved = Enumerable.Range(0, Buckets).Where(b => Table("b", "a", "b").IsLocal(b)).ToList();
        Assert.All(moved, b => Assert.Equal(BucketMode.Awaiting, a.Modes[b]));

        a.Update(Peers(("b", new(true, 3, false, false))), out _);
        Assert.All(moved, b => Assert.Equal(BucketMode.Owned, a.Modes[b]));
    }

    [Fact]
    public void PinnerDies_WhileAnotherStillPins_ItsSharedBucketsAreOwnedAndReplayed()
    {
        var c = new BucketHandover(Buckets, "c");
        c.Apply(Table("c", "a", "b"), 1, Peers(("a", new(true, 1, true, false)), ("b", new(true, 1, true, false))));
        c.Apply(Table("c", "a", "b", "c"), 2, Peers(("a", new(true, 2, true, true)), ("b", new(true, 2, true, true))));
        var before = Table("c", "a", "b");
        var gained = Enumerable.Range(0, Buckets).Where(b => Table("c", "a", "b", "c").IsLocal(b)).ToList();
        var fromA = gained.Where(b => before.Nodes[before.OwnerOf(b)].Name == "a").ToList();
        var fromB = gained.Except(fromA).ToList();
        Assert.NotEmpty(fromA);
        Assert.NotEmpty(fromB);
        Assert.All(gained, b => Assert.Equal(BucketMode.Shared, c.Modes[b]));

        // a dies holding pinned flows; b keeps pinning its own.
        Assert.True(c.Update(Peers(("a", new(false, 2, true, true)), ("b", new(true, 2, true, true))), out var orphaned));

        Assert.NotNull(orphaned);
        Assert.All(fromA, b => Assert.Equal(BucketMode.Owned, c.Modes[b]));
        Assert.All(fromA, b => Assert.True(orphaned[b]));
        Assert.All(fromB, b => Assert.Equal(BucketMode.Shared, c.Modes[b]));
        Assert.All(fromB, b => Assert.False(orphaned[b]));
    }

    [Fact]
    public void FreshNode_PresumesThePreviousOwnersFromTheOtherMembers()
    {
        var c = new BucketHandover(Buckets, "c");
        var peers = Peers(("a", new(true, 2, true, true)), ("b", new(true, 2, true, true)));
        c.Apply(Table("c", "a", "b", "c"), 2, peers);
        var before = Table("c", "a", "b");
        var gained = Enumerable.Range(0, Buckets).Where(b => Table("c", "a", "b", "c").IsLocal(b)).ToList();
        Assert.All(gained, b => Assert.Equal(BucketMode.Shared, c.Modes[b]));

        // b stops pinning: only what a may pin stays shared.
        c.Update(Peers(("a", new(true, 2, true, true)), ("b", new(true, 2, true, false))), out _);

        Assert.All(gained, b => Assert.Equal(
            before.Nodes[before.OwnerOf(b)].Name == "a" ? BucketMode.Shared : BucketMode.Owned, c.Modes[b]));
    }

    [Fact]
    public void OlderPinner_SurvivesASecondHandover_AndStillKeepsItsFlows()
    {
        // a gives buckets to b (a pins), then b dies: c takes them from the dead b but a still pins there.
        var c = new BucketHandover(Buckets, "c");
        c.Apply(Table("c", "a"), 1, Peers(("a", new(true, 1, true, false)), ("b", new(true, 1, false, false))));
        c.Apply(Table("c", "a", "b"), 2, Peers(("a", new(true, 2, true, true)), ("b", new(true, 2, true, false))));
        c.Apply(Table("c", "a", "c"), 3, Peers(("a", new(true, 2, true, true)), ("b", new(false, 2, true, false))));

        var viaB = Enumerable.Range(0, Buckets)
            .Where(b => Table("c", "a", "b").Nodes[Table("c", "a", "b").OwnerOf(b)].Name == "b" && Table("c", "a", "c").IsLocal(b))
            .ToList();
        Assert.NotEmpty(viaB);
        Assert.All(viaB, b => Assert.Equal(BucketMode.Shared, c.Modes[b]));
    }
}
