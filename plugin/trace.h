/**
 * collectd-dotnet - plugin/trace.h
 *
 * One trace of a .NET process: an EventPipe session of given providers
 * whose raw nettrace stream is written to a file as it comes, for a
 * duration, then stopped with StopTracing and read to its end (the
 * rundown that names the modules and methods the stacks point into), so
 * that the file is a whole .nettrace that TraceEvent, PerfView and
 * `dotnet-trace convert` read. For `triggerdump trace` and the plugin's
 * trace action. No output of its own: the result says what happened.
 *
 * Providers are written as dotnet-trace's --providers takes them:
 *   Name[:KEYWORDS[:LEVEL]][,Name...]
 * KEYWORDS in hex (0x optional; default 0), LEVEL 0-5 or its name
 * (logalways, critical, error, warning, informational, verbose; default
 * informational); no filter arguments. Without providers, the defaults:
 *   Microsoft-DotNETCore-SampleProfiler             CPU samples (~100 Hz
 *                                                   per thread, with stacks)
 *   Microsoft-Windows-DotNETRuntime:0x19:4          GC (0x1), and Loader
 *                                                   (0x8) and Jit (0x10) so
 *                                                   that methods compiled or
 *                                                   modules loaded during the
 *                                                   trace have names
 */
#ifndef TRACE_H
#define TRACE_H

#include "ipc.h"
#include "session.h"

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#define TRACE_MAX_PROVIDERS SESSION_MAX_EVENT_PROVIDERS
#define TRACE_NAME_MAX 128 /* a provider's name, its NUL included */
#define TRACE_DEFAULT_DURATION_S 5
#define TRACE_DEFAULT_MAX_BYTES (256ull << 20)
#define TRACE_DEFAULT_TIMEOUT_MS 10000
#define TRACE_DEFAULT_BUFFER_MB 64
#define TRACE_SAMPLE_PROVIDER "Microsoft-DotNETCore-SampleProfiler"
#define TRACE_RUNTIME_PROVIDER "Microsoft-Windows-DotNETRuntime"
#define TRACE_RUNTIME_KEYWORDS 0x19ull /* GC | Loader | Jit */

struct trace_provider {
  char name[TRACE_NAME_MAX];
  uint64_t keywords;
  uint32_t level; /* 0 LogAlways .. 5 Verbose */
};

/* Zeros are the defaults. A plain struct without pointers but stop_flag:
 * it may be copied. */
struct trace_config {
  double duration_s;  /* from the session's start to StopTracing; 0: 5 */
  uint64_t max_bytes; /* the file's size cap; 0: 256 MiB. Near it (see
                         trace_stop_at) the session is stopped early (the
                         result says it was cut), the rest left for what
                         the runtime still holds and the rundown; bytes
                         past the cap are dropped and the file is then not
                         whole. */
  int timeout_ms;     /* for the session's start, and again for its end
                         after StopTracing (the rundown); 0: 10000 */
  uint32_t buffer_mb; /* the runtime's buffer for the session; 0: 64 */
  size_t nproviders;  /* 0: the defaults above */
  struct trace_provider providers[TRACE_MAX_PROVIDERS];
  /* Optional (NULL: none): when it becomes non-zero the session is
   * stopped as when the duration ends, its end still read (the CLI's
   * SIGINT). The thread's cancel fd (ipc_set_cancel_fd) instead abandons
   * the trace at once. */
  const volatile sig_atomic_t *stop_flag;
};

/* How a trace ended. */
enum trace_end {
  TRACE_STOPPED,  /* stopped by us (duration, max_bytes, stop_flag), read
                     to its end-of-stream marker: the file is whole */
  TRACE_ENDED,    /* the runtime ended it cleanly before (another tool
                     stopped the session): the file is whole */
  TRACE_EXITED,   /* the stream ended without its end marker: the target
                     exited or cut it; the file holds what came */
  TRACE_TIMEDOUT, /* its end did not come within timeout_ms of StopTracing */
  TRACE_TOO_BIG,  /* the end did not fit under max_bytes: the file is cut */
  TRACE_CANCELED, /* the thread's cancel fd */
  TRACE_FAILED,   /* no session (see reason), the file could not be
                     written, or the stream was malformed */
};

struct trace_result {
  uint64_t bytes;   /* written to the file */
  uint64_t events;  /* events in the stream, rundown included */
  uint64_t samples; /* of them, CPU samples (SampleProfiler) */
  double seconds;   /* the whole run, start to end */
  enum trace_end end;
  int cut;          /* stopped early near max_bytes */
  char reason[256]; /* "" for a whole trace stopped as asked; else why
                       (UTF-8, from ipc_sanitize where the peer spoke) */
};

/* Traces ep into out_fd (a regular file or another blocking fd, written
 * from its current offset; not closed, not synced), blocking for about the
 * duration plus the end. The thread's cancel fd (ipc_set_cancel_fd) is in
 * every wait: it ends the run at once; stop_flag is looked at every 250 ms
 * at most. Returns 0 when the file is a whole trace (TRACE_STOPPED,
 * TRACE_ENDED; res->cut says whether max_bytes stopped it early), else a
 * negative errno: -ENODATA (TRACE_EXITED), -ETIMEDOUT, -EFBIG, -ECANCELED,
 * or the start's, the write's or the reader's error (TRACE_FAILED); res
 * says more in any case. */
int trace_run(const struct ipc_endpoint *ep, const struct trace_config *cfg,
              int out_fd, struct trace_result *res);

/* Parses a provider list (see the top of this file) into cfg->providers
 * and cfg->nproviders (the rest of cfg untouched); a provider named twice
 * is enabled once, with both keywords and the more verbose level, as
 * dotnet-trace does. 0, or -EINVAL with err[errcap] saying what is wrong
 * and where (cfg->nproviders is then 0). */
int trace_providers_parse(const char *spec, struct trace_config *cfg, char *err,
                          size_t errcap);

/* Where a trace capped at max_bytes is stopped: its room for the end is
 * a quarter of the cap, but at least 4 MiB or half the cap if that is
 * less (192 MiB of 256, 4 of 8, 512 KiB of 1). */
uint64_t trace_stop_at(uint64_t max_bytes);

/* A name for an end, for messages: "stopped", "ended by the runtime",
 * "cut short", "timed out", "too big", "cancelled", "failed". */
const char *trace_end_name(enum trace_end end);

#endif /* TRACE_H */
