/**
 * collectd-dotnet - tests/test_connector.c
 *
 * The watch's two threads against a scripted set of processes
 * (tests/fake_ipc.c): a rule's process is asked who it is, its session
 * starts on the grid and its samples reach the consumer; a runtime that
 * refuses connects while it starts up is retried quietly; one that does
 * not answer is warned of once and not asked again at once; a session
 * that fails at once is not restarted at once; MaxProcesses and the
 * names of several processes of one rule. Each case takes well under a
 * second; waits are for events (with a generous cap), never a tight
 * wall-clock bound.
 *
 * Usage: test_connector [DIR]; DIR (else $TEST_FIXTURES, else
 * tests/fixtures) holds counters-net10.nettrace.
 */
#include "clock.h"
#include "fake_ipc.h"
#include "testing.h"
#include "watch.h"

#include <errno.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 5000 /* the cap on a wait for an event */

static uint8_t *fixture;
static size_t fixture_len;

/* ---- what the watch said and published ---- */

static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static char logs[64][512];
static int log_levels[64];
static int nlogs;
static int published;
static char published_instance[64];

static void on_log(int level, const char *msg) {
  pthread_mutex_lock(&seen_lock);
  if (nlogs < 64) {
    snprintf(logs[nlogs], sizeof(logs[nlogs]), "%s", msg);
    log_levels[nlogs++] = level;
  }
  pthread_mutex_unlock(&seen_lock);
}

static void on_publish(void *ctx, const struct watch_target_view *t,
                       struct counters_entry *e) {
  (void)ctx;
  (void)e;
  pthread_mutex_lock(&seen_lock);
  published++;
  snprintf(published_instance, sizeof(published_instance), "%s", t->instance);
  pthread_mutex_unlock(&seen_lock);
}

/* The level of the first log line containing text, or -1. */
static int logged(const char *text) {
  int level = -1;
  pthread_mutex_lock(&seen_lock);
  for (int i = 0; i < nlogs && level < 0; i++)
    if (strstr(logs[i], text) != NULL)
      level = log_levels[i];
  pthread_mutex_unlock(&seen_lock);
  return level;
}

