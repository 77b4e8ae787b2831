/**
 * collectd-dotnet - plugin/triggerdump.c
 *
 * The command line face of the library:
 *   triggerdump ps
 *   triggerdump monitor <pid> [--interval SEC] [--providers A,B] [--meters M,N]
 *                             [--format text|csv|json] [--duration SEC]
 *   triggerdump record <pid> -o FILE [--duration SEC] [...monitor options]
 *   triggerdump stats FILE.nettrace   (events per provider, samples per
 *                                      counter; non-zero if truncated)
 *   triggerdump dump <pid> [-o DIR] [--type heap] [--method ipc|exec]
 *   triggerdump <pid> <threshold-MB> [-o DIR] [--type heap] [--method ipc|exec]
 *                                   [--interval SEC]
 */
#include "counters.h"
#include "dump.h"
#include "ipc.h"
#include "nettrace.h"
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define IPC_TIMEOUT_MS 3000

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static const char usage_text[] =
    "Usage:\n"
    "  triggerdump <pid> <threshold-MB> [-o DIR]\n"
    "              [--type mini|heap|triage|full] [--method ipc|exec]\n"
    "              [--interval SEC]\n"
    "      Wait until the GC heap of <pid> exceeds <threshold-MB> MB, write a\n"
    "      core dump into DIR (default: .) and exit 0 (1 when interrupted).\n"
    "  triggerdump ps\n"
    "      List the .NET processes on this host.\n"
    "  triggerdump monitor <pid> [--interval SEC] [--providers A,B]\n"
    "              [--meters M,N] [--format text|csv|json] [--duration SEC]\n"
    "      Print counters as they arrive, until interrupted.\n"
    "  triggerdump record <pid> -o FILE [--duration SEC] [monitor options]\n"
    "      Save the raw nettrace stream of a counters session to FILE.\n"
    "  triggerdump stats FILE.nettrace\n"
    "      Read a nettrace file; print events per provider and event, and\n"
    "      samples per counter.\n"
    "  triggerdump dump <pid> [-o DIR] [--type mini|heap|triage|full]\n"
    "              [--method ipc|exec]\n"
    "      Write a core dump now (default type: heap).\n"
    "Each command takes --help.\n";

static void usage(FILE *out) { fputs(usage_text, out); }

struct opts {
  double interval;
  const char *providers;
  const char *meters;
  const char *format;
  double duration;
  const char *output;
  enum ipc_dump_type type;
  enum dump_method method;
};

static int parse_pid(const char *s, pid_t *pid) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || v <= 0 || v > 4194304)
    return -1;
  *pid = (pid_t)v;
  return 0;
}

/* Parses options from argv[i..]; returns the index of the first
 * non-option, or -1 after printing an error. */
static int parse_opts(int argc, char **argv, int i, struct opts *o) {
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || strcmp(a, "-") == 0)
      return i;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      exit(0);
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "triggerdump: %s needs a value\n", a);
      return -1;
    }
    const char *v = argv[++i];
    char *end;
    if (strcmp(a, "--interval") == 0) {
      o->interval = strtod(v, &end);
      if (*end || !(o->interval > 0 && o->interval <= 86400)) {
        fprintf(stderr,
                "triggerdump: --interval takes seconds (> 0), not '%s'\n", v);
        return -1;
      }
    } else if (strcmp(a, "--duration") == 0) {
      o->duration = strtod(v, &end);
      if (*end || !(o->duration > 0)) {
        fprintf(stderr,
                "triggerdump: --duration takes seconds (> 0), not '%s'\n", v);
        return -1;
      }
    } else if (strcmp(a, "--providers") == 0) {
      o->providers = v;
    } else if (strcmp(a, "--meters") == 0) {
      o->meters = v;
    } else if (strcmp(a, "--format") == 0) {
      if (strcmp(v, "text") && strcmp(v, "csv") && strcmp(v, "json")) {
        fprintf(stderr,
                "triggerdump: --format is text, csv or json, not '%s'\n", v);
        return -1;
      }
      o->format = v;
    } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
      o->output = v;
    } else if (strcmp(a, "--type") == 0) {
      if (dump_type_parse(v, &o->type) != 0) {
        fprintf(stderr,
                "triggerdump: --type is mini, heap, triage or full, not '%s'\n",
                v);
        return -1;
      }
    } else if (strcmp(a, "--method") == 0) {
      if (strcmp(v, "ipc") == 0)
        o->method = DUMP_METHOD_IPC;
      else if (strcmp(v, "exec") == 0)
        o->method = DUMP_METHOD_EXEC;
      else {
        fprintf(stderr, "triggerdump: --method is ipc or exec, not '%s'\n", v);
        return -1;
      }
    } else {
      fprintf(stderr, "triggerdump: unknown option %s (see --help)\n", a);
      return -1;
    }
  }
  return i;
}

