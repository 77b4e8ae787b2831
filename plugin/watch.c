/**
 * collectd-dotnet - plugin/watch.c
 *
 * See watch.h for the threads and their rules.
 *
 * Targets live on two lists, both under w->lock:
 *   pending: sessions the connector started, not yet polled by the reader;
 *   live:    sessions the reader polls.
 * A target is identified by pid + start time, never by pid alone. Only the
 * reader frees a live target (when its stream ends); the connector only
 * appends to pending.
 */
#include "clock.h"
#include "watch.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SEEN_MAX 4096
#define RETRY_SEC 10
#define REFUSED_GRACE_SEC 5  /* refused connects retried quietly ... */
#define REFUSED_RETRY_MS 250 /* ... this often */
#define MISS_INTERVALS 5 /* discovery intervals without a match before
                            "matches no process" */
#define RETRY_STR "10" /* RETRY_SEC, for messages */
#define ENDED_MAX 64
#define GATHER_MS 200 /* the reader's default gathering pause ... */
#define GATHER_MIN 2  /* ... with at least this many sessions (see there) */
/* ProcessInfo exchanges in flight at once, and how they are shared so
 * that sockets that never answer (each holds its slot until the IPC
 * timeout) cannot keep a new runtime waiting: a process asked for the
 * first time goes before one asked again, the newest first; the first
 * asks of one uid hold at most PROBES_PER_UID slots, and asks again (of
 * processes that did not answer) at most PROBES_RETRY_MAX. A process that
 * matches no rule and does not answer is asked again after RETRY_SEC, then
 * after twice as long each time, up to PROBE_BACKOFF_MAX_SEC. */
#define PROBES_MAX 64
#define PROBES_PER_UID 16
#define PROBES_RETRY_MAX 16
#define PROBE_BACKOFF_MAX_SEC 60
#define STARTING_MAX 64 /* targets starting at once (CollectTracing) */
/* Processes with a diagnostic socket remembered (the seen table), in all
 * and per uid other than root: one user's sockets cannot take all of it. */
#define SEEN_PER_UID (SEEN_MAX / 4)
/* Distinct plugin instance names handed out over the watch's life (every
 * name is series, files and cache entries downstream): 0 in the config
 * means INSTANCES_PER_TARGET times MaxProcesses. */
#define INSTANCES_PER_TARGET 4
#define INSTANCE_LEN 128

struct target {
  struct target *next;
  struct watch *w;
  char instance[128];
  int rule; /* index into rules, -1 for autodiscovered */
  struct ipc_endpoint ep;
  char entry[256];
  char version[64];
  double interval;
  struct session *session;
  struct counters_table table;
  int64_t started; /* monotonic ms */
  int arm_errno; /* the reader could not add its stream to epoll */
  int quiet; /* earlier sessions with this process failed at once: log its
                start and a quick end at debug level */
  int read_once; /* the reader has read its stream (see has_stream) */
  /* while it starts (the connector's starting list): when to send
   * CollectTracing (monotonic ms), and whether it is sent */
  int64_t begin_at;
  int begun;
};

/* What the connector knows of a process it has looked at (only the
 * connector touches these). */
struct seen {
  pid_t pid;
  uint64_t start_time;
  int have_info;
  char entry[256];
  char version[64];
  char command_line[1024];
  int64_t retry_at;      /* after a failure: no attempt before (monotonic ms) */
  int64_t refused_since; /* first refused connect of a run of them, or 0 */
  int complained;
  int rule_known; /* rule holds match_rule's answer (again once have_info) */
  int rule;
  unsigned stream_failures; /* sessions that failed or ended at once */
  unsigned generation;      /* last discovery pass that saw it */
  uid_t uid;                /* of the process (its /proc entry) */
  uint64_t order;           /* when it was first seen (a sequence number) */
  unsigned probe_failures;  /* ProcessInfo asks in a row without answer */
  int name_warned;          /* its rule's name was held by another */
};

/* A session end, passed from the reader to the connector (which owns the
 * seen table): a target whose sessions fail at once (a garbage stream, a
 * stream closed right after CollectTracing) is retried every RETRY_SEC, not
 * at every discovery pass. */
struct ended {
  pid_t pid;
  uint64_t start_time;
  int failed;
  time_t lived;
};

/* A process a pass wants to ask who it is (see PROBES_MAX). */
struct probe_cand {
  int again;   /* asked before without an answer */
  int64_t key; /* the order among its class: smaller first */
  struct ipc_endpoint ep;
};

struct watch {
  struct watch_config cfg;
  pthread_mutex_t lock;
  int stopping;
  int started;
  int wake[2];
  int epoll; /* the reader's: the wake pipe and every live stream */
  int cancel; /* eventfd, written once by watch_stop: ends the connector's
                 IPC waits at once (ipc_set_cancel_fd) and its sleep */
  int kick;   /* eventfd: a session ended, the connector looks again */
  pthread_t reader, connector;
  struct target *pending, *live;
  size_t nlive; /* targets in live (kept by the reader) */
  uint64_t reader_samples; /* the reader's; added to stats under the lock */
  uint64_t reader_reads, reader_wakeups; /* likewise */
  struct seen *seen;
  size_t nseen;
  uint64_t seen_order;  /* the next seen entry's order */
  unsigned caps_logged; /* CAP_* said once */
  unsigned generation;
  /* every instance name handed out (the connector's only; the lists of
   * targets are what is in use) */
  char (*names)[INSTANCE_LEN];
  size_t nnames;
  int64_t start_grid_ms; /* wall ms of the grid point of the last start */
  int64_t *rule_missing; /* per rule: 0 matched at the last pass, > 0 no
                            match since (monotonic ms), -1 warned */
  struct ended ended[ENDED_MAX];
  size_t nended;
  /* the connector's ProcessInfo exchanges in flight: a process that never
   * answers holds up nobody else (only the connector touches these) */
  struct ipc_call probes[PROBES_MAX];
  unsigned char probe_again[PROBES_MAX]; /* the probe is an ask again */
  size_t nprobes;
  /* the processes a pass wants asked (probes_schedule; SEEN_MAX) */
  struct probe_cand *cand;
  size_t ncand;
  /* targets whose CollectTracing is to be sent or is in flight (likewise
   * the connector's only) */
  struct target *starting;
  size_t nstarting;
  struct watch_stats stats;
  /* payload templates of the sessions' decoders: only the reader decodes
   * (and the caller of watch_stop, once the threads are gone) */
  struct counters_templates *templates;
};

