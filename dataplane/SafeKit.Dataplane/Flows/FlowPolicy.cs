using System.Runtime.CompilerServices;
using SafeKit.Dataplane.Buckets;
using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Parsing;

namespace SafeKit.Dataplane.Flows;

/// <summary>
/// Accept or reject a packet from its bucket's mode and its flow, keeping the flow table up to date:
/// <list type="table">
/// <item><term>Owned</term><description>accept; record new flows as ours (a TCP SYN, the first datagram of a UDP flow), closing ones.</description></item>
/// <item><term>Foreign, Awaiting</term><description>reject; remember UDP flows as another node's (they stay its).</description></item>
/// <item><term>Shared</term><description>accept new flows (recorded as ours) and our flows; reject the flows another node pins.</description></item>
/// <item><term>Pinned</term><description>accept only our flows (kept alive by every packet); new flows are the new owner's.</description></item>
/// </list>
/// TCP data on an owned bucket — the bulk of the traffic — never touches the table.
/// </summary>
public static class FlowPolicy
{
    private const byte Fin = 0x01;
    private const byte Syn = 0x02;
    private const byte Rst = 0x04;
    private const byte Ack = 0x10;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Verdict Judge(BucketMode mode, FlowTable flows, ReadOnlySpan<byte> frame, in ParsedPacket packet, int bucket, long now)
    {
        if (packet.Protocol == IpProtocol.Tcp && packet.L4Offset >= 0 && !packet.Embedded.Present)
        {
            // The bulk of the traffic: TCP on a bucket that is plainly ours or plainly not.
            var tcpFlags = frame[packet.L4Offset + 13];
            if (mode is BucketMode.Foreign or BucketMode.Awaiting)
            {
                return Verdict.Reject;
            }

            if (mode == BucketMode.Owned && (tcpFlags & (Syn | Fin | Rst)) == 0)
            {
                return Verdict.Accept;
            }

            return JudgeTcp(mode, flows, frame, packet, bucket, now, tcpFlags);
        }

        return packet.Embedded.Present
            ? JudgeQuoted(mode, flows, frame, packet)
            : JudgeDatagram(mode, flows, frame, packet, bucket, now);
    }

    private static Verdict JudgeTcp(BucketMode mode, FlowTable flows, ReadOnlySpan<byte> frame, in ParsedPacket packet, int bucket, long now, byte tcpFlags)
    {
        var opening = (tcpFlags & (Syn | Ack)) == Syn;
        var closing = (tcpFlags & (Fin | Rst)) != 0;
        switch (mode)
        {
            case BucketMode.Owned:
            {
                var key = FlowKey.FromClient(frame, packet);
                if (opening)
                {
                    flows.Insert(key, bucket, mine: true, now);
                }
                else if (closing && flows.Find(key) is var slot and >= 0)
                {
                    flows.MarkClosing(slot, now);
                }

                return Verdict.Accept;
            }

            case BucketMode.Shared:
            case BucketMode.Pinned:
            {
                var key = FlowKey.FromClient(frame, packet);
                if (opening)
                {
                    if (mode == BucketMode.Pinned)
                    {
                        return Verdict.Reject;
                    }

                    flows.Insert(key, bucket, mine: true, now);
                    return Verdict.Accept;
                }

                var slot = flows.Find(key);
                if (slot < 0 || !flows.IsMine(slot))
                {
                    return Verdict.Reject;
                }

                if (closing)
                {
                    flows.MarkClosing(slot, now);
                }
                else
                {
                    flows.Touch(slot, now);
                }

                return Verdict.Accept;
            }

            default:
                return Verdict.Reject;
        }
    }

    private static Verdict JudgeDatagram(BucketMode mode, FlowTable flows, ReadOnlySpan<byte> frame, in ParsedPacket packet, int bucket, long now)
    {
        var key = FlowKey.FromClient(frame, packet);
        switch (mode)
        {
            case BucketMode.Owned:
            case BucketMode.Shared:
            {
                // A flow seen for the first time is ours; one known is ours or another node's.
                var slot = flows.FindOrInsert(key, bucket, mine: true, now, out var inserted);
                if (inserted || slot < 0)
                {
                    return Verdict.Accept;
                }

                if (mode == BucketMode.Owned || flows.IsMine(slot))
                {
                    flows.Touch(slot, now);
                    return Verdict.Accept;
                }

                return Verdict.Reject;
            }

            case BucketMode.Pinned:
            {
                var slot = flows.Find(key);
                if (slot >= 0 && flows.IsMine(slot))
                {
                    flows.Touch(slot, now);
                    return Verdict.Accept;
                }

                return Verdict.Reject;
            }

            default:
            {
                var slot = flows.FindOrInsert(key, bucket, mine: false, now, out var inserted);
                if (!inserted && slot >= 0)
                {
                    flows.Touch(slot, now);
                }

                return Verdict.Reject;
            }
        }
    }

    private static Verdict JudgeQuoted(BucketMode mode, FlowTable flows, ReadOnlySpan<byte> frame, in ParsedPacket packet)
    {
        switch (mode)
        {
            case BucketMode.Owned:
                return Verdict.Accept;
            case BucketMode.Shared:
            case BucketMode.Pinned:
                var slot = flows.Find(FlowKey.FromQuoted(frame, packet.Embedded));
                return slot >= 0 && flows.IsMine(slot) ? Verdict.Accept : Verdict.Reject;
            default:
                return Verdict.Reject;
        }
    }
}
