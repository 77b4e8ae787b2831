/**
 * collectd-dotnet - plugin/action.h
 *
 * What a trigger does to a process, one action at a time: alloc-types (the
 * types being allocated, sampled for a few seconds), heap-types (the types
 * live on the heap, from a GC heap snapshot), trace (a .nettrace of a few
 * seconds, plugin/trace.c) and dump (a core dump, plugin/dump.c). Each result is a file of
 * ours in the dump directory (<instance>-<pid>-<UTC>.alloc-types.json,
 * .heap-types.json, .nettrace, .dmp; 0600, the directory rules of dumps)
 * and a one-line message for a notification. Blocking, on the caller's
 * thread (the plugin's dump worker), cancelled through the thread's IPC
 * cancel fd (ipc_set_cancel_fd). No collectd header.
 */
#ifndef ACTION_H
#define ACTION_H

#include "dump.h"
#include "dump_worker.h"
#include "gctypes.h"
#include "session.h"
#include "trace.h"

enum action_kind {
  ACTION_ALLOC_TYPES,
  ACTION_HEAP_TYPES,
  ACTION_TRACE,
  ACTION_DUMP,
};
/* "alloc-types", "heap-types", "trace", "dump" (dump.h's name tables) */
extern const struct dump_name action_kinds[];

/* The notification message's size (collectd's NOTIF_MAX_MSG_LEN). */
#define ACTION_MESSAGE_MAX 256
#define ACTION_TOP_MAX GCTYPES_FORMAT_MAX_ROWS

struct action_config {
  enum action_kind kind;
  struct dump_policy policy; /* MinInterval, MaxPerProcess, MaxTotal */
  /* where results go (every kind), and the dump's own settings (dump):
   * directory, min_free_bytes, type, method, timeout_ms */
  struct dump_request dump;
  double duration_s;       /* alloc-types, trace; 0: 5 */
  double timeout_s;        /* heap-types: the whole snapshot; 0: 60 */
  unsigned top;            /* types in the file; 0: 20 */
  uint64_t max_heap_bytes; /* heap-types: refused above this GC heap
                              size (0: no limit) */
  /* trace: providers (none: GC events and CPU samples), duration (set
   * from duration_s), size cap (max_bytes; 0: 256 MiB) */
  struct trace_config trace;
};

/* Sets the defaults of a kind: policy (MinInterval 300 s for heap-types
 * and dump, 60 s for alloc-types and trace; 5 per process, 20 in all),
 * durations, top. */
void action_defaults(struct action_config *a, enum action_kind kind);

struct action_result {
  struct dump_result file; /* path, size, seconds, reason, note */
  int complete;            /* types: 0 when the result is incomplete */
  uint64_t count, bytes;   /* types: objects or samples, and bytes */
  char message[ACTION_MESSAGE_MAX]; /* for the notification */
};

/* Runs a for ep (instance names its files). heap_bytes: the process's
 * last GC heap size (0: unknown), for max_heap_bytes. 0 done (message and
 * file set; a types result may be incomplete: complete says), or a
 * negative errno with message saying why. */
int action_run(const struct action_config *a, const struct ipc_endpoint *ep,
               const char *instance, uint64_t heap_bytes,
               struct action_result *res);

#endif /* ACTION_H */