static void wlog(const struct watch *w, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void wlog(const struct watch *w, int level, const char *fmt, ...) {
  if (w->cfg.log == NULL)
    return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  /* names, paths and error text of a process or its runtime are in it:
   * no control character reaches the log */
  ipc_sanitize(msg);
  w->cfg.log(level, msg);
}

enum { CAP_SEEN = 1, CAP_SEEN_UID = 2, CAP_NAMES = 4, CAP_AUTO = 8 };

/* Logs once per watch that the cap `which` was reached. */
static void cap_log(struct watch *w, unsigned which, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void cap_log(struct watch *w, unsigned which, const char *fmt, ...) {
  if (w->caps_logged & which)
    return;
  w->caps_logged |= which;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  wlog(w, WATCH_LOG_WARNING, "%s (logged once)", msg);
}

int watch_rule_compile(struct watch_rule *r, char *err, size_t cap) {
  if (r->match != WATCH_MATCH_COMMAND_LINE)
    return 0;
  int rc = regcomp(&r->regex, r->pattern, REG_EXTENDED | REG_NOSUB);
  if (rc != 0) {
    char buf[256];
    regerror(rc, &r->regex, buf, sizeof(buf));
    snprintf(err, cap, "%s", buf);
    return -EINVAL;
  }
  r->compiled = 1;
  return 0;
}

void watch_rule_free(struct watch_rule *r) {
  if (r->compiled)
    regfree(&r->regex);
  r->compiled = 0;
}

struct watch *watch_new(const struct watch_config *cfg) {
  struct watch *w = calloc(1, sizeof(*w));
  if (w == NULL)
    return NULL;
  w->cfg = *cfg;
  if (w->cfg.interval_sec <= 0)
    w->cfg.interval_sec = 1;
  if (w->cfg.discover_sec <= 0)
    w->cfg.discover_sec = w->cfg.interval_sec;
  if (w->cfg.max_targets == 0)
    w->cfg.max_targets = 256;
  if (w->cfg.max_series == 0)
    w->cfg.max_series = COUNTERS_DEFAULT_MAX_SERIES;
  if (w->cfg.max_instances == 0)
    w->cfg.max_instances = INSTANCES_PER_TARGET * w->cfg.max_targets;
  if (w->cfg.max_instances < cfg->nrules + 1)
    w->cfg.max_instances = cfg->nrules + 1;
  if (w->cfg.ipc_timeout_ms <= 0) /* a loaded runtime may take over 1 s */
    w->cfg.ipc_timeout_ms = 2000;
  /* a pause of at most a quarter of the interval, so that a sample is
   * never held near its successor */
  int quarter = (int)(w->cfg.interval_sec * 250.0);
  if (w->cfg.gather_ms == 0)
    w->cfg.gather_ms = GATHER_MS;
  if (w->cfg.gather_ms > quarter)
    w->cfg.gather_ms = quarter;
  w->seen = calloc(SEEN_MAX, sizeof(*w->seen));
  w->names = calloc(w->cfg.max_instances, sizeof(*w->names));
  w->cand = calloc(SEEN_MAX, sizeof(*w->cand));
  w->rule_missing = calloc(cfg->nrules + 1, sizeof(*w->rule_missing));
  w->wake[0] = w->wake[1] = -1;
  w->cancel = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  w->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  w->epoll = epoll_create1(EPOLL_CLOEXEC);
  w->templates = counters_templates_new();
  struct epoll_event wev = {.events = EPOLLIN, .data.ptr = NULL};
  if (w->seen == NULL || w->names == NULL || w->cand == NULL ||
      w->rule_missing == NULL || w->templates == NULL || w->cancel < 0 ||
      w->kick < 0 || w->epoll < 0 ||
      pipe2(w->wake, O_CLOEXEC | O_NONBLOCK) != 0 ||
      epoll_ctl(w->epoll, EPOLL_CTL_ADD, w->wake[0], &wev) != 0) {
    free(w->seen);
    free(w->names);
    free(w->cand);
    free(w->rule_missing);
    counters_templates_free(w->templates);
    if (w->wake[0] >= 0) {
      close(w->wake[0]);
      close(w->wake[1]);
    }
    if (w->cancel >= 0)
      close(w->cancel);
    if (w->kick >= 0)
      close(w->kick);
    if (w->epoll >= 0)
      close(w->epoll);
    free(w);
    return NULL;
  }
  pthread_mutex_init(&w->lock, NULL);
  return w;
}

static void kick_connector(struct watch *w) {
  uint64_t one = 1;
  ssize_t n = write(w->kick, &one, sizeof(one));
  (void)n; /* a counter at its maximum already wakes it */
}

static void wake_reader(struct watch *w) {
  char c = 1;
  ssize_t n = write(w->wake[1], &c, 1);
  (void)n; /* a full pipe already wakes it */
}

static void target_free(struct target *t) {
  if (t == NULL)
    return;
  session_free(t->session);
  counters_table_fini(&t->table);
  free(t);
}

/* ---- the reader ---- */

static struct watch_target_view target_view(const struct target *t) {
  return (struct watch_target_view){.instance = t->instance,
                                    .ep = &t->ep,
                                    .entry_assembly = t->entry,
                                    .runtime_version = t->version,
                                    .interval_sec = t->interval};
}

/* On the reader thread, the only one that touches a live target's table:
 * no lock. */
static void on_sample(void *ctx, const struct counters_sample *s,
                      int64_t time_ms) {
  struct target *t = ctx;
  struct watch *w = t->w;
  w->reader_samples++;
  struct counters_entry *e = counters_table_update(&t->table, s, time_ms);
  if (e == NULL && t->table.refused == 1) { /* the first refusal */
    t->table.refused++; /* said once */
    wlog(w, WATCH_LOG_WARNING,
         "instance \"%s\": pid %d has more counters than MaxSeries allows "
         "(%zu series, %zu bytes of names): new ones (first: \"%.64s\" of "
         "\"%.64s\") are not published, those already known are (logged "
         "once)",
         t->instance, (int)t->ep.pid, t->table.max_series,
         t->table.max_name_bytes, s->name, s->provider);
  }
  if (e != NULL && w->cfg.publish != NULL) {
    struct watch_target_view v = target_view(t);
    w->cfg.publish(w->cfg.publish_ctx, &v, e);
  }
}

/* The stream of t ended (r: session_read's result): log it, tell the
 * connector, unlink and free t. */
static void reader_end(struct watch *w, struct target *t, int r) {
  time_t lived = (time_t)((clock_mono_ms() - t->started) / 1000);
  int failed = r != -EPIPE || lived < RETRY_SEC;
  wlog(w,
       t->quiet && lived < RETRY_SEC ? WATCH_LOG_DEBUG
       : r == -EPIPE                 ? WATCH_LOG_INFO
                                     : WATCH_LOG_WARNING,
       "instance \"%s\": session with pid %d ended: %s%s", t->instance,
       (int)t->ep.pid, session_error(t->session),
       r != -EPIPE ? " (retrying every " RETRY_STR " s; repeats logged "
                     "at debug level)"
                   : "");
  pthread_mutex_lock(&w->lock);
  /* the connector is behind: drop the oldest */
  if (w->nended == ENDED_MAX) {
    memmove(w->ended, w->ended + 1, (ENDED_MAX - 1) * sizeof(w->ended[0]));
    w->nended--;
  }
  w->ended[w->nended++] = (struct ended){.pid = t->ep.pid,
                                         .start_time = t->ep.start_time,
                                         .failed = failed,
                                         .lived = lived};
  for (struct target **pp = &w->live; *pp; pp = &(*pp)->next) {
    if (*pp == t) {
      *pp = t->next;
      w->nlive--;
      break;
    }
  }
  w->stats.sessions_ended++;
  w->stats.bytes += session_stats(t->session)->bytes;
  pthread_mutex_unlock(&w->lock);
  kick_connector(w); /* look again: retry, or room under MaxProcesses */
  target_free(t);
}

/* (Re)arms t's stream in the epoll set for one event. One-shot: a
 * registration fires once and stays off until re-armed after a read that
 * left the session alive, so no event can come for a session that has
 * ended, even while a forked child still holds a copy of its fd. */
static int reader_arm(struct watch *w, struct target *t, int op) {
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT,
                           .data.ptr = t};
  return epoll_ctl(w->epoll, op, session_fd(t->session), &ev);
}

/* Whether the events of an epoll_wait include a stream (not only the wake
 * pipe): 1; 2 when one of them ended (its process exited or closed it) or
 * sent for the first time (the start of a session: its header and
 * metadata, and the first end of a session that fails at once). */
static int has_stream(const struct epoll_event *ev, int n) {
  int r = 0;
  for (int i = 0; i < n; i++) {
    const struct target *t = ev[i].data.ptr;
    if (t == NULL)
      continue;
    if ((ev[i].events & (EPOLLHUP | EPOLLRDHUP | EPOLLERR)) || !t->read_once)
      return 2;
    r = 1;
  }
  return r;
}

/* The reader: one thread for all sessions, woken by epoll for the streams
 * that have data (a wakeup costs the same with 1 or 500 sessions). */
static void *reader_main(void *arg) {
  struct watch *w = arg;
  struct epoll_event ev[64];

  for (;;) {
    struct target *adopted = NULL;
    pthread_mutex_lock(&w->lock);
    w->stats.samples += w->reader_samples;
    w->stats.reads += w->reader_reads;
    w->stats.wakeups += w->reader_wakeups;
    w->reader_samples = w->reader_reads = w->reader_wakeups = 0;
    if (w->stopping) {
      pthread_mutex_unlock(&w->lock);
      break;
    }
    /* adopt pending sessions */
    while (w->pending) {
      struct target *t = w->pending;
      w->pending = t->next;
      t->next = w->live;
      w->live = t;
      w->nlive++;
      if (reader_arm(w, t, EPOLL_CTL_ADD) != 0) {
        t->arm_errno = errno;
        adopted = t; /* at most one a round; the rest next round */
        break;
      }
    }
    size_t nlive = w->nlive;
    pthread_mutex_unlock(&w->lock);
    if (adopted != NULL) {
      wlog(w, WATCH_LOG_ERR, "instance \"%s\": cannot watch the stream of "
                             "pid %d: epoll_ctl: %s",
           adopted->instance, (int)adopted->ep.pid,
           strerror(adopted->arm_errno));
      reader_end(w, adopted, -adopted->arm_errno);
      continue;
    }

    /* no timeout: the wake pipe brings adoptions and stop */
    int cap = (int)(sizeof(ev) / sizeof(ev[0]));
    int n = epoll_wait(w->epoll, ev, cap, -1);
    if (n < 0 && errno != EINTR) {
      wlog(w, WATCH_LOG_ERR, "epoll_wait failed: %s", strerror(errno));
      struct timespec ts = {0, 100000000};
      nanosleep(&ts, NULL);
      continue;
    }
    /* Two sessions or more: gather. Sessions start on a common grid
     * (grid_start), so the runtimes sample together and their streams
     * come within about the runtime's 100 ms flush of each other. The
     * first to come starts a pause (gather_ms, 200 ms by default) in
     * which the reader is not woken; then it reads every stream that has
     * come. Each wakeup costs more than the read: a context switch in and
     * out here, and a burst of wakeups of collectd's write threads for the
     * values it dispatches. So one wakeup and one burst an interval at
     * N = 10 instead of three, at most 1000 / gather_ms at any N, for at
     * most gather_ms more delay of a sample. One session alone (the case
     * of a spike on a host running one service) reads at once, and so
     * does a wakeup for a stream that ended or sent for the first time:
     * an end is posted at once, and the connector, kicked, finds a
     * restarted process without waiting. Adoptions wait out the pause; a stop
     * cuts it short (the streams already taken are still read: one-shot, they
     * would not come again). */
    int streams = n > 0 ? has_stream(ev, n) : 0;
    w->reader_wakeups += streams != 0;
    if (streams == 1 && n < cap && nlive >= GATHER_MIN &&
        w->cfg.gather_ms > 0) {
      struct pollfd pfd = {.fd = w->cancel, .events = POLLIN};
      if (poll(&pfd, 1, w->cfg.gather_ms) == 0) { /* not stopping */
        int m = epoll_wait(w->epoll, ev + n, cap - n, 0);
        if (m > 0) /* one-shot: no stream of the first wait comes again */
          n += m;
      }
    }
    for (int i = 0; i < n; i++) {
      struct target *t = ev[i].data.ptr;
      if (t == NULL) { /* the wake pipe (level-triggered, not one-shot) */
        char buf[64];
        while (read(w->wake[0], buf, sizeof(buf)) > 0)
          ;
        continue;
      }
      int r = session_read(t->session);
      w->reader_reads++;
      t->read_once = 1;
      if (w->cfg.flush != NULL) {
        struct watch_target_view v = target_view(t);
        w->cfg.flush(w->cfg.publish_ctx, &v);
      }
      if (r == 0 && reader_arm(w, t, EPOLL_CTL_MOD) != 0)
        r = -errno;
      if (r != 0)
        reader_end(w, t, r);
    }
  }
  return NULL;
}

/* ---- the connector ---- */

/* Takes the session ends the reader posted into the seen table. */
static void apply_ended(struct watch *w, int64_t now_ms) {
  struct ended e[ENDED_MAX];
  pthread_mutex_lock(&w->lock);
  size_t n = w->nended;
  memcpy(e, w->ended, n * sizeof(e[0]));
  w->nended = 0;
  pthread_mutex_unlock(&w->lock);
  for (size_t i = 0; i < n; i++) {
    for (size_t j = 0; j < w->nseen; j++) {
      struct seen *sn = &w->seen[j];
      if (!ipc_same_process(sn->pid, sn->start_time, e[i].pid, e[i].start_time))
        continue;
      if (e[i].lived >= RETRY_SEC)
        sn->stream_failures = 0;
      if (e[i].failed) {
        sn->stream_failures++;
        sn->retry_at = now_ms + RETRY_SEC * 1000;
      }
    }
  }
}

/* The seen entry of that very process, or NULL (forgotten meanwhile). */
static struct seen *seen_find(struct watch *w, pid_t pid, uint64_t start) {
  for (size_t i = 0; i < w->nseen; i++)
    if (ipc_same_process(w->seen[i].pid, w->seen[i].start_time, pid, start))
      return &w->seen[i];
  return NULL;
}

static struct seen *seen_get(struct watch *w, const struct ipc_endpoint *ep) {
  for (size_t i = 0; i < w->nseen; i++)
    if (ipc_same_process(w->seen[i].pid, w->seen[i].start_time, ep->pid,
                         ep->start_time))
      return &w->seen[i];
  /* drop entries of processes gone in earlier passes */
  size_t o = 0;
  for (size_t i = 0; i < w->nseen; i++)
    if (w->seen[i].generation + 2 >= w->generation)
      w->seen[o++] = w->seen[i];
  w->nseen = o;
  if (w->nseen >= SEEN_MAX) {
    cap_log(w, CAP_SEEN,
            "more than %d processes with a diagnostic socket: pid %d and "
            "other new ones are not looked at until some are gone",
            SEEN_MAX, (int)ep->pid);
    return NULL;
  }
  if (ep->uid != 0) {
    size_t mine = 0;
    for (size_t i = 0; i < w->nseen; i++)
      mine += w->seen[i].uid == ep->uid;
    if (mine >= SEEN_PER_UID) {
      cap_log(w, CAP_SEEN_UID,
              "uid %u has more than %d processes with a diagnostic socket: "
              "pid %d and its other new ones are not looked at until some "
              "are gone",
              (unsigned)ep->uid, SEEN_PER_UID, (int)ep->pid);
      return NULL;
    }
  }
  struct seen *s = &w->seen[w->nseen++];
  memset(s, 0, sizeof(*s));
  s->pid = ep->pid;
  s->start_time = ep->start_time;
  s->uid = ep->uid;
  s->order = w->seen_order++;
  return s;
}

static int read_cmdline(pid_t pid, char *out, size_t cap) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  ssize_t n = read(fd, out, cap - 1);
  close(fd);
  if (n < 0)
    return -errno;
  for (ssize_t i = 0; i < n; i++)
    if (out[i] == 0)
      out[i] = ' ';
  while (n > 0 && out[n - 1] == ' ')
    n--;
  out[n] = 0;
  return 0;
}

