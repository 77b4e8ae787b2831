/**
 * collectd-dotnet - plugin/action.c
 *
 * See action.h.
 */
#include "action.h"

#include "typesrun.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const struct dump_name action_kinds[] = {{"alloc-types", ACTION_ALLOC_TYPES},
                                         {"heap-types", ACTION_HEAP_TYPES},
                                         {"trace", ACTION_TRACE},
                                         {"dump", ACTION_DUMP},
                                         {NULL, 0}};

#define DEFAULT_TOP 20
#define DEFAULT_DURATION_S 5

void action_defaults(struct action_config *a, enum action_kind kind) {
  struct dump_request dump = a->dump; /* the trigger's directory etc. */
  *a = (struct action_config){
      .kind = kind,
      .policy = {.min_interval_sec =
                     kind == ACTION_HEAP_TYPES || kind == ACTION_DUMP ? 300
                                                                      : 60,
                 .max_per_process = 5,
                 .max_total = 20},
      .dump = dump,
      .duration_s = DEFAULT_DURATION_S,
      .top = DEFAULT_TOP};
}

static void message(struct action_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void message(struct action_result *res, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(res->message, sizeof(res->message), fmt, ap);
  va_end(ap);
}

/* Writes len bytes of buf to fd: 0 or negative errno. */
static int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return n < 0 ? -errno : -EIO;
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

/* g's JSON (gctypes_format) as the result file; its path in res->file, or
 * why not in res->file.reason. */
static int types_file(const struct action_config *a, const struct gctypes *g,
                      const struct ipc_endpoint *ep, const char *instance,
                      const char *suffix, struct action_result *res) {
  size_t need = gctypes_format(g, GCTYPES_JSON, a->top, NULL, 0) + 1;
  char *json = malloc(need);
  if (json == NULL) {
    dump_say(&res->file, "out of memory");
    return -ENOMEM;
  }
  gctypes_format(g, GCTYPES_JSON, a->top, json, need);
  struct dump_file f;
  int r = dump_file_open(&f, a->dump.directory, instance, ipc_endpoint_pid(ep), suffix,
                         a->dump.min_free_bytes, &res->file);
  if (r == 0 && (r = write_all(f.fd, json, strlen(json))) < 0) {
    dump_say(&res->file, "writing %s/%s: %s", f.dir, f.final_name,
             strerror(-r));
    dump_file_abort(&f);
  } else if (r == 0) {
    r = dump_file_commit(&f, &res->file);
  }
  free(json);
  return r;
}

/* alloc-types and heap-types. */
static int run_types(const struct action_config *a,
                     const struct ipc_endpoint *ep, const char *instance,
                     uint64_t heap_bytes, struct action_result *res) {
  int heap = a->kind == ACTION_HEAP_TYPES;
  const char *name = heap ? "heap-types" : "alloc-types";
  char size[32], limit[32];
  if (heap && a->max_heap_bytes > 0 && heap_bytes > a->max_heap_bytes) {
    gctypes_human_bytes(heap_bytes, size, sizeof(size));
    gctypes_human_bytes(a->max_heap_bytes, limit, sizeof(limit));
    message(res,
            "%s of pid %d refused: its GC heap is %s, above MaxHeapSize %s "
            "(a snapshot would pause it too long)",
            name, (int)ipc_endpoint_pid(ep), size, limit);
    return -EFBIG;
  }
  struct gctypes *g = gctypes_new(heap ? GCTYPES_HEAP : GCTYPES_ALLOC, NULL);
  if (g == NULL) {
    message(res, "%s of pid %d failed: out of memory", name, (int)ipc_endpoint_pid(ep));
    return -ENOMEM;
  }
  struct typesrun_config cfg = {.mode = heap ? GCTYPES_HEAP : GCTYPES_ALLOC,
                                .timeout_s = a->timeout_s,
                                .duration_s = a->duration_s,
                                .cancel_fd = ipc_get_cancel_fd()};
  struct typesrun_result tr;
  int r = typesrun(ep, &cfg, g, &tr);
  res->file.seconds = tr.seconds;
  if (r < 0) {
    message(res, "%s of pid %d failed: %s", name, (int)ipc_endpoint_pid(ep), tr.reason);
    gctypes_free(g);
    return r;
  }
  struct gctypes_summary sum;
  gctypes_summary(g, &sum);
  res->complete = sum.complete;
  res->count = sum.count;
  res->bytes = sum.bytes;
  types_file(a, g, ep, instance, heap ? ".heap-types.json" : ".alloc-types.json",
             res);
  /* "[incomplete (why): ]heap-types of pid N (S, C objects): top types" */
  gctypes_human_bytes(sum.bytes, size, sizeof(size));
  char why[96] = "";
  if (!sum.complete)
    snprintf(why, sizeof(why), "incomplete (%.60s): ", sum.reason);
  int len = snprintf(res->message, sizeof(res->message),
                     "%s%s of pid %d (%s, %" PRIu64 " %s): ", why, name,
                     (int)ipc_endpoint_pid(ep), size, sum.count, heap ? "objects" : "samples");
  if (len > 0 && (size_t)len < sizeof(res->message))
    gctypes_format(g, GCTYPES_COMPACT, a->top, res->message + len,
                   sizeof(res->message) - (size_t)len);
  gctypes_free(g);
  return 0;
}

/* A .nettrace of the process, written straight into its result file as
 * the stream comes; kept when it is whole, or when the target ended it
 * early (what came is readable up to there: a WARNING says so). */
static int run_trace(const struct action_config *a,
                     const struct ipc_endpoint *ep, const char *instance,
                     struct action_result *res) {
  struct dump_file f;
  int r = dump_file_open(&f, a->dump.directory, instance, ipc_endpoint_pid(ep), ".nettrace",
                         a->dump.min_free_bytes, &res->file);
  if (r < 0) {
    message(res, "trace of pid %d failed: %s", (int)ipc_endpoint_pid(ep), res->file.reason);
    return r;
  }
  struct trace_config cfg = a->trace;
  cfg.duration_s = a->duration_s;
  struct trace_result tr;
  r = trace_run(ep, &cfg, f.fd, &tr);
  res->file.seconds = tr.seconds;
  res->count = tr.events;
  res->bytes = tr.bytes;
  int keep = r == 0 || (r == -ENODATA && tr.bytes > 0);
  if (!keep) {
    dump_file_abort(&f);
    message(res, "trace of pid %d failed: %s", (int)ipc_endpoint_pid(ep),
            tr.reason[0] ? tr.reason : trace_end_name(tr.end));
    return r;
  }
  int c = dump_file_commit(&f, &res->file);
  if (c < 0) {
    message(res, "trace of pid %d failed: %s", (int)ipc_endpoint_pid(ep), res->file.reason);
    return c;
  }
  res->complete = r == 0;
  message(res, "%strace of pid %d written: %s (%.1f MB, %" PRIu64
               " events, %" PRIu64 " CPU samples, %.1f s%s)",
          r == 0 ? "" : "incomplete (the target ended it): ", (int)ipc_endpoint_pid(ep),
          res->file.path, (double)tr.bytes / 1e6, tr.events, tr.samples,
          tr.seconds, tr.cut ? ", stopped early at MaxSize" : "");
  return 0;
}

static int run_dump(const struct action_config *a,
                    const struct ipc_endpoint *ep, const char *instance,
                    struct action_result *res) {
  struct dump_request req = a->dump;
  req.ep = *ep;
  snprintf(req.instance, sizeof(req.instance), "%s", instance);
  int r = dump_take(&req, &res->file);
  if (r == 0)
    message(res, "dump of pid %d written: %s (%.1f MB, %.2f s)", (int)ipc_endpoint_pid(ep),
            res->file.path, (double)res->file.size / 1e6, res->file.seconds);
  else
    message(res, "dump of pid %d failed: %s", (int)ipc_endpoint_pid(ep), res->file.reason);
  return r;
}

int action_run(const struct action_config *a, const struct ipc_endpoint *ep,
               const char *instance, uint64_t heap_bytes,
               struct action_result *res) {
  memset(res, 0, sizeof(*res));
  res->complete = 1;
  switch (a->kind) {
  case ACTION_ALLOC_TYPES:
  case ACTION_HEAP_TYPES:
    return run_types(a, ep, instance, heap_bytes, res);
  case ACTION_TRACE:
    return run_trace(a, ep, instance, res);
  case ACTION_DUMP:
    return run_dump(a, ep, instance, res);
  }
  return -EINVAL;
}
