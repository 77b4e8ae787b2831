/**
 * collectd-dotnet - plugin/session.h
 *
 * One EventPipe session to one .NET process: starts it over IPC, reads the
 * nettrace stream without blocking, turns events into counter samples (or
 * hands them to another consumer, see session_set_events), and stops it.
 * It owns no thread: the caller polls session_fd() and calls session_read()
 * when it is readable (the CLI for one target, the plugin's session loop
 * for all of them).
 */
#ifndef SESSION_H
#define SESSION_H

#include "counters.h"
#include "ipc.h"
#include "nettrace.h"

#include <stddef.h>
#include <stdint.h>

#define SESSION_MAX_PROVIDERS 32
#define SESSION_MAX_METERS 32
#define SESSION_MAX_EVENT_PROVIDERS 8

struct session_config {
  double interval_sec;            /* EventCounterIntervalSec / RefreshInterval */
  const char *providers[SESSION_MAX_PROVIDERS]; /* EventCounters providers */
  size_t nproviders;              /* 0: "System.Runtime" alone */
  const char *meters[SESSION_MAX_METERS]; /* System.Diagnostics.Metrics meters */
  size_t nmeters;
  /* When nevents > 0: these providers, as given (names and filters are
   * copied), instead of the counters ones above; for session_set_events. */
  struct ipc_provider events[SESSION_MAX_EVENT_PROVIDERS];
  size_t nevents;
  uint32_t buffer_mb;             /* runtime-side buffer; 0: 8 MiB */
  int rundown;                    /* 1: rundown at the end (method names) */
  int lossless;                   /* 1: Block buffering where the runtime
                                     has it (ipc.h IPC_COLLECT_BLOCK) */
  struct nettrace_limits limits;  /* reader caps; zeros: defaults */
  int timeout_ms;                 /* for IPC commands; 0: 3000 */
};

/* Called for each sample; views valid during the call only. time_ms: unix
 * ms of the sample (from the event's timestamp). */
typedef void (*session_sample_cb)(void *ctx, const struct counters_sample *s,
                                  int64_t time_ms);

struct session;

/* Copies what it needs of cfg and ep. NULL on ENOMEM. */
struct session *session_new(const struct ipc_endpoint *ep,
                            const struct session_config *cfg,
                            session_sample_cb cb, void *ctx);
void session_free(struct session *s); /* closes the fd; accepts NULL */

/* Connects and starts tracing (blocking up to the IPC timeout). */
int session_start(struct session *s, struct ipc_error *err);

/* The same without waiting, for a caller that polls: session_begin sends
 * CollectTracing; then, whenever session_begin_fd() is readable or
 * session_begin_deadline() (clock_mono_ms) has passed, session_begin_step
 * reads what has come. Both return -EINPROGRESS until the runtime's answer
 * is in, then 0 (the stream is session_fd()) or a negative errno (error()
 * and err say why). */
int session_begin(struct session *s, struct ipc_error *err);
int session_begin_fd(const struct session *s);
int64_t session_begin_deadline(const struct session *s);
int session_begin_step(struct session *s, struct ipc_error *err);

/* The stream's fd (-1 when not started or ended). */
int session_fd(const struct session *s);

/* Reads what is available (one or a few non-blocking reads) and feeds it
 * to the reader. 0: go on; -EPIPE: the stream ended (process exited or the
 * session was stopped; error() says whether cleanly); other negative errno:
 * the session failed (error() says why). The fd is closed on any end. */
int session_read(struct session *s);

/* StopTracing on a second connection, then reads the rest of the stream
 * until its end or the deadline (ms), and closes. 0 only when the runtime
 * accepted the stop and the stream reached its end-of-stream marker;
 * -ENODATA when it ended without one, -ETIMEDOUT, or the IPC error. */
int session_stop(struct session *s, int timeout_ms);

/* Optional: every event goes to cb instead of the counters decoder (ti:
 * the stream's trace info); views valid during the call only. */
typedef void (*session_event_cb)(void *ctx, const struct nettrace_event *ev,
                                 const struct nettrace_trace_info *ti);
void session_set_events(struct session *s, session_event_cb cb, void *ctx);

/* Optional: called with every chunk of raw stream bytes before parsing
 * (e.g. to record the stream to a file). */
typedef void (*session_tap_cb)(void *ctx, const uint8_t *buf, size_t len);
void session_set_tap(struct session *s, session_tap_cb tap, void *ctx);

/* How the stream ended: 1 while it runs (or before it starts), 0 at its
 * end-of-stream marker, -ENODATA cut short, or the error that ended it. */
int session_stream_end(const struct session *s);

/* Why the session ended or failed ("" while it runs). */
const char *session_error(const struct session *s);
uint64_t session_id(const struct session *s);
const struct nettrace_stats *session_stats(const struct session *s);

#endif /* SESSION_H */
