/**
 * collectd-dotnet - tests/test_dump_worker.c
 *
 * The dump worker's rules against a fake step and a clock the test moves:
 * one job at a time per process, pid + start time as the process's
 * identity, MinInterval per process (also after a failed attempt), MaxDumps
 * per process and in all (a failed attempt gives its slot back), the queue's
 * bound and order, shutdown with a step in flight; and for a job of several
 * steps: their order, each step's own limits, a refused step skipped while
 * the others run. No .NET, no disk.
 */
#include "dump_worker.h"
#include "testing.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

/* ---- the fake clock: moved by the test, read by both threads ---- */

static _Atomic int64_t now_ms = 1000000;

static double fake_now(void) { return (double)atomic_load(&now_ms) / 1000.0; }

static void advance(double sec) {
  atomic_fetch_add(&now_ms, (int64_t)(sec * 1000.0));
}

/* ---- the fake dump: holds until the test releases it ---- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int started;  /* steps begun */
static int nended;   /* jobs ended (their process free for the next) */
static int releases; /* takes the test lets end */
static int take_rc;  /* what an ending take returns */
struct done_entry {
  pid_t pid;
  uint64_t start_time;
  size_t step;
  int rc;
};
static struct done_entry dones[64];
static int ndone;

static int fake_wait(void) {
  pthread_mutex_lock(&mu);
  started++;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  /* released by the test, or cancelled by dump_worker_free, as the real
   * dump watches the thread's cancel fd; a hang ends as a failure */
  struct pollfd p = {.fd = ipc_get_cancel_fd(), .events = POLLIN};
  for (int waited = 0; waited < 10000; waited += 5) {
    pthread_mutex_lock(&mu);
    if (releases > 0) {
      releases--;
      int rc = take_rc;
      pthread_mutex_unlock(&mu);
      return rc;
    }
    pthread_mutex_unlock(&mu);
    if (poll(&p, 1, 5) > 0)
      return -ECANCELED;
  }
  return -ETIMEDOUT;
}

/* The worker's step: the fake, then its end recorded. */
static int fake_run(void *ctx, size_t step, const struct dump_job *job) {
  (void)ctx;
  int rc = fake_wait();
  pthread_mutex_lock(&mu);
  if (ndone < (int)(sizeof(dones) / sizeof(dones[0])))
    dones[ndone++] = (struct done_entry){.pid = job->ep.pid,
                                         .start_time = job->ep.start_time,
                                         .step = step,
                                         .rc = rc};
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  return rc;
}

static void fake_ended(void *ctx, const struct dump_job *job) {
  (void)ctx, (void)job;
  pthread_mutex_lock(&mu);
  nended++;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
}

/* Waits (at most 10 s) until *counter reaches n; 0 when it did. */
static int wait_for(const int *counter, int n) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 10;
  int r = 0;
  pthread_mutex_lock(&mu);
  while (*counter < n && r == 0)
    r = pthread_cond_timedwait(&cv, &mu, &until);
  r = *counter >= n ? 0 : -1;
  pthread_mutex_unlock(&mu);
  return r;
}

static void release(int n, int rc) {
  pthread_mutex_lock(&mu);
  releases += n;
  take_rc = rc;
  pthread_mutex_unlock(&mu);
}

/* A step named as a <Dump> block names its one step. */
static struct dump_step dump_step(double min_interval, unsigned per_process,
                                  unsigned total) {
  return (struct dump_step){.policy = {.min_interval_sec = min_interval,
                                       .max_per_process = per_process,
                                       .max_total = total},
                            .label = "",
                            .noun = "dump",
                            .per_process_opt = "MaxDumps",
                            .total_opt = "MaxDumpsTotal"};
}

/* A started worker with these steps, over the fake step and clock, and the
 * fake's counts reset. */
static struct dump_worker *worker_of(const struct dump_step *steps,
                                     size_t nsteps, unsigned queue_max) {
  pthread_mutex_lock(&mu);
  started = releases = take_rc = ndone = nended = 0;
  pthread_mutex_unlock(&mu);
  static const struct dump_worker_ops ops = {
      .run = fake_run, .now = fake_now, .ended = fake_ended};
  struct dump_worker *w = dump_worker_new(steps, nsteps, queue_max, &ops, NULL);
  if (w == NULL || dump_worker_start(w) != 0) {
    printf("Bail out! cannot start a dump worker\n");
    exit(1);
  }
  return w;
}

/* A started worker of one dump step with this policy. */
static struct dump_worker *worker(double min_interval, unsigned per_process,
                                  unsigned total, unsigned queue_max) {
  struct dump_step st = dump_step(min_interval, per_process, total);
  return worker_of(&st, 1, queue_max);
}

static char why[1024];

