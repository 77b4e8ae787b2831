/**
 * collectd-dotnet - plugin/counters_table.h
 *
 * The latest values per target: one entry per counter (provider, name,
 * tags and kind), merged from its samples (increment counters kept as
 * running totals), bounded by a cap on the series it holds. What a
 * consumer makes of an entry (names, when a value is due) is the
 * consumer's, kept beside the values in e->consumer.
 */
#ifndef COUNTERS_TABLE_H
#define COUNTERS_TABLE_H

#include "counters.h"

#include <stddef.h>
#include <stdint.h>

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
  uint32_t hash; /* of provider, name and tags */
  enum counters_kind kind;
  char units[32];   /* the first sample's (cut on a UTF-8 boundary) */
  double value;     /* latest value (see counters_sample) */
  double total;     /* SUM/RATE: running total of increments since the
                       entry was created; HISTOGRAM: running total of
                       counts; others: unused */
  void *consumer;   /* the consumer's own state for this key (naming's
                       struct naming_state): a malloc'd block of at most
                       COUNTERS_CONSUMER_BYTES, freed with the entry;
                       NULL until the consumer makes one */
  uint64_t updates; /* samples merged into this entry */
  int64_t time_ms;  /* unix ms of the latest sample */
  struct counters_histogram *hist; /* HISTOGRAM entries; else NULL */
};

/* Series an entry holds: one, or for a histogram its quantiles and count. */
#define COUNTERS_HISTOGRAM_SERIES (COUNTERS_MAX_QUANTILES + 1)
#define COUNTERS_DEFAULT_MAX_SERIES 512
#define COUNTERS_MAX_MAX_SERIES 65536
/* The most an entry's consumer state takes (naming's: its times and the
 * type instance, at most 128 bytes with the NUL). */
#define COUNTERS_CONSUMER_BYTES 160

struct counters_table {
  struct counters_entry *entries;
  size_t n, cap;
  size_t series, max_series;         /* series held, and the cap on them */
  size_t name_bytes, max_name_bytes; /* bytes of keys' names, and the cap:
                                        256 per series (and 4 KiB) */
  size_t next;       /* where a lookup starts: after the entry last found
                        (a runtime sends its counters in the same order at
                        every interval, so it is nearly always that one) */
  uint64_t overflow; /* samples dropped: a new key not taken */
  uint64_t refused;  /* of those, new keys over max_series or the name
                        bytes (the first: the moment to say so, once) */
};

/* max_series: cap on the series of all entries (see counters_table.c);
 * 0 selects the default (512), at most 65536. */
void counters_table_init(struct counters_table *t, size_t max_series);
void counters_table_fini(struct counters_table *t);
void counters_table_clear(struct counters_table *t);
/* Merges a sample: returns the entry, or NULL when its key is new and not
 * taken (a cap, names too long, out of memory: overflow counts it). */
struct counters_entry *counters_table_update(struct counters_table *t,
                                             const struct counters_sample *s,
                                             int64_t time_ms);
/* The most a table of max_series (0: the default) can take on the heap,
 * its entries' consumer states included. */
size_t counters_table_worst_bytes(size_t max_series);

#endif /* COUNTERS_TABLE_H */
