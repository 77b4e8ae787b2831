/**
 * collectd-dotnet - plugin/watch_state.h
 *
 * The state of a watch (see watch.h), shared by its three files:
 * watch.c (the public face: create, start, stop, look up), connector.c
 * (the connector thread) and reader.c (the reader thread). Not for other
 * modules.
 *
 * Who owns what is in the layout of struct watch: the configuration and
 * the wake-up fds are set before the threads start and only read while
 * they run; `shared` is under its lock; `conn` is the connector's own and
 * `rd` the reader's own (no lock: no other thread touches them while the
 * threads run; the caller of watch_stop has them once they are joined).
 *
 * A target goes from the connector's starting list to the live list
 * (under the lock) when its session runs; from then on only the reader
 * reads its stream and frees it (when the stream ends). A target is
 * identified by pid + start time, never by pid alone.
 */
#ifndef WATCH_STATE_H
#define WATCH_STATE_H

#include "connect_policy.h"
#include "watch.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#define SEEN_MAX 4096
#define ENDED_MAX 64
#define INSTANCE_LEN 128
/* ProcessInfo exchanges in flight at once (see connector.c) */
#define PROBES_MAX 64
#define STARTING_MAX 64 /* targets starting at once (CollectTracing) */
#define REVERSE_PIDS_MAX 1024
#define REVERSE_REASKS 3 /* asks again of an unmatched runtime (1, 2, 4 s) */

struct target {
  struct target *next; /* the list it is on (starting: the connector's;
                          live: under shared.lock) */
  /* set by the connector before the target goes live, then read-only */
  struct watch *w;
  char instance[INSTANCE_LEN];
  int rule; /* index into rules, -1 for autodiscovered */
  struct ipc_endpoint ep;
  char entry[256];
  char version[64];
  double interval;
  struct session *session; /* the connector's while it starts, then the
                              reader's */
  int64_t started;         /* monotonic ms */
  int quiet; /* earlier sessions with this process failed at once: log its
                start and a quick end at debug level */
  /* while it starts (the connector's starting list): when to send
   * CollectTracing (monotonic ms), and whether it is sent */
  int64_t begin_at;
  int begun;
  /* the reader's, once live */
  struct counters_table table;
  int read_once; /* the reader has read its stream (see reader.c) */
};

/* A session end, passed from the reader to the connector (which owns the
 * retry state of every process). */
struct ended {
  pid_t pid;
  uint64_t start_time;
  int failed;
  int64_t lived; /* seconds */
};

/* What the connector knows of a process it has looked at. */
struct seen {
  pid_t pid;
  uint64_t start_time;
  int have_info;
  char entry[256];
  char version[64];
  char command_line[1024];
  struct policy_retry retry;
  int complained;
  int rule_known; /* rule holds match_rule's answer (again once have_info) */
  int rule;
  unsigned generation; /* last discovery pass that saw it */
  uid_t uid;           /* of the process (its /proc entry) */
  uint64_t order;      /* when it was first seen (a sequence number) */
  int name_warned;     /* its rule's name was held by another */
  int resumed;         /* connected in: ResumeRuntime sent */
  unsigned reasks;     /* connected in, matched no rule: asked again */
};

/* A process a pass wants to ask who it is (see connector.c). */
struct probe_cand {
  int again;   /* asked before without an answer */
  int64_t key; /* the order among its class: smaller first */
  struct ipc_endpoint ep;
};

struct watch {
  /* set by watch_new; read-only while the threads run */
  struct watch_config cfg;
  /* The one way to wake a thread: an eventfd. stop_fd is written once by
   * watch_stop (after `stopping` is set) and never drained: it is in the
   * reader's epoll set and the connector's poll set, and it is the
   * connector's IPC cancel fd (ipc_set_cancel_fd), so every wait of both
   * threads ends at once. kick_fd: a session ended, the connector looks
   * again (it drains it). */
  atomic_int stopping;
  int stop_fd;
  int kick_fd;
  /* the reader's epoll set: stop_fd and every live stream. The connector
   * adds a stream when its session goes live (epoll_ctl is thread-safe);
   * the reader re-arms and removes them. */
  int epoll;
  pthread_t reader_thread, connector_thread;
  int started; /* the caller's (watch_start / watch_stop) */
  /* the Listen sockets (watch_start opens, watch_free closes; the
   * connector scans them and polls their event fds) */
  struct listen *listeners[WATCH_LISTEN_MAX];
  size_t nlisteners;