/* The target that holds the instance name, or NULL; under w->lock (the
 * starting list is the connector's own). */
static const struct target *instance_holder(struct watch *w, const char *name) {
  const struct target *lists[3] = {w->live, w->pending, w->starting};
  for (int l = 0; l < 3; l++)
    for (const struct target *t = lists[l]; t; t = t->next)
      if (strcmp(t->instance, name) == 0)
        return t;
  return NULL;
}

/* A name as a plugin instance may be: letters, digits, '.', '_', '-';
 * anything else becomes '_'; "dotnet" for an empty one. */
static void clean_name(const char *base, char *out, size_t cap) {
  size_t o = 0;
  for (const char *p = base; *p && o + 1 < cap; p++) {
    char c = *p;
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    out[o++] = ok ? c : '_';
  }
  out[o] = 0;
  if (o == 0)
    snprintf(out, cap, "dotnet");
}

/* Whether the name may be used: handed out before, or added now while
 * fewer than max_instances names have been (see watch.h). */
static int name_admit(struct watch *w, const char *name) {
  for (size_t i = 0; i < w->nnames; i++)
    if (strcmp(w->names[i], name) == 0)
      return 1;
  if (w->nnames >= w->cfg.max_instances)
    return 0;
  snprintf(w->names[w->nnames++], INSTANCE_LEN, "%s", name);
  return 1;
}

