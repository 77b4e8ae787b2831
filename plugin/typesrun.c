/**
 * collectd-dotnet - plugin/typesrun.c
 *
 * See typesrun.h.
 */
#include "typesrun.h"

#include "clock.h"
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_S 60
#define DEFAULT_DURATION_S 5
#define FLUSH_WAIT_MS 2000 /* the type-table flush session, at most */
#define STOP_MS 3000       /* StopTracing and the rest of the stream */

static void say(struct typesrun_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void say(struct typesrun_result *res, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
  va_end(ap);
  ipc_sanitize(res->reason); /* it quotes what the runtime said */
}

static int cancelled(int cancel_fd) {
  if (cancel_fd < 0)
    return 0;
  struct pollfd p = {.fd = cancel_fd, .events = POLLIN};
  return poll(&p, 1, 0) > 0;
}

/* Waits until fd is readable, cancel_fd is, or ms pass: 1 readable, 0
 * not yet, -ECANCELED, or the poll error. */
static int wait_readable(int fd, int cancel_fd, int ms) {
  struct pollfd p[2] = {{.fd = fd, .events = POLLIN},
                        {.fd = cancel_fd, .events = POLLIN}};
  int r = poll(p, cancel_fd >= 0 ? 2 : 1, ms);
  if (r < 0)
    return errno == EINTR ? 0 : -errno;
  if (cancel_fd >= 0 && p[1].revents)
    return -ECANCELED;
  return r > 0;
}

static void count_event(void *ctx, const struct nettrace_event *ev,
                        const struct nettrace_trace_info *ti) {
  (void)ev;
  (void)ti;
  (*(uint64_t *)ctx)++;
}

/* The type-table flush (see typesrun.h): a SampleProfiler session read to
 * its first event (or FLUSH_WAIT_MS), then stopped. Best effort: a failure
 * only risks types shown as "(type 0x...)". */
static void flush_type_table(const struct ipc_endpoint *ep, int cancel_fd) {
  struct session_config cfg = {
      .nevents = 1, .buffer_mb = 1, .timeout_ms = STOP_MS};
  cfg.events[0] = (struct ipc_provider){
      .name = "Microsoft-DotNETCore-SampleProfiler", .level = 4};
  uint64_t events = 0;
  struct session *s = session_new(ep, &cfg, NULL, NULL);
  if (s == NULL)
    return;
  session_set_events(s, count_event, &events);
  if (session_start(s, NULL) == 0) {
    int64_t end = clock_mono_ms() + FLUSH_WAIT_MS;
    int w = 0;
    while (events == 0 && session_fd(s) >= 0 && clock_mono_ms() < end &&
           (w = wait_readable(session_fd(s), cancel_fd, 100)) >= 0)
      if (w > 0 && session_read(s) < 0)
        break;
    if (w >= 0)
      session_stop(s, STOP_MS);
  }
  session_free(s); /* closing the stream ends the session too */
}

/* A kB field ("VmRSS:") of /proc/<pid>/status text, 0 when absent. */
static uint64_t status_kb(const char *text, const char *field) {
  const char *p = strstr(text, field);
  uint64_t kb = 0;
  if (p != NULL && sscanf(p + strlen(field), " %" SCNu64, &kb) != 1)
    kb = 0;
  return kb;
}

/* The most buffer a heap snapshot of pid can need, or 0 when unknown. Its
 * live objects are in its memory, resident or swapped (VmRSS + VmSwap, the
 * kernel's figures), and take at least 24 bytes each: a GCBulkNode value
 * (32 bytes on x64) per 24 bytes and a GCBulkEdge value (12 bytes) per
 * 8-byte reference field, with the events' own headers, stay below 3 bytes
 * of buffer per byte of memory. */
static uint64_t snapshot_bound(pid_t pid) {
  char path[64], text[8192];
  if (pid <= 0)
    return 0;
  snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return 0;
  ssize_t n = read(fd, text, sizeof(text) - 1);
  close(fd);
  if (n <= 0)
    return 0;
  text[n] = 0;
  uint64_t kb = status_kb(text, "VmRSS:") + status_kb(text, "VmSwap:");
  return kb > 0 ? kb * 1024 * 3 : 0;
}

static void on_event(void *ctx, const struct nettrace_event *ev,
                     const struct nettrace_trace_info *ti) {
  gctypes_event(ctx, ev, ti);
}

/* The snapshot or sampling session, started (blocking until the runtime
 * answers: for a heap snapshot after its GC); NULL with res->reason. */
static struct session *start(const struct ipc_endpoint *ep,
                             const struct typesrun_config *cfg, double timeout,
                             struct gctypes *g, struct typesrun_result *res) {
  int heap = cfg->mode == GCTYPES_HEAP;
  struct session_config sc = {
      .nevents = 1,
      .buffer_mb = heap ? TYPESRUN_HEAP_BUFFER_MB : TYPESRUN_ALLOC_BUFFER_MB,
      .timeout_ms = (int)(timeout * 1000)};
  /* Block buffering (lossless, .NET 11) only when the buffer surely holds
   * the whole snapshot, with room for the process to have doubled since
   * its memory was read: a Block session whose buffer fills before the
   * stream is read stops the target for good. */
  uint64_t bound = heap ? snapshot_bound(ep->pid) : 0;
  if (bound > 0 && bound * 2 <= (uint64_t)TYPESRUN_HEAP_BUFFER_MB << 20) {
    sc.lossless = 1;
    res->lossless = 1;
  }
  sc.events[0] = (struct ipc_provider){
      .name = GCTYPES_PROVIDER,
      .keywords = heap ? GCTYPES_HEAP_KEYWORDS
                       : GCTYPES_ALLOC_TICK_KEYWORDS |
                             GCTYPES_ALLOC_SAMPLING_KEYWORD,
      .level = 5};
  struct session *s = session_new(ep, &sc, NULL, NULL);
  if (s == NULL) {
    say(res, "out of memory");
    return NULL;
  }
  session_set_events(s, on_event, g);
  struct ipc_error err = {0};
  int r = session_start(s, &err);
  if (r < 0) {
    res->cancelled = r == -ECANCELED;
    say(res, "cannot start a trace session: %s%s",
        err.message[0] ? err.message : strerror(-r),
        r == -ETIMEDOUT ? " (timed out)" : "");
    session_free(s);
    return NULL;
  }
  return s;
}

/* Reads s into g until the snapshot's GC has ended (heap), until (mono s)
 * has come, or the stream ends. 0, or a negative errno with res->reason. */
static int read_until(struct session *s, struct gctypes *g,
                      const struct typesrun_config *cfg, double until,
                      struct typesrun_result *res) {
  while (!(cfg->mode == GCTYPES_HEAP && gctypes_snapshot_done(g))) {
    double left = until - clock_mono_s();
    if (left <= 0 || session_fd(s) < 0)
      return 0;
    int w = wait_readable(session_fd(s), cfg->cancel_fd,
                          left < 0.5 ? (int)(left * 1000) + 1 : 500);
    if (w == -ECANCELED) {
      res->cancelled = 1;
      say(res, "cancelled");
      return w;
    }
    if (w < 0) {
      say(res, "poll: %s", strerror(-w));
      return w;
    }
    int r = w > 0 ? session_read(s) : 0;
    if (r < 0 && r != -EPIPE) {
      say(res, "%s", session_error(s));
      return r;
    }
  }
  return 0;
}

int typesrun(const struct ipc_endpoint *ep, const struct typesrun_config *cfg,
             struct gctypes *g, struct typesrun_result *res) {
  *res = (struct typesrun_result){0};
  int heap = cfg->mode == GCTYPES_HEAP;
  double timeout = cfg->timeout_s > 0 ? cfg->timeout_s : DEFAULT_TIMEOUT_S;
  double duration = cfg->duration_s > 0 ? cfg->duration_s : DEFAULT_DURATION_S;
  double t0 = clock_mono_s();
  if (heap)
    flush_type_table(ep, cfg->cancel_fd);
  if (cancelled(cfg->cancel_fd)) {
    res->cancelled = 1;
    say(res, "cancelled");
    return -ECANCELED;
  }
  struct session *s = start(ep, cfg, timeout, g, res);
  if (s == NULL)
    return res->cancelled ? -ECANCELED : -EIO;
  double until = heap ? t0 + timeout : clock_mono_s() + duration;
  int rc = read_until(s, g, cfg, until, res);
  if (rc == 0 && heap && !gctypes_snapshot_done(g) && session_fd(s) >= 0) {
    struct gctypes_summary sum;
    gctypes_summary(g, &sum);
    res->timed_out = 1;
    say(res, "no complete heap snapshot within %g s: %s", timeout,
        sum.gc_started ? "its GC did not end in time"
                       : "the runtime started no snapshot GC");
    rc = -ETIMEDOUT;
  }
  /* Stopped and read to its end, unless cancelled: then the closed
   * connection ends the session in the runtime, at once. */
  if (!res->cancelled && session_fd(s) >= 0)
    session_stop(s, STOP_MS);
  int end = session_stream_end(s);
  gctypes_finish(g, end == 1 ? -ENODATA : end, session_stats(s)->dropped);
  res->stream_bytes = session_stats(s)->bytes;
  res->seconds = clock_mono_s() - t0;
  session_free(s);
  return rc;
}
