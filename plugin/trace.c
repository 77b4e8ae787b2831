/**
 * collectd-dotnet - plugin/trace.c
 *
 * One trace into a file: see trace.h.
 *
 * The run, on the caller's thread:
 *   1. CollectTracing2 with the providers and requestRundown = 1
 *      (session_start; the thread's cancel fd ends its wait);
 *   2. the stream's bytes go to the file as they come (the session's tap),
 *      and through the nettrace reader, which counts the events and knows
 *      whether the stream reached its end marker; until the duration ends,
 *      the file nears max_bytes (see trace_stop_at), the stream ends or
 *      stop_flag is set;
 *   3. StopTracing on a connection of its own while the stream is still
 *      read: the runtime answers StopTracing only once it has written the
 *      session's last events and the rundown to the stream, which it
 *      cannot do while nobody reads it;
 *   4. the stream read to its end, within timeout_ms.
 * Every wait polls the thread's cancel fd, at most TICK_MS at a time.
 */
#include "trace.h"
#include "clock.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define TICK_MS 250
#define STOP_CONNECT_MS 1000 /* a full listen queue waited out */
#define MAX_DURATION_S 1e9   /* keeps the deadline's arithmetic finite */
#define TRACE_MAX_METAS 4096 /* event kinds: a runtime's whole manifest */
#define TRACE_MAX_METADATA (1u << 20)
/* The end after StopTracing, measured: the blocks the runtime had not
 * sent yet and the rundown, 350 KB for a small app, 1.1 MB for an ASP.NET
 * one; more for an app of many methods. */
#define STOP_ROOM_MIN (4ull << 20)

const char *trace_end_name(enum trace_end end) {
  switch (end) {
  case TRACE_STOPPED:
    return "stopped";
  case TRACE_ENDED:
    return "ended by the runtime";
  case TRACE_EXITED:
    return "cut short";
  case TRACE_TIMEDOUT:
    return "timed out";
  case TRACE_TOO_BIG:
    return "too big";
  case TRACE_CANCELED:
    return "cancelled";
  case TRACE_FAILED:
    return "failed";
  }
  return "?";
}

/* ---- the provider list ---- */

static const struct {
  const char *name;
  uint32_t level;
} level_names[] = {{"logalways", 0}, {"critical", 1},      {"error", 2},
                   {"warning", 3},   {"informational", 4}, {"verbose", 5}};

/* s[0..n) as a level: 0-5 or a name. 0, or -1. */
static int parse_level(const char *s, size_t n, uint32_t *out) {
  if (n == 1 && s[0] >= '0' && s[0] <= '5') {
    *out = (uint32_t)(s[0] - '0');
    return 0;
  }
  for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
    if (strlen(level_names[i].name) == n &&
        strncasecmp(s, level_names[i].name, n) == 0) {
      *out = level_names[i].level;
      return 0;
    }
  return -1;
}

/* s[0..n) as keywords: hex, "0x" optional, at most 16 digits. 0, or -1. */
static int parse_keywords(const char *s, size_t n, uint64_t *out) {
  if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s += 2;
    n -= 2;
  }
  if (n == 0 || n > 16)
    return -1;
  uint64_t k = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                 : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                 : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                        : 16u;
    if (d > 15)
      return -1;
    k = k << 4 | d;
  }
  *out = k;
  return 0;
}

/* A name's bytes: printable ASCII but space, ':' and ','. */
static int name_ok(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] <= ' ' || s[i] > '~')
      return 0;
  return n > 0;
}