/* Instance names: the rule's (or the entry assembly's) name for the first
 * process; "<name>-<n>" (the lowest free n from 2) for others matching at
 * the same time, so that the names one rule or assembly can have are as
 * many as its processes at once, not one per pid over time. A rule's
 * process that does not get the rule's own name is logged with the pid and
 * uid of the one that has it, as a warning when the two run as different
 * users (rules match what a process says about itself: see watch.h). 0, or
 * -ENOSPC when the name would be a new one past max_instances. */
static int pick_instance(struct watch *w, const char *base, int rule,
                         struct seen *sn, const struct ipc_endpoint *ep,
                         char *out, size_t cap) {
  char clean[100];
  clean_name(base, clean, sizeof(clean));
  char name[INSTANCE_LEN];
  pid_t holder_pid = 0;
  uid_t holder_uid = 0;
  int found = 0;
  pthread_mutex_lock(&w->lock);
  for (size_t n = 1; n <= w->cfg.max_targets + 1 && !found; n++) {
    if (n == 1)
      snprintf(name, sizeof(name), "%s", clean);
    else
      snprintf(name, sizeof(name), "%s-%zu", clean, n);
    const struct target *h = instance_holder(w, name);
    if (n == 1 && h != NULL) {
      holder_pid = h->ep.pid;
      holder_uid = h->ep.uid;
    }
    found = h == NULL;
  }
  pthread_mutex_unlock(&w->lock);
  if (!found || !name_admit(w, name)) {
    cap_log(w, CAP_NAMES,
            "%zu distinct instance names handed out: pid %d, which would be "
            "\"%s\", is not watched, nor any other process that needs a new "
            "name (a process chooses its entry assembly and command line; "
            "restart collectd to start afresh)",
            w->nnames, (int)ep->pid, name);
    return -ENOSPC;
  }
  if (rule >= 0 && holder_pid != 0 && !sn->name_warned) {
    /* another user's process holding the name is what an imitation
     * looks like; the same user's is a restart overlapping its
     * predecessor, or several workers */
    sn->name_warned = 1;
    wlog(w, holder_uid != ep->uid ? WATCH_LOG_WARNING : WATCH_LOG_DEBUG,
         "<Process \"%s\"> also matches pid %d (uid %u), while pid %d "
         "(uid %u) holds the name \"%s\": pid %d is \"%s\". A rule matches "
         "what a process says about itself; if one of them is not the process "
         "meant, pin the rule with Pid or a tighter CommandLine",
         w->cfg.rules[rule].name, (int)ep->pid, (unsigned)ep->uid,
         (int)holder_pid, (unsigned)holder_uid, clean, (int)ep->pid, name);
  }
  snprintf(out, cap, "%s", name);
  return 0;
}

/* Whether a target of the list is this process (pid + start time); under
 * w->lock. */
static int in_list(const struct target *t, pid_t pid, uint64_t start_time) {
  for (; t; t = t->next)
    if (ipc_same_process(t->ep.pid, t->ep.start_time, pid, start_time))
      return 1;
  return 0;
}

/* Whether a live, pending or starting target is this process. */
static int target_exists(struct watch *w, const struct ipc_endpoint *ep) {
  if (in_list(w->starting, ep->pid, ep->start_time))
    return 1; /* the connector's own list: no lock */
  pthread_mutex_lock(&w->lock);
  int found = in_list(w->live, ep->pid, ep->start_time) ||
              in_list(w->pending, ep->pid, ep->start_time);
  pthread_mutex_unlock(&w->lock);
  return found;
}

/* For discovery: a live session streams from this very process. */
static int streaming_from(void *ctx, pid_t pid, uint64_t start_time) {
  struct watch *w = ctx;
  pthread_mutex_lock(&w->lock);
  int found = in_list(w->live, pid, start_time);
  pthread_mutex_unlock(&w->lock);
  return found;
}

/* Targets live, pending and starting; *autos: how many of them are
 * autodiscovered. */
static size_t live_count(struct watch *w, size_t *autos) {
  size_t n = 0, a = 0;
  pthread_mutex_lock(&w->lock);
  const struct target *lists[3] = {w->live, w->pending, w->starting};
  for (int l = 0; l < 3; l++)
    for (const struct target *t = lists[l]; t; t = t->next) {
      n++;
      a += t->rule < 0;
    }
  pthread_mutex_unlock(&w->lock);
  *autos = a;
  return n;
}

static int is_stopping(struct watch *w) {
  pthread_mutex_lock(&w->lock);
  int s = w->stopping;
  pthread_mutex_unlock(&w->lock);
  return s;
}

/* Sessions start on a common grid (wall clock, a multiple of the
 * interval, at most 1 s): the runtime sends a session's counters one
 * interval after another from the moment it was enabled, so targets started
 * together send together, and the reader takes all of them in a wakeup or
 * two an interval (and collectd's write thread with them) instead of one
 * each at its own phase. A start waits for the next grid point unless the
 * last one is less than START_SLACK_MS ago (a pass starting many targets
 * does not wait for each). Returns when to begin (monotonic ms); nobody
 * waits for it (starting_step sends then). */
#define START_SLACK_MS 100

static int64_t grid_start(struct watch *w) {
  int64_t mono = clock_mono_ms();
  if (w->cfg.start_at_once)
    return mono;
  int64_t grid = (int64_t)(w->cfg.interval_sec * 1000.0 + 0.5);
  if (grid > 1000)
    grid = 1000;
  if (grid < 10)
    return mono;
  int64_t now = clock_wall_ms();
  if (w->start_grid_ms != 0 && now >= w->start_grid_ms &&
      now - w->start_grid_ms < START_SLACK_MS)
    return mono;
  int64_t at = (now / grid + 1) * grid;
  w->start_grid_ms = at;
  return mono + (at - now);
}

