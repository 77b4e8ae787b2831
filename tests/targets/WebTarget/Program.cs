// WebTarget: ASP.NET Core minimal API for the collectd-dotnet tests.
//
// Usage: WebTarget [--urls http://127.0.0.1:PORT] [other ASP.NET Core host options]
//
//   GET /      -> "ok"
//   GET /work  -> allocates ~1 MB in small arrays, returns "done <bytes>"
//
// Without --urls it listens on http://127.0.0.1:0 (a free port). Once
// listening it prints "LISTENING <url>" for each address, then "READY <pid>".
// Runs until SIGTERM/SIGINT (graceful ASP.NET Core shutdown, exit code 0).
// Like any ASP.NET Core app by default it runs with the server GC (one heap
// per core), unlike the console targets (workstation GC).

using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.SetMinimumLevel(LogLevel.Warning);
if (string.IsNullOrEmpty(builder.Configuration["urls"]) && string.IsNullOrEmpty(builder.Configuration["ASPNETCORE_URLS"]))
    builder.WebHost.UseUrls("http://127.0.0.1:0");

var app = builder.Build();

app.MapGet("/", () => "ok");
app.MapGet("/work", () =>
{
    long total = 0;
    for (int i = 0; i < 128; i++)
    {
        var chunk = new byte[8 * 1024];
        chunk[i] = 1;
        total += chunk.Length;
    }
    return $"done {total}";
});

app.Lifetime.ApplicationStarted.Register(() =>
{
    var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses;
    foreach (string a in addresses ?? (ICollection<string>)Array.Empty<string>())
        Console.WriteLine($"LISTENING {a}");
    Console.WriteLine($"READY {Environment.ProcessId}");
});
app.Lifetime.ApplicationStopped.Register(() => Console.WriteLine($"EXIT {Environment.ProcessId}"));

app.Run();