/* One item s[0..n) (no ','), the index-th, into *p. 0, or -1 with err. */
static int parse_one(const char *s, size_t n, size_t index,
                     struct trace_provider *p, char *err, size_t errcap) {
  const char *f[4];
  size_t fl[4], nf = 0;
  const char *start = s;
  for (size_t i = 0; i <= n; i++)
    if (i == n || s[i] == ':') {
      if (nf == 4)
        break;
      f[nf] = start;
      fl[nf] = (size_t)(s + i - start);
      nf++;
      start = s + i + 1;
    }
  /* the item as shown in messages: at most 60 bytes of it */
  int shown = n > 60 ? 60 : (int)n;
  const char *more = n > 60 ? "..." : "";
  if (nf == 4) {
    snprintf(err, errcap,
             "provider %zu ('%.*s%s'): filter arguments (a fourth field) are "
             "not supported",
             index, shown, s, more);
    return -1;
  }
  if (fl[0] == 0) {
    snprintf(err, errcap, "provider %zu ('%.*s%s'): no provider name", index,
             shown, s, more);
    return -1;
  }
  if (fl[0] >= TRACE_NAME_MAX) {
    snprintf(err, errcap,
             "provider %zu ('%.*s%s'): the name is longer than %d bytes", index,
             shown, s, more, TRACE_NAME_MAX - 1);
    return -1;
  }
  if (!name_ok(f[0], fl[0])) {
    snprintf(err, errcap,
             "provider %zu ('%.*s%s'): a name is printable ASCII without "
             "spaces",
             index, shown, s, more);
    return -1;
  }
  *p = (struct trace_provider){.keywords = 0, .level = 4};
  memcpy(p->name, f[0], fl[0]);
  p->name[fl[0]] = 0;
  if (nf > 1 && fl[1] > 0 && parse_keywords(f[1], fl[1], &p->keywords) != 0) {
    snprintf(err, errcap,
             "provider %zu ('%.*s%s'): keywords '%.*s' are not hexadecimal "
             "(at most 16 digits, 0x optional)",
             index, shown, s, more, fl[1] > 40 ? 40 : (int)fl[1], f[1]);
    return -1;
  }
  if (nf > 2 && fl[2] > 0 && parse_level(f[2], fl[2], &p->level) != 0) {
    snprintf(err, errcap,
             "provider %zu ('%.*s%s'): level '%.*s' is not 0-5 or a level "
             "name (logalways, critical, error, warning, informational, "
             "verbose)",
             index, shown, s, more, fl[2] > 40 ? 40 : (int)fl[2], f[2]);
    return -1;
  }
  return 0;
}

int trace_providers_parse(const char *spec, struct trace_config *cfg, char *err,
                          size_t errcap) {
  char dummy[1];
  if (err == NULL || errcap == 0) {
    err = dummy;
    errcap = sizeof(dummy);
  }
  err[0] = 0;
  cfg->nproviders = 0;
  if (spec == NULL || spec[0] == 0) {
    snprintf(err, errcap, "no provider given");
    return -EINVAL;
  }
  size_t index = 1;
  for (const char *s = spec;; index++) {
    size_t n = strcspn(s, ",");
    struct trace_provider p;
    if (n == 0) {
      snprintf(err, errcap, "provider %zu is empty (a stray ',')", index);
      goto bad;
    }
    if (parse_one(s, n, index, &p, err, errcap) != 0)
      goto bad;
    size_t k = 0;
    while (k < cfg->nproviders && strcmp(cfg->providers[k].name, p.name) != 0)
      k++;
    if (k < cfg->nproviders) { /* named again: dotnet-trace's merge */
      struct trace_provider *q = &cfg->providers[k];
      q->keywords |= p.keywords;
      q->level = q->level == 0 || p.level == 0 ? 0
                 : q->level > p.level          ? q->level
                                               : p.level;
    } else if (cfg->nproviders == TRACE_MAX_PROVIDERS) {
      snprintf(err, errcap, "more than %d providers", TRACE_MAX_PROVIDERS);
      goto bad;
    } else {
      cfg->providers[cfg->nproviders++] = p;
    }
    if (s[n] == 0)
      return 0;
    s += n + 1;
  }
bad:
  cfg->nproviders = 0;
  return -EINVAL;
}

/* ---- the run ---- */

uint64_t trace_stop_at(uint64_t max_bytes) {
  uint64_t room = max_bytes / 4;
  uint64_t half = max_bytes / 2;
  uint64_t want = half < STOP_ROOM_MIN ? half : STOP_ROOM_MIN;
  if (room < want)
    room = want;
  uint64_t at = max_bytes - room;
  return at > 0 ? at : 1;
}

struct run {
  int fd;
  uint64_t written;
  uint64_t max_bytes;
  uint64_t stop_at; /* trace_stop_at(max_bytes): stop early */
  int write_err;    /* errno of the first failed write */
  int full;         /* bytes were dropped at max_bytes */
  uint64_t events, samples;
};

/* The session's tap: every byte of the stream, before it is parsed. */
static void tap(void *ctx, const uint8_t *buf, size_t len) {
  struct run *r = ctx;
  if (r->write_err || r->full)
    return;
  if (len > r->max_bytes - r->written) {
    len = (size_t)(r->max_bytes - r->written);
    r->full = 1;
  }
  while (len > 0) {
    ssize_t n = write(r->fd, buf, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      r->write_err = n < 0 ? errno : EIO;
      return;
    }
    buf += n;
    len -= (size_t)n;
    r->written += (uint64_t)n;
  }
}

static void count(void *ctx, const struct nettrace_event *ev,
                  const struct nettrace_trace_info *ti) {
  struct run *r = ctx;
  (void)ti;
  r->events++;
  if (strcmp(ev->meta->provider, TRACE_SAMPLE_PROVIDER) == 0)
    r->samples++;
}

/* Waits up to ms for fds[0..n) (fd -1 ignored) and the thread's cancel fd.
 * 1: something is ready (revents set), 0: nothing, -ECANCELED. */
