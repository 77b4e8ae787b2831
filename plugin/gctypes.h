/**
 * collectd-dotnet - plugin/gctypes.h
 *
 * Which types fill a .NET heap, per type: a consumer of nettrace events
 * (like counters.h) that aggregates, while the stream goes by,
 *  - heap-types: a GC heap snapshot as dotnet-gcdump takes one over
 *    EventPipe: objects and bytes per type from the GCBulkNode events of the
 *    induced gen2 GC, names from the BulkType events;
 *  - alloc-types: allocation samples and bytes per type from
 *    GCAllocationTick (.NET 8+) or, where the runtime sends them,
 *    AllocationSampled (.NET 10+, randomized sampling).
 * It never keeps a node or an event: memory is bounded by gctypes_limits
 * whatever the heap's size. It says when the result is incomplete (events
 * lost, the snapshot cut or never finished) and by how much. No I/O, no
 * collectd header.
 *
 * Sessions that feed it (provider Microsoft-Windows-DotNETRuntime):
 *   heap-types   keywords GCTYPES_HEAP_KEYWORDS, level 5 (what dotnet-gcdump
 *                asks for: ClrTraceEventParser.Keywords.GCHeapSnapshot);
 *                enabling it makes the runtime run one blocking gen2 GC
 *                that walks the heap; stop the session once
 *                gctypes_snapshot_done() says its GC has ended. The
 *                runtime writes the whole snapshot (~45 bytes an object)
 *                into the session's buffer before the stream drains it: a
 *                smaller buffer loses events in Drop mode, and in .NET 11's
 *                Block mode hangs the target (docs/gctypes-notes.md).
 *   alloc-types  keywords GCTYPES_ALLOC_TICK_KEYWORDS, level 5, plus
 *                GCTYPES_ALLOC_SAMPLING_KEYWORD on .NET 10+ (level 4 is
 *                enough for AllocationSampled alone).
 *
 * Payload layouts: dotnet/runtime src/coreclr/vm/ClrEtwAll.man (the
 * runtime's EventPipe metadata for these events carries no field list, so
 * they are decoded by the manifest's fixed layout, every length checked).
 */
#ifndef GCTYPES_H
#define GCTYPES_H

#include "nettrace.h"

#include <stddef.h>
#include <stdint.h>

#define GCTYPES_PROVIDER "Microsoft-Windows-DotNETRuntime"
/* GC 0x1 | Type 0x80000 | GCHeapDump 0x100000 | GCHeapCollect 0x800000 |
 * GCHeapAndTypeNames 0x1000000 */
#define GCTYPES_HEAP_KEYWORDS 0x1980001ULL
#define GCTYPES_ALLOC_TICK_KEYWORDS 0x1ULL /* GC, level 5 */
#define GCTYPES_ALLOC_SAMPLING_KEYWORD                                         \
  0x80000000000ULL /* AllocationSampling                                       \
                    */

/* The longest type name kept, in bytes of UTF-8 (longer ones are cut on a
 * character boundary). */
#define GCTYPES_NAME_MAX 512

enum gctypes_mode {
  GCTYPES_HEAP = 1, /* heap-types */
  GCTYPES_ALLOC = 2 /* alloc-types */
};

/* Caps; 0 selects the default. */
struct gctypes_limits {
  uint32_t max_types;   /* distinct type ids kept (default 65536); objects
                           of the others are counted as "(other)" */
  size_t max_names;     /* bytes of type names kept (default 4 MiB) */
  uint32_t max_threads; /* threads whose event sequence numbers are
                           followed to find lost events (default 1024) */
};

struct gctypes;

/* NULL on ENOMEM or a bad mode. */
struct gctypes *gctypes_new(enum gctypes_mode mode,
                            const struct gctypes_limits *limits);
/* Accepts NULL. */
void gctypes_free(struct gctypes *g);

/* Takes one event from the nettrace reader's callback (ti: the reader's
 * trace info, for the pointer size and the clock). Events of other
 * providers only count for the lost-event check. Never fails: a payload
 * that does not decode is counted (and makes the result incomplete). */
void gctypes_event(struct gctypes *g, const struct nettrace_event *ev,
                   const struct nettrace_trace_info *ti);

/* heap-types: 1 once the end of the snapshot's GC has been seen (the
 * session can be stopped now; what is still in flight is read until the
 * stream ends). */