  struct {
    pthread_mutex_t lock;
    struct target *live; /* the reader's streams */
    size_t nlive;
    struct ended ended[ENDED_MAX]; /* the reader's posts to the connector */
    size_t nended;
    struct watch_stats stats;
  } shared;

  struct {
    uint64_t samples, reads, wakeups; /* added to shared.stats each wakeup */
  } rd;

  struct {
    struct seen *seen; /* SEEN_MAX */
    size_t nseen;
    uint64_t seen_order;  /* the next seen entry's order */
    unsigned caps_logged; /* CAP_* said once */
    unsigned generation;
    /* every instance name handed out (the lists of targets are what is
     * in use) */
    char (*names)[INSTANCE_LEN];
    size_t nnames;
    int64_t start_grid_ms; /* wall ms of the grid point of the last start */
    int64_t *rule_missing; /* per rule: 0 matched at the last pass, > 0 no
                              match since (monotonic ms), -1 warned */
    /* ProcessInfo exchanges in flight: a process that never answers
     * holds up nobody else */
    struct ipc_call *probes[PROBES_MAX];
    unsigned char probe_again[PROBES_MAX]; /* the probe is an ask again */
    size_t nprobes;
    /* the processes a pass wants asked (SEEN_MAX) */
    struct probe_cand *cand;
    size_t ncand;
    /* targets whose CollectTracing is to be sent or is in flight */
    struct target *starting;
    size_t nstarting;
    /* the pids (ours) of the runtimes that connected in, this pass: their
     * sockets discovery finds are not used (REVERSE_PIDS_MAX) */
    pid_t *reverse_pids;
    size_t nreverse;
  } conn;
};

/* Logs through cfg.log (any thread): control characters never reach it.
 * wlog is the printf-style way in. */
void watch_vlog(const struct watch *w, int level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static inline void wlog(const struct watch *w, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void wlog(const struct watch *w, int level, const char *fmt,
                        ...) {
  va_list ap;
  va_start(ap, fmt);
  watch_vlog(w, level, fmt, ap);
  va_end(ap);
}
void watch_target_free(struct target *t); /* accepts NULL */
/* What consumers see of t (inline: the reader makes one per sample). */
static inline struct watch_target_view
watch_target_view(const struct target *t) {
  return (struct watch_target_view){.instance = t->instance,
                                    .ep = &t->ep,
                                    .entry_assembly = t->entry,
                                    .runtime_version = t->version,
                                    .interval_sec = t->interval};
}
/* Writes 1 to an eventfd (a counter at its maximum already wakes). */
void watch_ring(int fd);

/* The threads' bodies (arg: the watch) and what watch_new / watch_free
 * give and take of their own state. */
void *watch_reader_main(void *arg);
void *watch_connector_main(void *arg);
int watch_connector_init(struct watch *w);
void watch_connector_fini(struct watch *w);
/* The connector puts a started target live (the reader reads it from
 * then on): 0, or a negative errno when its stream cannot be watched
 * (the target is not live then). */
int watch_reader_adopt(struct watch *w, struct target *t);
/* A target's session's sample callback (session_new's cb, ctx: the
 * target): merges the sample into its table and publishes it. */
void watch_reader_sample(void *ctx, const struct counters_sample *s,
                         int64_t time_ms);
/* The stream of t ended (r: session_read's result, or the epoll error):
 * logs it, posts the end to the connector, unlinks and frees t. */
void watch_reader_end(struct watch *w, struct target *t, int r);

#endif /* WATCH_STATE_H */
