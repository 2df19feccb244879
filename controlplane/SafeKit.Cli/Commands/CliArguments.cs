namespace SafeKit.Cli.Commands;

/// <summary>
/// A small option reader: <c>--name value</c>, <c>--flag</c>, positionals, and everything after
/// <c>--</c> kept verbatim. Unknown options are errors, never ignored.
/// </summary>
internal sealed class CliArguments
{
    private readonly Dictionary<string, string?> _options = new(StringComparer.Ordinal);

    private CliArguments(List<string> positionals, List<string> rest)
    {
        Positionals = positionals;
        Rest = rest;
    }

    public IReadOnlyList<string> Positionals { get; }

    /// <summary>Arguments after <c>--</c>.</summary>
    public IReadOnlyList<string> Rest { get; }

    /// <summary>Parses <paramref name="args"/> with the options that take a value and the flags allowed.</summary>
    public static CliArguments Parse(IEnumerable<string> args, IReadOnlyCollection<string> valued, IReadOnlyCollection<string> flags)
    {
        var positionals = new List<string>();
        var rest = new List<string>();
        var parsed = new CliArguments(positionals, rest);
        using var e = args.GetEnumerator();
        while (e.MoveNext())
        {
            var arg = e.Current;
            if (arg == "--")
            {
                while (e.MoveNext())
                {
                    rest.Add(e.Current);
                }

                break;
            }

            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                positionals.Add(arg);
                continue;
            }

            if (flags.Contains(arg))
            {
                parsed._options[arg] = null;
            }
            else if (valued.Contains(arg))
            {
                parsed._options[arg] = e.MoveNext() ? e.Current : throw new CliException($"{arg} needs a value");
            }
            else
            {
                throw new CliException($"unknown option {arg}");
            }
        }

        return parsed;
    }

    public bool Has(string flag) => _options.ContainsKey(flag);

    public string? Value(string option) => _options.TryGetValue(option, out var value) ? value : null;

    public T Choice<T>(string option, T fallback, IReadOnlyDictionary<string, T> choices)
    {
        var value = Value(option);
        if (value is null)
        {
            return fallback;
        }

        return choices.TryGetValue(value, out var choice)
            ? choice
            : throw new CliException($"{option}: '{value}' is not one of {string.Join(", ", choices.Keys)}");
    }

    public int Integer(string option, int fallback, int min, int max)
    {
        var value = Value(option);
        if (value is null)
        {
            return fallback;
        }

        return int.TryParse(value, System.Globalization.CultureInfo.InvariantCulture, out var number) && number >= min && number <= max
            ? number
            : throw new CliException($"{option}: '{value}' is not a number between {min} and {max}");
    }
}

/// <summary>A usage error: printed on one line, exit code 64.</summary>
internal sealed class CliException : Exception
{
    public CliException(string message)
        : base(message)
    {
    }

    public CliException()
    {
    }

    public CliException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
