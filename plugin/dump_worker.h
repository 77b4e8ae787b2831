/**
 * collectd-dotnet - plugin/dump_worker.h
 *
 * The dump worker: runs what a trigger does (a dump, or the steps of a
 * <Trigger>: alloc-types, heap-types, trace, dump) off collectd's threads.
 * It takes requests from any thread without blocking, decides at once which
 * steps their limits allow (one job at a time per process; per step:
 * MinInterval between two attempts on a process, a maximum per process and
 * in all, where a failed attempt gives its slot back), and runs the
 * allowed ones in order on its own thread. A process is identified by
 * pid + start time, or, for a runtime beyond our pid namespace (pid 0), by
 * its cookie.
 */
#ifndef DUMP_WORKER_H
#define DUMP_WORKER_H

#include "ipc.h"

struct dump_policy {
  double min_interval_sec; /* per process; default 300 */
  unsigned max_per_process; /* over the worker's life; default 5 */
  unsigned max_total;       /* default 20 */
};

/* One step of every job: a dump, or another action of a trigger, with its
 * own limits. The names make the refusals: "<label>last <noun> of pid N
 * started ...", "<label><per_process_opt> (N) reached for pid N". */
struct dump_step {
  struct dump_policy policy;
  const char *label;           /* "" or e.g. "heap-types: " */
  const char *noun;            /* "dump", "heap-types" */
  const char *per_process_opt; /* "MaxDumps", "MaxPerProcess" */
  const char *total_opt;       /* "MaxDumpsTotal", "MaxTotal" */
};
#define DUMP_WORKER_MAX_STEPS 8

/* A queued request, as a step runs it. */
struct dump_job {
  struct ipc_endpoint ep;
  char instance[128];
  char trigger[128];
  unsigned steps; /* bit i: step i runs (its limits allowed it) */
};

/* How the worker runs a step and tells the time. The plugin passes its
 * actions and clock_mono_s; the unit tests pass a fake step and a clock
 * they move, so that the policy is tested without .NET. run is called on
 * the worker's thread, in step order, for each step of the job, and
 * returns 0 (done: it counts against the step's limits), a negative errno
 * (failed: its slot is given back, MinInterval still runs) or
 * DUMP_WORKER_SKIPPED (it decided to do nothing, e.g. MaxHeapSize: neither
 * its slot nor MinInterval is used); the
 * thread's cancel fd (ipc_get_cancel_fd) becomes readable when
 * dump_worker_free stops it. */
#define DUMP_WORKER_SKIPPED 1 /* run's answer: nothing was done */
struct dump_worker_ops {
  int (*run)(void *ctx, size_t step, const struct dump_job *job);
  double (*now)(void); /* monotonic seconds */
  /* Optional: called on the worker's thread once a job has ended and its
   * process may have the next one. */
  void (*ended)(void *ctx, const struct dump_job *job);
};

struct dump_worker;

/* steps[nsteps] (1..DUMP_WORKER_MAX_STEPS) are copied (the strings are
 * not: they must outlive the worker); queue_max: pending jobs (0: 16); ops
 * is copied. NULL on ENOMEM or a bad nsteps. */
struct dump_worker *dump_worker_new(const struct dump_step *steps,
                                    size_t nsteps, unsigned queue_max,
                                    const struct dump_worker_ops *ops,
                                    void *ctx);
int dump_worker_start(struct dump_worker *w);
/* Stops the thread and drops queued jobs. A step in progress is abandoned
 * at once: its waits end with -ECANCELED through the thread's cancel fd
 * (a dump's wait for the runtime, createdump, the copy into its final
 * file, an action's session). Accepts NULL. */
void dump_worker_free(struct dump_worker *w);

/* Queues a job for the steps whose limits allow one now. 0: every step
 * queued; > 0: that many queued, the others refused (why[] says which
 * and why); negative: nothing queued, with why[]: -EBUSY a job of this
 * process is queued or running; -EAGAIN MinInterval not over; -EDQUOT a
 * Max limit reached (per process or in all); -ENOSPC queue full (the
 * code of the first step's refusal when every step was refused). Never
 * blocks for long (one short lock). */
int dump_worker_request(struct dump_worker *w, const struct ipc_endpoint *ep,
                        const char *instance, const char *trigger, char *why,
                        size_t why_cap);

#endif /* DUMP_WORKER_H */