/* Splits a comma list into list[max] (modifies s). */
static size_t split_list(char *s, const char **list, size_t max) {
  size_t n = 0;
  for (char *tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ","))
    if (*tok)
      list[n++] = tok;
  return n;
}

static int find_target(pid_t pid, struct ipc_endpoint *ep) {
  int r = ipc_endpoint_find(pid, ep);
  if (r == -ESRCH)
    fprintf(stderr, "triggerdump: no process with pid %d\n", (int)pid);
  else if (r == -ENOENT)
    fprintf(stderr,
            "triggerdump: pid %d has no .NET diagnostic socket: it is not a "
            ".NET process, or it runs with DOTNET_EnableDiagnostics=0\n",
            (int)pid);
  else if (r == -EACCES || r == -EPERM)
    fprintf(stderr,
            "triggerdump: no permission to inspect pid %d (run as its user or "
            "as root)\n",
            (int)pid);
  else if (r < 0)
    fprintf(stderr, "triggerdump: pid %d: %s\n", (int)pid, strerror(-r));
  return r;
}

/* ---- ps ---- */

/* Everything ps and monitor print of a process or its runtime goes
 * through ipc_sanitize (the IPC layer already cleans what it parses; this
 * keeps the terminal safe whatever the source): no control character or
 * broken UTF-8 reaches it. */
static const char *term_safe(const char *s, char *buf, size_t cap) {
  snprintf(buf, cap, "%s", s);
  ipc_sanitize(buf);
  return buf;
}

static int ps_one(void *ctx, const struct ipc_endpoint *ep) {
  (void)ctx;
  struct ipc_process_info info;
  struct ipc_error err = {0};
  if (ipc_process_info(ep, 1000, &info, &err) != 0) {
    ipc_sanitize(err.message);
    printf("%8d  %-12s  %-24s  (no answer: %s)\n", (int)ep->pid, "?", "?",
           err.message);
    return 0;
  }
  ipc_sanitize(info.runtime_version);
  ipc_sanitize(info.entry_assembly);
  ipc_sanitize(info.command_line);
  printf("%8d  %-12s  %-24s  %s\n", (int)ep->pid,
         info.runtime_version[0] ? info.runtime_version : "?",
         info.entry_assembly[0] ? info.entry_assembly : "?", info.command_line);
  return 0;
}

static int cmd_ps(int argc, char **argv) {
  struct opts o = {0};
  int i = parse_opts(argc, argv, 2, &o);
  if (i < 0)
    return 2;
  if (i != argc) {
    fprintf(stderr, "triggerdump: unexpected argument '%s'\n", argv[i]);
    return 2;
  }
  printf("%8s  %-12s  %-24s  %s\n", "PID", "RUNTIME", "ENTRY ASSEMBLY",
         "COMMAND");
  int r = ipc_endpoint_list(ps_one, NULL);
  if (r < 0) {
    fprintf(stderr, "triggerdump: cannot list processes: %s\n", strerror(-r));
    return 1;
  }
  return 0;
}

