namespace SafeKit.Dataplane.Flows;

/// <summary>Which part of the client identity chooses the node.</summary>
public enum Affinity
{
    /// <summary>Client IP and source port: best spread, for stateless services.</summary>
    ClientIpPort,

    /// <summary>Client IP only: every connection of a client lands on the same node (sessions).</summary>
    ClientIp,
}