static int ask(struct dump_worker *w, pid_t pid, uint64_t start_time) {
  struct ipc_endpoint ep = {.pid = pid, .start_time = start_time};
  why[0] = 0;
  return dump_worker_request(w, &ep, "shop", "gc-heap-size", why, sizeof(why));
}

/* One dump of (pid, start_time), let end with rc; 0 when it ran. */
static int one_dump(struct dump_worker *w, pid_t pid, uint64_t start_time,
                    int rc) {
  pthread_mutex_lock(&mu);
  int n = nended;
  pthread_mutex_unlock(&mu);
  if (ask(w, pid, start_time) != 0)
    return -1;
  release(1, rc);
  return wait_for(&nended, n + 1);
}

/* Stops w: every dump the test let start has ended by then. */
static int finish(struct dump_worker *w) {
  dump_worker_free(w);
  EXPECT_EQ_INT(started, ndone);
  EXPECT_EQ_INT(0, releases);
  return 0;
}

DEF_TEST(one_at_a_time_per_process) {
  struct dump_worker *w = worker(0, 10, 10, 4);
  EXPECT_EQ_INT(0, ask(w, 100, 7));
  EXPECT_EQ_INT(0, wait_for(&started, 1));
  /* running: the same process is refused, queued or running alike */
  EXPECT_EQ_INT(-EBUSY, ask(w, 100, 7));
  CHECK(strstr(why, "a dump of pid 100 is already queued or running") != NULL);
  /* the same pid with another start time is another process */
  EXPECT_EQ_INT(0, ask(w, 100, 8));
  EXPECT_EQ_INT(-EBUSY, ask(w, 100, 8));
  release(2, 0);
  EXPECT_EQ_INT(0, wait_for(&nended, 2));
  EXPECT_EQ_INT(7, dones[0].start_time);
  EXPECT_EQ_INT(8, dones[1].start_time);
  /* done: the process may have its next one */
  EXPECT_EQ_INT(0, one_dump(w, 100, 7, 0));
  /* runtimes beyond our pid namespace (pid 0): known by their cookies */
  struct ipc_endpoint a = {.cookie = {1}}, b = {.cookie = {2}};
  EXPECT_EQ_INT(0, dump_worker_request(w, &a, "a", "t", why, sizeof(why)));
  EXPECT_EQ_INT(-EBUSY, dump_worker_request(w, &a, "a", "t", why, sizeof(why)));
  EXPECT_EQ_INT(0, dump_worker_request(w, &b, "b", "t", why, sizeof(why)));
  release(2, 0);
  EXPECT_EQ_INT(0, wait_for(&nended, 5));
  return finish(w);
}

DEF_TEST(min_interval_per_process) {
  struct dump_worker *w = worker(300, 10, 10, 4);
  EXPECT_EQ_INT(0, one_dump(w, 200, 1, 0));
  advance(299);
  EXPECT_EQ_INT(-EAGAIN, ask(w, 200, 1));
  CHECK(strstr(why, "last dump of pid 200 started 299 s ago, MinInterval is "
                    "300 s") != NULL);
  /* another process (another pid, or the same pid restarted) has its own */
  EXPECT_EQ_INT(0, one_dump(w, 201, 1, 0));
  EXPECT_EQ_INT(0, one_dump(w, 200, 2, 0));
  advance(1);
  EXPECT_EQ_INT(0, ask(w, 200, 1));
  /* a failed attempt starts MinInterval too: a broken directory is not
   * retried at every breach */
  release(1, -EIO);
  EXPECT_EQ_INT(0, wait_for(&nended, 4));
  EXPECT_EQ_INT(-EIO, dones[3].rc);
  EXPECT_EQ_INT(-EAGAIN, ask(w, 200, 1));
  advance(300);
  EXPECT_EQ_INT(0, one_dump(w, 200, 1, 0));
  /* a step that did nothing (DUMP_WORKER_SKIPPED) uses neither MinInterval
   * nor a slot: the next request is taken at once */
  advance(300);
  EXPECT_EQ_INT(0, one_dump(w, 200, 1, DUMP_WORKER_SKIPPED));
  EXPECT_EQ_INT(0, one_dump(w, 200, 1, 0));
  EXPECT_EQ_INT(-EAGAIN, ask(w, 200, 1));
  return finish(w);
}

DEF_TEST(max_dumps) {
  struct dump_worker *w = worker(0, 2, 3, 4);
  EXPECT_EQ_INT(0, one_dump(w, 300, 1, 0));
  EXPECT_EQ_INT(0, one_dump(w, 300, 1, 0));
  EXPECT_EQ_INT(-EDQUOT, ask(w, 300, 1));
  CHECK(strstr(why, "MaxDumps (2) reached for pid 300") != NULL);
  /* a failed attempt gives its slot back, per process and in all */
  EXPECT_EQ_INT(0, one_dump(w, 301, 1, -ENOSPC));
  EXPECT_EQ_INT(0, one_dump(w, 301, 1, 0));
  EXPECT_EQ_INT(-EDQUOT, ask(w, 302, 1));
  CHECK(strstr(why, "MaxDumpsTotal (3) reached") != NULL);
  return finish(w);
}