/* ---- monitor / threshold ---- */

struct printer {
  const char *format;
  pid_t pid;
  /* threshold mode */
  double threshold_mb;
  int breached;
  double breach_value;
};

static void iso_time(int64_t ms, char *out, size_t cap) {
  if (ms <= 0)
    ms = ipc_wall_ms();
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  char base[32];
  strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, cap, "%s.%03dZ", base, (int)(ms % 1000));
}

static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(f, "\\%c", *p);
    else if (*p < 0x20)
      fprintf(f, "\\u%04x", *p);
    else
      fputc(*p, f);
  }
  fputc('"', f);
}

static void csv_str(FILE *f, const char *s) {
  if (strpbrk(s, ",\"\n") == NULL) {
    fputs(s, f);
    return;
  }
  fputc('"', f);
  for (const char *p = s; *p; p++) {
    if (*p == '"')
      fputc('"', f);
    fputc(*p, f);
  }
  fputc('"', f);
}

static void json_num(FILE *f, const char *key, double v) {
  if (isfinite(v))
    fprintf(f, ",\"%s\":%.17g", key, v);
  else
    fprintf(f, ",\"%s\":null", key);
}

/* One row. JSON rows of mean counters (EventCounter, PollingCounter) also
 * carry the interval's "min", "max" and "count"; histogram rows "count" and
 * "sum" (null where the runtime did not say). */
static void print_row(const struct printer *p, const char *when,
                      const struct counters_sample *s, const char *counter_,
                      double value) {
  if (strcmp(p->format, "none") == 0)
    return;
  /* names and units are the runtime's (or the process's) to choose */
  char pbuf[512], cbuf[1024], ubuf[256];
  const char *provider = term_safe(s->provider, pbuf, sizeof(pbuf));
  const char *counter = term_safe(counter_, cbuf, sizeof(cbuf));
  const char *unit = term_safe(s->units, ubuf, sizeof(ubuf));
  if (strcmp(p->format, "csv") == 0) {
    printf("%s,%d,", when, (int)p->pid);
    csv_str(stdout, provider);
    putchar(',');
    csv_str(stdout, counter);
    printf(",%.17g,", value);
    csv_str(stdout, unit);
    putchar('\n');
  } else if (strcmp(p->format, "json") == 0) {
    printf("{\"time\":\"%s\",\"pid\":%d,\"provider\":", when, (int)p->pid);
    json_str(stdout, provider);
    printf(",\"counter\":");
    json_str(stdout, counter);
    json_num(stdout, "value", value);
    printf(",\"unit\":");
    json_str(stdout, unit);
    if (s->kind == COUNTERS_MEAN) {
      json_num(stdout, "min", s->min);
      json_num(stdout, "max", s->max);
      json_num(stdout, "count", s->count);
    } else if (s->kind == COUNTERS_HISTOGRAM) {
      json_num(stdout, "count", s->count);
      json_num(stdout, "sum", s->sum);
    }
    printf("}\n");
  } else {
    printf("%s  %-28s %-40s %16.6g %s\n", when, provider, counter, value, unit);
  }
}

/* The name a sample is printed under: "name", "name[k=v,k=v]" with the
 * meter tags, and for quantile q of a histogram "name[k=v,p50]". */
static void counter_label(const struct counters_sample *s, int q, char *out,
                          size_t cap) {
  const char *tags = s->tags;
  if (q >= 0)
    snprintf(out, cap, "%s[%s%sp%g]", s->name, tags, tags[0] ? "," : "",
             s->quantile[q] * 100);
  else if (tags[0])
    snprintf(out, cap, "%s[%s]", s->name, tags);
  else
    snprintf(out, cap, "%s", s->name);
}

