// CounterTarget: a .NET process whose counters have known values, for the
// collectd-dotnet tests. Built for net8.0, net9.0 and net10.0.
//
// Usage: CounterTarget [--seconds N] [--heap-mb N] [--alloc-mb-per-sec N]
//                      [--print-counters]
//
// Prints "READY <pid>" on stdout once every counter and instrument exists,
// then runs until SIGTERM/SIGINT (exit code 0) or until --seconds N elapsed.
// Standard input is ignored.
//
// EventSource "CollectdDotnet-Test" (EventCounters API):
//   fixed-value    PollingCounter              always 42.5, no units
//   ticks          IncrementingPollingCounter  1000 x seconds since start (Stopwatch);
//                                              Increment / IntervalSec = 1000
//                                              exactly, DisplayRateTimeScale 1 s
//   request-time   EventCounter (ms)           10, 20 and 30 written once per
//                                              interval: Mean 20, Min 10, Max 30,
//                                              Count 3 in every payload, whatever
//                                              the interval (see WriteRequestTimes)
//   requests       IncrementingEventCounter    +5 every 100 ms = 50/s on average,
//                                              DisplayRateTimeScale 1 s
//
// Meter "CollectdDotnet.Test" (System.Diagnostics.Metrics API):
//   orders         Counter<long> {order}        +5 every 100 ms (50/s), tag region=eu
//   queue-length   ObservableUpDownCounter<int> {item}  constant level 7
//       (observable, not a plain UpDownCounter<int> with Add(7) once: a
//       listener only aggregates the Add()s made while it listens, so a tool
//       attaching later would see 0; it is reported the same way, as an
//       UpDownCounter: event UpDownCounterRateValuePublished, value 7, rate 0)
//   temperature    ObservableGauge<double> Cel  21.5
//   latency        Histogram<double> ms         10, 20, ..., 100 recorded every 100 ms
//       The runtime's aggregator (ExponentialHistogramAggregator, 0.1 % relative
//       error; integers up to 100 land in exact buckets) reports the value of
//       the entry at 0-based rank floor(q * N) of the sorted measurements.
//       With N = 10 k values (k batches) that gives
//       p50 = 60, p95 = 100, p99 = 100 (not 50: rank 5k is the first 60).
//
// The 100 ms steps follow an absolute schedule (step n is due at n x 100 ms
// after start, late steps are caught up), so the rates are exact on average.
//
// Allocation: --alloc-mb-per-sec N (default 16) of short-lived 8 KiB arrays
// (MiB), so the gen0 GC counters move (the gen0 budget is 16 MB here: about
// one gen0 GC a second); --heap-mb N keeps N MiB live in 1 MiB arrays (on the
// large object heap), so gc-heap-size is at least N x 1.048576 MB.
//
// --print-counters: an in-process EventListener prints every EventCounters
// payload of System.Runtime and CollectdDotnet-Test (1 s interval) as
//   COUNTER <EventSource> Name="gc-heap-size" DisplayName="GC Heap Size" Mean=12.3 ...
// i.e. the raw payload fields a reader of the EventPipe stream sees. It makes
// the counter interval 1 s for every session; for looking only.

using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Diagnostics.Tracing;
using System.Runtime.InteropServices;

namespace CollectdDotnet.Test;

[EventSource(Name = "CollectdDotnet-Test")]
internal sealed class TestEventSource : EventSource
{
    public static readonly TestEventSource Log = new TestEventSource();

    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly PollingCounter _fixedValue;
    private readonly IncrementingPollingCounter _ticks;
    private readonly EventCounter _requestTime;
    private readonly IncrementingEventCounter _requests;

    private TestEventSource()
    {
        // fixed-value is created first on purpose: see WriteRequestTimes
        _fixedValue = new PollingCounter("fixed-value", this, () =>
        {
            WriteRequestTimes();
            return 42.5;
        })
        {
            DisplayName = "Fixed value",
        };
        _ticks = new IncrementingPollingCounter("ticks", this, () => _clock.Elapsed.TotalSeconds * 1000.0)
        {
            DisplayName = "Ticks",
            DisplayRateTimeScale = TimeSpan.FromSeconds(1),
        };
        _requestTime = new EventCounter("request-time", this)
        {
            DisplayName = "Request time",
            DisplayUnits = "ms",
        };
        _requests = new IncrementingEventCounter("requests", this)
        {
            DisplayName = "Requests",
            DisplayRateTimeScale = TimeSpan.FromSeconds(1),
        };
    }

    // Called by the counter timer of this EventSource (only while a session
    // has its counters enabled), once per interval, when it polls fixed-value,
    // just before it reports request-time: the runtime walks the counters of an
    // EventSource in the order they were created. So each request-time payload
    // holds exactly these three values; written from the 100 ms loop instead,
    // an interval edge could fall between two of them and skew Mean/Count.
    private void WriteRequestTimes()
    {
        // null only if a session enabled the counters during the constructor
        _requestTime?.WriteMetric(10);
        _requestTime?.WriteMetric(20);
        _requestTime?.WriteMetric(30);
    }

    public void Tick() => _requests.Increment(5);