/* A target that matched a rule (or autodiscovery): its session starts at
 * the next grid point (grid_start), without the connector waiting for the
 * runtime's answer (starting_step). */
static void start_target(struct watch *w, struct seen *sn, int rule,
                         const struct ipc_endpoint *ep) {
  const struct session_config *sc =
      rule >= 0 ? &w->cfg.rules[rule].session : &w->cfg.auto_session;
  struct session_config cfg = *sc;
  cfg.interval_sec = w->cfg.interval_sec;
  cfg.timeout_ms = w->cfg.ipc_timeout_ms;
  cfg.templates = w->templates;
  int64_t now = clock_mono_ms();
  size_t autos = 0;
  size_t n = live_count(w, &autos);
  /* autodiscovered processes leave a slot to each rule (at most half of
   * MaxProcesses): processes that anyone can start do not crowd out the
   * ones configured */
  size_t keep = w->cfg.nrules < w->cfg.max_targets / 2 ? w->cfg.nrules
                                                       : w->cfg.max_targets / 2;
  if (n >= w->cfg.max_targets) {
    if (!sn->complained)
      wlog(w, WATCH_LOG_WARNING,
           "not watching pid %d: MaxProcesses (%zu) reached", (int)ep->pid,
           w->cfg.max_targets);
    sn->complained = 1;
    sn->retry_at = now + RETRY_SEC * 1000;
    return;
  }
  if (rule < 0 && autos >= w->cfg.max_targets - keep) {
    cap_log(w, CAP_AUTO,
            "not watching pid %d nor other autodiscovered processes beyond "
            "%zu: the other %zu of MaxProcesses (%zu) are kept for the "
            "<Process> blocks",
            (int)ep->pid, w->cfg.max_targets - keep, keep, w->cfg.max_targets);
    sn->retry_at = now + RETRY_SEC * 1000;
    return;
  }
  struct target *t = calloc(1, sizeof(*t));
  if (t == NULL)
    return;
  t->w = w;
  t->rule = rule;
  t->ep = *ep;
  t->interval = w->cfg.interval_sec;
  snprintf(t->entry, sizeof(t->entry), "%s", sn->entry);
  snprintf(t->version, sizeof(t->version), "%s", sn->version);
  counters_table_init(&t->table, w->cfg.max_series);
  if (pick_instance(w, rule >= 0 ? w->cfg.rules[rule].name : sn->entry, rule,
                    sn, ep, t->instance, sizeof(t->instance)) != 0) {
    sn->retry_at = now + RETRY_SEC * 1000;
    target_free(t);
    return;
  }
  t->session = session_new(ep, &cfg, on_sample, t);
  if (t->session == NULL) {
    target_free(t);
    return;
  }
  t->quiet = sn->stream_failures > 0;
  t->begin_at = grid_start(w);
  t->next = w->starting;
  w->starting = t;
  w->nstarting++;
}

/* The session of a starting target failed to start with r. */
static void start_failed(struct watch *w, struct target *t, int r,
                         const struct ipc_error *err) {
  int64_t now = clock_mono_ms();
  struct seen *sn = seen_find(w, t->ep.pid, t->ep.start_time);
  const char *why = err->message[0] ? err->message : strerror(-r);
  if (!ipc_endpoint_alive(&t->ep)) { /* went away meanwhile */
    wlog(w, WATCH_LOG_DEBUG, "pid %d went away before its session started: %s",
         (int)t->ep.pid, why);
  } else {
    if (sn == NULL || !sn->complained)
      wlog(w, WATCH_LOG_ERR,
           "instance \"%s\": cannot start a session with pid %d: %s "
           "(retrying every %d s; logged once)",
           t->instance, (int)t->ep.pid, why, RETRY_SEC);
    if (sn != NULL)
      sn->complained = 1;
    pthread_mutex_lock(&w->lock);
    w->stats.start_failures++;
    pthread_mutex_unlock(&w->lock);
  }
  if (sn != NULL)
    sn->retry_at = now + RETRY_SEC * 1000;
  target_free(t);
}

/* The session of a starting target runs: the reader takes it on. */
static void start_done(struct watch *w, struct target *t) {
  struct seen *sn = seen_find(w, t->ep.pid, t->ep.start_time);
  if (sn != NULL && sn->complained)
    wlog(w, WATCH_LOG_NOTICE, "instance \"%s\": pid %d reachable again",
         t->instance, (int)t->ep.pid);
  if (sn != NULL)
    sn->complained = 0;
  t->started = clock_mono_ms();
  wlog(w, t->quiet ? WATCH_LOG_DEBUG : WATCH_LOG_INFO,
       "instance \"%s\": watching pid %d (%s, .NET %s), session %llu, "
       "interval %g s",
       t->instance, (int)t->ep.pid, t->entry[0] ? t->entry : "?",
       t->version[0] ? t->version : "?",
       (unsigned long long)session_id(t->session), t->interval);
  pthread_mutex_lock(&w->lock);
  t->next = w->pending;
  w->pending = t;
  w->stats.sessions_started++;
  pthread_mutex_unlock(&w->lock);
  wake_reader(w);
}

/* Sends the CollectTracing of starting targets whose time has come, reads
 * the answers that came, and ends those answered, failed or past their
 * deadline. */
static void starting_step(struct watch *w) {
  int64_t now = clock_mono_ms();
  for (struct target **pp = &w->starting; *pp;) {
    struct target *t = *pp;
    struct ipc_error err = {0};
    int r;
    if (!t->begun) {
      if (now < t->begin_at) {
        pp = &t->next;
        continue;
      }
      t->begun = 1;
      r = session_begin(t->session, &err);
    } else {
      r = session_begin_step(t->session, &err);
    }
    if (r == -EINPROGRESS) {
      pp = &t->next;
      continue;
    }
    *pp = t->next; /* off the starting list */
    t->next = NULL;
    w->nstarting--;
    if (r == 0)
      start_done(w, t);
    else
      start_failed(w, t, r, &err);
  }
}

struct pass {
  struct watch *w;
  int64_t now_ms; /* monotonic, at the start of the pass */
  int *rule_hits;
};

/* The first rule that matches the process, or -1. CommandLine rules are
 * tried on /proc/<pid>/cmdline and on the runtime's own command line (an
 * apphost's /proc cmdline lacks the .dll the runtime reports). */
static int match_rule(struct watch *w, const struct seen *sn,
                      const struct ipc_endpoint *ep) {
  char cmdline[4096] = "";
  int have_cmdline = 0;
  for (size_t i = 0; i < w->cfg.nrules; i++) {
    struct watch_rule *r = &w->cfg.rules[i];
    switch (r->match) {
    case WATCH_MATCH_PID:
      if (r->pid == ep->pid)
        return (int)i;
      break;
    case WATCH_MATCH_COMMAND_LINE:
      if (!have_cmdline)
        have_cmdline = read_cmdline(ep->pid, cmdline, sizeof(cmdline)) == 0;
      if (!r->compiled)
        break;
      if (have_cmdline && regexec(&r->regex, cmdline, 0, NULL, 0) == 0)
        return (int)i;
      if (sn->have_info && regexec(&r->regex, sn->command_line, 0, NULL, 0) == 0)
        return (int)i;
      break;
    case WATCH_MATCH_ENTRY:
      if (sn->have_info && strcmp(r->pattern, sn->entry) == 0)
        return (int)i;
      break;
    }
  }
  return -1;
}

/* match_rule, once per process (pid + start time) and what is known of it:
 * not a read of /proc/<pid>/cmdline and two regexec per process per pass.
 * An answer without the runtime's info holds until the info comes. */
