using System.Globalization;
using System.Net;
using YamlDotNet.RepresentationModel;

namespace SafeKit.ControlPlane.Configuration;

/// <summary>
/// Typed reads from a YAML tree that never throw: every problem becomes a <see cref="ConfigError"/>
/// with the file, line, column and dotted key, and reading goes on so a user sees all of them at once.
/// A null node is a key that is absent: <see cref="Required"/> reports it once, the typed reads
/// then return null without a second error.
/// </summary>
internal sealed class YamlReader
{
    private readonly string _file;
    private readonly List<ConfigError> _errors = [];

    public YamlReader(string file)
    {
        _file = file;
    }

    public IReadOnlyList<ConfigError> Errors => _errors;

    public void Error(YamlNode? node, string key, string message) =>
        _errors.Add(new ConfigError(_file, node is null ? 0 : (int)node.Start.Line, node is null ? 0 : (int)node.Start.Column, key, message));

    /// <summary>The entries of a mapping; unknown keys are reported, known ones returned by name.</summary>
    public Dictionary<string, YamlNode> Mapping(YamlNode? node, string path, IReadOnlyCollection<string> allowed)
    {
        var entries = new Dictionary<string, YamlNode>(StringComparer.Ordinal);
        if (node is not YamlMappingNode mapping)
        {
            Error(node, path, "expected a mapping of keys to values");
            return entries;
        }

        foreach (var (keyNode, value) in mapping.Children)
        {
            var key = (keyNode as YamlScalarNode)?.Value ?? string.Empty;
            var keyPath = path.Length == 0 ? key : $"{path}.{key}";
            if (!allowed.Contains(key))
            {
                Error(keyNode, keyPath, $"unknown key (allowed here: {string.Join(", ", allowed)})");
                continue;
            }

            entries[key] = value;
        }

        return entries;
    }

    /// <summary>Reports a missing required key at the mapping that should hold it.</summary>
    public YamlNode? Required(Dictionary<string, YamlNode> entries, YamlNode? parent, string path, string key)
    {
        if (entries.TryGetValue(key, out var value))
        {
            return value;
        }

        Error(parent, path.Length == 0 ? key : $"{path}.{key}", "is required");
        return null;
    }

    public string? String(YamlNode? node, string path)
    {
        if (node is null)
        {
            return null;
        }

        if (node is YamlScalarNode { Value: { Length: > 0 } value })
        {
            return value;
        }

        Error(node, path, "expected a non-empty value");
        return null;
    }

    public IReadOnlyList<YamlNode> Sequence(YamlNode? node, string path)
    {
        switch (node)
        {
            case YamlSequenceNode sequence:
                return sequence.Children.ToList();
            case YamlScalarNode scalar:
                return [scalar];
            case null:
                return [];
            default:
                Error(node, path, "expected a list");
                return [];
        }
    }

    public long? Integer(YamlNode? node, string path, long min, long max)
    {
        var text = String(node, path);
        if (text is null)
        {
            return null;
        }

        var hex = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase);
        var parsed = hex
            ? long.TryParse(text.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var value)
            : long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out value);
        if (!parsed)
        {
            Error(node, path, $"'{text}' is not an integer");
            return null;
        }

        if (value < min || value > max)
        {
            Error(node, path, $"{text} is out of range ({min}..{max})");
            return null;
        }

        return value;
    }

    public T? Choice<T>(YamlNode? node, string path, IReadOnlyDictionary<string, T> options)
        where T : struct
    {
        var text = String(node, path);
        if (text is null)
        {
            return null;
        }

        if (options.TryGetValue(text, out var value))
        {
            return value;
        }

        Error(node, path, $"'{text}' is not one of: {string.Join(", ", options.Keys)}");
        return null;
    }

    public IPAddress? Address(YamlNode? node, string path)
    {
        var text = String(node, path);
        if (text is null)
        {
            return null;
        }

        if (IPAddress.TryParse(text, out var address) && !text.Contains('/', StringComparison.Ordinal))
        {
            return address;
        }

        Error(node, path, $"'{text}' is not an IPv4 or IPv6 address");
        return null;
    }
}
