/**
 * collectd-dotnet - plugin/dump_worker.c
 *
 * See dump_worker.h. Per-process bookkeeping (per step) lives in a small
 * table keyed by pid + start time, bounded (the entries of idle processes
 * used longest ago recycled).
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

struct step_state {
  unsigned done;     /* runs queued, running or done (not failed) */
  double last_start; /* monotonic s of the last run's start */
  double prev_start; /* the one before: back when a run did nothing */
};

struct proc_state {
  pid_t pid; /* 0: a runtime beyond our pid namespace, known by cookie */
  uint64_t start_time;
  uint8_t cookie[16];
  int busy;          /* a job queued or running */
  double last_use;   /* monotonic s of the last request that queued */
  struct step_state steps[DUMP_WORKER_MAX_STEPS];
};

/* Shared by the requesting threads and the worker thread: everything below
 * lock is guarded by it; steps, nsteps, queue_max, ops and ctx are set in
 * dump_worker_new and only read after. */
struct dump_worker {
  struct dump_step steps[DUMP_WORKER_MAX_STEPS];
  size_t nsteps;
  unsigned queue_max;
  struct dump_worker_ops ops;
  void *ctx;
  pthread_t thread;
  int started; /* the owner's: set by start, read by free */
  int cancel;  /* eventfd written by dump_worker_free: a GenerateCoreDump or
                  a session the target does not answer must not hold
                  collectd's shutdown for a whole Timeout
                  (ipc_set_cancel_fd) */
  pthread_mutex_t lock;
  pthread_cond_t cond; /* a job queued, or stopping */
  int stopping;
  struct dump_job *queue; /* ring of queue_max */
  size_t qhead, qlen;
  struct proc_state procs[PROCS_MAX];
  size_t nprocs;
  unsigned total[DUMP_WORKER_MAX_STEPS]; /* per step, all processes */
};

static unsigned or_default(unsigned v, unsigned def) { return v ? v : def; }

struct dump_worker *dump_worker_new(const struct dump_step *steps,
                                    size_t nsteps, unsigned queue_max,
                                    const struct dump_worker_ops *ops,
                                    void *ctx) {
  if (nsteps == 0 || nsteps > DUMP_WORKER_MAX_STEPS)
    return NULL;
  struct dump_worker *w = calloc(1, sizeof(*w));
  if (w == NULL)
    return NULL;
  w->nsteps = nsteps;
  w->queue_max = or_default(queue_max, 16);
  w->ops = *ops;
  w->ctx = ctx;
  for (size_t i = 0; i < nsteps; i++) {
    const struct dump_policy *p = &steps[i].policy;
    w->steps[i] = steps[i];
    w->steps[i].policy = (struct dump_policy){
        .min_interval_sec = p->min_interval_sec > 0 ? p->min_interval_sec : 0,
        .max_per_process = or_default(p->max_per_process, 5),
        .max_total = or_default(p->max_total, 20)};
  }
  w->cancel = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  w->queue = calloc(w->queue_max, sizeof(*w->queue));
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
    if (ep->pid > 0 ? ipc_same_process(w->procs[i].pid,
                                       w->procs[i].start_time, ep->pid,
                                       ep->start_time)
                    : w->procs[i].pid == 0 &&
                          memcmp(w->procs[i].cookie, ep->cookie,
                                 sizeof(ep->cookie)) == 0)
      return &w->procs[i];
  size_t slot = w->nprocs;
  if (slot == PROCS_MAX) {
    /* recycle the idle entry used longest ago */
    for (size_t i = 0; i < w->nprocs; i++)
      if (!w->procs[i].busy &&
          (slot == PROCS_MAX || w->procs[i].last_use < w->procs[slot].last_use))
        slot = i;
    if (slot == PROCS_MAX)
      return NULL;
  } else {
    w->nprocs++;
  }
  struct proc_state *p = &w->procs[slot];
  *p = (struct proc_state){.pid = ep->pid, .start_time = ep->start_time,
                           .last_use = -1e18};
  memcpy(p->cookie, ep->cookie, sizeof(p->cookie));
  for (size_t i = 0; i < DUMP_WORKER_MAX_STEPS; i++)
    p->steps[i].last_start = -1e18;
  return p;
}

/* 0 when p (NULL: no room in the table) may have a job queued now, else
 * the refusal with why[] filled. Under w->lock. */
static int job_refusal(const struct dump_worker *w, const struct proc_state *p,
                       const struct ipc_endpoint *ep, char *why,
                       size_t why_cap) {
  if (p == NULL) {
    snprintf(why, why_cap, "too many processes with %ss in progress",
             w->nsteps == 1 ? w->steps[0].noun : "action");
    return -ENOSPC;
  }
  if (p->busy) {
    if (w->nsteps == 1)
      snprintf(why, why_cap, "a %s of pid %d is already queued or running",
               w->steps[0].noun, (int)ipc_endpoint_pid(ep));
    else
      snprintf(why, why_cap,
               "actions for pid %d are already queued or running",
               (int)ipc_endpoint_pid(ep));
    return -EBUSY;
  }
  if (w->qlen >= w->queue_max) {
    snprintf(why, why_cap, "%s queue full",
             w->nsteps == 1 ? w->steps[0].noun : "action");
    return -ENOSPC;
  }
  return 0;
}

/* 0 when step i's limits let p have a run now, else the refusal with
 * why[] filled. Under w->lock. */
