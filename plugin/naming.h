/**
 * collectd-dotnet - plugin/naming.h
 *
 * How a counter becomes collectd values: the type (from collectd's own
 * types.db only), the type instance, the value. Pure functions, no collectd
 * header, so the rules are unit tested and documented in one place:
 *
 *   type_instance
 *     System.Runtime EventCounters    the counter's name: "gc-heap-size"
 *     other EventCounters providers   "<provider>:<name>"
 *     meters                          "<meter>:<instrument>" then ":<k>=<v>"
 *                                     per tag, tags sorted by key;
 *                                     histograms add ":p50" etc. / ":count"
 *     quantiles                       ":p50", ":p95", ":p99": the runtime's;
 *                                     no other is published
 *     longer than collectd allows     cut on a UTF-8 character boundary,
 *                                     then "~" and 8 hex digits of a
 *                                     hash of the whole name (stable, unique);
 *                                     a histogram suffix stays after the hash
 *                                     ("...~1a2b3c4d:p50"), all rows of one
 *                                     histogram sharing the cut name
 *     '/' anywhere                    becomes '_' ('/' separates the parts of
 *                                     collectd's identifiers)
 *     control characters, DEL, C1     each becomes '_' (wire_utf8_printable:
 *     controls, bidi overrides        no newline, escape sequence or the
 *                                     like in any name)
 *   type and value
 *     mean, unit MB                   bytes      value x 1,000,000
 *     mean, unit B / By               bytes
 *     mean, unit %                    percent
 *     mean, other                     gauge
 *     increment, unit B / By          total_bytes  running total (DERIVE)
 *     increment, unit ms              total_time_in_ms  running total
 *     increment, unit s               total_time_in_ms  running total x 1000
 *     increment, other                derive     running total
 *     meter counter                   as increment, from the reported deltas
 *     meter up-down counter, gauge    as mean
 *     meter histogram                 gauge per quantile, derive for count
 *
 * ':' survives write_graphite's escaping and is legal in Prometheus label
 * values; '.' inside names is escaped by write_graphite to '_'.
 */
#ifndef NAMING_H
#define NAMING_H

#include "counters_table.h"

#include <stddef.h>
#include <stdint.h>

#define NAMING_MAX 128 /* collectd's DATA_MAX_NAME_LEN */

/* What naming keeps per table entry, in e->consumer (made at the entry's
 * first naming_due or naming_rows): when its next value is due and the
 * time of the last one, on the consumer's clocks; and, for a counter that
 * is not a histogram, its type instance, made once (its provider, name and
 * tags never change). */
struct naming_state {
  int64_t published_ms; /* the time of the value last published
                           (naming_stamp) */
  int64_t due_ms;       /* when the next is due, on the consumer's clock of
                           arrival (naming_due) */
  int due_known;        /* due_ms is set */
  int has_type_instance;
  char type_instance[]; /* when has_type_instance (< NAMING_MAX bytes) */
};

struct naming_row {
  const char *type; /* a string literal */
  char type_instance[NAMING_MAX];
  int is_derive;
  double gauge;
  int64_t derive;
};

/* Writes the rows for one table entry; returns how many (0..max). The
 * type instance of a counter that is not a histogram is made at its first
 * row and kept in its naming_state; without memory for that, it is made
 * every time. */
size_t naming_rows(struct counters_entry *e, struct naming_row *rows,
                   size_t max);

/* Whether a sample of entry e that arrived at now_ms (the consumer's own
 * monotonic clock, never the peer's timestamps) is to be published, given
 * the consumer's interval iv_ms; when it is, e's due_ms is moved on. One
 * value per Interval on average whatever interval the runtime sends at
 * (another tool's session at a shorter interval makes it send to every
 * session at that one) and whatever times its samples carry: a value is
 * due one Interval after the last was due; a sample arriving up to a
 * quarter Interval early is taken; a late one (a busy runtime, a loaded
 * reader) moves the due time to no earlier than a quarter Interval after
 * it, so that the runtime's next sample, back on its grid, is taken too.
 * Without memory for e's naming_state, 0 (the next sample tries again). */
int naming_due(struct counters_entry *e, int64_t now_ms, int64_t iv_ms);

/* The time (unix ms) to give a value of e about to be published:
 * sample_ms, the time the runtime stamped on its sample, when it is later
 * than the last value's and lies between 2 Intervals + 5 s before now_ms
 * (the consumer's wall clock) and 1 s after it; else now_ms (or just after
 * the last value's time). Values of a series never go back in time nor
 * repeat one, whatever the peer's clock says. Call it only for a value
 * naming_due said is due. */
#define NAMING_STAMP_AHEAD_MS 1000
#define NAMING_STAMP_BEHIND_MS 5000
int64_t naming_stamp(struct counters_entry *e, int64_t sample_ms,
                     int64_t now_ms, int64_t iv_ms);

/* The suffix of a quantile's type instance ("p50", "p95", "p99"), or NULL
 * for a quantile the runtime does not send. */
const char *naming_quantile_suffix(double q);

/* The type instance for a counter (see above); suffix may be NULL. */
void naming_type_instance(const char *provider, const char *name,
                          const char *tags, const char *suffix, char *out,
                          size_t cap);

#endif /* NAMING_H */
