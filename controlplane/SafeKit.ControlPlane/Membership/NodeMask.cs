using System.Numerics;

namespace SafeKit.ControlPlane.Membership;

/// <summary>Sets of nodes as 32-bit masks: bit i is the i-th node of the configuration.</summary>
public static class NodeMask
{
    public static uint Of(int index) => 1u << index;

    public static bool Contains(uint mask, int index) => (mask & (1u << index)) != 0;

    public static int Count(uint mask) => BitOperations.PopCount(mask);

    /// <summary>Lowest index in the mask (the highest-ranked node), or -1 when empty.</summary>
    public static int Lowest(uint mask) => mask == 0 ? -1 : BitOperations.TrailingZeroCount(mask);

    /// <summary>Indexes in the mask, ascending.</summary>
    public static IEnumerable<int> Members(uint mask)
    {
        for (var i = 0; i < 32; i++)
        {
            if (Contains(mask, i))
            {
                yield return i;
            }
        }
    }
}
