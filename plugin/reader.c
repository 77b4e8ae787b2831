/**
 * collectd-dotnet - plugin/reader.c
 *
 * The watch's reader thread (see watch.h): one epoll set over the streams
 * of all live sessions and the stop fd; reads what came, feeds each
 * session, merges its samples into the target's table and hands them to
 * the consumer; ends a target whose stream ended. It never makes a
 * blocking call other than its waits, and nothing but a stream or a stop
 * wakes it.
 */
#include "clock.h"
#include "watch_state.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define GATHER_MIN 2 /* the gathering pause needs this many sessions */

/* On the reader thread, the only one that touches a live target's table:
 * no lock. */
void watch_reader_sample(void *ctx, const struct counters_sample *s,
                         int64_t time_ms) {
  struct target *t = ctx;
  struct watch *w = t->w;
  w->rd.samples++;
  struct counters_entry *e = counters_table_update(&t->table, s, time_ms);
  if (e == NULL && t->table.refused == 1) { /* the first refusal */
    t->table.refused++;                     /* said once */
    wlog(w, WATCH_LOG_WARNING,
         "instance \"%s\": pid %d has more counters than MaxSeries "
         "allows (%zu series, %zu bytes of names): new ones (first: "
         "\"%.64s\" of \"%.64s\") are not published, those already "
         "known are (logged once)",
         t->instance, (int)t->ep.pid, t->table.max_series,
         t->table.max_name_bytes, s->name, s->provider);
  }
  if (e != NULL && w->cfg.publish != NULL) {
    struct watch_target_view v = watch_target_view(t);
    w->cfg.publish(w->cfg.publish_ctx, &v, e);
  }
}