static void on_sample(void *ctx, const struct counters_sample *s,
                      int64_t time_ms) {
  struct printer *p = ctx;
  if (p->threshold_mb > 0) {
    if (strcmp(s->provider, "System.Runtime") == 0 &&
        strcmp(s->name, "gc-heap-size") == 0) {
      /* EventCounters report MB; the System.Runtime meter (.NET 9+)
       * reports bytes as "By". */
      double mb = strcmp(s->units, "By") == 0 ? s->value / 1e6 : s->value;
      char when[40];
      iso_time(time_ms, when, sizeof(when));
      fprintf(stderr, "%s  gc-heap-size %.1f MB (threshold %.1f MB)\n", when,
              mb, p->threshold_mb);
      if (mb > p->threshold_mb && !p->breached) {
        p->breached = 1;
        p->breach_value = mb;
      }
    }
    return;
  }
  if (strcmp(p->format, "none") == 0)
    return;
  char when[40], counter[512];
  iso_time(time_ms, when, sizeof(when));
  if (s->kind == COUNTERS_HISTOGRAM) {
    for (uint32_t i = 0; i < s->nquantiles; i++) {
      counter_label(s, (int)i, counter, sizeof(counter));
      print_row(p, when, s, counter, s->quantile_value[i]);
    }
    return;
  }
  counter_label(s, -1, counter, sizeof(counter));
  print_row(p, when, s, counter, s->value);
}

struct recorder {
  int fd;
  int failed;
};

static void on_raw(void *ctx, const uint8_t *buf, size_t len) {
  struct recorder *rec = ctx;
  while (len > 0 && !rec->failed) {
    ssize_t n = write(rec->fd, buf, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      rec->failed = errno;
      break;
    }
    buf += n;
    len -= (size_t)n;
  }
}

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs one session until interrupted, the duration ends, the stream ends,
 * or (threshold mode) the threshold is crossed. */
static int run_session(pid_t pid, struct opts *o, struct printer *p,
                       struct recorder *rec, struct ipc_endpoint *ep_out) {
  struct ipc_endpoint ep;
  if (find_target(pid, &ep) < 0)
    return 1;
  if (ep_out)
    *ep_out = ep;
  struct session_config cfg = {.interval_sec =
                                   o->interval > 0 ? o->interval : 1,
                               .timeout_ms = IPC_TIMEOUT_MS};
  char provbuf[4096], meterbuf[4096];
  if (o->providers) {
    snprintf(provbuf, sizeof(provbuf), "%s", o->providers);
    cfg.nproviders = split_list(provbuf, cfg.providers, SESSION_MAX_PROVIDERS);
  }
  if (o->meters) {
    snprintf(meterbuf, sizeof(meterbuf), "%s", o->meters);
    cfg.nmeters = split_list(meterbuf, cfg.meters, SESSION_MAX_METERS);
  }
  struct session *s = session_new(&ep, &cfg, on_sample, p);
  if (s == NULL) {
    fprintf(stderr, "triggerdump: out of memory\n");
    return 1;
  }
  if (rec)
    session_set_tap(s, on_raw, rec);
  struct ipc_error err = {0};
  int r = session_start(s, &err);
  if (r < 0) {
    fprintf(stderr, "triggerdump: cannot start a trace session in pid %d: %s\n",
            (int)pid, err.message[0] ? err.message : strerror(-r));
    session_free(s);
    return 1;
  }
  if (p->threshold_mb > 0)
    fprintf(stderr,
            "triggerdump: watching pid %d until its GC heap exceeds %g MB\n",
            (int)pid, p->threshold_mb);
  else if (strcmp(p->format, "csv") == 0)
    printf("time,pid,provider,counter,value,unit\n");
  char ebuf[512]; /* a session error, made safe to print */
  double end = o->duration > 0 ? mono_now() + o->duration : 0;
  int rc = 0;
  while (!stop_requested && !p->breached) {
    int timeout = 500;
    if (end > 0) {
      double left = end - mono_now();
      if (left <= 0)
        break;
      if (left * 1000 < timeout)
        timeout = (int)(left * 1000) + 1;
    }
    struct pollfd pfd = {.fd = session_fd(s), .events = POLLIN};
    int pr = poll(&pfd, 1, timeout);
    if (pr < 0 && errno != EINTR) {
      perror("poll");
      rc = 1;
      break;
    }
    if (pr <= 0)
      continue;
    r = session_read(s);
    if (r == -EPIPE) {
      fprintf(stderr, "triggerdump: pid %d: %s\n", (int)pid,
              term_safe(session_error(s), ebuf, sizeof(ebuf)));
      rc = 1;
      break;
    }
    if (r < 0) {
      fprintf(stderr, "triggerdump: pid %d: %s\n", (int)pid,
              term_safe(session_error(s), ebuf, sizeof(ebuf)));
      rc = 1;
      break;
    }
  }
  if (session_fd(s) >= 0) {
    r = session_stop(s, IPC_TIMEOUT_MS);
    if (r < 0 && r != -ESRCH)
      fprintf(stderr, "triggerdump: stopping the session in pid %d: %s\n",
              (int)pid, term_safe(session_error(s), ebuf, sizeof(ebuf)));
    else if (r == 0)
      fprintf(stderr,
              "triggerdump: stopped trace session %" PRIu64 " in pid %d "
              "(%" PRIu64 " events, %" PRIu64 " bytes)\n",
              session_id(s), (int)pid, session_stats(s)->events,
              session_stats(s)->bytes);
  }
  session_free(s);
  return rc;
}

