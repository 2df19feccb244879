namespace SafeKit.ControlPlane.Configuration;

/// <summary>One problem in a configuration file, located precisely enough to fix it.</summary>
/// <param name="File">Path of the file as given.</param>
/// <param name="Line">1-based line (0 when the problem is about the whole file).</param>
/// <param name="Column">1-based column.</param>
/// <param name="Key">Dotted path of the key (modules[0].vips[1]).</param>
/// <param name="Message">What is wrong and what is expected.</param>
public sealed record ConfigError(string File, int Line, int Column, string Key, string Message)
{
    public override string ToString() =>
        Line > 0 ? $"{File}:{Line}:{Column}: {Key}: {Message}" : $"{File}: {Key}: {Message}";
}
