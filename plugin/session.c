/**
 * collectd-dotnet - plugin/session.c
 *
 * One EventPipe session: see session.h.
 *
 * Providers enabled (as dotnet-counters does):
 *   each EventCounters provider: keywords 0, level Informational,
 *     filter "EventCounterIntervalSec=<interval>"
 *   System.Diagnostics.Metrics (when meters are configured): keywords 0x2
 *     (TimeSeriesValues), level Informational, filter
 *     "SessionId=SHARED;ClientId=<random>;Metrics=<m1,m2>;RefreshInterval=<s>;
 *      MaxTimeSeries=1000;MaxHistograms=20"
 *   .NET 8+ multiplex all listeners onto the one SHARED session (events say
 *   sessionId "SHARED"); older runtimes ignore ClientId and treat SHARED as
 *   a plain id.
 * or, when the configuration lists event providers, exactly those, every
 * event going to the event consumer (session_set_events).
 */
#include "clock.h"
#include "counters_decoder.h"
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK 32768
#define READS_PER_CALL 16
#define SCRATCH_SIZE 8192

struct session {
  struct ipc_endpoint ep;
  struct session_config cfg;
  char *strings; /* owned copies of cfg's provider and meter names */
  session_sample_cb cb;
  void *ctx;
  session_tap_cb tap;
  void *tap_ctx;
  session_event_cb event_cb;
  void *event_ctx;
  int fd;
  int end_rc; /* session_stream_end */
  uint64_t id;
  struct ipc_call *call; /* CollectTracing in flight (session_begin) */
  struct nettrace_reader *reader;
  struct counters_decoder *decoder; /* keyed by the reader's metadata */
  char meter_session[64];
  char error[256];
};

/* Decoded strings of the event being delivered: needed only during the
 * callback, so one buffer per reading thread, not 8 KiB per session. */
static _Thread_local char scratch[SCRATCH_SIZE];

static void on_event(void *ctx, const struct nettrace_event *ev) {
  struct session *s = ctx;
  struct counters_sample smp;
  if (s->event_cb) {
    s->event_cb(s->event_ctx, ev, nettrace_reader_trace_info(s->reader));
    return;
  }
  int r = counters_decoder_decode(s->decoder, ev, &smp, scratch,
                                  sizeof(scratch));
  if (r <= 0)
    return; /* not a counter, or malformed: skip this event only */
  counters_fix_kind(&smp);
  if (smp.kind != COUNTERS_MEAN && smp.kind != COUNTERS_SUM &&
      (s->cfg.nmeters == 0 || strcmp(smp.session, s->meter_session) != 0))
    return; /* a meter's sample: not asked for, or another tool's session */
  if (s->cb)
    s->cb(s->ctx, &smp,
          counters_unix_ms(nettrace_reader_trace_info(s->reader), smp.timestamp));
}

/* Copies str to *p and moves *p past the copy; returns the copy. */
static const char *take_string(char **p, const char *str) {
  size_t l = strlen(str) + 1;
  char *copy = memcpy(*p, str, l);
  *p += l;
  return copy;
}

static char *dup_strings(struct session_config *c) {
  size_t total = 0;
  for (size_t i = 0; i < c->nproviders; i++)
    total += strlen(c->providers[i]) + 1;
  for (size_t i = 0; i < c->nmeters; i++)
    total += strlen(c->meters[i]) + 1;
  for (size_t i = 0; i < c->nevents; i++)
    total += strlen(c->events[i].name) + 1 +
             (c->events[i].filter ? strlen(c->events[i].filter) + 1 : 0);
  char *buf = malloc(total ? total : 1);
  if (buf == NULL)
    return NULL;
  char *p = buf;
  for (size_t i = 0; i < c->nproviders; i++)
    c->providers[i] = take_string(&p, c->providers[i]);
  for (size_t i = 0; i < c->nmeters; i++)
    c->meters[i] = take_string(&p, c->meters[i]);
  for (size_t i = 0; i < c->nevents; i++) {
    c->events[i].name = take_string(&p, c->events[i].name);
    if (c->events[i].filter)
      c->events[i].filter = take_string(&p, c->events[i].filter);
  }
  return buf;
}

/* The configuration with its caps and defaults applied. */
static struct session_config config_defaults(const struct session_config *cfg) {
  struct session_config c = *cfg;
  if (c.nproviders > SESSION_MAX_PROVIDERS)
    c.nproviders = SESSION_MAX_PROVIDERS;
  if (c.nmeters > SESSION_MAX_METERS)
    c.nmeters = SESSION_MAX_METERS;
  if (c.nevents > SESSION_MAX_EVENT_PROVIDERS)
    c.nevents = SESSION_MAX_EVENT_PROVIDERS;
  if (c.interval_sec <= 0)
    c.interval_sec = 1;
  if (c.buffer_mb == 0)
    c.buffer_mb = 8;
  if (c.timeout_ms <= 0)
    c.timeout_ms = 3000;
  return c;
}