static void install_signals(void) {
  struct sigaction sa = {.sa_handler = on_signal};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

static int cmd_monitor(int argc, char **argv) {
  struct opts o = {.format = "text"};
  pid_t pid;
  int i = parse_opts(argc, argv, 2, &o);
  if (i < 0)
    return 2;
  if (i >= argc || parse_pid(argv[i], &pid) != 0) {
    fprintf(stderr, "triggerdump: monitor needs a pid (see triggerdump ps)\n");
    return 2;
  }
  int j = parse_opts(argc, argv, i + 1, &o);
  if (j < 0)
    return 2;
  if (j != argc) {
    fprintf(stderr, "triggerdump: unexpected argument '%s'\n", argv[j]);
    return 2;
  }
  struct printer p = {.format = o.format, .pid = pid};
  install_signals();
  return run_session(pid, &o, &p, NULL, NULL);
}

static int cmd_record(int argc, char **argv) {
  struct opts o = {.format = "text"};
  pid_t pid;
  int i = parse_opts(argc, argv, 2, &o);
  if (i < 0)
    return 2;
  if (i >= argc || parse_pid(argv[i], &pid) != 0) {
    fprintf(stderr, "triggerdump: record needs a pid\n");
    return 2;
  }
  int j = parse_opts(argc, argv, i + 1, &o);
  if (j < 0)
    return 2;
  if (j != argc) {
    fprintf(stderr, "triggerdump: unexpected argument '%s'\n", argv[j]);
    return 2;
  }
  if (o.output == NULL) {
    fprintf(stderr, "triggerdump: record needs -o FILE\n");
    return 2;
  }
  struct recorder rec = {
      .fd = open(o.output,
                 O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644)};
  if (rec.fd < 0) {
    fprintf(stderr, "triggerdump: cannot create %s: %s\n", o.output,
            strerror(errno));
    return 1;
  }
  struct printer p = {.format = "none", .pid = pid};
  install_signals();
  int rc = run_session(pid, &o, &p, &rec, NULL);
  if (close(rec.fd) != 0 || rec.failed) {
    fprintf(stderr, "triggerdump: writing %s failed: %s\n", o.output,
            strerror(rec.failed ? rec.failed : errno));
    rc = 1;
  }
  return rc;
}

/* ---- stats ---- */

struct stat_row {
  char provider[128];
  char event[128];
  uint32_t id;
  uint64_t count;
};

/* Samples per counter (as `monitor` names them, provider + label). */
struct sample_row {
  char provider[128];
  char label[256];
  uint64_t count;
  double last;
};

struct stats_ctx {
  struct stat_row *rows;
  size_t n, cap;
  struct sample_row *samples;
  size_t ns, scap;
  uint64_t counter_samples;
  uint64_t bad_samples;
  char scratch[8192];
};

#define STATS_MAX_ROWS 100000

/* Room for row n of an array of elem-byte rows: returns the array (moved
 * or not), or NULL at the cap or out of memory (rows is then untouched, and
 * the row is not counted separately). */
static void *grow(void *rows, size_t *cap, size_t n, size_t elem) {
  if (n < *cap)
    return rows;
  size_t ncap = *cap ? *cap * 2 : 64;
  if (ncap > STATS_MAX_ROWS)
    return NULL;
  void *nr = realloc(rows, ncap * elem);
  if (nr != NULL)
    *cap = ncap;
  return nr;
}

static void stats_sample(struct stats_ctx *c, const char *provider,
                         const char *label, double value) {
  for (size_t i = 0; i < c->ns; i++) {
    if (strcmp(c->samples[i].label, label) == 0 &&
        strcmp(c->samples[i].provider, provider) == 0) {
      c->samples[i].count++;
      c->samples[i].last = value;
      return;
    }
  }
  struct sample_row *rows = grow(c->samples, &c->scap, c->ns, sizeof(*rows));
  if (rows == NULL)
    return;
  c->samples = rows;
  struct sample_row *r = &c->samples[c->ns++];
  snprintf(r->provider, sizeof(r->provider), "%s", provider);
  snprintf(r->label, sizeof(r->label), "%s", label);
  r->count = 1;
  r->last = value;
}

static void stats_event(void *ctx, const struct nettrace_event *ev) {
  struct stats_ctx *c = ctx;
  const struct nettrace_meta *m = ev->meta;
  struct counters_sample smp;
  int d = counters_decode(ev, &smp, c->scratch, sizeof(c->scratch));
  if (d == 1) {
    char label[256];
    c->counter_samples++;
    if (smp.kind == COUNTERS_HISTOGRAM) {
      for (uint32_t q = 0; q < smp.nquantiles; q++) {
        counter_label(&smp, (int)q, label, sizeof(label));
        stats_sample(c, smp.provider, label, smp.quantile_value[q]);
      }
    } else {
      counter_label(&smp, -1, label, sizeof(label));
      stats_sample(c, smp.provider, label, smp.value);
    }
  } else if (d < 0) {
    c->bad_samples++;
  }
  for (size_t i = 0; i < c->n; i++) {
    if (c->rows[i].id == m->event_id &&
        strcmp(c->rows[i].provider, m->provider) == 0 &&
        strcmp(c->rows[i].event, m->event_name) == 0) {
      c->rows[i].count++;
      return;
    }
  }
  struct stat_row *rows = grow(c->rows, &c->cap, c->n, sizeof(*rows));
  if (rows == NULL)
    return;
  c->rows = rows;
  struct stat_row *r = &c->rows[c->n++];
  snprintf(r->provider, sizeof(r->provider), "%s", m->provider);
  snprintf(r->event, sizeof(r->event), "%s", m->event_name);
  r->id = m->event_id;
  r->count = 1;
}

static int sample_cmp(const void *a, const void *b) {
  const struct sample_row *x = a, *y = b;
  int c = strcmp(x->provider, y->provider);
  return c ? c : strcmp(x->label, y->label);
}

static int row_cmp(const void *a, const void *b) {
  const struct stat_row *x = a, *y = b;
  int c = strcmp(x->provider, y->provider);
  if (c)
    return c;
  return x->id < y->id ? -1 : x->id > y->id ? 1 : strcmp(x->event, y->event);
}

static int cmd_stats(int argc, char **argv) {
  if (argc != 3 || argv[2][0] == '-') {
    if (argc == 3 && strcmp(argv[2], "--help") == 0) {
      usage(stdout);
      return 0;
    }
    fprintf(stderr, "triggerdump: stats takes one nettrace file\n");
    return 2;
  }
  int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    fprintf(stderr, "triggerdump: cannot open %s: %s\n", argv[2],
            strerror(errno));
    return 1;
  }
  struct stats_ctx *c = calloc(1, sizeof(*c));
  struct nettrace_reader *r = nettrace_reader_new(NULL, stats_event, c);
  if (c == NULL || r == NULL) {
    fprintf(stderr, "triggerdump: out of memory\n");
    close(fd);
    free(c);
    nettrace_reader_free(r);
    return 1;
  }
  uint8_t buf[65536];
  int rc = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      fprintf(stderr, "triggerdump: reading %s: %s\n", argv[2],
              strerror(errno));
      rc = 1;
      break;
    }
    if (n == 0)
      break;
    if (nettrace_reader_feed(r, buf, (size_t)n) < 0)
      break;
  }
  close(fd);
  int fr = nettrace_reader_finish(r);
  if (c->n > 0) /* rows is NULL until the first event */
    qsort(c->rows, c->n, sizeof(*c->rows), row_cmp);
  const struct nettrace_stats *st = nettrace_reader_stats(r);
  printf("%-48s %6s  %-40s %10s\n", "PROVIDER", "ID", "EVENT", "COUNT");
  const char *prev = "";
  uint64_t sum = 0;
  for (size_t i = 0; i < c->n; i++) {
    if (strcmp(prev, c->rows[i].provider) != 0 && sum > 0) {
      printf("%-48s %6s  %-40s %10" PRIu64 "\n", prev, "", "(all)", sum);
      sum = 0;
    }
    prev = c->rows[i].provider;
    sum += c->rows[i].count;
    printf("%-48s %6u  %-40s %10" PRIu64 "\n", c->rows[i].provider,
           c->rows[i].id, c->rows[i].event, c->rows[i].count);
  }
  if (sum > 0)
    printf("%-48s %6s  %-40s %10" PRIu64 "\n", prev, "", "(all)", sum);
  if (c->ns > 0) {
    qsort(c->samples, c->ns, sizeof(*c->samples), sample_cmp);
    printf("\n%-48s %-40s %10s  %s\n", "PROVIDER", "COUNTER", "SAMPLES",
           "LAST");
    for (size_t i = 0; i < c->ns; i++)
      printf("%-48s %-40s %10" PRIu64 "  %.17g\n", c->samples[i].provider,
             c->samples[i].label, c->samples[i].count, c->samples[i].last);
    printf("\n");
  }
  printf("events %" PRIu64 ", dropped %" PRIu64 ", counter samples %" PRIu64
         ", malformed counter events %" PRIu64 ", bytes %" PRIu64 "\n",
         st->events, st->dropped, c->counter_samples, c->bad_samples,
         st->bytes);
  if (fr < 0) {
    fprintf(stderr, "triggerdump: %s: %s at byte %" PRIu64 "\n", argv[2],
            fr == -ENODATA ? "truncated stream" : nettrace_reader_error(r),
            nettrace_reader_error_offset(r));
    rc = 1;
  }
  nettrace_reader_free(r);
  free(c->rows);
  free(c->samples);
  free(c);
  return rc;
}

