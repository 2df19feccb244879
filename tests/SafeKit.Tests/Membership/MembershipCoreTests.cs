using SafeKit.ControlPlane.Membership;

namespace SafeKit.Tests.Membership;

public sealed class MembershipCoreTests
{
    [Fact]
    public void AllNodesUp_SettleOnOneViewWithEveryone_EachBucketOneOwner()
    {
        var cluster = new SimulatedCluster(3);
        cluster.Settle();

        Assert.All(cluster.Cores, c =>
        {
            Assert.Equal(0, c.View.Leader);
            Assert.Equal(0b111u, c.View.Members);
        });
        Assert.All(cluster.Claims(), claims => Assert.Equal(1, claims));
    }

    [Fact]
    public void Discovery_AStartingNodeClaimsNothingBeforeOneTimeout()
    {
        var cluster = new SimulatedCluster(1);
        cluster.Step();
        Assert.Equal(ClusterView.None, cluster.Cores[0].View);

        for (var i = 0; i < SimulatedCluster.Timeout / SimulatedCluster.Interval; i++)
        {
            cluster.Step();
        }

        Assert.Equal(1u, cluster.Cores[0].View.Members);
    }

    [Fact]
    public void NodeDies_SurvivorsDropItWithinTimeoutPlusOneInterval_AndOnlyItsBucketsMove()
    {
        var cluster = new SimulatedCluster(4);
        cluster.Settle();
        var before = Enumerable.Range(0, 4).Select(cluster.TableOf).ToArray();

        cluster.Kill(2);
        var rounds = 0;
        while (cluster.Cores.Where((_, i) => i != 2).Any(c => NodeMask.Contains(c.View.Members, 2)))
        {
            cluster.StepSafely();
            rounds++;
        }

        Assert.InRange(rounds * SimulatedCluster.Interval, SimulatedCluster.Timeout - SimulatedCluster.Interval, SimulatedCluster.Timeout + (2 * SimulatedCluster.Interval));
        cluster.Settle();
        var claims = cluster.Claims();
        Assert.All(claims, c => Assert.Equal(1, c));
        for (var node = 0; node < 4; node++)
        {
            if (node == 2)
            {
                continue;
            }

            var after = cluster.TableOf(node);
            for (var b = 0; b < SimulatedCluster.Buckets; b++)
            {
                // A survivor keeps every bucket it had; it only gains buckets of the dead node.
                if (before[node].IsLocal(b))
                {
                    Assert.True(after.IsLocal(b));
                }
                else if (after.IsLocal(b))
                {
                    Assert.True(before[2].IsLocal(b), $"bucket {b} moved from a live node to node {node}");
                }
            }
        }
    }

    [Fact]
    public void LeaderDies_NextNodeLeadsWithAHigherEpoch()
    {
        var cluster = new SimulatedCluster(3);
        cluster.Settle();
        var epoch = cluster.Cores[1].View.Epoch;

        cluster.Kill(0);
        cluster.Settle();

        Assert.Equal(1, cluster.Cores[1].View.Leader);
        Assert.Equal(0b110u, cluster.Cores[2].View.Members);
        Assert.True(cluster.Cores[2].View.Epoch > epoch);
        Assert.All(cluster.Claims(), claims => Assert.Equal(1, claims));
    }

    [Fact]
    public void NodeRestarts_RejoinsAfterDiscovery_NeverClaimingBeforeIt()
    {
        var cluster = new SimulatedCluster(3);
        cluster.Settle();
        cluster.Kill(0);
        cluster.Settle();

        cluster.Start(0);
        cluster.Step();
        Assert.Equal(0u, cluster.Cores[0].View.Members & NodeMask.Of(0));
        var joinedAfter = 0;
        while (cluster.Claims().Any(c => c != 1) || !cluster.Cores.All(c => c.View.Members == 0b111u))
        {
            // While the view changes hands a bucket may briefly be unclaimed, never doubly claimed.
            cluster.StepSafely();
            joinedAfter++;
            Assert.True(joinedAfter < 50, "the restarted node never rejoined");
        }

        // Once out of discovery the first node takes the lead back, still without double owners.
        for (var i = 0; i < 20; i++)
        {
            cluster.StepSafely();
        }

        Assert.Equal(0, cluster.Cores[2].View.Leader);
        Assert.All(cluster.Claims(), c => Assert.Equal(1, c));
        Assert.Equal(0, cluster.Replays);
    }

    [Fact]
    public void PartialPartition_BothEndsStillServeThroughTheThird_OneOwnerPerBucket()
    {
        var cluster = new SimulatedCluster(3);
        cluster.Settle();
        cluster.CutBoth(0, 1);
        cluster.Settle();

        Assert.All(cluster.Cores, c => Assert.Equal(0b111u, c.View.Members));
        Assert.All(cluster.Claims(), claims => Assert.Equal(1, claims));
    }

