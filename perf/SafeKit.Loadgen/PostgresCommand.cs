using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Npgsql;

namespace SafeKit.Loadgen;

/// <summary>
/// <c>pg --host IP --seconds S [--port 5432] [--interval-ms 20] [--timeout-ms 1000] [--table rpo]</c>:
/// PostgreSQL clients around a failover, as database <c>lab</c>, role and password <c>lab</c>.
/// A writer commits <c>INSERT INTO TABLE (id) VALUES (1, 2, 3…)</c>, one transaction each, on one
/// connection, until its first error (the crash): every id up to <c>committed</c> was acknowledged,
/// <c>in_flight</c> (if any) may or may not have been. A prober opens a new connection every interval
/// and asks which server answers (<c>cluster_name</c>); every attempt is printed (start and end in
/// Unix ms, success, server, error), so a
/// benchmark measures how long the database could not be queried.
/// </summary>
internal static class PostgresCommand
{
    public static async Task<int> RunAsync(Options options)
    {
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = options.String("host"),
            Port = options.Int("port", 5432),
            Username = "lab",
            Password = "lab",
            Database = "lab",
            Pooling = false,
            Timeout = 2,
            CommandTimeout = 30,
        };
        var until = DateTimeOffset.UtcNow.AddSeconds(options.Double("seconds", 10));
        var interval = TimeSpan.FromMilliseconds(options.Int("interval-ms", 20));
        var timeout = TimeSpan.FromMilliseconds(options.Int("timeout-ms", 1000));
        var table = options.String("table", "rpo");
        if (!table.All(c => char.IsAsciiLetterOrDigit(c) || c == '_'))
        {
            throw new ArgumentException($"--table '{table}': letters, digits and _ only");
        }

        var writer = Task.Run(() => WriteAsync(builder.ConnectionString, table, until));
        var samples = await Task.Run(() => ProbeAsync(builder.ConnectionString, interval, timeout, until));
        var (committed, inFlight, error) = await writer;
        var output = new StringBuilder();
        output.Append("{\"committed\":").Append(committed)
            .Append(",\"in_flight\":").Append(inFlight is { } f ? f.ToString(System.Globalization.CultureInfo.InvariantCulture) : "null")
            .Append(",\"writer_error\":").Append(JsonSerializer.Serialize(error))
            .Append(",\"samples\":[");
        for (var i = 0; i < samples.Count; i++)
        {
            var s = samples[i];
            output.Append(i == 0 ? "" : ",").Append('[').Append(s.Start).Append(',').Append(s.End).Append(',').Append(s.Ok ? 1 : 0).Append(',').Append(JsonSerializer.Serialize(s.Node)).Append(',').Append(JsonSerializer.Serialize(s.Error)).Append(']');
        }

        output.Append("]}");
        Console.WriteLine(output);
        return 0;
    }

    private static async Task<(long Committed, long? InFlight, string? Error)> WriteAsync(string connectionString, string table, DateTimeOffset until)
    {
        long committed = 0;
        try
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            await using var insert = new NpgsqlCommand($"INSERT INTO {table} (id) VALUES ($1)", connection);
            var id = new NpgsqlParameter<long> { TypedValue = 0 };
            insert.Parameters.Add(id);
            await insert.PrepareAsync();
            while (DateTimeOffset.UtcNow < until)
            {
                id.TypedValue = committed + 1;
                await insert.ExecuteNonQueryAsync();
                committed++;
            }

            return (committed, null, null);
        }
        catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException or InvalidOperationException)
        {
            return (committed, committed + 1, e.Message);
        }
    }

    private static async Task<List<Sample>> ProbeAsync(string connectionString, TimeSpan interval, TimeSpan timeout, DateTimeOffset until)
    {
        var samples = new List<Sample>();
        while (DateTimeOffset.UtcNow < until)
        {
            var start = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            var watch = Stopwatch.StartNew();
            string? error = null;
            string? node = null;
            try
            {
                using var cancel = new CancellationTokenSource(timeout);
                await using var connection = new NpgsqlConnection(connectionString);
                await connection.OpenAsync(cancel.Token);
                // The lab's start script names each node's server in cluster_name.
                await using var query = new NpgsqlCommand("SELECT current_setting('cluster_name')", connection);
                node = (string?)await query.ExecuteScalarAsync(cancel.Token);
            }
            catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException or OperationCanceledException or InvalidOperationException)
            {
                error = e is OperationCanceledException ? "timeout" : e.Message;
            }

            samples.Add(new Sample(start, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), error is null, node, error));
            var rest = interval - watch.Elapsed;
            if (rest > TimeSpan.Zero)
            {
                await Task.Delay(rest);
            }
        }

        return samples;
    }

    private sealed record Sample(long Start, long End, bool Ok, string? Node, string? Error);
}
