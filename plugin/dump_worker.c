/**
 * collectd-dotnet - plugin/dump_worker.c
 *
 * See dump_worker.h. Per-process bookkeeping lives in a small table keyed
 * by pid + start time, bounded (oldest entries of gone processes recycled).
 */
#include "dump_worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define PROCS_MAX 256

struct proc_state {
  pid_t pid;
  uint64_t start_time;
  unsigned dumps;    /* dumps queued, running or written (not failed) */
  double last_start; /* monotonic s of the last dump's start */
  int busy;          /* queued or running */
};

struct job {
  struct ipc_endpoint ep;
  char instance[128];
  char trigger[128];
};

/* Shared by the requesting threads and the worker thread: everything below
 * lock is guarded by it; tmpl, policy, ops, done and ctx are set in
 * dump_worker_new and only read after. */
struct dump_worker {
  struct dump_request tmpl;
  struct dump_policy policy;
  struct dump_worker_ops ops;
  dump_done_cb done;
  void *ctx;
  pthread_t thread;
  int started; /* the owner's: set by start, read by free */
  int cancel;  /* eventfd written by dump_worker_free: a GenerateCoreDump the
                  target does not answer must not hold collectd's shutdown
                  for the whole Timeout (ipc_set_cancel_fd) */
  pthread_mutex_t lock;
  pthread_cond_t cond; /* a job queued, or stopping */
  int stopping;
  struct job *queue; /* ring of policy.queue_max */
  size_t qhead, qlen;
  struct proc_state procs[PROCS_MAX];
  size_t nprocs;
  unsigned total; /* dumps queued, running or written, all processes */
};

static unsigned or_default(unsigned v, unsigned def) { return v ? v : def; }

struct dump_worker *dump_worker_new(const struct dump_request *tmpl,
                                    const struct dump_policy *policy,
                                    const struct dump_worker_ops *ops,
                                    dump_done_cb done, void *ctx) {
  struct dump_worker *w = calloc(1, sizeof(*w));
  if (w == NULL)
    return NULL;
  *w = (struct dump_worker){
      .tmpl = *tmpl,
      .policy = {.min_interval_sec = policy->min_interval_sec > 0
                                         ? policy->min_interval_sec
                                         : 0,
                 .max_per_process = or_default(policy->max_per_process, 5),
                 .max_total = or_default(policy->max_total, 20),
                 .queue_max = or_default(policy->queue_max, 16)},
      .ops = *ops,
      .done = done,
      .ctx = ctx,
      .cancel = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
  w->queue = calloc(w->policy.queue_max, sizeof(*w->queue));
  if (w->queue == NULL || w->cancel < 0) {
    if (w->cancel >= 0)
      close(w->cancel);
    free(w->queue);
    free(w);
    return NULL;
  }
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->cond, NULL);
  return w;
}

static struct proc_state *proc_get(struct dump_worker *w,
                                   const struct ipc_endpoint *ep) {
  for (size_t i = 0; i < w->nprocs; i++)
    if (ipc_same_process(w->procs[i].pid, w->procs[i].start_time, ep->pid,
                         ep->start_time))
      return &w->procs[i];
  size_t slot = w->nprocs;
  if (slot == PROCS_MAX) {
    /* recycle the idle entry used longest ago */
    slot = PROCS_MAX;
    for (size_t i = 0; i < w->nprocs; i++)
      if (!w->procs[i].busy &&
          (slot == PROCS_MAX || w->procs[i].last_start < w->procs[slot].last_start))
        slot = i;
    if (slot == PROCS_MAX)
      return NULL;
  } else {
    w->nprocs++;
  }
  struct proc_state *p = &w->procs[slot];
  *p = (struct proc_state){.pid = ep->pid, .start_time = ep->start_time,
                           .last_start = -1e18};
  return p;
}

/* 0 when policy lets p (NULL: no room in the table) have a dump now, else
 * the refusal with why[] filled. Under w->lock. */