void watch_reader_end(struct watch *w, struct target *t, int r) {
  int64_t lived = (clock_mono_ms() - t->started) / 1000;
  int failed = policy_session_failed(r, lived);
  char retry[64] = "";
  if (r != -EPIPE)
    snprintf(retry, sizeof(retry),
             " (retrying every %d s; repeats logged at debug level)",
             RETRY_SEC);
  wlog(w,
       t->quiet && lived < RETRY_SEC ? WATCH_LOG_DEBUG
       : r == -EPIPE                 ? WATCH_LOG_INFO
                                     : WATCH_LOG_WARNING,
       "instance \"%s\": session with pid %d ended: %s%s", t->instance,
       (int)t->ep.pid, session_error(t->session), retry);
  pthread_mutex_lock(&w->shared.lock);
  /* the connector is behind: drop the oldest */
  if (w->shared.nended == ENDED_MAX) {
    memmove(w->shared.ended, w->shared.ended + 1,
            (ENDED_MAX - 1) * sizeof(w->shared.ended[0]));
    w->shared.nended--;
  }
  w->shared.ended[w->shared.nended++] =
      (struct ended){.pid = t->ep.pid,
                     .start_time = t->ep.start_time,
                     .failed = failed,
                     .lived = lived};
  for (struct target **pp = &w->shared.live; *pp; pp = &(*pp)->next) {
    if (*pp == t) {
      *pp = t->next;
      w->shared.nlive--;
      break;
    }
  }
  pthread_mutex_unlock(&w->shared.lock);
  watch_ring(w->kick_fd); /* look again: retry, or room under MaxProcesses */
  watch_target_free(t);
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

int watch_reader_adopt(struct watch *w, struct target *t) {
  pthread_mutex_lock(&w->shared.lock);
  t->next = w->shared.live;
  w->shared.live = t;
  w->shared.nlive++;
  w->shared.stats.sessions_started++;
  /* under the lock: the reader may end t as soon as it is armed, and its
   * unlink waits for this */
  int r = reader_arm(w, t, EPOLL_CTL_ADD) != 0 ? -errno : 0;
  if (r != 0) {
    w->shared.live = t->next;
    w->shared.nlive--;
  }
  pthread_mutex_unlock(&w->shared.lock);
  return r;
}

/* Whether the events of an epoll_wait include a stream (not only the stop
 * fd): 1; 2 when one of them ended (its process exited or closed it) or
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

/* Two sessions or more: gather. Sessions start on a common grid
 * (policy_start_at), so the runtimes sample together and their streams
 * come within about the runtime's 100 ms flush of each other. The first
 * to come starts a pause (gather_ms, 200 ms by default) in which the
 * reader is not woken; then it reads every stream that has come. Each
 * wakeup costs more than the read: a context switch in and out here, and
 * a burst of wakeups of collectd's write threads for the values it
 * dispatches. So one wakeup and one burst an interval at N = 10 instead
 * of three, at most 1000 / gather_ms at any N, for at most gather_ms more
 * delay of a sample. One session alone (the case of a spike on a host
 * running one service) reads at once, and so does a wakeup for a stream
 * that ended or sent for the first time: an end is posted at once, and
 * the connector, kicked, finds a restarted process without waiting. A
 * stop cuts the pause short (the streams already taken are still read:
 * one-shot, they would not come again). Returns the events in ev now. */
static int gather(struct watch *w, struct epoll_event *ev, int n, int cap,
                  size_t nlive) {
  int streams = n > 0 ? has_stream(ev, n) : 0;
  w->rd.wakeups += streams != 0;
  if (streams != 1 || n >= cap || nlive < GATHER_MIN || w->cfg.gather_ms <= 0)
    return n;
  struct pollfd pfd = {.fd = w->stop_fd, .events = POLLIN};
  if (poll(&pfd, 1, w->cfg.gather_ms) == 0) { /* not stopping */
    int m = epoll_wait(w->epoll, ev + n, cap - n, 0);
    if (m > 0) /* one-shot: no stream of the first wait comes again */
      n += m;
  }
  return n;
}

/* Reads the stream of t once: publishes its samples, re-arms it or ends
 * it. */
static void read_stream(struct watch *w, struct target *t) {
  int r = session_read(t->session);
  w->rd.reads++;
  t->read_once = 1;
  if (w->cfg.flush != NULL) {
    struct watch_target_view v = watch_target_view(t);
    w->cfg.flush(w->cfg.publish_ctx, &v);
  }
  if (r == 0 && reader_arm(w, t, EPOLL_CTL_MOD) != 0)
    r = -errno;
  if (r != 0)
    watch_reader_end(w, t, r);
}

/* The reader: one thread for all sessions, woken by epoll for the streams
 * that have data (a wakeup costs the same with 1 or 500 sessions). */
void *watch_reader_main(void *arg) {
  struct watch *w = arg;
  struct epoll_event ev[64];
  const int cap = (int)(sizeof(ev) / sizeof(ev[0]));
  for (;;) {
    pthread_mutex_lock(&w->shared.lock);
    w->shared.stats.samples += w->rd.samples;
    w->shared.stats.reads += w->rd.reads;
    w->shared.stats.wakeups += w->rd.wakeups;
    w->rd.samples = w->rd.reads = w->rd.wakeups = 0;
    size_t nlive = w->shared.nlive;
    pthread_mutex_unlock(&w->shared.lock);
    if (atomic_load(&w->stopping))
      break;
    /* no timeout: a stream or the stop fd wakes it */
    int n = epoll_wait(w->epoll, ev, cap, -1);
    if (n < 0 && errno != EINTR) {
      wlog(w, WATCH_LOG_ERR, "epoll_wait failed: %s", strerror(errno));
      struct timespec ts = {0, 100000000};
      nanosleep(&ts, NULL);
      continue;
    }
    n = gather(w, ev, n, cap, nlive);
    for (int i = 0; i < n; i++)
      if (ev[i].data.ptr != NULL) /* NULL: the stop fd */
        read_stream(w, ev[i].data.ptr);
  }
  return NULL;
}
