/**
 * collectd-dotnet - tests/fuzz/fuzz_counters.h
 *
 * The input format of fuzz_counters, shared with mkseed_counters (which
 * writes seeds in it from real streams):
 *
 *   uint8 event      index into fuzz_events (provider, event name) modulo
 *                    its length
 *   uint8 scratch    scratch capacity: 0 means 4096, else the value
 *   uint8 max        capacity of the counters_fields output array (0..255)
 *   uint8 count      top-level fields (at most FUZZ_MAX_TOP)
 *   field[count]     pre-order:
 *                      uint8 type; uint8 name (index into fuzz_names, or
 *                      >= its length: "x");
 *                      OBJECT: uint8 nchildren, then the children;
 *                      ARRAY: the element as a field without its name byte
 *   payload          the rest
 * Any type byte (0..255) is taken as is: unknown types reach the decoder.
 */
#ifndef FUZZ_COUNTERS_H
#define FUZZ_COUNTERS_H

#include <stddef.h>

#define FUZZ_MAX_TOP 16
#define FUZZ_MAX_FIELDS 96
#define FUZZ_MAX_NEST 12 /* more than counters.c's MAX_DEPTH */

static const struct {
  const char *provider, *event;
} fuzz_events[] = {
    {"System.Runtime", "EventCounters"},
    {"CollectdDotnet-Test", "EventCounters"},
    {"System.Diagnostics.Metrics", "CounterRateValuePublished"},
    {"System.Diagnostics.Metrics", "UpDownCounterRateValuePublished"},
    {"System.Diagnostics.Metrics", "GaugeValuePublished"},
    {"System.Diagnostics.Metrics", "HistogramValuePublished"},
    {"System.Diagnostics.Metrics", "BeginInstrumentReporting"},
    {"Microsoft-DotNETCore-EventPipe", "ProcessInfo"},
};
#define FUZZ_NEVENTS (sizeof(fuzz_events) / sizeof(fuzz_events[0]))

static const char *const fuzz_names[] = {
    "Payload",
    "Name",
    "DisplayName",
    "Mean",
    "StandardDeviation",
    "Count",
    "Min",
    "Max",
    "IntervalSec",
    "Series",
    "CounterType",
    "Metadata",
    "DisplayUnits",
    "DisplayRateTimeScale",
    "Increment",
    "sessionId",
    "meterName",
    "meterVersion",
    "instrumentName",
    "unit",
    "tags",
    "rate",
    "value",
    "instrumentId",
    "lastValue",
    "quantiles",
    "count",
    "sum",
    "",
};
#define FUZZ_NNAMES (sizeof(fuzz_names) / sizeof(fuzz_names[0]))

#endif /* FUZZ_COUNTERS_H */