    protected override void Dispose(bool disposing)
    {
        _fixedValue.Dispose();
        _ticks.Dispose();
        _requestTime.Dispose();
        _requests.Dispose();
        base.Dispose(disposing);
    }
}

internal static class Program
{
    private static readonly KeyValuePair<string, object?> RegionEu = new("region", "eu");

    private static int Main(string[] args)
    {
        double seconds = 0;     // 0: run until signalled
        int heapMb = 0;
        double allocMbPerSec = 16;
        double busyMsPerSec = 0;
        bool printCounters = false;
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{a} needs a value");
            try
            {
                switch (a)
                {
                    case "--seconds": seconds = double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                    case "--heap-mb": heapMb = int.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                    case "--alloc-mb-per-sec": allocMbPerSec = double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                    case "--busy-ms-per-sec": busyMsPerSec = double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                    case "--print-counters": printCounters = true; break;
                    case "-h":
                    case "--help":
                        Console.WriteLine("usage: CounterTarget [--seconds N] [--heap-mb N] [--alloc-mb-per-sec N] [--busy-ms-per-sec N] [--print-counters]");
                        return 0;
                    default: throw new ArgumentException($"unknown argument '{a}'");
                }
            }
            catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
            {
                Console.Error.WriteLine($"CounterTarget: {e.Message}");
                return 2;
            }
        }

        using var stop = new CancellationTokenSource();
        using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; stop.Cancel(); });
        using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, ctx => { ctx.Cancel = true; stop.Cancel(); });
        if (seconds > 0)
            stop.CancelAfter(TimeSpan.FromSeconds(seconds));

        // Live heap: 1 MiB arrays, every page written.
        var live = new List<byte[]>(heapMb);
        for (int i = 0; i < heapMb; i++)
            live.Add(Touched(1 << 20));

        TestEventSource source = TestEventSource.Log;
        using var meter = new Meter("CollectdDotnet.Test", "1.0");
        Counter<long> orders = meter.CreateCounter<long>("orders", "{order}", "Orders placed");
        meter.CreateObservableUpDownCounter("queue-length", () => 7, "{item}", "Items waiting");
        meter.CreateObservableGauge("temperature", () => 21.5, "Cel", "Temperature");
        Histogram<double> latency = meter.CreateHistogram<double>("latency", "ms", "Latency");

        using CounterPrinter? printer = printCounters ? new CounterPrinter() : null;

        int chunksPerStep = (int)Math.Round(allocMbPerSec * 1024 / 8 / 10);  // 8 KiB chunks per 100 ms
        byte[]? sink = null;
        // CPU time on demand: a spin of busyMsPerSec / 10 ms in each 100 ms step,
        // so a test comparing CPU rates has a known rate well above /proc's tick
        TimeSpan busyPerStep = TimeSpan.FromMilliseconds(busyMsPerSec / 10);

        Console.WriteLine($"READY {Environment.ProcessId}");

        var clock = Stopwatch.StartNew();
        long step = 0;
        while (!stop.IsCancellationRequested)
        {
            step++;
            TimeSpan wait = TimeSpan.FromMilliseconds(100 * step) - clock.Elapsed;
            if (wait > TimeSpan.Zero && stop.Token.WaitHandle.WaitOne(wait))
                break;

            source.Tick();
            orders.Add(5, RegionEu);
            for (int v = 10; v <= 100; v += 10)
                latency.Record(v);
            for (int c = 0; c < chunksPerStep; c++)
            {
                sink = new byte[8 * 1024];
                sink[c % sink.Length] = 1;
            }
            if (busyPerStep > TimeSpan.Zero)
            {
                TimeSpan end = clock.Elapsed + busyPerStep;
                while (clock.Elapsed < end) { }
            }
        }

        GC.KeepAlive(live);
        GC.KeepAlive(sink);
        Console.WriteLine($"EXIT {Environment.ProcessId}");
        return 0;
    }

    private static byte[] Touched(int size)
    {
        var a = new byte[size];
        for (int i = 0; i < a.Length; i += 4096)
            a[i] = 1;
        return a;
    }
}

// --print-counters
internal sealed class CounterPrinter : EventListener
{
    protected override void OnEventSourceCreated(EventSource source)
    {
        if (source.Name is "System.Runtime" or "CollectdDotnet-Test")
        {
            EnableEvents(source, EventLevel.Verbose, EventKeywords.All,
                new Dictionary<string, string?> { ["EventCounterIntervalSec"] = "1" });
        }
    }

    protected override void OnEventWritten(EventWrittenEventArgs e)
    {
        if (e.EventName != "EventCounters" || e.Payload is not { Count: > 0 } ||
            e.Payload[0] is not IDictionary<string, object?> payload)
            return;
        var line = new System.Text.StringBuilder("COUNTER ").Append(e.EventSource.Name);
        foreach (KeyValuePair<string, object?> kv in payload)
        {
            line.Append(' ').Append(kv.Key).Append('=');
            if (kv.Value is string str)
                line.Append('"').Append(str).Append('"');
            else
                line.Append(Convert.ToString(kv.Value, System.Globalization.CultureInfo.InvariantCulture));
        }
        Console.WriteLine(line.ToString());
    }
}