static int cached_rule(struct watch *w, struct seen *sn,
                       const struct ipc_endpoint *ep) {
  if (sn->rule_known)
    return sn->rule;
  sn->rule = match_rule(w, sn, ep);
  sn->rule_known = 1;
  return sn->rule;
}

/* A ProcessInfo of this process is in flight. */
static int probing(const struct watch *w, const struct ipc_endpoint *ep) {
  for (size_t i = 0; i < w->nprobes; i++)
    if (ipc_same_process(w->probes[i].ep.pid, w->probes[i].ep.start_time,
                         ep->pid, ep->start_time))
      return 1;
  return 0;
}

/* What the runtime said of itself: once per process. */
static void info_ok(struct seen *sn, const struct ipc_process_info *info) {
  sn->have_info = 1;
  sn->refused_since = 0;
  sn->probe_failures = 0;
  sn->rule_known = 0; /* match again, with the runtime's command line */
  snprintf(sn->entry, sizeof(sn->entry), "%s", info->entry_assembly);
  snprintf(sn->version, sizeof(sn->version), "%s", info->runtime_version);
  snprintf(sn->command_line, sizeof(sn->command_line), "%s",
           info->command_line);
}

/* A ProcessInfo that failed with r: when to try again, and what to say. */
static void info_failed(struct watch *w, struct seen *sn,
                        const struct ipc_endpoint *ep, int r,
                        const struct ipc_error *err, int64_t now) {
  if (!ipc_endpoint_alive(ep)) {
    /* it went away (killed, exiting, its pid reused) between the listing
     * and the connect: not a fault, and nothing to retry */
    wlog(w, WATCH_LOG_DEBUG, "pid %d went away before it answered: %s",
         (int)ep->pid, err->message);
    sn->retry_at = now + RETRY_SEC * 1000;
    return;
  }
  if (r == -ECONNREFUSED &&
      (sn->refused_since == 0 ||
       now - sn->refused_since < REFUSED_GRACE_SEC * 1000)) {
    /* a runtime starting up binds its socket a moment before it listens
     * (and the directory's inotify event brings us in that moment):
     * quiet retries, four a second, for a while */
    if (sn->refused_since == 0)
      sn->refused_since = now;
    wlog(w, WATCH_LOG_DEBUG, "pid %d does not listen yet: %s; retrying",
         (int)ep->pid, err->message);
    sn->retry_at = now + REFUSED_RETRY_MS;
    return;
  }
  sn->retry_at = now + RETRY_SEC * 1000;
  if (sn->probe_failures < 1000)
    sn->probe_failures++;
  int rule = cached_rule(w, sn, ep);
  if (rule < 0) {
    /* a socket nobody asked for that does not answer: asked again less
     * and less often (a rule's process keeps RETRY_SEC) */
    int64_t pause = RETRY_SEC;
    for (unsigned i = 1;
         i < sn->probe_failures && pause < PROBE_BACKOFF_MAX_SEC; i++)
      pause *= 2;
    if (pause > PROBE_BACKOFF_MAX_SEC)
      pause = PROBE_BACKOFF_MAX_SEC;
    sn->retry_at = now + pause * 1000;
  }
  if (rule >= 0 && !sn->complained)
    wlog(w, WATCH_LOG_WARNING,
         "pid %d matches <Process \"%s\"> but does not answer: %s "
         "(retrying every %d s; logged once)",
         (int)ep->pid, w->cfg.rules[rule].name, err->message, RETRY_SEC);
  if (rule >= 0)
    sn->complained = 1;
}

/* Reads what came for the ProcessInfo exchanges in flight and ends those
 * answered, failed or past their deadline (the pass that follows takes on
 * what they said). */
static void probes_step(struct watch *w) {
  for (size_t i = 0; i < w->nprobes;) {
    struct ipc_call *pr = &w->probes[i];
    struct ipc_process_info info;
    struct ipc_error err = {0};
    int r = ipc_probe_step(pr, &info, &err);
    if (r == -EINPROGRESS) {
      i++;
      continue;
    }
    struct seen *sn = seen_find(w, pr->ep.pid, pr->ep.start_time);
    if (sn != NULL && r == 0)
      info_ok(sn, &info);
    else if (sn != NULL)
      info_failed(w, sn, &pr->ep, r, &err, clock_mono_ms());
    --w->nprobes; /* pr is closed */
    w->probes[i] = w->probes[w->nprobes];
    w->probe_again[i] = w->probe_again[w->nprobes];
  }
}

static int cand_cmp(const void *a, const void *b) {
  const struct probe_cand *x = a, *y = b;
  if (x->again != y->again)
    return x->again - y->again;
  return (x->key > y->key) - (x->key < y->key);
}

/* Asks the processes the pass wanted asked, as slots allow, in the order
 * and shares PROBES_MAX describes: first asks before asks again, the
 * newest process first; asks again the longest due first. Those left wait
 * for a later pass (one comes when a slot frees). */
static void probes_schedule(struct watch *w, int64_t now) {
  if (w->ncand == 0)
    return;
  qsort(w->cand, w->ncand, sizeof(w->cand[0]), cand_cmp);
  for (size_t c = 0; c < w->ncand && w->nprobes < PROBES_MAX; c++) {
    struct probe_cand *pc = &w->cand[c];
    size_t agains = 0, same = 0;
    for (size_t i = 0; i < w->nprobes; i++) {
      agains += w->probe_again[i];
      same += !w->probe_again[i] && w->probes[i].ep.uid == pc->ep.uid;
    }
    if (pc->again ? agains >= PROBES_RETRY_MAX : same >= PROBES_PER_UID)
      continue;
    /* (the seen table may have been compacted since the pass) */
    struct seen *sn = seen_find(w, pc->ep.pid, pc->ep.start_time);
    if (sn == NULL)
      continue;
    struct ipc_error err = {0};
    int r = ipc_probe_start(&w->probes[w->nprobes], &pc->ep,
                            w->cfg.ipc_timeout_ms, &err);
    if (r == -EINPROGRESS)
      w->probe_again[w->nprobes++] = (unsigned char)pc->again;
    else
      info_failed(w, sn, &pc->ep, r, &err, now);
  }
  w->ncand = 0;
}

static int consider(void *ctx, const struct ipc_endpoint *ep) {
  struct pass *p = ctx;
  struct watch *w = p->w;
  if (is_stopping(w))
    return 1;
  struct seen *sn = seen_get(w, ep);
  if (sn == NULL)
    return 0;
  sn->generation = w->generation;
  /* watched already, waiting to retry or being asked who it is: it still
   * matches (no "matches no process" warning) */
  int waiting = target_exists(w, ep) || p->now_ms < sn->retry_at ||
                probing(w, ep);
  if (!waiting && !sn->have_info) {
    /* once per process: who is it? Asked after the pass, in the order of
     * probes_schedule, without waiting for the answer (probes_step takes
     * it); with no slot for it, at a later pass */
    waiting = 1;
    if (w->ncand < SEEN_MAX) /* one per seen entry: always room */
      w->cand[w->ncand++] = (struct probe_cand){
          .again = sn->probe_failures > 0,
          .key = sn->probe_failures > 0 ? sn->retry_at : -(int64_t)sn->order,
          .ep = *ep};
  }
  int rule = cached_rule(w, sn, ep);
  if (rule >= 0)
    p->rule_hits[rule]++;
  /* with STARTING_MAX starts in flight, at the pass after one ends */
  if (waiting || (rule < 0 && !w->cfg.autodiscover) ||
      w->nstarting >= STARTING_MAX)
    return 0;
  /* Its last session may have ended since the pass began: the reader
   * unlinks a target and posts its end at once, at any time. Take those
   * ends first, so that a session that failed at once waits for its retry
   * (and its repeat is quiet) instead of starting again now. */
  apply_ended(w, p->now_ms);
  if (p->now_ms < sn->retry_at)
    return 0;
  start_target(w, sn, rule, ep);
  return 0;
}

