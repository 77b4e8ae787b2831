// bench/traceevent: the same measurement as bench/parser.c, with TraceEvent's
// EventPipeEventSource: every event parsed, EventCounters and Metrics
// "*ValuePublished" events decoded into name + value, on the very bytes
// bench/parser reads (both workloads), from memory, single thread.
//
//   dotnet run -c Release --project bench/traceevent -- STREAM CAPTURE [RUNS |
//   --serve]
//
// STREAM: the long stream `bench/parser --write` saved; CAPTURE: the capture
// (fed into fresh sources until as many bytes as STREAM have been read).
// With --serve instead of RUNS: after the warm-up, each line "stream" or
// "fresh" on standard input times one run of that workload and prints
// "stream <MB/s>" (bench/compare-parsers.sh --paired, in turns with
// bench/parser --serve).
using System.Diagnostics;
using Microsoft.Diagnostics.Tracing;

static (long events, long samples) Parse(byte[] bytes)
{
    long events = 0, samples = 0;
    using var source = new EventPipeEventSource(new MemoryStream(bytes, writable: false));
    source.Dynamic.All += e =>
    {
        events++;
        if (e.EventName == "EventCounters")
        {
            // as dotnet-counters reads it: the one field "Payload", a dictionary
            if (e.PayloadValue(0) is IDictionary<string, object> outer &&
                outer.TryGetValue("Payload", out var inner) &&
                inner is IDictionary<string, object> p &&
                p.TryGetValue("Name", out var name) && name is string &&
                (p.TryGetValue("Mean", out var v) || p.TryGetValue("Increment", out v)) &&
                Convert.ToDouble(v) is var _)
                samples++;
        }
        else if (e.ProviderName == "System.Diagnostics.Metrics" &&
                 e.EventName is { } n && n.EndsWith("ValuePublished", StringComparison.Ordinal))
        {
            var name = e.PayloadByName("instrumentName") as string;
            var value = (e.PayloadByName("rate") ?? e.PayloadByName("lastValue") ??
                         e.PayloadByName("quantiles")) as string;
            if (!string.IsNullOrEmpty(name) && value != null)
                samples++;
        }
    };
    source.Process();
    return (events, samples);
}

static void Bench(string label, byte[] bytes, int reps, int runs)
{
    var mbs = new List<double>();
    var evs = new List<double>();
    var sps = new List<double>();
    var nspe = new List<double>();
    var proc = Process.GetCurrentProcess();
    long events = 0, samples = 0;
    for (int r = 0; r < runs; r++)
    {
        events = samples = 0;
        proc.Refresh();
        var cpu0 = proc.TotalProcessorTime;
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < reps; i++)
        {
            var (e, s) = Parse(bytes);
            events += e;
            samples += s;
        }
        double sec = sw.Elapsed.TotalSeconds;
        proc.Refresh();
        nspe.Add((proc.TotalProcessorTime - cpu0).TotalSeconds / events * 1e9);
        mbs.Add((double)bytes.Length * reps / sec / 1e6);
        evs.Add(events / sec);
        sps.Add(samples / sec);
    }
    Console.WriteLine($"{label}: {(double)bytes.Length * reps / 1e6:F1} MB ({reps} x {bytes.Length} bytes), " +
                      $"{events} events, {samples} counter samples per run, {runs} runs");
    void Line(string what, List<double> v, string unit, double scale)
    {
        v.Sort();
        Console.WriteLine($"  {what,-18} median {v[v.Count / 2] * scale,10:F2} {unit}  " +
                          $"(min {v[0] * scale:F2}, max {v[^1] * scale:F2})");
    }
    Line("throughput", mbs, "MB/s", 1);
    Line("events", evs, "M events/s", 1e-6);
    Line("counter samples", sps, "M samples/s", 1e-6);
    Line("cpu per event", nspe, "ns", 1); // all threads of the process (GC too)
}

if (args.Length < 2)
{
  Console.Error.WriteLine(
      "usage: TraceEventBench STREAM CAPTURE [RUNS | --serve]");
  return 2;
}
bool serve = args.Length > 2 && args[2] == "--serve";
int runs = args.Length > 2 && !serve ? int.Parse(args[2]) : 5;
var stream = File.ReadAllBytes(args[0]);
var capture = File.ReadAllBytes(args[1]);
// warm-up (JIT tiers, OSR), untimed: ~13 MB of fresh sources, then the long
// stream twice. The long stream takes paths the short capture does not
// (refills of the stream reader, long per-thread queues); without its own
// warm-up its first timed runs ran on unoptimised code, ~10x slower (a
// "slow mode" the first series took for TraceEvent's typical speed).
for (int i = 0; i < 200; i++)
    Parse(capture);
for (int i = 0; i < 2; i++)
    Parse(stream);
Console.WriteLine($"TraceEvent {typeof(EventPipeEventSource).Assembly.GetName().Version}, .NET {Environment.Version}");
int freshReps = (int)((stream.Length + capture.Length - 1) / capture.Length);
if (serve) {
  Console.WriteLine("ready");
  string ? line;
  while ((line = Console.In.ReadLine()) != null) {
    var (bytes, reps) = line switch {
      "stream" => (stream, 1),
      "fresh" => (capture, freshReps),
      _ => (null, 0),
    };
    if (bytes == null) {
      Console.Error.WriteLine(
          $"TraceEventBench: --serve: unknown workload \"{line}\"");
      return 2;
    }
    var sw = Stopwatch.StartNew();
    for (int i = 0; i < reps; i++)
      Parse(bytes);
    Console.WriteLine(
        $"{line} {(double)bytes.Length * reps / sw.Elapsed.TotalSeconds / 1e6:F2}");
  }
  return 0;
}
Bench("stream", stream, 1, runs);
Bench("fresh", capture, freshReps, runs);
return 0;