/* ---- dumps ---- */

static int do_dump(const struct ipc_endpoint *ep, const struct opts *o) {
  struct dump_request req = {.ep = *ep,
                             .type = o->type ? o->type : IPC_DUMP_HEAP,
                             .method = o->method};
  struct ipc_process_info info;
  if (ipc_process_info(ep, IPC_TIMEOUT_MS, &info, NULL) == 0 &&
      info.entry_assembly[0])
    snprintf(req.instance, sizeof(req.instance), "%s", info.entry_assembly);
  const char *dir = o->output ? o->output : ".";
  if (realpath(dir, req.directory) == NULL)
    snprintf(req.directory, sizeof(req.directory), "%s", dir);
  struct dump_result res;
  fprintf(stderr, "triggerdump: writing a %s dump of pid %d into %s ...\n",
          dump_type_name(req.type), (int)ep->pid, req.directory);
  int r = dump_take(&req, &res);
  if (res.note[0])
    fprintf(stderr, "triggerdump: %s\n", res.note);
  if (r < 0) {
    fprintf(stderr, "triggerdump: dump of pid %d failed: %s\n", (int)ep->pid,
            res.reason);
    return 1;
  }
  printf("%s\n", res.path);
  fprintf(stderr, "triggerdump: wrote %s (%.1f MB) in %.2f s\n", res.path,
          (double)res.size / 1e6, res.seconds);
  return 0;
}

