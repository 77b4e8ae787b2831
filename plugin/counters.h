/**
 * collectd-dotnet - plugin/counters.h
 *
 * Turns EventPipe events into counter samples: the self-describing
 * "EventCounters" events of any EventSource (System.Runtime, ASP.NET Core,
 * an application's own), and the events of the System.Diagnostics.Metrics
 * provider that report Meter instruments. No counter name is known here:
 * whatever the runtime or an application emits comes through.
 *
 * Also the table of latest values per target that the plugin publishes
 * from (increment counters kept as running totals).
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

/* One sample. Strings point into the decoder's scratch buffer or, for a
 * sample decoded from a template, into the template store: valid until the
 * next decode with that buffer or store. */
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

/* The same, faster, for the events of one stream: a decoder remembers per
 * event metadata whether its events are counter samples and where in the
 * payload the fields it needs are (names compared once per metadata, not
 * once per event; strings converted only when used). Its cache is keyed by
 * the metadata of one reader: reset it (or use a new decoder) when the
 * stream's reader is replaced. Bounded: 32 metadata entries of at most 256
 * fields each (others are decoded as counters_decode does).
 *
 * With a template store (counters_templates), an EventCounters payload
 * whose strings repeat one decoded before (a counter's next interval) is
 * decoded from that template: its numbers read where they lie, its strings
 * neither scanned nor converted; a meters' payload whose strings up to its
 * first number repeat one decoded before, likewise up to there. The result
 * is the same in every case, but the strings of a sample decoded from a
 * template stay in the store (no copy; see struct counters_sample).
 * Decoders may share one store (the sessions of one reader: one copy of
 * each counter's strings), but then are used from one thread at a time;
 * the store outlives them. */
struct counters_templates;
struct counters_templates *counters_templates_new(void);    /* NULL on ENOMEM */
void counters_templates_free(struct counters_templates *t); /* accepts NULL */

struct counters_templates_stats {
  uint64_t hits;   /* payloads decoded from a template */
  uint64_t misses; /* by the plan (then kept, unless the store is full) */
  size_t templates, bytes; /* kept now (bytes bounded: 64 KiB) */
  size_t plans;            /* distinct plans seen (at most 16 have templates) */
};
void counters_templates_stats(const struct counters_templates *t,
                              struct counters_templates_stats *out);

struct counters_decoder;
/* templates: NULL for none */
struct counters_decoder *
counters_decoder_new(struct counters_templates *templates); /* NULL: ENOMEM */
void counters_decoder_free(struct counters_decoder *d);     /* accepts NULL */
void counters_decoder_reset(struct counters_decoder *d);
int counters_decoder_decode(struct counters_decoder *d,
                            const struct nettrace_event *ev,
                            struct counters_sample *s, char *scratch,
                            size_t scratch_cap);

/* The sample's DisplayName as UTF-8 in out[cap] ("" when absent or when it
 * does not fit); valid while the event's payload is. Returns out. */
const char *counters_display_name(const struct counters_sample *s, char *out,
                                  size_t cap);

/* Unix time in ms of a QPC timestamp, given the Trace object; 0 when
 * unknown (no Trace, no frequency, or a result no clock can have). */
int64_t counters_unix_ms(const struct nettrace_trace_info *ti, uint64_t qpc);

/* ---- latest values per target ---- */

/* Histogram state, kept only for histogram entries. */
struct counters_histogram {
  uint32_t nquantiles;
  double quantile[COUNTERS_MAX_QUANTILES];
  double quantile_value[COUNTERS_MAX_QUANTILES];
  double count, sum;
};

/* An entry is one key: provider, name, tags and kind. */
struct counters_entry {
  const char *provider; /* these three: one allocation the entry owns */
  const char *name;
  const char *tags;
  uint32_t hash;        /* of provider, name and tags */
  enum counters_kind kind;
  char units[32];       /* the first sample's (cut on a UTF-8 boundary) */
  double value;       /* latest value (see counters_sample) */
  double total;       /* SUM/RATE: running total of increments since the
                         entry was created; HISTOGRAM: running total of
                         counts; others: unused */
  int64_t published_ms; /* for the consumer: the time of the value it last
                           published (naming_stamp) */
  int64_t due_ms;       /* for the consumer: when the next is due, on its
                           own clock of arrival (naming_due) */
  int due_known;        /* for the consumer: due_ms is set */
  char *type_instance;  /* for the consumer: its name for the entry, made
                           once (malloc'd; freed with the entry) */
  uint64_t updates;   /* samples merged into this entry */
  int64_t time_ms;    /* unix ms of the latest sample */
  struct counters_histogram *hist; /* HISTOGRAM entries; else NULL */
};

/* Series an entry holds: one, or for a histogram its quantiles and count. */
#define COUNTERS_HISTOGRAM_SERIES (COUNTERS_MAX_QUANTILES + 1)
#define COUNTERS_DEFAULT_MAX_SERIES 512
#define COUNTERS_MAX_MAX_SERIES 65536

struct counters_table {
  struct counters_entry *entries;
  size_t n, cap;
  size_t series, max_series;         /* series held, and the cap on them */
  size_t name_bytes, max_name_bytes; /* bytes of keys' names, and the cap:
                                        256 per series (and 4 KiB) */
  size_t next;        /* where a lookup starts: after the entry last found
                         (a runtime sends its counters in the same order at
                         every interval, so it is nearly always that one) */
  uint64_t overflow;  /* samples dropped: a new key not taken */
  uint64_t refused;   /* of those, new keys over max_series or the name
                         bytes (the first: the moment to say so, once) */
};

/* max_series: cap on the series of all entries (see counters.c); 0 selects
 * the default (512), at most 65536. */
void counters_table_init(struct counters_table *t, size_t max_series);
void counters_table_fini(struct counters_table *t);
void counters_table_clear(struct counters_table *t);
/* Merges a sample: returns the entry, or NULL when its key is new and not
 * taken (a cap, names too long, out of memory: overflow counts it). */
struct counters_entry *counters_table_update(struct counters_table *t,
                                             const struct counters_sample *s,
                                             int64_t time_ms);
/* The most a table of max_series (0: the default) can take on the heap,
 * its entries' type instances (naming_rows) included. */
size_t counters_table_worst_bytes(size_t max_series);

#endif /* COUNTERS_H */