static int refusal(const struct dump_worker *w, const struct proc_state *p,
                   const struct ipc_endpoint *ep, double now, char *why,
                   size_t why_cap) {
  if (p == NULL) {
    snprintf(why, why_cap, "too many processes with dumps in progress");
    return -ENOSPC;
  }
  if (p->busy) {
    snprintf(why, why_cap, "a dump of pid %d is already queued or running",
             (int)ep->pid);
    return -EBUSY;
  }
  if (now - p->last_start < w->policy.min_interval_sec) {
    snprintf(why, why_cap,
             "last dump of pid %d started %.0f s ago, MinInterval is %.0f s",
             (int)ep->pid, now - p->last_start, w->policy.min_interval_sec);
    return -EAGAIN;
  }
  if (p->dumps >= w->policy.max_per_process) {
    snprintf(why, why_cap, "MaxDumps (%u) reached for pid %d",
             w->policy.max_per_process, (int)ep->pid);
    return -EDQUOT;
  }
  if (w->total >= w->policy.max_total) {
    snprintf(why, why_cap, "MaxDumpsTotal (%u) reached", w->policy.max_total);
    return -EDQUOT;
  }
  if (w->qlen >= w->policy.queue_max) {
    snprintf(why, why_cap, "dump queue full");
    return -ENOSPC;
  }
  return 0;
}

int dump_worker_request(struct dump_worker *w, const struct ipc_endpoint *ep,
                        const char *instance, const char *trigger, char *why,
                        size_t why_cap) {
  double now = w->ops.now();
  pthread_mutex_lock(&w->lock);
  struct proc_state *p = proc_get(w, ep);
  int r = refusal(w, p, ep, now, why, why_cap);
  if (r == 0) {
    struct job *j = &w->queue[(w->qhead + w->qlen) % w->policy.queue_max];
    j->ep = *ep;
    snprintf(j->instance, sizeof(j->instance), "%s", instance);
    snprintf(j->trigger, sizeof(j->trigger), "%s", trigger ? trigger : "");
    w->qlen++;
    p->busy = 1;
    /* Counted now, so that a flapping threshold cannot queue past caps. */
    p->dumps++;
    p->last_start = now;
    w->total++;
    pthread_cond_signal(&w->cond);
  }
  pthread_mutex_unlock(&w->lock);
  return r;
}

/* Takes the next job into *j, waiting for one: 1, or 0 when stopping.
 * Under w->lock. */
static int job_next(struct dump_worker *w, struct job *j) {
  while (!w->stopping && w->qlen == 0)
    pthread_cond_wait(&w->cond, &w->lock);
  if (w->stopping)
    return 0;
  *j = w->queue[w->qhead];
  w->qhead = (w->qhead + 1) % w->policy.queue_max;
  w->qlen--;
  struct proc_state *p = proc_get(w, &j->ep);
  if (p)
    p->last_start = w->ops.now(); /* MinInterval counts from the real start */
  return 1;
}

/* The job of ep ended with rc. Under w->lock. */
static void job_ended(struct dump_worker *w, const struct ipc_endpoint *ep,
                      int rc) {
  struct proc_state *p = proc_get(w, ep);
  if (p)
    p->busy = 0;
  if (rc == 0)
    return;
  /* MaxDumps counts dumps written: a failed attempt (full disk, read-only
   * directory) gives its slot back, but still starts MinInterval, so a
   * broken directory is not retried every interval. */
  if (p && p->dumps > 0)
    p->dumps--;
  if (w->total > 0)
    w->total--;
}

static void *worker_main(void *arg) {
  struct dump_worker *w = arg;
  ipc_set_cancel_fd(w->cancel);
  struct job j;
  pthread_mutex_lock(&w->lock);
  while (job_next(w, &j)) {
    pthread_mutex_unlock(&w->lock);
    struct dump_request req = w->tmpl;
    req.ep = j.ep;
    snprintf(req.instance, sizeof(req.instance), "%s", j.instance);
    struct dump_result res;
    int rc = w->ops.take(&req, &res);
    pthread_mutex_lock(&w->lock);
    job_ended(w, &j.ep, rc);
    pthread_mutex_unlock(&w->lock);
    if (w->done)
      w->done(w->ctx, j.instance, &j.ep, rc, &res, j.trigger);
    pthread_mutex_lock(&w->lock);
  }
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

int dump_worker_start(struct dump_worker *w) {
  int r = pthread_create(&w->thread, NULL, worker_main, w);
  if (r != 0)
    return -r;
  pthread_setname_np(w->thread, "dotnet-dump");
  w->started = 1;
  return 0;
}

void dump_worker_free(struct dump_worker *w) {
  if (w == NULL)
    return;
  if (w->started) {
    pthread_mutex_lock(&w->lock);
    w->stopping = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    uint64_t one = 1; /* a dump in progress is abandoned */
    ssize_t n = write(w->cancel, &one, sizeof(one));
    (void)n;
    pthread_join(w->thread, NULL);
  }
  close(w->cancel);
  pthread_mutex_destroy(&w->lock);
  pthread_cond_destroy(&w->cond);
  free(w->queue);
  free(w);
}
