/**
 * collectd-dotnet - tests/test_dump_worker.c
 *
 * The dump worker's rules against a fake dump and a clock the test moves:
 * one dump at a time per process, pid + start time as the process's
 * identity, MinInterval per process (also after a failed attempt), MaxDumps
 * per process and in all (a failed attempt gives its slot back), the queue's
 * bound and order, and shutdown with a dump in flight. No .NET, no disk.
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
static int started;  /* takes begun */
static int releases; /* takes the test lets end */
static int take_rc;  /* what an ending take returns */
struct done_entry {
  pid_t pid;
  uint64_t start_time;
  int rc;
};
static struct done_entry dones[64];
static int ndone;

static int fake_take(const struct dump_request *req, struct dump_result *res) {
  (void)req;
  memset(res, 0, sizeof(*res));
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

static void on_done(void *ctx, const char *instance,
                    const struct ipc_endpoint *ep, int rc,
                    const struct dump_result *res, const char *trigger) {
  (void)ctx, (void)instance, (void)res, (void)trigger;
  pthread_mutex_lock(&mu);
  if (ndone < (int)(sizeof(dones) / sizeof(dones[0])))
    dones[ndone++] =
        (struct done_entry){.pid = ep->pid, .start_time = ep->start_time, .rc = rc};
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

/* A started worker with this policy, over the fake dump and clock, and the
 * fake's counts reset. */
static struct dump_worker *worker(double min_interval, unsigned per_process,
                                  unsigned total, unsigned queue_max) {
  pthread_mutex_lock(&mu);
  started = releases = take_rc = ndone = 0;
  pthread_mutex_unlock(&mu);
  static const struct dump_request tmpl = {.type = IPC_DUMP_HEAP};
  struct dump_policy pol = {.min_interval_sec = min_interval,
                            .max_per_process = per_process,
                            .max_total = total,
                            .queue_max = queue_max};
  static const struct dump_worker_ops ops = {.take = fake_take,
                                             .now = fake_now};
  struct dump_worker *w = dump_worker_new(&tmpl, &pol, &ops, on_done, NULL);
  if (w == NULL || dump_worker_start(w) != 0) {
    printf("Bail out! cannot start a dump worker\n");
    exit(1);
  }
  return w;
}

static char why[256];

static int ask(struct dump_worker *w, pid_t pid, uint64_t start_time) {
  struct ipc_endpoint ep = {.pid = pid, .start_time = start_time};
  why[0] = 0;
  return dump_worker_request(w, &ep, "shop", "gc-heap-size", why, sizeof(why));
}

/* One dump of (pid, start_time), let end with rc; 0 when it ran. */
static int one_dump(struct dump_worker *w, pid_t pid, uint64_t start_time,
                    int rc) {
  pthread_mutex_lock(&mu);
  int n = ndone;
  pthread_mutex_unlock(&mu);
  if (ask(w, pid, start_time) != 0)
    return -1;
  release(1, rc);
  return wait_for(&ndone, n + 1);
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
  EXPECT_EQ_INT(0, wait_for(&ndone, 2));
  EXPECT_EQ_INT(7, dones[0].start_time);
  EXPECT_EQ_INT(8, dones[1].start_time);
  /* done: the process may have its next one */
  EXPECT_EQ_INT(0, one_dump(w, 100, 7, 0));
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
  EXPECT_EQ_INT(0, wait_for(&ndone, 4));
  EXPECT_EQ_INT(-EIO, dones[3].rc);
  EXPECT_EQ_INT(-EAGAIN, ask(w, 200, 1));
  advance(300);
  EXPECT_EQ_INT(0, one_dump(w, 200, 1, 0));
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
  EXPECT_EQ_INT(0, wait_for(&ndone, 3));
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

int main(void) {
  RUN_TEST(one_at_a_time_per_process);
  RUN_TEST(min_interval_per_process);
  RUN_TEST(max_dumps);
  RUN_TEST(queue_bound_and_order);
  RUN_TEST(shutdown_with_a_dump_in_flight);
  END_TEST;
}