static int wait_fds(struct pollfd *fds, size_t n, int64_t ms) {
  struct pollfd p[4];
  size_t k = 0;
  for (size_t i = 0; i < n && k < 3; i++)
    p[k++] = (struct pollfd){.fd = fds[i].fd, .events = POLLIN};
  int cancel = ipc_get_cancel_fd();
  p[k] = (struct pollfd){.fd = cancel, .events = POLLIN};
  int t = ms <= 0 ? 0 : ms > TICK_MS ? TICK_MS : (int)ms;
  int pr = poll(p, k + 1, t);
  if (pr < 0)
    return 0; /* EINTR (a signal: the caller's stop_flag) */
  if (cancel >= 0 && p[k].revents != 0)
    return -ECANCELED;
  for (size_t i = 0; i < n; i++)
    fds[i].revents = p[i].revents;
  return pr > 0;
}

static int stop_asked(const struct trace_config *c) {
  return c->stop_flag != NULL && *c->stop_flag != 0;
}

/* The end of a stream that session_read said ended (-EPIPE) or failed. */
static int stream_end(struct session *s, int r, int stopping,
                      struct trace_result *res) {
  if (r == -EPIPE && session_stream_end(s) == 0) {
    res->end = stopping ? TRACE_STOPPED : TRACE_ENDED;
    if (!stopping)
      snprintf(res->reason, sizeof(res->reason),
               "the runtime ended the session before it was stopped");
    return 0;
  }
  snprintf(res->reason, sizeof(res->reason), "%s", session_error(s));
  ipc_sanitize(res->reason);
  if (r == -EPIPE) {
    res->end = TRACE_EXITED;
    return -ENODATA;
  }
  res->end = TRACE_FAILED;
  return r;
}

/* The file's failure, if any: its end and return. */
static int file_trouble(const struct run *run, struct trace_result *res) {
  if (run->write_err) {
    res->end = TRACE_FAILED;
    snprintf(res->reason, sizeof(res->reason), "writing the trace: %s",
             strerror(run->write_err));
    return -run->write_err;
  }
  if (run->full) {
    res->end = TRACE_TOO_BIG;
    snprintf(res->reason, sizeof(res->reason),
             "the trace's end did not fit under its size cap (%" PRIu64
             " bytes): the file is cut",
             run->max_bytes);
    return -EFBIG;
  }
  return 0;
}

/* Phase 2: the session runs until the duration ends, it is to be cut, the
 * caller stops it, or it ends. 1: go on and stop it; else the run's
 * return (res->end set). */
static int record(struct session *s, const struct trace_config *c,
                  struct run *run, int64_t until, struct trace_result *res) {
  for (;;) {
    int r = file_trouble(run, res);
    if (r != 0)
      return r;
    if (run->written >= run->stop_at) {
      res->cut = 1;
      snprintf(res->reason, sizeof(res->reason),
               "stopped early at %" PRIu64 " bytes, near the size cap (%" PRIu64
               " bytes)",
               run->written, run->max_bytes);
      return 1;
    }
    int64_t left = until - clock_mono_ms();
    if (left <= 0 || stop_asked(c))
      return 1;
    struct pollfd p = {.fd = session_fd(s)};
    r = wait_fds(&p, 1, left);
    if (r < 0) {
      res->end = TRACE_CANCELED;
      snprintf(res->reason, sizeof(res->reason), "cancelled");
      return r;
    }
    if (r > 0 && p.revents != 0) {
      r = session_read(s);
      if (r < 0) {
        int f = file_trouble(run, res);
        return f != 0 ? f : stream_end(s, r, 0, res);
      }
    }
  }
}

