/**
 * collectd-dotnet - plugin/dump_worker.h
 *
 * The dump worker: takes dump requests from any thread without blocking,
 * decides at once whether policy allows them (one at a time per process,
 * MinInterval between two attempts on a process, MaxDumps dumps written per
 * process and in all: a failed attempt gives its slot back), and makes the
 * allowed ones on its own thread (with dump_take() in the plugin).
 * A process is identified by pid + start time.
 */
#ifndef DUMP_WORKER_H
#define DUMP_WORKER_H

#include "dump.h"

struct dump_policy {
  double min_interval_sec; /* per process; default 300 */
  unsigned max_per_process; /* over the worker's life; default 5 */
  unsigned max_total;       /* default 20 */
  unsigned queue_max;       /* pending requests; default 16 */
};

/* Called on the worker thread when a dump ends. rc: 0 or negative errno. */
typedef void (*dump_done_cb)(void *ctx, const char *instance,
                             const struct ipc_endpoint *ep, int rc,
                             const struct dump_result *res,
                             const char *trigger);

/* How the worker makes a dump and tells the time. The plugin passes
 * dump_take and clock_mono_s; the unit tests pass a fake dump and a clock
 * they move, so that the policy is tested without .NET. take runs on the
 * worker's thread, whose cancel fd (ipc_get_cancel_fd) becomes readable
 * when dump_worker_free stops it. */
struct dump_worker_ops {
  int (*take)(const struct dump_request *req, struct dump_result *res);
  double (*now)(void); /* monotonic seconds */
};

struct dump_worker;

/* tmpl: type, method, directory, min_free_bytes, timeout (ep and instance
 * are set per request). ops is copied. NULL on ENOMEM. */
struct dump_worker *dump_worker_new(const struct dump_request *tmpl,
                                    const struct dump_policy *policy,
                                    const struct dump_worker_ops *ops,
                                    dump_done_cb done, void *ctx);
int dump_worker_start(struct dump_worker *w);
/* Stops the thread and drops queued requests. A dump in progress is
 * abandoned at once: with Method ipc the wait for the runtime's answer ends
 * with -ECANCELED, with Method exec createdump is killed, and the copy of
 * any dump into its final file stops between two 8 MiB chunks. Accepts
 * NULL. */
void dump_worker_free(struct dump_worker *w);

/* Queues a dump. 0: queued. Refusals, with why[] filled:
 * -EBUSY a dump of this process is queued or running; -EAGAIN MinInterval
 * not over; -EDQUOT MaxDumps reached (per process or in all); -ENOSPC
 * queue full. Never blocks for long (one short lock). */
int dump_worker_request(struct dump_worker *w, const struct ipc_endpoint *ep,
                        const char *instance, const char *trigger, char *why,
                        size_t why_cap);

#endif /* DUMP_WORKER_H */
