// SpikeApp: keeps a baseline of live managed heap and periodically spikes it,
// the way the production service did. See README.md.

using System.Diagnostics;
using System.Globalization;
using System.Runtime;
using System.Runtime.InteropServices;

namespace CollectdDotnet.SpikeApp;

internal static class Program
{
    // "MB" here is 1,000,000 bytes, the unit of the runtime's gc-heap-size counter.
    private const int ChunkBytes = 1_000_000;

    // in static fields, not locals: unoptimized (tier-0) code may keep locals alive
    private static readonly List<byte[]> s_baseline = new List<byte[]>();
    private static readonly List<byte[]> s_spike = new List<byte[]>();

    private static int Main(string[] args)
    {
        var o = new Options();
        try
        {
            if (!o.Parse(args))
                return 0;
        }
        catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
        {
            Console.Error.WriteLine($"SpikeApp: {e.Message}");
            Console.Error.WriteLine(Options.Usage);
            return 2;
        }

        using var stop = new CancellationTokenSource();
        using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; stop.Cancel(); });
        using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, ctx => { ctx.Cancel = true; stop.Cancel(); });

        Console.WriteLine($"READY {Environment.ProcessId}");

        Grow(s_baseline, o.BaselineMb);
        FullCollect();
        Console.WriteLine($"BASELINE {Now()} heap={HeapMb():F1}MB target={o.BaselineMb}MB");

        var clock = Stopwatch.StartNew();
        for (int n = 1; o.Spikes == 0 || n <= o.Spikes; n++)
        {
            // spike n starts at delay + (n-1) * period, on an absolute schedule
            double startAt = o.DelaySeconds + (n - 1) * o.PeriodSeconds;
            if (!Sleep(startAt - clock.Elapsed.TotalSeconds, stop.Token))
                break;

            var t = Stopwatch.StartNew();
            Grow(s_spike, o.SpikeMb - o.BaselineMb);
            FullCollect();   // so "heap size at last GC" counters see the spike too
            Console.WriteLine($"SPIKE start {Now()} heap={HeapMb():F1}MB n={n} alloc_ms={t.ElapsedMilliseconds}");

            // the full spike level is held for --spike-seconds from here
            bool go = Sleep(o.SpikeSeconds, stop.Token);

            s_spike.Clear();
            s_spike.TrimExcess();
            FullCollect();
            Console.WriteLine($"SPIKE end {Now()} heap={HeapMb():F1}MB n={n}");
            if (!go)
                break;
        }

        // after the last spike, stay at the baseline for the rest of its period
        if (!stop.IsCancellationRequested && o.Spikes > 0)
            Sleep(o.DelaySeconds + o.Spikes * o.PeriodSeconds - clock.Elapsed.TotalSeconds, stop.Token);

        Console.WriteLine($"EXIT {Environment.ProcessId}");
        return 0;
    }

    private static void Grow(List<byte[]> list, int mb)
    {
        for (int i = 0; i < mb; i++)
        {
            var a = new byte[ChunkBytes];
            for (int j = 0; j < a.Length; j += 4096)
                a[j] = 1;   // touch every page: resident, not just reserved
            list.Add(a);
        }
    }

    private static void FullCollect()
    {
        GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
    }

    private static double HeapMb() => GC.GetTotalMemory(false) / 1_000_000.0;

    private static string Now() => DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    // false when stopped by a signal
    private static bool Sleep(double seconds, CancellationToken stop)
    {
        if (seconds > 0)
            return !stop.WaitHandle.WaitOne(TimeSpan.FromSeconds(seconds));
        return !stop.IsCancellationRequested;
    }

    private sealed class Options
    {
        public const string Usage =
            "usage: SpikeApp [--baseline-mb 250] [--spike-mb 630] [--spike-seconds 5]\n" +
            "                [--period-seconds 30] [--delay-seconds 10] [--spikes N (0: forever)]";

        public int BaselineMb = 250;
        public int SpikeMb = 630;
        public double SpikeSeconds = 5;
        public double PeriodSeconds = 30;
        public double DelaySeconds = 10;
        public int Spikes;

        public bool Parse(string[] args)
        {
            for (int i = 0; i < args.Length; i++)
            {
                string a = args[i];
                string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{a} needs a value");
                switch (a)
                {
                    case "--baseline-mb": BaselineMb = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--spike-mb": SpikeMb = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--spike-seconds": SpikeSeconds = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--period-seconds": PeriodSeconds = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--delay-seconds": DelaySeconds = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--spikes": Spikes = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "-h":
                    case "--help":
                        Console.WriteLine(Usage);
                        return false;
                    default:
                        throw new ArgumentException($"unknown argument '{a}'");
                }
            }
            if (BaselineMb < 0 || SpikeMb < BaselineMb)
                throw new ArgumentException("need 0 <= --baseline-mb <= --spike-mb");
            if (SpikeSeconds < 0 || PeriodSeconds < SpikeSeconds || DelaySeconds < 0 || Spikes < 0)
                throw new ArgumentException("need 0 <= --spike-seconds <= --period-seconds, --delay-seconds >= 0, --spikes >= 0");
            return true;
        }
    }
}