int gctypes_snapshot_done(const struct gctypes *g);

/* Call once at the end of the stream: stream_rc is what
 * nettrace_reader_finish returned (0: clean end), reader_dropped the
 * reader's events of unknown metadata (nettrace_stats.dropped). */
void gctypes_finish(struct gctypes *g, int stream_rc, uint64_t reader_dropped);

/* The totals. Strings point into g, valid until gctypes_free. */
struct gctypes_summary {
  enum gctypes_mode mode;
  uint64_t count; /* heap: objects; alloc: samples (of the method used) */
  uint64_t bytes; /* heap: bytes; alloc: estimated bytes allocated */
  uint32_t types; /* distinct types, "(other)" not included */
  int capped;     /* 1: type ids found the table full (max_types) ... */
  uint64_t other_count, other_bytes; /* ... and what they hold, "(other)" */
  int complete;                      /* 0: read `reason` */
  const char *reason; /* "" when complete; else why not, e.g. "3 events lost" */
  uint64_t lost_events;      /* sequence gaps + events the reader dropped */
  uint64_t lost_node_events; /* heap: GCBulkNode events missing (Index gaps) */
  uint64_t unchecked_events; /* of threads past max_threads: their losses
                                cannot be seen */
  uint64_t bad_events;       /* payloads that did not decode */
  uint64_t names_dropped;    /* type names not kept (max_names, max_types):
                                those types show as "(type 0x...)" */
  /* heap-types */
  int gc_started, gc_ended; /* the snapshot's GC (induced, gen2, blocking) */
  uint32_t gc_number;       /* its GC count */
  double gc_pause_ms;       /* GCStart to GCEnd (-1: unknown) */
  uint64_t gc_heap_bytes;   /* sum of GCHeapStats generation sizes after it
                               (0: not seen) */
  uint64_t node_events;
  /* alloc-types: which events the figures come from */
  const char *method; /* "AllocationSampled", "GCAllocationTick" or "" */
  uint64_t tick_events, sampled_events;
};
void gctypes_summary(const struct gctypes *g, struct gctypes_summary *out);

/* One type of the result. name: UTF-8, printable (wire_utf8_printable),
 * valid until gctypes_free. */
struct gctypes_row {
  const char *name;
  uint64_t id;    /* the runtime's type id (MethodTable address) */
  uint64_t count; /* objects (heap) or samples (alloc) */
  uint64_t bytes;
  double share; /* bytes / summary bytes, 0..1 */
};
/* The top n types by bytes (then count, then id), into rows[n]; returns
 * how many were written. "(other)" is not among them. */
size_t gctypes_top(const struct gctypes *g, struct gctypes_row *rows, size_t n);

enum gctypes_format {
  GCTYPES_TEXT,    /* a header line, then "bytes count share type" lines */
  GCTYPES_CSV,     /* type,count,bytes (heap) or type,samples,bytes */
  GCTYPES_JSON,    /* one object: totals, completeness, top types */
  GCTYPES_COMPACT, /* "Type N objects|samples X MB (P %)" lines joined by
                      "; ", as many as fit: for a notification message */
};
/* The most rows gctypes_format writes. */
#define GCTYPES_FORMAT_MAX_ROWS 64

/* Writes the top n (at most GCTYPES_FORMAT_MAX_ROWS) types in that format
 * into buf[cap], NUL-terminated; "(other)" follows them when the type cap
 * was reached (not in GCTYPES_COMPACT).
 * Returns the length the whole output needs (as snprintf: >= cap means it
 * was cut). GCTYPES_COMPACT never cuts a line: it stops before the first
 * line that does not fit, and returns what it wrote. */
size_t gctypes_format(const struct gctypes *g, enum gctypes_format fmt,
                      size_t n, char *buf, size_t cap);

/* b as "512 B", "12.3 kB", "472.0 MB", "1.25 GB" (powers of 1000), as the
 * compact lines show sizes. */
void gctypes_human_bytes(uint64_t b, char *buf, size_t cap);

/* Bytes g holds on the heap now, and the most gctypes with these limits
 * (NULL: the defaults) ever holds. */
size_t gctypes_memory(const struct gctypes *g);
size_t gctypes_worst_bytes(const struct gctypes_limits *limits);

#endif /* GCTYPES_H */