    [Fact]
    public void AsymmetricCut_TheSideThatSeesTheOtherYields_OneOwnerPerBucket()
    {
        var cluster = new SimulatedCluster(3);
        cluster.Settle();
        // Node 0 still hears everyone, nobody hears node 0. For the others it died; until it hears
        // that (one heartbeat, sent at once on a view change) both may accept: hence not "safely".
        cluster.Cut(0, 1);
        cluster.Cut(0, 2);
        cluster.Settle(safely: false);

        Assert.True(cluster.Cores[0].Yielding);
        Assert.Equal(0u, cluster.Cores[0].View.Members);
        Assert.Equal(0b110u, cluster.Cores[1].View.Members);
        Assert.All(cluster.Claims(), claims => Assert.Equal(1, claims));

        cluster.HealAll();
        cluster.Settle();
        Assert.All(cluster.Cores, c => Assert.Equal(0b111u, c.View.Members));
        Assert.All(cluster.Claims(), claims => Assert.Equal(1, claims));
    }

    [Fact]
    public void RandomLinkFailures_WithOneSourceComponent_SettleWithOneOwnerPerBucket()
    {
        var random = new Random(17);
        var checkedCases = 0;
        for (var trial = 0; trial < 300; trial++)
        {
            var n = random.Next(2, 7);
            var cluster = new SimulatedCluster(n);
            cluster.Settle();
            for (var i = 0; i < n; i++)
            {
                for (var j = 0; j < n; j++)
                {
                    if (i != j && random.NextDouble() < 0.35)
                    {
                        cluster.Cut(i, j);
                    }
                }
            }

            if (n > 2 && random.Next(4) == 0)
            {
                cluster.Kill(random.Next(n));
            }

            cluster.Settle(safely: false);
            var sources = SourceComponents(cluster);
            var claims = cluster.Claims();
            if (sources == 1)
            {
                Assert.All(claims, c => Assert.Equal(1, c));
                checkedCases++;
            }
            else
            {
                // Groups that cannot learn of each other each serve: documented split behaviour.
                Assert.All(claims, c => Assert.InRange(c, 1, sources));
            }
        }

        Assert.True(checkedCases > 100, $"only {checkedCases} single-source cases");
    }

    [Fact]
    public void CableOutAndBack_TheNodeNeverClaimsWhatOthersServe()
    {
        var cluster = new SimulatedCluster(3);
        cluster.Settle();
        for (var i = 0; i < 3; i++)
        {
            if (i != 2)
            {
                cluster.CutBoth(i, 2);
            }
        }

        // The link checker sees no carrier: the node is not ready while its cable is out.
        cluster.Cores[2].Ready = false;
        cluster.Settle();
        Assert.Equal(0b011u, cluster.Cores[0].View.Members);
        Assert.Equal(0u, cluster.Cores[2].View.Members);

        cluster.HealAll();
        cluster.Cores[2].Ready = true;
        for (var step = 0; step < 30; step++)
        {
            cluster.StepSafely();
            Assert.False(cluster.Cores[0].Yielding);
        }

        Assert.All(cluster.Cores, c => Assert.Equal(0b111u, c.View.Members));
        Assert.All(cluster.Claims(), c => Assert.Equal(1, c));
    }

    [Fact]
    public void NodeNotReady_IsLeftOutUntilReady()
    {
        var cluster = new SimulatedCluster(3);
        cluster.Cores[2].Ready = false;
        cluster.Settle();
        Assert.All(cluster.Cores, c => Assert.Equal(0b011u, c.View.Members));

        cluster.Cores[2].Ready = true;
        cluster.Settle();
        Assert.All(cluster.Cores, c => Assert.Equal(0b111u, c.View.Members));
    }

    [Fact]
    public void WeightChange_GivesANewEpochAndAProportionalShare()
    {
        var cluster = new SimulatedCluster(2);
        cluster.Settle();
        var epoch = cluster.Cores[0].View.Epoch;

        cluster.Cores[1].Weight = 3;
        cluster.Settle();

        Assert.True(cluster.Cores[0].View.Epoch > epoch);
        Assert.Equal(3, cluster.Cores[0].View.Weights[1]);
        var share = cluster.TableOf(1).LocalCount / (double)SimulatedCluster.Buckets;
        Assert.InRange(share, 0.68, 0.82);
        Assert.All(cluster.Claims(), c => Assert.Equal(1, c));
    }

    [Fact]
    public void Heartbeat_AfterTheDataplanePinsUnderANewView_SaysItPinsWithThatEpoch()
    {
        // A leader that stops being ready publishes a view without itself; its dataplane pins its
        // flows while applying that view (after Evaluate). The heartbeat announcing the epoch must
        // carry the pinning flag, or the takers would accept its pinned flows.
        var a = new MembershipCore(2, 0, 1, 1, 600, 0);
        var b = new MembershipCore(2, 1, 1, 1, 600, 0);
        var message = new HeartbeatMessage(2);
        a.Ready = b.Ready = true;
        for (var now = 0L; now <= 2000; now += 100)
        {
            a.FillHeartbeat(message);
            b.Receive(message, now);
            b.FillHeartbeat(message);
            a.Receive(message, now);
            a.Evaluate(now);
            b.Evaluate(now);
        }

        Assert.Equal(2, NodeMask.Members(a.View.Members).Count());
        a.Ready = false;
        Assert.True(a.Evaluate(2100));
        a.Pinning = true;
        a.FillHeartbeat(message);

        Assert.Equal(a.View.Epoch, message.ViewEpoch);
        Assert.True(message.States[0].Pinning);
    }

