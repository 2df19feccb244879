using System.Net;
using SafeKit.Dataplane.Flows;

namespace SafeKit.Tests.Dataplane;

public sealed class JHashTests
{
    // Values the kernel computed (nft "jhash ip saddr . udp sport mod 4096 seed 0x12345678",
    // read back from a dynamic set); the live oracle test re-derives thousands of them.
    [Theory]
    [InlineData("198.18.68.146", 55538, 0x4d3u)]
    [InlineData("198.18.15.6", 1668, 0xa5u)]
    [InlineData("198.18.195.176", 14196, 0x66u)]
    [InlineData("198.18.112.195", 30121, 0x11du)]
    public void Hash_KernelVectors_SameBucket(string address, int port, uint expected)
    {
        var hasher = new FlowHasher(Affinity.ClientIpPort, 0x12345678);
        var hash = hasher.Hash(IPAddress.Parse(address).GetAddressBytes(), true, (ushort)port);
        Assert.Equal(expected, JHash.Scale(hash, 4096));
    }

    [Fact]
    public void HashFlowKey_EqualsGenericHashOverTheSameBytes()
    {
        var random = new Random(3);
        foreach (var length in new[] { 4, 16 })
        {
            for (var i = 0; i < 5000; i++)
            {
                var address = new byte[length];
                random.NextBytes(address);
                var port = (ushort)random.Next(65536);
                var seed = (uint)random.Next();
                var hasher = new FlowHasher(Affinity.ClientIpPort, seed);
                byte[] key = [.. address, (byte)(port >> 8), (byte)port, 0, 0];

                Assert.Equal(JHash.Hash(key, seed), hasher.Hash(address, true, port));
                Assert.Equal(JHash.Hash(address, seed), hasher.Hash(address, false, port));
            }
        }
    }

    [Fact]
    public void Hash_LongKeys_UseEveryByte()
    {
        var key = new byte[20];
        var seen = new HashSet<uint>();
        for (var i = 0; i < key.Length; i++)
        {
            key[i] ^= 1;
            Assert.True(seen.Add(JHash.Hash(key, 7)));
        }
    }

    [Fact]
    public void Hash_Seed_ChangesResult() =>
        Assert.NotEqual(JHash.Hash([1, 2, 3, 4], 1), JHash.Hash([1, 2, 3, 4], 2));

    [Fact]
    public void Hash_Empty_IsInitialValue() =>
        Assert.Equal(0xdeadbeefu + 5u, JHash.Hash([], 5));

    [Fact]
    public void Scale_MapsOntoRange()
    {
        Assert.Equal(0u, JHash.Scale(0, 4096));
        Assert.Equal(4095u, JHash.Scale(uint.MaxValue, 4096));
        Assert.Equal(2048u, JHash.Scale(0x80000000, 4096));
    }
}
