using SafeKit.Dataplane.Buckets;

namespace SafeKit.Tests.Dataplane;

public sealed class BucketTableTests
{
    private static List<NodeWeight> Nodes(int count, int weight = 1) =>
        Enumerable.Range(1, count).Select(i => new NodeWeight($"node-{i}", weight)).ToList();

    [Fact]
    public void Compute_SameMembersInAnyOrder_SameOwners()
    {
        var nodes = Nodes(5);
        var shuffled = nodes.OrderBy(n => n.Name.GetHashCode(StringComparison.Ordinal)).ToList();

        var a = RendezvousAssignment.Compute(nodes, 4096);
        var b = RendezvousAssignment.Compute(shuffled, 4096);

        for (var bucket = 0; bucket < 4096; bucket++)
        {
            Assert.Equal(nodes[a[bucket]].Name, shuffled[b[bucket]].Name);
        }
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(7)]
    public void Compute_EqualWeights_SpreadEvenly(int count)
    {
        var owners = RendezvousAssignment.Compute(Nodes(count), 4096);
        var fair = 4096.0 / count;
        foreach (var group in owners.GroupBy(o => o))
        {
            Assert.InRange(group.Count(), fair * 0.9, fair * 1.1);
        }

        Assert.Equal(count, owners.Distinct().Count());
    }

    [Fact]
    public void Compute_Weights_ShareProportionally()
    {
        var nodes = new List<NodeWeight> { new("a", 1), new("b", 2), new("c", 5) };
        var owners = RendezvousAssignment.Compute(nodes, 8192);
        var shares = Enumerable.Range(0, 3).Select(n => owners.Count(o => o == n) / 8192.0).ToArray();

        Assert.InRange(shares[0], 1 / 8.0 * 0.85, 1 / 8.0 * 1.15);
        Assert.InRange(shares[1], 2 / 8.0 * 0.9, 2 / 8.0 * 1.1);
        Assert.InRange(shares[2], 5 / 8.0 * 0.93, 5 / 8.0 * 1.07);
    }

    [Fact]
    public void Compute_NodeRemoved_OnlyItsBucketsMoveAndSpreadOverAllSurvivors()
    {
        var all = Nodes(4);
        var survivors = all.Where(n => n.Name != "node-2").ToList();
        var before = RendezvousAssignment.Compute(all, 4096);
        var after = RendezvousAssignment.Compute(survivors, 4096);

        var moved = new Dictionary<string, int>();
        for (var bucket = 0; bucket < 4096; bucket++)
        {
            var oldOwner = all[before[bucket]].Name;
            var newOwner = survivors[after[bucket]].Name;
            if (oldOwner != "node-2")
            {
                Assert.Equal(oldOwner, newOwner);
            }
            else
            {
                moved[newOwner] = moved.GetValueOrDefault(newOwner) + 1;
            }
        }

        Assert.Equal(3, moved.Count);
        var total = moved.Values.Sum();
        Assert.All(moved.Values, share => Assert.InRange(share, total / 3.0 * 0.8, total / 3.0 * 1.2));
    }

    [Fact]
    public void Compute_NodeJoins_TakesAboutItsShareAndNothingElseMoves()
    {
        var before = RendezvousAssignment.Compute(Nodes(3), 4096);
        var grown = Nodes(4);
        var after = RendezvousAssignment.Compute(grown, 4096);

        var taken = 0;
        for (var bucket = 0; bucket < 4096; bucket++)
        {
            if (grown[after[bucket]].Name == "node-4")
            {
                taken++;
            }
            else
            {
                Assert.Equal(before[bucket], after[bucket]);
            }
        }

        Assert.InRange(taken, 4096 / 4 * 0.9, 4096 / 4 * 1.1);
    }

    [Fact]
    public void Table_LocalFlagsAndRanges_MatchOwners()
    {
        var table = BucketTable.Compute(Nodes(3), 256, "node-2");

        var fromRanges = table.LocalRanges().SelectMany(r => Enumerable.Range(r.First, r.Last - r.First + 1)).ToHashSet();
        for (var bucket = 0; bucket < 256; bucket++)
        {
            Assert.Equal(table.OwnerOf(bucket) == 1, table.IsLocal(bucket));
            Assert.Equal(table.IsLocal(bucket), fromRanges.Contains(bucket));
        }

        Assert.Equal(fromRanges.Count, table.LocalCount);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(100)]
    [InlineData(131072)]
    public void Table_BadBucketCount_Throws(int count) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => BucketTable.Compute(Nodes(2), count, "node-1"));
}