    [Fact]
    public void Receive_OldOrRepeatedHeartbeats_AreReplaysOrDuplicates()
    {
        var key = new byte[32];
        var codec = new HeartbeatCodec(key, "c", 2);
        var a = new MembershipCore(2, 0, 1, 1, 600, 0);
        var b = new MembershipCore(2, 1, 1, 1, 600, 0);
        var message = new HeartbeatMessage(2);
        var decoded = new HeartbeatMessage(2);
        var first = new byte[codec.Length];
        var second = new byte[codec.Length];
        a.FillHeartbeat(message);
        codec.Encode(message, first);
        a.FillHeartbeat(message);
        codec.Encode(message, second);

        codec.Decode(second, decoded);
        Assert.Equal(ReceiveOutcome.Accepted, b.Receive(decoded, 10));
        Assert.Equal(ReceiveOutcome.Duplicate, b.Receive(decoded, 11));
        codec.Decode(first, decoded);
        Assert.Equal(ReceiveOutcome.Replayed, b.Receive(decoded, 12));
    }

    [Fact]
    public void Decode_TamperedForeignOrForged_IsRejected()
    {
        var key = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        var codec = new HeartbeatCodec(key, "prod", 3);
        var message = new HeartbeatMessage(3);
        new MembershipCore(3, 1, 7, 1, 600, 0).FillHeartbeat(message);
        var wire = new byte[codec.Length];
        codec.Encode(message, wire);
        var decoded = new HeartbeatMessage(3);

        Assert.Equal(HeartbeatVerdict.Ok, codec.Decode(wire, decoded));
        Assert.Equal(1, decoded.Sender);
        Assert.Equal(7u, decoded.Incarnation);

        var tampered = (byte[])wire.Clone();
        tampered[40] ^= 1;
        Assert.Equal(HeartbeatVerdict.BadMac, codec.Decode(tampered, decoded));
        Assert.Equal(HeartbeatVerdict.BadMac, new HeartbeatCodec(new byte[32], "prod", 3).Decode(wire, decoded));
        Assert.Equal(HeartbeatVerdict.ForeignCluster, new HeartbeatCodec(key, "other", 3).Decode(wire, decoded));
        Assert.Equal(HeartbeatVerdict.NodeCountMismatch, new HeartbeatCodec(key, "prod", 4).Decode(wire, decoded));
        Assert.Equal(HeartbeatVerdict.Malformed, codec.Decode(wire.AsSpan(0, 30), decoded));
        var version = (byte[])wire.Clone();
        version[4] = 9;
        Assert.Equal(HeartbeatVerdict.BadVersion, codec.Decode(version, decoded));
    }

    [Fact]
    public void Beacon_TravelsAuthenticated_WithTheHeartbeat()
    {
        var key = new byte[32];
        var codec = new HeartbeatCodec(key, "prod", 2);
        var message = new HeartbeatMessage(2);
        new MembershipCore(2, 0, 3, 1, 600, 0).FillHeartbeat(message);
        Enumerable.Range(1, HeartbeatMessage.BeaconLength).Select(i => (byte)i).ToArray().CopyTo(message.Beacon, 0);
        var wire = new byte[codec.Length];
        codec.Encode(message, wire);
        var decoded = new HeartbeatMessage(2);

        Assert.Equal(HeartbeatVerdict.Ok, codec.Decode(wire, decoded));
        Assert.Equal(message.Beacon, decoded.Beacon);
        // The beacon sits just before the MAC: changing it breaks the MAC.
        wire[^(HeartbeatCodec.MacLength + 1)] ^= 1;
        Assert.Equal(HeartbeatVerdict.BadMac, codec.Decode(wire, decoded));
    }

    /// <summary>Number of source strongly connected components among live nodes.</summary>
    private static int SourceComponents(SimulatedCluster cluster)
    {
        var live = Enumerable.Range(0, cluster.Count).Where(i => cluster.Up[i]).ToList();
        bool Reaches(int from, int to)
        {
            var seen = new HashSet<int> { from };
            var queue = new Queue<int>([from]);
            while (queue.Count > 0)
            {
                var x = queue.Dequeue();
                foreach (var y in live)
                {
                    if (cluster.Links[x, y] && seen.Add(y))
                    {
                        queue.Enqueue(y);
                    }
                }
            }

            return seen.Contains(to);
        }

        // A node is in a source component when every node that reaches it is reached by it.
        var sources = live.Where(x => live.All(y => !Reaches(y, x) || Reaches(x, y))).ToList();
        var components = new List<HashSet<int>>();
        foreach (var x in sources)
        {
            if (!components.Any(c => c.Contains(x)))
            {
                components.Add([.. sources.Where(y => Reaches(x, y) && Reaches(y, x))]);
            }
        }

        return components.Count;
    }
}