static int cmd_dump(int argc, char **argv) {
  struct opts o = {0};
  pid_t pid;
  int i = parse_opts(argc, argv, 2, &o);
  if (i < 0)
    return 2;
  if (i >= argc || parse_pid(argv[i], &pid) != 0) {
    fprintf(stderr, "triggerdump: dump needs a pid\n");
    return 2;
  }
  int j = parse_opts(argc, argv, i + 1, &o);
  if (j < 0)
    return 2;
  if (j != argc) {
    fprintf(stderr, "triggerdump: unexpected argument '%s'\n", argv[j]);
    return 2;
  }
  struct ipc_endpoint ep;
  if (find_target(pid, &ep) < 0)
    return 1;
  return do_dump(&ep, &o);
}

static int cmd_threshold(int argc, char **argv) {
  struct opts o = {0};
  pid_t pid;
  if (parse_pid(argv[1], &pid) != 0) {
    fprintf(stderr, "triggerdump: '%s' is not a pid\n", argv[1]);
    return 2;
  }
  char *end;
  double mb = argc > 2 ? strtod(argv[2], &end) : 0;
  if (argc < 3 || *end || !(mb > 0)) {
    fprintf(stderr, "triggerdump: the threshold must be a size in MB (> 0)\n");
    return 2;
  }
  int i = parse_opts(argc, argv, 3, &o);
  if (i < 0)
    return 2;
  if (i != argc) {
    fprintf(stderr, "triggerdump: unexpected argument '%s'\n", argv[i]);
    return 2;
  }
  struct printer p = {.format = "none", .pid = pid, .threshold_mb = mb};
  install_signals();
  struct ipc_endpoint ep;
  int rc = run_session(pid, &o, &p, NULL, &ep);
  if (!p.breached) {
    if (stop_requested)
      fprintf(stderr, "triggerdump: interrupted before the threshold was "
                      "crossed: no dump written\n");
    return rc ? rc : 1;
  }
  fprintf(stderr, "triggerdump: GC heap %.1f MB > %g MB\n", p.breach_value, mb);
  return do_dump(&ep, &o);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *c = argv[1];
  if (strcmp(c, "--help") == 0 || strcmp(c, "-h") == 0 ||
      strcmp(c, "help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(c, "ps") == 0)
    return cmd_ps(argc, argv);
  if (strcmp(c, "monitor") == 0)
    return cmd_monitor(argc, argv);
  if (strcmp(c, "record") == 0)
    return cmd_record(argc, argv);
  if (strcmp(c, "stats") == 0)
    return cmd_stats(argc, argv);
  if (strcmp(c, "dump") == 0)
    return cmd_dump(argc, argv);
  if (c[0] >= '0' && c[0] <= '9')
    return cmd_threshold(argc, argv);
  fprintf(stderr, "triggerdump: unknown command '%s'\n", c);
  usage(stderr);
  return 2;
}