/* How many log lines at level or more urgent (a smaller number). */
static int logged_at(int level) {
  int n = 0;
  pthread_mutex_lock(&seen_lock);
  for (int i = 0; i < nlogs; i++)
    n += log_levels[i] <= level;
  pthread_mutex_unlock(&seen_lock);
  return n;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* Reads an int of the fake's table under its lock. */
static int fake_int(const int *field) {
  pthread_mutex_lock(&fake_lock);
  int v = *field;
  pthread_mutex_unlock(&fake_lock);
  return v;
}

/* Waits (at most WAIT_MS) until *field reaches want: 1 if it did. */
static int wait_int(const int *field, int want) {
  for (int64_t end = clock_mono_ms() + WAIT_MS; clock_mono_ms() < end;
       sleep_ms(10))
    if (fake_int(field) >= want)
      return 1;
  return 0;
}

static int wait_log(const char *text) {
  for (int64_t end = clock_mono_ms() + WAIT_MS; clock_mono_ms() < end;
       sleep_ms(10))
    if (logged(text) >= 0)
      return 1;
  return 0;
}

/* Waits (at most WAIT_MS) for a sample to be published: 1 if one was. */
static int wait_published(void) {
  for (int64_t end = clock_mono_ms() + WAIT_MS; clock_mono_ms() < end;
       sleep_ms(10)) {
    pthread_mutex_lock(&seen_lock);
    int n = published;
    pthread_mutex_unlock(&seen_lock);
    if (n > 0)
      return 1;
  }
  return 0;
}

/* ---- the watch under test ---- */

static struct watch_rule rules[2];

static struct watch *start(double interval, size_t nrules, size_t max_targets) {
  pthread_mutex_lock(&seen_lock);
  nlogs = published = 0;
  published_instance[0] = 0;
  pthread_mutex_unlock(&seen_lock);
  struct watch_config cfg = {.interval_sec = interval,
                             .discover_sec = 0.02,
                             .rules = rules,
                             .nrules = nrules,
                             .max_targets = max_targets,
                             .ipc_timeout_ms = 1000,
                             .log = on_log,
                             .publish = on_publish};
  for (size_t i = 0; i < nrules; i++)
    rules[i].session.interval_sec = interval;
  struct watch *w = watch_new(&cfg);
  CHECK(w != NULL);
  if (w != NULL && watch_start(w) != 0) {
    watch_free(w);
    return NULL;
  }
  return w;
}

static void pid_rule(int i, const char *name, pid_t pid) {
  memset(&rules[i], 0, sizeof(rules[i]));
  snprintf(rules[i].name, sizeof(rules[i].name), "%s", name);
  rules[i].match = WATCH_MATCH_PID;
  rules[i].pid = pid;
}

/* A watch with one rule (Pid) and its one process, scripted to refuse
 * that many connects, then to answer ProcessInfo with probe_result. */
static struct watch *watch_one(pid_t pid, const char *rule, int refusals,
                               int probe_result, struct fake_proc **p) {
  fake_procs_reset();
  *p = fake_proc_add(pid, 1000);
  (*p)->refusals = refusals;
  (*p)->probe_result = probe_result;
  pid_rule(0, rule, pid);
  return start(0.2, 1, 0);
}

/* A rule's process: asked who it is once, its session begun at the first
 * point of the start grid after the answer (not before), its samples
 * published under the rule's name; it can be looked up; its stream's
 * early end is logged and it is not started again at once (RETRY_SEC). */
DEF_TEST(start_on_grid) {
  struct fake_proc *p;
  int64_t t0 = clock_wall_ms();
  struct watch *w = watch_one(1001, "app", 0, 0, &p);
  if (w == NULL)
    return -1;
  CHECK(wait_int(&p->begins, 1));
  EXPECT_EQ_INT(1, fake_int(&p->probes));
  /* the grid is the interval (200 ms): not before its first point */
  pthread_mutex_lock(&fake_lock);
  int64_t at = p->begin_wall;
  pthread_mutex_unlock(&fake_lock);
  CHECK(at >= (t0 / 200 + 1) * 200);
  CHECK(wait_log("instance \"app\": watching pid 1001 (App, .NET 10.0)"));
  pthread_mutex_lock(&fake_lock);
  int peer = p->stream_peer;
  pthread_mutex_unlock(&fake_lock);
  CHECK(send(peer, fixture, fixture_len / 2, MSG_NOSIGNAL) > 0);
  CHECK(wait_published());
  pthread_mutex_lock(&seen_lock);
  EXPECT_EQ_STR("app", published_instance);
  pthread_mutex_unlock(&seen_lock);
  struct ipc_endpoint ep;
  EXPECT_EQ_INT(0, watch_lookup(w, "app", &ep));
  EXPECT_EQ_INT(1001, ep.pid);
  EXPECT_EQ_INT(-ENOENT, watch_lookup(w, "other", &ep));
  /* the process exits: its stream ends early */
  pthread_mutex_lock(&fake_lock);
  close(p->stream_peer);
  p->stream_peer = -1;
  pthread_mutex_unlock(&fake_lock);
  CHECK(wait_log("instance \"app\": session with pid 1001 ended: the stream "
                 "ended early"));
  sleep_ms(300); /* passes come every 20 ms: a restart would be now */
  EXPECT_EQ_INT(1, fake_int(&p->begins));
  struct watch_stats st;
  watch_get_stats(w, &st);
  EXPECT_EQ_U64(1, st.sessions_started);
  CHECK(st.samples > 0);
  watch_free(w);
  return 0;
}

/* A runtime that does not listen yet: asked again every 250 ms, quietly
 * (debug level), and watched once it answers. */
DEF_TEST(refused_grace) {
  int64_t t0 = clock_mono_ms();
  struct fake_proc *p;
  struct watch *w = watch_one(1002, "starting", 2, 0, &p);
  if (w == NULL)
    return -1;
  CHECK(wait_log("instance \"starting\": watching pid 1002"));
  EXPECT_EQ_INT(3, fake_int(&p->probes));
  CHECK(clock_mono_ms() - t0 >= 2 * 250); /* two pauses */
  EXPECT_EQ_INT(WATCH_LOG_DEBUG, logged("pid 1002 does not listen yet"));
  EXPECT_EQ_INT(0, logged_at(WATCH_LOG_WARNING));
  watch_free(w);
  return 0;
}

/* A rule's process that does not answer: one warning, and not asked
 * again before RETRY_SEC. */
DEF_TEST(no_answer) {
  struct fake_proc *p;
  struct watch *w = watch_one(1003, "hung", 0, -ETIMEDOUT, &p);
  if (w == NULL)
    return -1;
  CHECK(wait_log("pid 1003 matches <Process \"hung\"> but does not answer: "
                 "no answer from the runtime in time (retrying every 10 s; "
                 "logged once)"));
  sleep_ms(300);
  EXPECT_EQ_INT(1, fake_int(&p->probes));
  EXPECT_EQ_INT(0, fake_int(&p->begins));
  watch_free(w);
  return 0;
}

/* MaxProcesses 1: the second process is not watched, said once. */
DEF_TEST(max_processes) {
  fake_procs_reset();
  struct fake_proc *a = fake_proc_add(1004, 1000);
  struct fake_proc *b = fake_proc_add(1005, 1000);
  pid_rule(0, "a", 1004);
  pid_rule(1, "b", 1005);
  struct watch *w = start(0.2, 2, 1);
  if (w == NULL)
    return -1;
  CHECK(wait_log("MaxProcesses (1) reached"));
  CHECK(wait_log(": watching pid 100"));
  sleep_ms(100);
  EXPECT_EQ_INT(1, fake_int(&a->begins) + fake_int(&b->begins));
  watch_free(w);
  return 0;
}

/* Two processes of one rule (EntryAssembly): the first gets its name, the
 * second "<name>-2", and as they run as different users, a warning that
 * names both. */
DEF_TEST(names) {
  fake_procs_reset();
  struct fake_proc *a = fake_proc_add(1006, 1000);
  snprintf(a->entry, sizeof(a->entry), "Worker");
  memset(&rules[0], 0, sizeof(rules[0]));
  snprintf(rules[0].name, sizeof(rules[0].name), "worker");
  rules[0].match = WATCH_MATCH_ENTRY;
  snprintf(rules[0].pattern, sizeof(rules[0].pattern), "Worker");
  struct watch *w = start(0.2, 1, 0);
  if (w == NULL)
    return -1;
  CHECK(wait_log("instance \"worker\": watching pid 1006"));
  pthread_mutex_lock(&fake_lock);
  struct fake_proc *b = fake_proc_add(1007, 2000);
  snprintf(b->entry, sizeof(b->entry), "Worker");
  pthread_mutex_unlock(&fake_lock);
  CHECK(wait_log("instance \"worker-2\": watching pid 1007"));
  EXPECT_EQ_INT(WATCH_LOG_WARNING,
                logged("<Process \"worker\"> also matches pid 1007 (uid "
                       "2000), while pid 1006 (uid 1000) holds the name "
                       "\"worker\""));
  watch_free(w);
  return 0;
}

int main(int argc, char **argv) {
  if (fake_stream_load(argc, argv, &fixture, &fixture_len) != 0)
    SKIP_ALL("no counters-net10.nettrace (argv[1], $TEST_FIXTURES, "
             "tests/fixtures)");
  RUN_TEST(start_on_grid);
  RUN_TEST(refused_grace);
  RUN_TEST(no_answer);
  RUN_TEST(max_processes);
  RUN_TEST(names);
  fake_procs_reset();
  free(fixture);
  END_TEST;
}
