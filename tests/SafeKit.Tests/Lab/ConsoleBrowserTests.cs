using System.Diagnostics;
using Microsoft.Playwright;
using SafeKit.Tests.Infrastructure;

namespace SafeKit.Tests.Lab;

/// <summary>
/// The web console in a real headless browser (Debian's chromium driven by Playwright), run in the
/// lab's client namespace against a real cluster: sign-in, every node shown, a killed node turning
/// red within seconds, actions with confirmation that change the cluster, the bucket map, the
/// timeline. Keeps screenshots in test-artifacts/ at the repository root.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class ConsoleBrowserTests : IClassFixture<ConsoleLab>
{
    private const string Chromium = "/usr/lib/chromium/chromium";
    private readonly ConsoleLab _lab;
    private readonly ITestOutputHelper _output;

    public ConsoleBrowserTests(ConsoleLab lab, ITestOutputHelper output)
    {
        _lab = lab;
        _output = output;
    }

    private string N(int i) => $"{_lab.Prefix}-n{i}";

    private string Token(string role) =>
        File.ReadAllLines(Path.Combine(_lab.StateDirectory, "api-tokens")).First(l => l.StartsWith(role + " ", StringComparison.Ordinal)).Split(' ')[1];

    /// <summary>Where screenshots are kept: test-artifacts/ next to the solution (or $SAFEKIT_ARTIFACTS).</summary>
    private static string Artifacts()
    {
        var directory = Environment.GetEnvironmentVariable("SAFEKIT_ARTIFACTS");
        if (string.IsNullOrEmpty(directory))
        {
            directory = Path.Combine(Tools.RepositoryRoot() ?? Path.GetTempPath(), "test-artifacts");
        }

        Directory.CreateDirectory(directory);
        return directory;
    }

    private async Task<(IPlaywright Playwright, IBrowser Browser, IPage Page)> OpenAsync()
    {
        Assert.SkipWhen(!File.Exists(Chromium), "chromium is not installed (./setup installs it)");
        // The browser runs inside the client namespace: it reaches the nodes the way an operator's would.
        var wrapper = Path.Combine(_lab.StateDirectory, "chromium-in-client.sh");
        File.WriteAllText(wrapper, $"#!/bin/sh\nexec ip netns exec {_lab.Prefix}-client {Chromium} \"$@\"\n");
        File.SetUnixFileMode(wrapper, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var playwright = await Playwright.CreateAsync();
        var browser = await playwright.Chromium.LaunchAsync(new() { ExecutablePath = wrapper, Headless = true });
        // The lab's CA is not in the browser's store; the API's own TLS checks are tested with the CLI.
        var context = await browser.NewContextAsync(new() { IgnoreHTTPSErrors = true, ViewportSize = new() { Width = 1400, Height = 1100 } });
        var page = await context.NewPageAsync();
        page.SetDefaultTimeout(30_000);
        return (playwright, browser, page);
    }

    private static async Task SignInAsync(IPage page, string token)
    {
        await page.FillAsync("#token", token);
        await page.ClickAsync("#sign-in");
    }

    private static Task<string?> StateOf(IPage page, string node) => page.GetAttributeAsync($".node[data-node='{node}']", "data-state");

    private static async Task ActAsync(IPage page, string node, string action, bool confirm)
    {
        await page.ClickAsync($".node[data-node='{node}'] button[data-action='{action}']");
        await page.WaitForSelectorAsync("#confirm[open]");
        Assert.Contains($"{action} module web on {node}?", await page.TextContentAsync("#confirm-text") ?? "", StringComparison.Ordinal);
        await page.ClickAsync(confirm ? "#confirm-ok" : "#confirm-cancel");
    }

    [Fact]
    public async Task Console_ShowsTheCluster_ADeadNodeTurnsRed_AndActionsChangeTheCluster()
    {
        _lab.Require();
        var (playwright, browser, page) = await OpenAsync();
        using var _ = playwright;
        await using var __ = browser;
        try
        {
            await page.GotoAsync("https://198.18.0.11:9453/");
            Assert.EndsWith("/console/", page.Url, StringComparison.Ordinal);
            Assert.True(await page.IsVisibleAsync("#login"));

            await SignInAsync(page, "not-a-token");
            await page.WaitForFunctionAsync("() => document.getElementById('login-error').textContent.includes('401')");
            Assert.True(await page.IsHiddenAsync("#console"));

            await SignInAsync(page, Token("admin"));
            for (var i = 1; i <= 3; i++)
            {
                await page.WaitForSelectorAsync($".node[data-node='{N(i)}'][data-state='UP']");
            }

            await page.WaitForSelectorAsync("#live.on");
            // The bucket map: three owners whose buckets add up to the whole table, drawn in three colours.
            await page.WaitForFunctionAsync("() => document.querySelectorAll('#bucket-legend span').length === 3");
            var owned = await page.EvaluateAsync<int[]>("() => [...document.querySelectorAll('#bucket-legend span')].map(s => parseInt(s.textContent.split(': ')[1]))");
            Assert.Equal(4096, owned.Sum());
            Assert.All(owned, n => Assert.InRange(n, 900, 1800));
            var colours = await page.EvaluateAsync<int>("""
                () => { const c = document.getElementById('bucket-map'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                        const s = new Set(); for (let i = 0; i < d.length; i += 4) s.add(d[i] + ',' + d[i+1] + ',' + d[i+2]); return s.size; }
                """);
            Assert.Equal(3, colours);
            Assert.Equal(2, await page.Locator("#heartbeats tbody tr").CountAsync());
            Assert.True(await page.Locator("#checks tbody tr").CountAsync() >= 3);
            await page.ScreenshotAsync(new() { Path = Path.Combine(Artifacts(), "console.png"), FullPage = true });

            // A node killed in the lab turns red within a few seconds, without a reload.
            var clock = Stopwatch.StartNew();
            _lab.Lab("kill", "n3");
            await page.WaitForSelectorAsync($".node[data-node='{N(3)}'][data-state='DEAD']", new() { Timeout = 5000 });
            _output.WriteLine($"killed node shown DEAD after {clock.ElapsedMilliseconds} ms");
            await page.WaitForFunctionAsync($"() => document.getElementById('timeline').textContent.includes('{N(3)} is dead')");
            await page.WaitForFunctionAsync("() => document.querySelectorAll('#bucket-legend span').length === 2");
            await page.ScreenshotAsync(new() { Path = Path.Combine(Artifacts(), "console-node-dead.png"), FullPage = true });
            _lab.Lab("start", "n3");
            await page.WaitForSelectorAsync($".node[data-node='{N(3)}'][data-state='UP']");

            // Cancel does nothing; confirm stops the module on n2 (forwarded by n1), then starts it.
            await ActAsync(page, N(2), "stop", confirm: false);
            await Task.Delay(1000, TestContext.Current.CancellationToken);
            Assert.Equal("UP", await StateOf(page, N(2)));
            await ActAsync(page, N(2), "stop", confirm: true);
            await page.WaitForSelectorAsync($".node[data-node='{N(2)}'][data-state='STOP']");
            var status = _lab.Exec("client", Tools.Safekit, "status");
            Assert.Contains(status.Output.Split('\n'), l => l.StartsWith(N(2) + " ", StringComparison.Ordinal) && l.Contains(" STOP ", StringComparison.Ordinal));
            await ActAsync(page, N(2), "start", confirm: true);
            await page.WaitForSelectorAsync($".node[data-node='{N(2)}'][data-state='UP']");
            await page.WaitForFunctionAsync($"() => document.getElementById('timeline').textContent.includes('{N(2)}  action web  stop requested')");

            // A read token sees everything but may not act.
            await page.ClickAsync("#logout");
            await SignInAsync(page, Token("read"));
            await page.WaitForSelectorAsync($".node[data-node='{N(1)}'][data-state='UP']");
            await ActAsync(page, N(1), "restart", confirm: true);
            await page.WaitForFunctionAsync("() => document.getElementById('toast').textContent.includes('an admin token is needed')");
            Assert.Equal("UP", await StateOf(page, N(1)));
        }
        catch
        {
            await page.ScreenshotAsync(new() { Path = Path.Combine(Artifacts(), "console-failure.png"), FullPage = true });
            throw;
        }
    }
}