/* When the connector must pass again even if nothing wakes it: the next
 * forced full pass, the first retry due, the first "matches no process"
 * warning due (monotonic ms). */
static int64_t next_due(struct watch *w, int64_t now, int64_t last_full,
                        int64_t interval_ms) {
  int64_t due = last_full + IPC_DISCOVERY_FULL_EVERY * interval_ms;
  for (size_t i = 0; i < w->nprobes; i++)
    if (w->probes[i].deadline < due)
      due = w->probes[i].deadline;
  for (const struct target *t = w->starting; t; t = t->next) {
    int64_t at = t->begun ? session_begin_deadline(t->session) : t->begin_at;
    if (at < due)
      due = at;
  }
  for (size_t i = 0; i < w->nseen; i++) {
    int64_t at = w->seen[i].retry_at;
    if (at > now && at < due)
      due = at;
  }
  for (size_t i = 0; i < w->cfg.nrules; i++) {
    int64_t since = w->rule_missing[i];
    if (since > 0 && since + MISS_INTERVALS * interval_ms < due)
      due = since + MISS_INTERVALS * interval_ms;
  }
  return due;
}

/* Sleeps until the next pass is due (see connector_main); 1 when stopping. */
static int connector_wait(struct watch *w, struct ipc_discovery *disc,
                          int64_t last_pass, int64_t due,
                          int64_t interval_ms) {
  for (;;) {
    if (is_stopping(w))
      return 1;
    int64_t now = clock_mono_ms();
    int nfd = ipc_discovery_notify_fd(disc);
    /* without notification (or before the first full pass), every
     * interval as before */
    if (nfd < 0 && last_pass + interval_ms < due)
      due = last_pass + interval_ms;
    if (now >= due)
      return 0;
    /* poll ignores the notify fd when it is -1 */
    struct pollfd pfd[3 + PROBES_MAX + STARTING_MAX] = {
        {.fd = w->cancel, .events = POLLIN},
        {.fd = w->kick, .events = POLLIN},
        {.fd = nfd, .events = POLLIN}};
    nfds_t n = 3;
    for (size_t i = 0; i < w->nprobes; i++)
      pfd[n++] = (struct pollfd){.fd = w->probes[i].fd, .events = POLLIN};
    for (const struct target *t = w->starting; t; t = t->next)
      if (t->begun) /* -1 (ignored) if it ended */
        pfd[n++] =
            (struct pollfd){.fd = session_begin_fd(t->session), .events = POLLIN};
    int r = poll(pfd, n, (int)(due - now + 1));
    if (r < 0 && errno != EINTR) {
      struct timespec ts = {0, 100000000}; /* cannot happen; do not spin */
      nanosleep(&ts, NULL);
      continue;
    }
    if (r <= 0)
      continue; /* a timeout: the loop above decides */
    if (pfd[0].revents)
      return 1; /* the cancel fd stays readable */
    if (pfd[1].revents) {
      uint64_t v;
      ssize_t got = read(w->kick, &v, sizeof(v));
      (void)got;
      return 0;
    }
    for (nfds_t i = 3; i < n; i++)
      if (pfd[i].revents)
        return 0; /* an answer (or its end): probes_step or starting_step */
    if (nfd < 0 || !pfd[2].revents)
      continue;
    /* Events are taken no more than once an interval, so that a busy
     * /tmp costs at most the wakeups polling did: until an interval has
     * passed since the last look, wait for a kick or stop only (what
     * comes meanwhile waits in the kernel's queue). */
    now = clock_mono_ms();
    if (now < last_pass + interval_ms) {
      pfd[2].fd = -1; /* answers are not held back */
      r = poll(pfd, n, (int)(last_pass + interval_ms - now + 1));
      if (r > 0)
        continue; /* a kick, stop or answer: handled above */
    }
    if (ipc_discovery_notified(disc))
      return 0;
    last_pass = clock_mono_ms(); /* other files only */
  }
}

/* The discovery scanner's word that one of its caps was reached. */
static void discovery_log(void *ctx, const char *msg) {
  wlog(ctx, WATCH_LOG_WARNING, "%s", msg);
}

/* The connector passes over the processes (ipc_discovery_scan) when a
 * session ended, when a diagnostic socket came or went in a directory a
 * known process uses (inotify, looked at once an interval at most), when a
 * retry or a warning is due, and at least every IPC_DISCOVERY_FULL_EVERY
 * intervals (a full pass: new socket directories). Where notification is
 * not to be had, every interval. An idle host costs one wakeup in ten
 * intervals instead of one an interval. */
static void *connector_main(void *arg) {
  struct watch *w = arg;
  int *hits = calloc(w->cfg.nrules + 1, sizeof(int));
  if (hits == NULL) {
    wlog(w, WATCH_LOG_ERR, "out of memory: not discovering processes");
    return NULL;
  }
  /* discovery remembers what it learnt of each process across passes */
  struct ipc_discovery *disc = ipc_discovery_new();
  if (disc == NULL) {
    free(hits);
    wlog(w, WATCH_LOG_ERR, "out of memory: not discovering processes");
    return NULL;
  }
  ipc_discovery_set_connected(disc, streaming_from, w);
  ipc_discovery_set_log(disc, discovery_log, w);
  /* the rules' own names are always there to be had */
  for (size_t i = 0; i < w->cfg.nrules; i++) {
    char clean[100];
    clean_name(w->cfg.rules[i].name, clean, sizeof(clean));
    (void)name_admit(w, clean);
  }
  int nr = ipc_discovery_enable_notify(disc);
  if (nr < 0)
    wlog(w, WATCH_LOG_INFO,
         "no inotify (%s): looking for processes every interval",
         strerror(-nr));
  /* stopping cancels the IPC waits of this thread at once */
  ipc_set_cancel_fd(w->cancel);
  int64_t interval_ms = (int64_t)(w->cfg.discover_sec * 1000.0 + 0.5);
  if (interval_ms < 1)
    interval_ms = 1;
  int64_t last_full = clock_mono_ms();
  for (;;) {
    if (is_stopping(w))
      break;
    int64_t now = clock_mono_ms();
    /* full when due within the next interval: a pass woken for a retry
     * just before does not cost a second wakeup */
    if (now + interval_ms > last_full + IPC_DISCOVERY_FULL_EVERY * interval_ms)
      ipc_discovery_want_full(disc);
    unsigned full0 = ipc_discovery_full_passes(disc);
    w->generation++;
    memset(hits, 0, (w->cfg.nrules + 1) * sizeof(int));
    struct pass p = {.w = w, .now_ms = now, .rule_hits = hits};
    apply_ended(w, now);
    probes_step(w);
    starting_step(w);
    w->ncand = 0;
    int r = ipc_discovery_scan(disc, consider, &p);
    if (r < 0)
      wlog(w, WATCH_LOG_ERR, "cannot list processes: %s", strerror(-r));
    probes_schedule(w, clock_mono_ms());
    if (ipc_discovery_full_passes(disc) != full0)
      last_full = now;
    /* A rule that has matched nothing for MISS_INTERVALS intervals: say
     * so once (a single empty pass is normal while a matched process
     * restarts). */
    for (size_t i = 0; i < w->cfg.nrules; i++) {
      if (hits[i] > 0) {
        w->rule_missing[i] = 0;
        continue;
      }
      if (w->rule_missing[i] < 0)
        continue; /* warned */
      if (w->rule_missing[i] == 0) {
        w->rule_missing[i] = now > 0 ? now : 1;
        continue;
      }
      if (now - w->rule_missing[i] < MISS_INTERVALS * interval_ms)
        continue;
      struct watch_rule *rule = &w->cfg.rules[i];
      char what[600];
      if (rule->match == WATCH_MATCH_PID)
        snprintf(what, sizeof(what), "Pid %d", (int)rule->pid);
      else
        snprintf(what, sizeof(what), "%s \"%s\"",
                 rule->match == WATCH_MATCH_COMMAND_LINE ? "CommandLine"
                                                         : "EntryAssembly",
                 rule->pattern);
      wlog(w, WATCH_LOG_WARNING,
           "<Process \"%s\"> matches no .NET process yet (%s); will keep "
           "looking",
           rule->name, what);
      w->rule_missing[i] = -1;
    }
    if (connector_wait(w, disc, now,
                       next_due(w, now, last_full, interval_ms),
                       interval_ms))
      break;
  }
  for (size_t i = 0; i < w->nprobes; i++)
    ipc_call_close(&w->probes[i]);
  w->nprobes = 0;
  while (w->starting) {
    struct target *t = w->starting;
    w->starting = t->next;
    target_free(t);
  }
  w->nstarting = 0;
  ipc_discovery_free(disc);
  free(hits);
  return NULL;
}

