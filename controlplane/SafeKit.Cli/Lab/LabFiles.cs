using System.Globalization;
using System.Text;
using SafeKit.Dataplane.Capture;
using SafeKit.Dataplane.Decisions;
using SafeKit.Dataplane.Engine;
using SafeKit.Dataplane.Flows;

namespace SafeKit.Cli.Lab;

/// <summary>The files a lab writes: the cluster configuration and one NGINX configuration per node.</summary>
internal static class LabFiles
{
    private const string StreamModule = "/usr/lib/nginx/modules/ngx_stream_module.so";

    public static string ClusterConfig(LabTopology topology, LabOptions options)
    {
        var text = new StringBuilder();
        text.AppendLine("# Written by `safekit lab up`: the lab's cluster, one farm module serving NGINX.");
        AppendCluster(text, topology);

        text.AppendLine("modules:");
        text.AppendLine("  - name: web");
        text.AppendLine("    type: farm");
        text.Append("    vips: [").Append(LabTopology.VipV4);
        if (options.IPv6)
        {
            text.Append(", \"").Append(LabTopology.VipV6).Append('"');
        }

        text.AppendLine("]");
        text.Append("    interface: ").AppendLine(LabTopology.NodeInterface);
        text.Append("    l2_mode: ").AppendLine(options.L2Mode == L2Mode.Unicast ? "unicast" : "multicast");
        text.Append("    affinity: ").AppendLine(options.Affinity == Affinity.ClientIp ? "client-ip" : "client-ip-port");
        text.Append("    dataplane: ").AppendLine(options.Dataplane == DataplaneMode.Kernel ? "kernel" : "userspace");
        text.Append("    capture: ").AppendLine(options.Capture == CaptureKind.Pcap ? "pcap" : "ring");
        text.Append("    workers: ").AppendLine(options.Workers.ToString(CultureInfo.InvariantCulture));
        AppendNginxScripts(text, topology);
        return text.ToString();
    }

    private static void AppendCluster(StringBuilder text, LabTopology topology)
    {
        text.AppendLine("cluster:");
        text.Append("  name: ").AppendLine(topology.ClusterName);
        text.Append("  key_file: ").AppendLine(topology.KeyPath);
        text.AppendLine("  api:");
        text.Append("    tokens_file: ").AppendLine(topology.TokensPath);
        text.Append("    certificate: ").AppendLine(Path.Combine(topology.StateDirectory, "{node}", "api.pfx"));
        text.Append("    ca_file: ").AppendLine(topology.CaPath);
        text.AppendLine("  nodes:");
        foreach (var i in topology.NodeIndexes)
        {
            text.Append("    - name: ").AppendLine(topology.NodeName(i));
            text.Append("      address: ").AppendLine(topology.NodeV4(i).ToString());
        }
    }

    /// <summary>NGINX is the module's application: safekitd starts it, checks it, restarts it, stops it.</summary>
    private static void AppendNginxScripts(StringBuilder text, LabTopology topology)
    {
        var conf = Path.Combine(topology.StateDirectory, "{node}", "nginx.conf");
        var pid = Path.Combine(topology.StateDirectory, "{node}", "nginx.pid");
        text.AppendLine("    scripts:");
        text.Append("      start: \"test -s ").Append(pid).Append(" && kill -0 $(cat ").Append(pid).Append(") 2>/dev/null || /usr/sbin/nginx -c ").Append(conf).AppendLine("\"");
        // A graceful stop finishes the requests in flight; it returns once NGINX has exited, so a
        // start that follows never mistakes a master still finishing for a running one.
        text.Append("      stop: \"/usr/sbin/nginx -c ").Append(conf).Append(" -s quit; while test -s ").Append(pid).Append(" && kill -0 $(cat ").Append(pid).AppendLine(") 2>/dev/null; do sleep 0.05; done\"");
        text.AppendLine("      timeout_ms: 60000");
        text.AppendLine("    checkers:");
        text.AppendLine("      - tcp: 80");
        text.AppendLine("        interval_ms: 300");
        text.AppendLine("        failures: 2");
        text.Append("      - process: ").AppendLine(pid);
        text.AppendLine("        interval_ms: 300");
        text.AppendLine("        failures: 2");
        text.AppendLine("    restart:");
        text.AppendLine("      max: 2");
        text.AppendLine("      window_ms: 60000");
    }

