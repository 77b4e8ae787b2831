// tests/tools/TraceCheck: reads a .nettrace file with TraceEvent, as PerfView
// and dotnet-trace do, and prints what it found, one "key value" a line:
//
//   dotnet TraceCheck.dll FILE [PREFIX]
//
//   events N                   every event EventPipeEventSource delivered
//   read whole|error: MESSAGE  whether the source read the file to its end
//   provider NAME N            per provider (TraceLog, which names them)
//   event PROVIDER/NAME N      per event
//   samples N                  SampleProfiler events (TraceLog)
//   stacks N                   of them, with a stack
//   frames N                   stack frames of those samples
//   named N                    of them, with a method name (the rundown's)
//   prefixed N                 of them, methods whose full name starts with
//                              PREFIX (the app's own code)
//   top NAME                   up to 5 most frequent named leaf methods
//
// Exit status 0 when the file was read whole, 1 otherwise, 2 for bad usage.
using Microsoft.Diagnostics.Tracing;
using Microsoft.Diagnostics.Tracing.Etlx;

if (args.Length < 1 || args.Length > 2)
{
    Console.Error.WriteLine("usage: TraceCheck FILE.nettrace [PREFIX]");
    return 2;
}
string path = args[0];
string? prefix = args.Length > 1 ? args[1] : null;
long events = 0;
var providers = new SortedDictionary<string, long>(StringComparer.Ordinal);
var names = new SortedDictionary<string, long>(StringComparer.Ordinal);
string read = "whole";
try
{
    using var source = new EventPipeEventSource(path);
    source.AllEvents += e => events++;
    if (!source.Process())
        read = "error: Process() returned false";
}
catch (Exception ex)
{
    read = "error: " + ex.GetType().Name + ": " + ex.Message.ReplaceLineEndings(" ");
}
Console.WriteLine($"events {events}");
Console.WriteLine($"read {read}");

// Stacks through TraceLog, which resolves addresses with the rundown's
// method events.
long samples = 0, stacks = 0, frames = 0, named = 0, prefixed = 0;
var leaves = new Dictionary<string, long>(StringComparer.Ordinal);
string etlx = Path.Combine(Path.GetTempPath(), $"tracecheck-{Environment.ProcessId}.etlx");
try
{
    TraceLog.CreateFromEventPipeDataFile(path, etlx);
    using var log = new TraceLog(etlx);
    foreach (TraceEvent e in log.Events)
    {
        providers[e.ProviderName] = providers.GetValueOrDefault(e.ProviderName) + 1;
        string key = e.ProviderName + "/" + e.EventName;
        names[key] = names.GetValueOrDefault(key) + 1;
        if (e.ProviderName != "Microsoft-DotNETCore-SampleProfiler")
            continue;
        samples++;
        var cs = e.CallStack();
        if (cs != null)
            stacks++;
        bool leaf = true;
        for (; cs != null; cs = cs.Caller)
        {
            frames++;
            string? m = cs.CodeAddress.Method?.FullMethodName;
            if (!string.IsNullOrEmpty(m))
            {
                named++;
                if (prefix != null && m.StartsWith(prefix, StringComparison.Ordinal))
                    prefixed++;
                if (leaf)
                    leaves[m] = leaves.GetValueOrDefault(m) + 1;
                leaf = false;
            }
        }
    }
}
catch (Exception ex)
{
    Console.WriteLine("tracelog error: " + ex.GetType().Name + ": " + ex.Message.ReplaceLineEndings(" "));
}
finally
{
    File.Delete(etlx);
}
foreach (var (p, n) in providers)
    Console.WriteLine($"provider {p} {n}");
foreach (var (k, n) in names)
    Console.WriteLine($"event {k} {n}");
Console.WriteLine($"samples {samples}");
Console.WriteLine($"stacks {stacks}");
Console.WriteLine($"frames {frames}");
Console.WriteLine($"named {named}");
Console.WriteLine($"prefixed {prefixed}");
foreach (var (m, _) in leaves.OrderByDescending(kv => kv.Value).Take(5))
    Console.WriteLine($"top {m}");
return read == "whole" ? 0 : 1;