struct session *session_new(const struct ipc_endpoint *ep,
                            const struct session_config *cfg,
                            session_sample_cb cb, void *ctx) {
  struct session_config c = config_defaults(cfg);
  struct session *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return NULL;
  *s = (struct session){
      .ep = *ep, .cfg = c, .cb = cb, .ctx = ctx, .fd = -1, .end_rc = 1};
  s->strings = dup_strings(&s->cfg);
  s->decoder = counters_decoder_new();
  if (s->strings == NULL || s->decoder == NULL) {
    free(s->strings);
    counters_decoder_free(s->decoder);
    free(s);
    return NULL;
  }
  if (s->cfg.nmeters > 0)
    snprintf(s->meter_session, sizeof(s->meter_session), "SHARED");
  return s;
}

void session_free(struct session *s) {
  if (s == NULL)
    return;
  if (s->fd >= 0)
    close(s->fd);
  ipc_call_close(&s->call);
  nettrace_reader_free(s->reader);
  counters_decoder_free(s->decoder);
  free(s->strings);
  free(s);
}

static void close_stream(struct session *s) {
  if (s->fd >= 0) {
    close(s->fd);
    s->fd = -1;
  }
}

/* A random client id for the shared Metrics session. */
static void client_id(char *out, size_t cap) {
  uint8_t b[16] = {0};
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = read(fd, b, sizeof(b));
    (void)n;
    close(fd);
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  b[0] ^= (uint8_t)ts.tv_nsec;
  b[1] ^= (uint8_t)(ts.tv_nsec >> 8);
  b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
  b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
  snprintf(out, cap,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x"
           "%02x",
           b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
           b[11], b[12], b[13], b[14], b[15]);
}

/* The providers a session enables (see the top of this file), with the
 * filter strings they point at. */
struct providers {
  struct ipc_provider prov[SESSION_MAX_PROVIDERS + 1];
  size_t n;
  char ec_filter[64];
  char meter_filter[2048];
};

static int providers_of(struct session *s, struct providers *pv) {
  char interval[32];
  pv->n = 0;
  if (s->cfg.nevents > 0) {
    memcpy(pv->prov, s->cfg.events, s->cfg.nevents * sizeof(pv->prov[0]));
    pv->n = s->cfg.nevents;
    return 0;
  }
  snprintf(interval, sizeof(interval), "%g", s->cfg.interval_sec);
  snprintf(pv->ec_filter, sizeof(pv->ec_filter), "EventCounterIntervalSec=%s",
           interval);
  if (s->cfg.nproviders == 0) {
    pv->prov[pv->n++] = (struct ipc_provider){.name = "System.Runtime",
                                              .keywords = 0,
                                              .level = 4,
                                              .filter = pv->ec_filter};
  }
  for (size_t i = 0; i < s->cfg.nproviders; i++)
    pv->prov[pv->n++] = (struct ipc_provider){.name = s->cfg.providers[i],
                                              .keywords = 0,
                                              .level = 4,
                                              .filter = pv->ec_filter};
  if (s->cfg.nmeters > 0) {
    char cid[40];
    client_id(cid, sizeof(cid));
    char *mf = pv->meter_filter;
    size_t cap = sizeof(pv->meter_filter);
    size_t off = (size_t)snprintf(mf, cap, "SessionId=%s;ClientId=%s;Metrics=",
                                  s->meter_session, cid);
    for (size_t i = 0; i < s->cfg.nmeters && off < cap; i++)
      off += (size_t)snprintf(mf + off, cap - off, "%s%s", i ? "," : "",
                              s->cfg.meters[i]);
    if (off < cap)
      off += (size_t)snprintf(mf + off, cap - off,
                              ";RefreshInterval=%s;MaxTimeSeries=1000;"
                              "MaxHistograms=20",
                              interval);
    if (off >= cap) {
      snprintf(s->error, sizeof(s->error), "meter list too long");
      return -E2BIG;
    }
    pv->prov[pv->n++] =
        (struct ipc_provider){.name = "System.Diagnostics.Metrics",
                              .keywords = 0x2,
                              .level = 4,
                              .filter = pv->meter_filter};
  }
  return 0;
}

int session_begin(struct session *s, struct ipc_error *err) {
  close_stream(s);
  ipc_call_close(&s->call);
  s->error[0] = 0;
  s->end_rc = 1;
  nettrace_reader_free(s->reader);
  counters_decoder_reset(s->decoder); /* its cache was of the old reader */
  s->reader = nettrace_reader_new(&s->cfg.limits, on_event, s);
  if (s->reader == NULL)
    return -ENOMEM;
  struct providers pv;
  int r = providers_of(s, &pv);
  if (r < 0)
    return r;
  struct ipc_error local = {0};
  struct ipc_error *e = err ? err : &local;
  unsigned flags = (s->cfg.rundown ? IPC_COLLECT_RUNDOWN : 0) |
                   (s->cfg.lossless ? IPC_COLLECT_BLOCK : 0);
  r = ipc_collect_begin(&s->call, &s->ep, pv.prov, pv.n, s->cfg.buffer_mb,
                        flags, s->cfg.timeout_ms, e);
  if (r != -EINPROGRESS)
    snprintf(s->error, sizeof(s->error), "%s", e->message);
  return r;
}