    public static string Nginx(LabTopology topology, LabOptions options, int index)
    {
        var node = topology.NodeName(index);
        var directory = topology.NodeDirectory(index);
        var stream = File.Exists(StreamModule);
        var text = new StringBuilder();
        if (stream)
        {
            text.Append("load_module ").Append(StreamModule).AppendLine(";");
        }

        text.AppendLine("daemon on;");
        text.AppendLine("user www-data;");
        text.Append("worker_processes ").Append(options.NginxWorkers.ToString(CultureInfo.InvariantCulture)).AppendLine(";");
        text.Append("pid ").Append(Path.Combine(directory, "nginx.pid")).AppendLine(";");
        text.Append("error_log ").Append(Path.Combine(directory, "nginx-error.log")).AppendLine(" warn;");
        text.AppendLine("events { worker_connections 8192; }");
        text.AppendLine("http {");
        text.AppendLine("  access_log off;");
        text.AppendLine("  keepalive_requests 1000000;");
        text.AppendLine("  client_max_body_size 0;");
        text.Append("  client_body_temp_path ").Append(Path.Combine(directory, "nginx-body")).AppendLine(";");
        text.AppendLine("  server {");
        text.Append("    listen ").Append(LabTopology.VipV4).Append(':').Append(LabTopology.HttpPort).AppendLine(";");
        if (options.IPv6)
        {
            text.Append("    listen [").Append(LabTopology.VipV6).Append("]:").Append(LabTopology.HttpPort).AppendLine(";");
        }

        text.AppendLine("    default_type text/plain;");
        text.Append("    location / { return 200 \"node ").Append(node).AppendLine("\\n\"; }");
        // A slow large download (8 MiB at 1 MiB/s): connections that last, for pinning tests.
        text.Append("    location = /download { alias ").Append(topology.DownloadPath).AppendLine("; limit_rate 1m; default_type application/octet-stream; }");
        text.AppendLine("  }");
        text.AppendLine("}");
        if (stream)
        {
            text.AppendLine("stream {");
            text.AppendLine("  server {");
            text.Append("    listen ").Append(LabTopology.VipV4).Append(':').Append(LabTopology.UdpPort).AppendLine(" udp;");
            if (options.IPv6)
            {
                text.Append("    listen [").Append(LabTopology.VipV6).Append("]:").Append(LabTopology.UdpPort).AppendLine(" udp;");
            }

            text.Append("    return \"node ").Append(node).AppendLine("\\n\";");
            text.AppendLine("  }");
            text.AppendLine("}");
        }

        return text.ToString();
    }

    /// <summary>The mirror lab's cluster: m1 and m2, one mirror module replicating /srv/www and /srv/pgdata, NGINX on the VIP.</summary>
    public static string MirrorClusterConfig(LabTopology topology, LabOptions options)
    {
        var text = new StringBuilder();
        text.AppendLine("# Written by `safekit lab up --mirror`: two nodes, one mirror module; NGINX serves /srv/www on the VIP.");
        AppendCluster(text, topology);
        text.AppendLine("modules:");
        text.AppendLine("  - name: mirror");
        text.AppendLine("    type: mirror");
        text.Append("    vips: [").Append(topology.Vip4);
        if (options.IPv6)
        {
            text.Append(", \"").Append(topology.Vip6).Append('"');
        }

        text.AppendLine("]");
        text.Append("    interface: ").AppendLine(LabTopology.NodeInterface);
        text.AppendLine("    directories:");
        foreach (var directory in LabTopology.MirrorDirectories)
        {
            text.Append("      - path: ").AppendLine(directory);
        }

        text.AppendLine("    replication:");
        text.Append("      port: ").AppendLine(LabTopology.ReplicationPort.ToString(CultureInfo.InvariantCulture));
        // The client answers pings: a node that can still reach it is not the isolated one.
        text.Append("    witness: [").Append(LabTopology.ClientV4).AppendLine("]");
        AppendNginxScripts(text, topology);
        return text.ToString();
    }

    /// <summary>NGINX of a mirror node: the replicated /srv/www on the VIP (started only on PRIM or ALONE).</summary>
    public static string MirrorNginx(LabTopology topology, LabOptions options, int index)
    {
        var directory = topology.NodeDirectory(index);
        var text = new StringBuilder();
        text.AppendLine("daemon on;");
        text.AppendLine("user www-data;");
        text.AppendLine("worker_processes 1;");
        text.Append("pid ").Append(Path.Combine(directory, "nginx.pid")).AppendLine(";");
        text.Append("error_log ").Append(Path.Combine(directory, "nginx-error.log")).AppendLine(" warn;");
        text.AppendLine("events { worker_connections 1024; }");
        text.AppendLine("http {");
        text.AppendLine("  access_log off;");
        text.Append("  client_body_temp_path ").Append(Path.Combine(directory, "nginx-body")).AppendLine(";");
        text.AppendLine("  server {");
        text.Append("    listen ").Append(topology.Vip4).Append(':').Append(LabTopology.HttpPort).AppendLine(";");
        if (options.IPv6)
        {
            text.Append("    listen [").Append(topology.Vip6).Append("]:").Append(LabTopology.HttpPort).AppendLine(";");
        }

        text.AppendLine("    root /srv/www;");
        text.AppendLine("    default_type text/plain;");
        text.Append("    add_header X-Served-By ").Append(topology.NodeName(index)).AppendLine(";");
        text.AppendLine("  }");
        text.AppendLine("}");
        return text.ToString();
    }
}
