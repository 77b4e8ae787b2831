/**
 * collectd-dotnet - plugin/typesrun.h
 *
 * One heap-types or alloc-types run against a target: the sessions to
 * start (plugin/gctypes.h says which), their stream read into a gctypes
 * aggregate, the session stopped and read to its end. Blocking, on the
 * caller's thread (the CLI's, the plugin's action worker), with a deadline
 * and a cancel fd; no output, no collectd header.
 *
 * heap-types first runs a short SampleProfiler session, as dotnet-gcdump
 * does ("flushing the type table"): the runtime sends a type's BulkType
 * event once, not again to a later session, until a session ends while it
 * is being written to; without it a snapshot after an abandoned session
 * names types "(type 0x...)". Then the snapshot session: the runtime runs
 * one blocking gen2 GC while it enables it, and writes the whole snapshot
 * into the session's buffer (HEAP_BUFFER_MB, Drop mode) before the stream
 * drains it; the run stops the session once gctypes_snapshot_done() says
 * the GC has ended. The buffering is lossless (Block, where the runtime
 * has it) only when the target's memory (VmRSS + VmSwap) bounds the
 * snapshot well below the buffer; else Drop, and a result that lost
 * events says it is incomplete.
 */
#ifndef TYPESRUN_H
#define TYPESRUN_H

#include "gctypes.h"
#include "ipc.h"

/* The runtime-side buffer of a heap snapshot session. The runtime takes
 * buffer memory as it writes, not up front; in Drop mode a snapshot bigger
 * than this (about 45 bytes an object: ~23 million objects) loses events
 * and the result says it is incomplete; in Block mode it would stop the
 * target for good (docs/gctypes-notes.md). */
#define TYPESRUN_HEAP_BUFFER_MB 1024
#define TYPESRUN_ALLOC_BUFFER_MB 64

struct typesrun_config {
  enum gctypes_mode mode;
  double timeout_s;  /* heap: the whole snapshot; alloc: the session's
                        start. 0: 60 */
  double duration_s; /* alloc: how long to sample; 0: 5 */
  int cancel_fd;     /* readable: give up at once (-1: none) */
};

struct typesrun_result {
  double seconds;        /* from the first session to the stream's end */
  uint64_t stream_bytes; /* of the snapshot or sampling session */
  int timed_out;         /* heap: no complete snapshot within timeout_s */
  int cancelled;         /* cancel_fd became readable */
  int lossless;          /* heap: Block buffering asked for (the runtime
                            uses it from .NET 11 on) */
  char reason[512];      /* why it failed (printable), "" otherwise */
};

/* Runs one session of cfg->mode against ep into g (a fresh gctypes of that
 * mode), and calls gctypes_finish. 0: g holds the result (complete or not:
 * see gctypes_summary); a negative errno with res->reason when no result
 * is worth showing (the session did not start, the snapshot did not finish
 * in time, a read error, cancelled). */
int typesrun(const struct ipc_endpoint *ep, const struct typesrun_config *cfg,
             struct gctypes *g, struct typesrun_result *res);

#endif /* TYPESRUN_H */