int session_begin_fd(const struct session *s) { return ipc_call_fd(s->call); }

int64_t session_begin_deadline(const struct session *s) {
  return ipc_call_deadline(s->call);
}

int session_begin_step(struct session *s, struct ipc_error *err) {
  struct ipc_error local = {0};
  struct ipc_error *e = err ? err : &local;
  int r = ipc_collect_step(s->call, &s->fd, &s->id, e);
  if (r != -EINPROGRESS)
    ipc_call_close(&s->call);
  if (r < 0 && r != -EINPROGRESS)
    snprintf(s->error, sizeof(s->error), "%s", e->message);
  return r; /* the stream's fd is non-blocking (the engine's connection) */
}

int session_start(struct session *s, struct ipc_error *err) {
  struct ipc_error local = {0};
  struct ipc_error *e = err ? err : &local;
  int r = session_begin(s, e);
  if (r == -EINPROGRESS)
    r = ipc_call_wait(s->call, e);
  if (r == 0)
    return session_begin_step(s, e); /* the reply is in: takes it */
  if (r != -EINPROGRESS && s->error[0] == 0)
    snprintf(s->error, sizeof(s->error), "%s", e->message);
  return r;
}

int session_fd(const struct session *s) { return s->fd; }

int session_read(struct session *s) {
  uint8_t buf[READ_CHUNK]; /* on the stack: nothing per session to keep */
  if (s->fd < 0)
    return -EPIPE;
  for (int i = 0; i < READS_PER_CALL; i++) {
    ssize_t n = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return 0;
    if (n < 0) {
      int e = errno;
      snprintf(s->error, sizeof(s->error), "reading the stream: %s",
               strerror(e));
      s->end_rc = -e;
      close_stream(s);
      return -e;
    }
    if (n == 0) {
      int r = nettrace_reader_finish(s->reader);
      s->end_rc = r;
      if (r == 0)
        snprintf(s->error, sizeof(s->error), "the stream ended");
      else
        snprintf(s->error, sizeof(s->error),
                 "the stream ended early (process exited?) at byte %" PRIu64
                 ": %s",
                 nettrace_reader_stats(s->reader)->bytes,
                 nettrace_reader_error(s->reader));
      close_stream(s);
      return -EPIPE;
    }
    if (s->tap)
      s->tap(s->tap_ctx, buf, (size_t)n);
    int r = nettrace_reader_feed(s->reader, buf, (size_t)n);
    if (r < 0) {
      snprintf(s->error, sizeof(s->error), "bad nettrace stream: %s at byte %" PRIu64,
               nettrace_reader_error(s->reader),
               nettrace_reader_error_offset(s->reader));
      s->end_rc = r;
      close_stream(s);
      return r;
    }
    if ((size_t)n < sizeof(buf))
      return 0;
  }
  return 0;
}

int session_stop(struct session *s, int timeout_ms) {
  if (s->fd < 0)
    return 0;
  struct ipc_error err = {0};
  int r = ipc_stop_tracing(&s->ep, s->id, timeout_ms, &err);
  if (r < 0) {
    snprintf(s->error, sizeof(s->error), "StopTracing: %s", err.message);
    close_stream(s);
    return r;
  }
  /* Drain to the end marker so the runtime finishes writing cleanly. */
  int64_t t0 = clock_mono_ms();
  for (;;) {
    long el = (long)(clock_mono_ms() - t0);
    if (el >= timeout_ms) {
      close_stream(s);
      return -ETIMEDOUT;
    }
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    int pr = poll(&p, 1, (int)(timeout_ms - el));
    if (pr < 0 && errno == EINTR)
      continue;
    if (pr <= 0) {
      close_stream(s);
      return pr == 0 ? -ETIMEDOUT : -errno;
    }
    r = session_read(s);
    if (r == -EPIPE) /* cleanly only if the end-of-stream marker came */
      return nettrace_reader_done(s->reader) ? 0 : -ENODATA;
    if (r < 0)
      return r;
  }
}

void session_set_events(struct session *s, session_event_cb cb, void *ctx) {
  s->event_cb = cb;
  s->event_ctx = ctx;
}

void session_set_tap(struct session *s, session_tap_cb tap, void *ctx) {
  s->tap = tap;
  s->tap_ctx = ctx;
}

int session_stream_end(const struct session *s) { return s->end_rc; }
const char *session_error(const struct session *s) { return s->error; }
uint64_t session_id(const struct session *s) { return s->id; }
const struct nettrace_stats *session_stats(const struct session *s) {
  static const struct nettrace_stats none;
  return s->reader ? nettrace_reader_stats(s->reader) : &none;
}
