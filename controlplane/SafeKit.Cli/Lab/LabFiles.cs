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
            text.Append("        mode: ").AppendLine(options.MirrorMode);
        }

        text.AppendLine("    replication:");
        text.Append("      port: ").AppendLine(LabTopology.ReplicationPort.ToString(CultureInfo.InvariantCulture));
        // The client answers pings: a node that can still reach it is not the isolated one.
        text.Append("    witness: [").Append(LabTopology.ClientV4).AppendLine("]");
        AppendMirrorScripts(text, topology);
        return text.ToString();
    }

    /// <summary>The mirror's application is NGINX and PostgreSQL, both started by app.sh on PRIM or ALONE only.</summary>
    private static void AppendMirrorScripts(StringBuilder text, LabTopology topology)
    {
        var script = topology.MirrorAppScriptPath;
        var node = Path.Combine(topology.StateDirectory, "{node}");
        text.AppendLine("    scripts:");
        text.Append("      start: \"sh ").Append(script).Append(" start ").Append(node).AppendLine("\"");
        text.Append("      stop: \"sh ").Append(script).Append(" stop ").Append(node).AppendLine("\"");
        text.AppendLine("      timeout_ms: 120000");
        text.AppendLine("    checkers:");
        text.AppendLine("      - tcp: 80");
        text.AppendLine("        interval_ms: 300");
        text.AppendLine("        failures: 2");
        text.Append("      - tcp: ").AppendLine(LabTopology.PostgresPort.ToString(CultureInfo.InvariantCulture));
        text.AppendLine("        interval_ms: 300");
        text.AppendLine("        failures: 3");
        text.Append("      - process: ").AppendLine(Path.Combine(node, "nginx.pid"));
        text.AppendLine("        interval_ms: 300");
        text.AppendLine("        failures: 2");
        text.AppendLine("    restart:");
        text.AppendLine("      max: 2");
        text.AppendLine("      window_ms: 60000");
    }

    /// <summary>
    /// The mirror lab's start/stop script (run by safekitd inside the node's namespaces). PostgreSQL's
    /// data directory is the replicated /srv/pgdata: the first start initialises it through PRIM's
    /// mount (so SECOND receives it too) and creates database, role and password <c>lab</c>.
    /// </summary>
    public static string MirrorAppScript() => $$"""
        #!/bin/sh
        # Written by `safekit lab up --mirror`: the mirror module's application.
        #   app.sh start|stop NODE_DIRECTORY
        # NGINX serves /srv/www; PostgreSQL 15 keeps its data in /srv/pgdata and listens on port {{LabTopology.PostgresPort}}
        # of every address of the node (the VIP included).
        set -eu
        action=$1
        dir=$2
        pgbin={{LabTopology.PostgresBin}}
        data=/srv/pgdata
        log=$dir/postgresql.log
        pg() { runuser -u postgres -- "$@"; }

        # The pid of a postmaster of this node (its own mount namespace) running on $data, else nothing.
        # A postmaster.pid can come from the peer, which crashed while it was PRIM: the file was
        # replicated, and in a lab the pid may since belong to an unrelated process.
        our_postmaster() {
            test -s "$data/postmaster.pid" || return 0
            pid=$(head -n 1 "$data/postmaster.pid")
            case $pid in ''|*[!0-9]*) return 0 ;; esac
            test "$(readlink /proc/$pid/ns/mnt 2>/dev/null)" = "$(readlink /proc/self/ns/mnt)" || return 0
            grep -qa postgres /proc/$pid/cmdline 2>/dev/null && echo "$pid"
            return 0
        }

        case $action in
        start)
            test -s "$dir/nginx.pid" && kill -0 "$(cat "$dir/nginx.pid")" 2>/dev/null || /usr/sbin/nginx -c "$dir/nginx.conf"
            if [ ! -s "$data/PG_VERSION" ]; then
                chown postgres:postgres "$data"
                chmod 0700 "$data"
                # --no-sync: the files are already applied on both nodes as they are written; a lab
                # "crash" kills processes, it does not drop page caches.
                pg "$pgbin/initdb" -D "$data" --no-sync -U postgres -E UTF8 --no-locale --auth-local=peer --auth-host=scram-sha-256 >>"$log" 2>&1
                printf "listen_addresses = '*'\nport = {{LabTopology.PostgresPort}}\nrecovery_init_sync_method = syncfs\n" >>"$data/postgresql.conf"
                printf 'host all all 198.18.0.0/15 scram-sha-256\nhost all all 2001:2::/48 scram-sha-256\n' >>"$data/pg_hba.conf"
            fi
            if [ -z "$(our_postmaster)" ]; then
                # Restarted after a crash, PostgreSQL first makes its whole data directory durable
                # (recovery_init_sync_method). One syncfs of the file system under the mount does it
                # (safekitd also does it when it takes over); PostgreSQL's own syncfs cannot reach
                # through FUSE, and its default, one fsync per file, takes seconds.
                sync -f "{{LabTopology.MirrorVarDirectory}}"
                rm -f "$data/postmaster.pid"
                touch "$log" && chown postgres "$log"
                pg "$pgbin/pg_ctl" -D "$data" -l "$log" -w -t 110 -o "-c cluster_name=$(basename "$dir")" start >/dev/null
            fi
            if [ "$(pg "$pgbin/psql" -tAq -c "SELECT 1 FROM pg_roles WHERE rolname = 'lab'")" != 1 ]; then
                pg "$pgbin/psql" -q -c "CREATE ROLE lab LOGIN PASSWORD 'lab'" -c "CREATE DATABASE lab OWNER lab"
            fi
            ;;
        stop)
            if [ -s "$dir/nginx.pid" ] && kill -0 "$(cat "$dir/nginx.pid")" 2>/dev/null; then
                /usr/sbin/nginx -c "$dir/nginx.conf" -s quit
                while kill -0 "$(cat "$dir/nginx.pid" 2>/dev/null)" 2>/dev/null; do sleep 0.05; done
            fi
            if [ -n "$(our_postmaster)" ]; then
                pg "$pgbin/pg_ctl" -D "$data" -m fast -w -t 110 stop >/dev/null
            fi
            ;;
        *)
            echo "usage: app.sh start|stop NODE_DIRECTORY" >&2
            exit 64
            ;;
        esac

        """;

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
        // Which node answers, for probes (the replicated pages are the same on both).
        text.Append("    location = /served-by { return 200 \"").Append(topology.NodeName(index)).AppendLine("\\n\"; }");
        text.AppendLine("  }");
        text.AppendLine("}");
        return text.ToString();
    }
}
