using System.Text;

namespace SafeKit.Cli.Remote;

/// <summary>A plain text table: columns padded to their widest cell, two spaces apart.</summary>
internal sealed class TextTable
{
    private readonly string[] _header;
    private readonly List<string[]> _rows = [];

    public TextTable(params string[] header)
    {
        _header = header;
    }

    public void Add(params string[] cells) => _rows.Add(cells);

    public override string ToString()
    {
        var widths = _header.Select((h, i) => _rows.Select(r => r.Length > i ? r[i].Length : 0).Append(h.Length).Max()).ToArray();
        var text = new StringBuilder();
        foreach (var row in _rows.Prepend(_header))
        {
            for (var i = 0; i < _header.Length; i++)
            {
                var cell = row.Length > i ? row[i] : "";
                text.Append(i == _header.Length - 1 ? cell : cell.PadRight(widths[i] + 2));
            }

            text.Append('\n');
        }

        return text.ToString();
    }
}
