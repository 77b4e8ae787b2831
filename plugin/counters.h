/**
 * collectd-dotnet - plugin/counters.h
 *
 * Turns EventPipe events into counter samples: the self-describing
 * "EventCounters" events of any EventSource (System.Runtime, ASP.NET Core,
 * an application's own), and the events of the System.Diagnostics.Metrics
 * provider that report Meter instruments. No counter name is known here:
 * whatever the runtime or an application emits comes through.
 *
 * This is the spec (a payload walked by its metadata); counters_decoder.h
 * gives the same samples faster, counters_table.h keeps the latest values.
 */
#ifndef COUNTERS_H
#define COUNTERS_H

#include "nettrace.h"

#include <stddef.h>
#include <stdint.h>

/* One decoded payload field (objects flattened, leaves in payload order).
 * Strings are UTF-8 in the caller's scratch buffer. */
struct counters_field {
  const char *name;
  int is_string;
  double num;      /* numeric fields (booleans as 0/1) */
  const char *str; /* string fields; "" otherwise */
};

/* Decodes the payload of an event by its metadata. Returns the number of
 * leaves written to out[max] (extra leaves are skipped but still checked),
 * or -EBADMSG when the payload does not match the metadata, -ENOTSUP when
 * the metadata has no usable field list. */
int counters_fields(const struct nettrace_meta *meta, const uint8_t *payload,
                    size_t len, struct counters_field *out, size_t max,
                    char *scratch, size_t scratch_cap);

enum counters_kind {
  COUNTERS_MEAN,      /* EventCounter / PollingCounter: value = mean */
  COUNTERS_SUM,       /* Incrementing*Counter: value = increment */
  COUNTERS_RATE,      /* Meter Counter<T>: value = delta this interval */
  COUNTERS_UPDOWN,    /* Meter UpDownCounter<T>: value = current level */
  COUNTERS_GAUGE,     /* Meter ObservableGauge / Gauge: value = last */
  COUNTERS_HISTOGRAM, /* Meter Histogram<T>: quantiles, count, sum */
};

/* The quantiles the runtime computes, and the only ones decoded: 0.5, 0.95
 * and 0.99 (any other quantile in a payload is dropped). */
#define COUNTERS_MAX_QUANTILES 3

/* One sample. Strings point into the decoder's scratch buffer: valid until
 * the next decode with that buffer. */
struct counters_sample {
  enum counters_kind kind;
  const char *provider;     /* EventSource or Meter name */
  const char *name;         /* counter or instrument name */
  /* EventCounters' DisplayName, left in the payload (UTF-16LE, no
   * terminator; units 0 for meters): nothing is published from it, so it
   * costs nothing unless counters_display_name() is asked for it. */
  const uint8_t *display_name_utf16;
  uint32_t display_name_units;
  const char *units;        /* DisplayUnits or the instrument's unit */
  const char *tags;         /* meters: "k=v,k=v" ("" for none) */
  const char *session;      /* meters: the sessionId field ("" otherwise) */
  double value;
  double total;        /* RATE/UPDOWN on .NET 8+: cumulative value; NAN if absent */
  double min, max, stddev;
  double count;        /* MEAN: samples in interval; HISTOGRAM: count */
  double sum;          /* HISTOGRAM: sum (NAN if absent) */
  double interval_sec; /* as reported; 0 when unknown */
  uint32_t series_ms;  /* EventCounters "Series" Interval=N; 0 when absent */
  uint32_t nquantiles;
  double quantile[COUNTERS_MAX_QUANTILES]; /* 0.5, 0.95, 0.99 */
  double quantile_value[COUNTERS_MAX_QUANTILES];
  uint64_t timestamp;  /* the event's QPC timestamp */
};

/* Corrects the kind of a sample of an instrument its runtime declares
 * wrongly (a level published as a monotonic counter), so that it is
 * published as the level it is. */
void counters_fix_kind(struct counters_sample *s);

/* Decodes one event. Returns 1 and fills *s when it is a counter sample,
 * 0 when it is some other event (ignored: e.g. AppContextSwitch,
 * instrument publication), -EBADMSG when it claims to be a counter event
 * but its payload is malformed. */
int counters_decode(const struct nettrace_event *ev, struct counters_sample *s,
                    char *scratch, size_t scratch_cap);

/* The sample's DisplayName as UTF-8 in out[cap] ("" when absent or when it
 * does not fit); valid while the event's payload is. Returns out. */
const char *counters_display_name(const struct counters_sample *s, char *out,
                                  size_t cap);

/* Unix time in ms of a QPC timestamp, given the Trace object; 0 when
 * unknown (no Trace, no frequency, or a result no clock can have). */
int64_t counters_unix_ms(const struct nettrace_trace_info *ti, uint64_t qpc);

/* The name a sample is printed under: "name", "name[k=v,k=v]" with the
 * meter tags, and for quantile q (0..nquantiles-1) of a histogram
 * "name[k=v,p50]"; q < 0 for the value. Into out[cap], cut to fit. */
void counters_sample_label(const struct counters_sample *s, int q, char *out,
                           size_t cap);

#endif /* COUNTERS_H */