/* Phases 3 and 4: StopTracing while the stream is read to its end. */
static int finish(struct session *s, const struct ipc_endpoint *ep,
                  const struct trace_config *c, struct run *run,
                  struct trace_result *res) {
  struct ipc_error err = {0};
  struct ipc_call *call = NULL;
  int stop_rc = ipc_stop_begin(&call, ep, session_id(s), c->timeout_ms,
                               STOP_CONNECT_MS, &err);
  int64_t until = clock_mono_ms() + c->timeout_ms;
  int rc;
  for (;;) {
    rc = file_trouble(run, res);
    if (rc != 0)
      break;
    int64_t left = until - clock_mono_ms();
    if (left <= 0) {
      res->end = TRACE_TIMEDOUT;
      if (stop_rc < 0 && stop_rc != -EINPROGRESS)
        snprintf(res->reason, sizeof(res->reason), "StopTracing: %s",
                 err.message);
      else
        snprintf(res->reason, sizeof(res->reason),
                 "the trace's end did not come within %d ms of StopTracing",
                 c->timeout_ms);
      rc = -ETIMEDOUT;
      break;
    }
    if (call != NULL && ipc_call_deadline(call) < left + clock_mono_ms())
      left = ipc_call_deadline(call) - clock_mono_ms();
    struct pollfd p[2] = {{.fd = session_fd(s)}, {.fd = ipc_call_fd(call)}};
    int r = wait_fds(p, 2, left);
    if (r < 0) {
      res->end = TRACE_CANCELED;
      snprintf(res->reason, sizeof(res->reason), "cancelled");
      rc = r;
      break;
    }
    if (call != NULL &&
        (p[1].revents != 0 || clock_mono_ms() >= ipc_call_deadline(call))) {
      stop_rc = ipc_call_step(call, &err);
      if (stop_rc != -EINPROGRESS)
        ipc_call_close(&call);
    }
    if (p[0].revents != 0) {
      r = session_read(s);
      if (r < 0) {
        rc = file_trouble(run, res);
        if (rc == 0)
          rc = stream_end(s, r, 1, res);
        if (rc != 0 && stop_rc < 0 && stop_rc != -EINPROGRESS) {
          size_t l = strlen(res->reason);
          snprintf(res->reason + l, sizeof(res->reason) - l,
                   "%sStopTracing: %s", l ? "; " : "", err.message);
        }
        break;
      }
    }
  }
  ipc_call_close(&call);
  ipc_sanitize(res->reason);
  return rc;
}

int trace_run(const struct ipc_endpoint *ep, const struct trace_config *cfg,
              int out_fd, struct trace_result *res) {
  int64_t t0 = clock_mono_ms();
  memset(res, 0, sizeof(*res));
  struct trace_config c = *cfg;
  if (!(c.duration_s > 0))
    c.duration_s = TRACE_DEFAULT_DURATION_S;
  if (c.duration_s > MAX_DURATION_S)
    c.duration_s = MAX_DURATION_S;
  if (c.max_bytes == 0)
    c.max_bytes = TRACE_DEFAULT_MAX_BYTES;
  if (c.timeout_ms <= 0)
    c.timeout_ms = TRACE_DEFAULT_TIMEOUT_MS;
  if (c.buffer_mb == 0)
    c.buffer_mb = TRACE_DEFAULT_BUFFER_MB;
  if (c.nproviders > TRACE_MAX_PROVIDERS)
    c.nproviders = TRACE_MAX_PROVIDERS;

  struct session_config sc = {.buffer_mb = c.buffer_mb,
                              .rundown = 1,
                              .timeout_ms = c.timeout_ms,
                              .limits = {.max_metas = TRACE_MAX_METAS,
                                         .max_metadata = TRACE_MAX_METADATA}};
  if (c.nproviders == 0) {
    sc.events[0] =
        (struct ipc_provider){.name = TRACE_SAMPLE_PROVIDER, .level = 4};
    sc.events[1] = (struct ipc_provider){.name = TRACE_RUNTIME_PROVIDER,
                                         .keywords = TRACE_RUNTIME_KEYWORDS,
                                         .level = 4};
    sc.nevents = 2;
  }
  for (size_t i = 0; i < c.nproviders; i++)
    sc.events[sc.nevents++] =
        (struct ipc_provider){.name = c.providers[i].name,
                              .keywords = c.providers[i].keywords,
                              .level = c.providers[i].level};
  struct run run = {.fd = out_fd,
                    .max_bytes = c.max_bytes,
                    .stop_at = trace_stop_at(c.max_bytes)};
  int rc;
  struct session *s = session_new(ep, &sc, NULL, NULL);
  if (s == NULL) {
    res->end = TRACE_FAILED;
    snprintf(res->reason, sizeof(res->reason), "out of memory");
    rc = -ENOMEM;
    goto out;
  }
  session_set_tap(s, tap, &run);
  session_set_events(s, count, &run);
  struct ipc_error err = {0};
  rc = session_start(s, &err);
  if (rc < 0) {
    res->end = rc == -ECANCELED ? TRACE_CANCELED : TRACE_FAILED;
    snprintf(res->reason, sizeof(res->reason), "cannot start the session: %s",
             err.message[0] ? err.message : strerror(-rc));
    ipc_sanitize(res->reason);
    goto out;
  }
  int64_t until = clock_mono_ms() + (int64_t)(c.duration_s * 1000);
  rc = record(s, &c, &run, until, res);
  if (rc == 1)
    rc = finish(s, ep, &c, &run, res);
out:
  session_free(s); /* closes the stream: the runtime ends the session */
  res->bytes = run.written;
  res->events = run.events;
  res->samples = run.samples;
  res->seconds = (double)(clock_mono_ms() - t0) / 1000.0;
  return rc;
}