DEF_TEST(queue_bound_and_order) {
  struct dump_worker *w = worker(0, 10, 10, 2);
  EXPECT_EQ_INT(0, ask(w, 400, 1));
  EXPECT_EQ_INT(0, wait_for(&started, 1)); /* out of the queue, running */
  EXPECT_EQ_INT(0, ask(w, 401, 1));
  EXPECT_EQ_INT(0, ask(w, 402, 1));
  EXPECT_EQ_INT(-ENOSPC, ask(w, 403, 1));
  EXPECT_EQ_INT(0, strcmp(why, "dump queue full"));
  release(3, 0);
  EXPECT_EQ_INT(0, wait_for(&nended, 3));
  for (int i = 0; i < 3; i++)
    EXPECT_EQ_INT(400 + i, dones[i].pid);
  /* a refused request took no slot: 403 may have its dump now */
  EXPECT_EQ_INT(0, one_dump(w, 403, 1, 0));
  return finish(w);
}

DEF_TEST(shutdown_with_a_dump_in_flight) {
  struct dump_worker *w = worker(0, 10, 10, 4);
  EXPECT_EQ_INT(0, ask(w, 500, 1));
  EXPECT_EQ_INT(0, wait_for(&started, 1));
  EXPECT_EQ_INT(0, ask(w, 501, 1));
  /* the running dump is cancelled, the queued one dropped */
  dump_worker_free(w);
  EXPECT_EQ_INT(1, ndone);
  EXPECT_EQ_INT(500, dones[0].pid);
  EXPECT_EQ_INT(-ECANCELED, dones[0].rc);
  EXPECT_EQ_INT(1, started);
  return 0;
}

/* A job of three steps: run in order; each step's own limits; a refused
 * step is skipped (said in why) while the others run; every step refused
 * queues nothing. */
DEF_TEST(steps_in_order_with_their_own_limits) {
  struct dump_step steps[3] = {dump_step(60, 10, 10), dump_step(300, 10, 10),
                               dump_step(0, 1, 10)};
  steps[0].label = "alloc-types: ", steps[0].noun = "alloc-types";
  steps[1].label = "heap-types: ", steps[1].noun = "heap-types";
  steps[2].label = "dump: ", steps[2].per_process_opt = "MaxPerProcess";
  struct dump_worker *w = worker_of(steps, 3, 4);
  EXPECT_EQ_INT(0, ask(w, 600, 1));
  release(3, 0);
  EXPECT_EQ_INT(0, wait_for(&nended, 1));
  for (size_t i = 0; i < 3; i++)
    EXPECT_EQ_INT((int)i, (int)dones[i].step);
  /* 61 s on: alloc-types may run again, heap-types not (300 s), the dump
   * not (MaxPerProcess 1) */
  advance(61);
  EXPECT_EQ_INT(1, ask(w, 600, 1));
  CHECK(strstr(why, "heap-types: last heap-types of pid 600 started 61 s "
                    "ago, MinInterval is 300 s") != NULL);
  CHECK(strstr(why, "dump: MaxPerProcess (1) reached for pid 600") != NULL);
  release(1, 0);
  EXPECT_EQ_INT(0, wait_for(&nended, 2));
  EXPECT_EQ_INT(0, (int)dones[3].step);
  /* every step refused: nothing queued, the first step's reason */
  EXPECT_EQ_INT(-EAGAIN, ask(w, 600, 1));
  /* a failed step gives back only its own slot */
  EXPECT_EQ_INT(0, ask(w, 601, 1));
  release(1, 0);
  release(1, -EIO);
  EXPECT_EQ_INT(0, wait_for(&ndone, 6));
  EXPECT_EQ_INT(-EIO, dones[5].rc);
  release(1, 0);
  EXPECT_EQ_INT(0, wait_for(&ndone, 7));
  advance(300);
  EXPECT_EQ_INT(0, wait_for(&nended, 3));
  EXPECT_EQ_INT(2, ask(w, 601, 1)); /* the dump's MaxPerProcess 1 is used */
  release(2, -EIO);
  EXPECT_EQ_INT(0, wait_for(&nended, 4));
  EXPECT_EQ_INT(9, ndone);
  return finish(w);
}

int main(void) {
  RUN_TEST(one_at_a_time_per_process);
  RUN_TEST(min_interval_per_process);
  RUN_TEST(max_dumps);
  RUN_TEST(queue_bound_and_order);
  RUN_TEST(shutdown_with_a_dump_in_flight);
  RUN_TEST(steps_in_order_with_their_own_limits);
  END_TEST;
}
