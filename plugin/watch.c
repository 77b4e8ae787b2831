/**
 * collectd-dotnet - plugin/watch.c
 *
 * The watch's public face (see watch.h) and the state its two threads
 * share (watch_state.h): creating and freeing it, starting and stopping
 * the threads, StopTracing to every session at the end, and the lookups
 * of collectd's threads. The threads are in connector.c and reader.c.
 */
#include "clock.h"
#include "listen.h"
#include "watch_state.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define GATHER_MS 200 /* the reader's default gathering pause (reader.c) */
/* Distinct plugin instance names handed out over the watch's life (every
 * name is series, files and cache entries downstream): 0 in the config
 * means INSTANCES_PER_TARGET times MaxProcesses. */
#define INSTANCES_PER_TARGET 4

void watch_vlog(const struct watch *w, int level, const char *fmt, va_list ap) {
  if (w->cfg.log == NULL)
    return;
  char msg[1024];
  vsnprintf(msg, sizeof(msg), fmt, ap);
  /* names, paths and error text of a process or its runtime are in it:
   * no control character reaches the log */
  ipc_sanitize(msg);
  w->cfg.log(level, msg);
}

void watch_ring(int fd) {
  uint64_t one = 1;
  ssize_t n = write(fd, &one, sizeof(one));
  (void)n; /* a counter at its maximum already wakes */
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

/* The configuration with its defaults filled in. */
static struct watch_config config_defaults(const struct watch_config *cfg) {
  struct watch_config c = *cfg;
  if (c.interval_sec <= 0)
    c.interval_sec = 1;
  if (c.discover_sec <= 0)
    c.discover_sec = c.interval_sec;
  if (c.max_targets == 0)
    c.max_targets = 256;
  if (c.max_series == 0)
    c.max_series = COUNTERS_DEFAULT_MAX_SERIES;
  if (c.max_instances == 0)
    c.max_instances = INSTANCES_PER_TARGET * c.max_targets;
  if (c.max_instances < c.nrules + 1)
    c.max_instances = c.nrules + 1;
  if (c.ipc_timeout_ms <= 0) /* a loaded runtime may take over 1 s */
    c.ipc_timeout_ms = 2000;
  /* a pause of at most a quarter of the interval, so that a sample is
   * never held near its successor */
  int quarter = (int)(c.interval_sec * 250.0);
  if (c.gather_ms == 0)
    c.gather_ms = GATHER_MS;
  if (c.gather_ms > quarter)
    c.gather_ms = quarter;
  return c;
}

/* Closes what watch_new opened (fds at -1 are not open). */
static void watch_close(struct watch *w) {
  for (size_t i = 0; i < w->nlisteners; i++)
    listen_close(w->listeners[i]);
  watch_connector_fini(w);
  int fds[3] = {w->stop_fd, w->kick_fd, w->epoll};
  for (int i = 0; i < 3; i++)
    if (fds[i] >= 0)
      close(fds[i]);
  free(w);
}

struct watch *watch_new(const struct watch_config *cfg) {
  struct watch *w = calloc(1, sizeof(*w));
  if (w == NULL)
    return NULL;
  w->cfg = config_defaults(cfg);
  atomic_init(&w->stopping, 0);
  w->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  w->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  w->epoll = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event sev = {.events = EPOLLIN, .data.ptr = NULL};
  if (w->stop_fd < 0 || w->kick_fd < 0 ||
      w->epoll < 0 || watch_connector_init(w) != 0 ||
      epoll_ctl(w->epoll, EPOLL_CTL_ADD, w->stop_fd, &sev) != 0) {
    watch_close(w);
    return NULL;
  }
  pthread_mutex_init(&w->shared.lock, NULL);
  return w;
}

void watch_target_free(struct target *t) {
  if (t == NULL)
    return;
  session_free(t->session);
  counters_table_fini(&t->table);
  free(t);
}

/* Sets stopping and wakes every wait of both threads. */
static void stop_threads(struct watch *w) {
  atomic_store(&w->stopping, 1);
  watch_ring(w->stop_fd); /* never read back */
}

/* The listener's lines go to the watch's log. */
static void listen_log(void *ctx, int level, const char *msg) {
  wlog(ctx, level, "%s", msg);
}

/* Opens the Listen sockets: one that cannot be made is logged and left
 * out (the others, and discovery, work on). */
static void listeners_open(struct watch *w) {
  for (size_t i = 0; i < w->cfg.nlistens && i < WATCH_LISTEN_MAX; i++) {
    const struct watch_listen *wl = &w->cfg.listens[i];
    struct listen_config lc = {.path = wl->path,
                               .gid = wl->gid,
                               .mode = wl->mode,
                               .max_runtimes = w->cfg.max_targets,
                               .dump_there = wl->dump_there,
                               .dump_here = wl->dump_here,
                               .log = listen_log,
                               .log_ctx = w};
    char err[512];
    struct listen *l = listen_open(&lc, err, sizeof(err));
    if (l == NULL) {
      wlog(w, WATCH_LOG_ERR, "%s", err);
      continue;
    }
    wlog(w, WATCH_LOG_INFO, "listening for runtimes on %s", wl->path);
    w->listeners[w->nlisteners++] = l;
  }
}

int watch_start(struct watch *w) {
  listeners_open(w);
  int r = pthread_create(&w->reader_thread, NULL, watch_reader_main, w);
  if (r != 0)
    return -r;
  r = pthread_create(&w->connector_thread, NULL, watch_connector_main, w);
  if (r != 0) {
    stop_threads(w);
    pthread_join(w->reader_thread, NULL);
    return -r;
  }
  /* names for top -H, ps -L, /proc/<pid>/task/<tid>/comm (15 bytes) */
  pthread_setname_np(w->reader_thread, "dotnet-reader");
  pthread_setname_np(w->connector_thread, "dotnet-connect");
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
  struct ipc_call **calls = calloc(n, sizeof(*calls));
  struct pollfd *pfd = calloc(n, sizeof(*pfd));
  size_t k = 0;
  /* One budget for all the connects: a target whose listen queue is full
   * (hung, stopped) must not cost timeout_ms / 2 per session. */
  int64_t c0 = clock_mono_ms();
  for (struct target *t = list; t && calls && pfd; t = t->next) {
    if (session_fd(t->session) < 0)
      continue;
    long budget = timeout_ms / 2 - (long)(clock_mono_ms() - c0);
    /* at least 1 ms: a runtime that connected in would wait for its
     * next connection IPC_TAKE_MIN_MS on 0 */
    if (ipc_stop_begin(&calls[k], &t->ep, session_id(t->session), timeout_ms,
                       budget > 0 ? (int)budget : 1, NULL) == -EINPROGRESS)
      k++;
  }
  /* the answers together, within one timeout: whatever a call ends with
   * (the reply, an error, the connection closed) confirms it */
  int64_t end = clock_mono_ms() + timeout_ms;
  size_t open_ = k;
  while (open_ > 0) {
    int64_t now = clock_mono_ms();
    if (now >= end)
      break;
    for (size_t i = 0; i < k; i++)
      pfd[i] = (struct pollfd){.fd = ipc_call_fd(calls[i]), .events = POLLIN};
    int pr = poll(pfd, k, (int)(end - now));
    if (pr < 0 && errno == EINTR)
      continue;
    if (pr <= 0)
      break;
    for (size_t i = 0; i < k; i++) {
      if (pfd[i].revents && ipc_call_step(calls[i], NULL) != -EINPROGRESS) {
        ipc_call_close(&calls[i]);
        open_--;
      }
    }
  }
  size_t unanswered = 0;
  for (size_t i = 0; i < k; i++)
    if (calls[i] != NULL) {
      ipc_call_close(&calls[i]);
      unanswered++;
    }
  if (unanswered)
    wlog(w, WATCH_LOG_NOTICE,
         "%zu session(s) did not confirm StopTracing within %d ms; closed",
         unanswered, timeout_ms);
  free(pfd);
  free(calls);
}

void watch_stop(struct watch *w, int timeout_ms) {
  if (w == NULL || !w->started)
    return;
  stop_threads(w);
  pthread_join(w->reader_thread, NULL);
  pthread_join(w->connector_thread, NULL);
  w->started = 0;
  /* the threads are gone: the live list is ours */
  stop_all(w, w->shared.live, timeout_ms);
  while (w->shared.live) {
    struct target *t = w->shared.live;
    w->shared.live = t->next;
    wlog(w, WATCH_LOG_INFO, "instance \"%s\": session with pid %d stopped",
         t->instance, (int)t->ep.pid);
    watch_target_free(t);
  }
}

void watch_free(struct watch *w) {
  if (w == NULL)
    return;
  watch_stop(w, 500);
  pthread_mutex_destroy(&w->shared.lock);
  watch_close(w);
}

void watch_snapshot(struct watch *w, watch_view_cb cb, void *ctx) {
  pthread_mutex_lock(&w->shared.lock);
  for (struct target *t = w->shared.live; t; t = t->next) {
    struct watch_target_view v = watch_target_view(t);
    cb(ctx, &v);
  }
  pthread_mutex_unlock(&w->shared.lock);
}

int watch_lookup(struct watch *w, const char *instance, struct ipc_endpoint *ep) {
  int r = -ENOENT;
  pthread_mutex_lock(&w->shared.lock);
  for (struct target *t = w->shared.live; t; t = t->next) {
    if (strcmp(t->instance, instance) == 0) {
      *ep = t->ep;
      r = 0;
      break;
    }
  }
  pthread_mutex_unlock(&w->shared.lock);
  return r;
}

void watch_get_stats(struct watch *w, struct watch_stats *st) {
  pthread_mutex_lock(&w->shared.lock);
  *st = w->shared.stats;
  pthread_mutex_unlock(&w->shared.lock);
}