int watch_start(struct watch *w) {
  int r = pthread_create(&w->reader, NULL, reader_main, w);
  if (r != 0)
    return -r;
  r = pthread_create(&w->connector, NULL, connector_main, w);
  if (r != 0) {
    pthread_mutex_lock(&w->lock);
    w->stopping = 1;
    pthread_mutex_unlock(&w->lock);
    wake_reader(w);
    pthread_join(w->reader, NULL);
    return -r;
  }
  /* names for top -H, ps -L, /proc/<pid>/task/<tid>/comm (15 bytes) */
  pthread_setname_np(w->reader, "dotnet-reader");
  pthread_setname_np(w->connector, "dotnet-connect");
  w->started = 1;
  return 0;
}

/* Sends StopTracing for every session at once, then waits for the answers
 * together until the deadline: one hung target costs the deadline once,
 * not once per session. */
static void stop_all(struct watch *w, struct target *list, int timeout_ms) {
  size_t n = 0;
  for (struct target *t = list; t; t = t->next)
    n++;
  if (n == 0)
    return;
  struct pollfd *pfd = calloc(n, sizeof(*pfd));
  size_t k = 0;
  /* One budget for all the connects: a target whose listen queue is full
   * (hung, stopped) must not cost timeout_ms / 2 per session. */
  int64_t c0 = clock_mono_ms();
  for (struct target *t = list; t && pfd; t = t->next) {
    if (session_fd(t->session) < 0)
      continue;
    uint8_t msg[IPC_HEADER_SIZE + 8], id[8];
    uint64_t sid = session_id(t->session);
    for (int i = 0; i < 8; i++)
      id[i] = (uint8_t)(sid >> (8 * i));
    long len = ipc_message_encode(msg, sizeof(msg), IPC_SET_EVENTPIPE,
                                  IPC_EP_STOP, id, sizeof(id));
    long spent = (long)(clock_mono_ms() - c0);
    long budget = timeout_ms / 2 - spent;
    int fd = ipc_connect(&t->ep, budget > 0 ? (int)budget : 0, NULL);
    if (fd < 0)
      continue;
    if (len < 0 || send(fd, msg, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT) != len) {
      close(fd);
      continue;
    }
    pfd[k++] = (struct pollfd){.fd = fd, .events = POLLIN};
  }
  int64_t t0 = clock_mono_ms();
  size_t open_ = k;
  while (open_ > 0) {
    long el = (long)(clock_mono_ms() - t0);
    if (el >= timeout_ms)
      break;
    int pr = poll(pfd, k, (int)(timeout_ms - el));
    if (pr < 0 && errno == EINTR)
      continue;
    if (pr <= 0)
      break;
    for (size_t i = 0; i < k; i++) {
      if (pfd[i].fd >= 0 && pfd[i].revents) {
        close(pfd[i].fd);
        pfd[i].fd = -1;
        open_--;
      }
    }
  }
  size_t unanswered = 0;
  for (size_t i = 0; i < k; i++)
    if (pfd[i].fd >= 0) {
      close(pfd[i].fd);
      unanswered++;
    }
  if (unanswered)
    wlog(w, WATCH_LOG_NOTICE,
         "%zu session(s) did not confirm StopTracing within %d ms; closed",
         unanswered, timeout_ms);
  free(pfd);
}

void watch_stop(struct watch *w, int timeout_ms) {
  if (w == NULL || !w->started)
    return;
  pthread_mutex_lock(&w->lock);
  w->stopping = 1;
  pthread_mutex_unlock(&w->lock);
  wake_reader(w);
  uint64_t one = 1;
  /* never read back: ends the connector's IPC waits and its sleep */
  ssize_t wr = write(w->cancel, &one, sizeof(one));
  (void)wr;
  pthread_join(w->reader, NULL);
  pthread_join(w->connector, NULL);
  w->started = 0;
  /* the threads are gone: the lists are ours */
  while (w->pending) {
    struct target *t = w->pending;
    w->pending = t->next;
    t->next = w->live;
    w->live = t;
  }
  stop_all(w, w->live, timeout_ms);
  while (w->live) {
    struct target *t = w->live;
    w->live = t->next;
    wlog(w, WATCH_LOG_INFO, "instance \"%s\": session with pid %d stopped",
         t->instance, (int)t->ep.pid);
    target_free(t);
  }
}

void watch_free(struct watch *w) {
  if (w == NULL)
    return;
  watch_stop(w, 500);
  while (w->live) {
    struct target *t = w->live;
    w->live = t->next;
    target_free(t);
  }
  close(w->wake[0]);
  close(w->wake[1]);
  close(w->epoll);
  close(w->cancel);
  close(w->kick);
  pthread_mutex_destroy(&w->lock);
  free(w->seen);
  free(w->names);
  free(w->cand);
  free(w->rule_missing);
  counters_templates_free(w->templates); /* after every session's decoder */
  free(w);
}

void watch_snapshot(struct watch *w, watch_view_cb cb, void *ctx) {
  pthread_mutex_lock(&w->lock);
  for (struct target *t = w->live; t; t = t->next) {
    struct watch_target_view v = target_view(t);
    cb(ctx, &v);
  }
  pthread_mutex_unlock(&w->lock);
}

int watch_lookup(struct watch *w, const char *instance, struct ipc_endpoint *ep) {
  int r = -ENOENT;
  pthread_mutex_lock(&w->lock);
  for (struct target *t = w->live; t; t = t->next) {
    if (strcmp(t->instance, instance) == 0) {
      *ep = t->ep;
      r = 0;
      break;
    }
  }
  pthread_mutex_unlock(&w->lock);
  return r;
}

void watch_get_stats(struct watch *w, struct watch_stats *st) {
  pthread_mutex_lock(&w->lock);
  *st = w->stats;
  st->live = w->nlive;
  pthread_mutex_unlock(&w->lock);
}