static int step_refusal(const struct dump_worker *w, size_t i,
                        const struct proc_state *p,
                        const struct ipc_endpoint *ep, double now, char *why,
                        size_t why_cap) {
  const struct dump_step *st = &w->steps[i];
  const struct step_state *ss = &p->steps[i];
  if (now - ss->last_start < st->policy.min_interval_sec) {
    snprintf(why, why_cap,
             "%slast %s of pid %d started %.0f s ago, MinInterval is %.0f s",
             st->label, st->noun, (int)ipc_endpoint_pid(ep), now - ss->last_start,
             st->policy.min_interval_sec);
    return -EAGAIN;
  }
  if (ss->done >= st->policy.max_per_process) {
    snprintf(why, why_cap, "%s%s (%u) reached for pid %d", st->label,
             st->per_process_opt, st->policy.max_per_process, (int)ipc_endpoint_pid(ep));
    return -EDQUOT;
  }
  if (w->total[i] >= st->policy.max_total) {
    snprintf(why, why_cap, "%s%s (%u) reached", st->label, st->total_opt,
             st->policy.max_total);
    return -EDQUOT;
  }
  return 0;
}

/* Appends s to why[] ("; " between). */
static void why_add(char *why, size_t why_cap, const char *s) {
  size_t l = strnlen(why, why_cap);
  if (l + 1 < why_cap)
    snprintf(why + l, why_cap - l, "%s%s", l ? "; " : "", s);
}

int dump_worker_request(struct dump_worker *w, const struct ipc_endpoint *ep,
                        const char *instance, const char *trigger, char *why,
                        size_t why_cap) {
  double now = w->ops.now();
  if (why_cap)
    why[0] = 0;
  pthread_mutex_lock(&w->lock);
  struct proc_state *p = proc_get(w, ep);
  int r = job_refusal(w, p, ep, why, why_cap);
  unsigned steps = 0, nrefused = 0;
  int first = 0;
  for (size_t i = 0; r == 0 && i < w->nsteps; i++) {
    char one[256];
    int sr = step_refusal(w, i, p, ep, now, one, sizeof(one));
    if (sr == 0) {
      steps |= 1u << i;
    } else {
      why_add(why, why_cap, one);
      nrefused++;
      if (first == 0)
        first = sr;
    }
  }
  if (r == 0 && steps == 0)
    r = first;
  if (r == 0) {
    struct dump_job *j = &w->queue[(w->qhead + w->qlen) % w->queue_max];
    j->ep = *ep;
    snprintf(j->instance, sizeof(j->instance), "%s", instance);
    snprintf(j->trigger, sizeof(j->trigger), "%s", trigger ? trigger : "");
    j->steps = steps;
    w->qlen++;
    p->busy = 1;
    p->last_use = now;
    /* Counted now, so that a flapping threshold cannot queue past the
     * limits. */
    for (size_t i = 0; i < w->nsteps; i++)
      if (steps & (1u << i)) {
        p->steps[i].done++;
        p->steps[i].prev_start = p->steps[i].last_start;
        p->steps[i].last_start = now;
        w->total[i]++;
      }
    pthread_cond_signal(&w->cond);
  }
  pthread_mutex_unlock(&w->lock);
  if (r < 0)
    return r;
  return nrefused ? (int)(w->nsteps - nrefused) : 0;
}

/* Takes the next job into *j, waiting for one: 1, or 0 when stopping.
 * Under w->lock. */
static int job_next(struct dump_worker *w, struct dump_job *j) {
  while (!w->stopping && w->qlen == 0)
    pthread_cond_wait(&w->cond, &w->lock);
  if (w->stopping)
    return 0;
  *j = w->queue[w->qhead];
  w->qhead = (w->qhead + 1) % w->queue_max;
  w->qlen--;
  return 1;
}

/* Step i of ep's job starts now: MinInterval counts from the real start.
 * Under w->lock. */
static void step_started(struct dump_worker *w, const struct ipc_endpoint *ep,
                         size_t i) {
  struct proc_state *p = proc_get(w, ep);
  if (p)
    p->steps[i].last_start = w->ops.now();
}

/* Step i of ep's job ended with rc. Under w->lock. */
static void step_ended(struct dump_worker *w, const struct ipc_endpoint *ep,
                       size_t i, int rc) {
  if (rc == 0)
    return;
  struct proc_state *p = proc_get(w, ep);
  if (rc == DUMP_WORKER_SKIPPED && p) /* it did nothing: MinInterval as before */
    p->steps[i].last_start = p->steps[i].prev_start;
  /* The Max limits count runs done: a failed attempt (full disk, read-only
   * directory) gives its slot back, but still starts MinInterval, so a
   * broken directory is not retried every interval. */
  if (p && p->steps[i].done > 0)
    p->steps[i].done--;
  if (w->total[i] > 0)
    w->total[i]--;
}

static void *worker_main(void *arg) {
  struct dump_worker *w = arg;
  ipc_set_cancel_fd(w->cancel);
  struct dump_job j;
  pthread_mutex_lock(&w->lock);
  while (job_next(w, &j)) {
    for (size_t i = 0; i < w->nsteps; i++) {
      if (!(j.steps & (1u << i)))
        continue;
      if (w->stopping) { /* the rest of the job is dropped */
        step_ended(w, &j.ep, i, DUMP_WORKER_SKIPPED);
        continue;
      }
      step_started(w, &j.ep, i);
      pthread_mutex_unlock(&w->lock);
      int rc = w->ops.run(w->ctx, i, &j);
      pthread_mutex_lock(&w->lock);
      step_ended(w, &j.ep, i, rc);
    }
    struct proc_state *p = proc_get(w, &j.ep);
    if (p)
      p->busy = 0;
    if (w->ops.ended) {
      pthread_mutex_unlock(&w->lock);
      w->ops.ended(w->ctx, &j);
      pthread_mutex_lock(&w->lock);
    }
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
