/**
 * collectd-dotnet - plugin/triggerdump.c
 *
 * The command line face of the library, with dotnet-counters' habits
 * (getopt_long: --opt=value or --opt value, "--" ends the options; -p/-n
 * pick the process; --help per command; exit 2 for a usage error):
 *   triggerdump ps [--diagnostic-port PATH]
 *   triggerdump monitor [<pid> | -p PID | -n NAME] [--interval SEC]
 *                       [--diagnostic-port PATH]
 *                       [--providers A,B] [--meters M,N]
 *                       [--counters Provider[a,b],Other]
 *                       [--format text|csv|json] [--collectd-names]
 *                       [--duration SEC] [-o FILE]
 *   triggerdump record [<pid> | -p PID | -n NAME] -o FILE [--duration SEC]
 *                      [--interval SEC] [--providers A,B] [--meters M,N]
 *   triggerdump trace [<pid> | -p PID | -n NAME] -o FILE [--duration SEC]
 *                     [--providers Name[:KEYWORDS[:LEVEL]],...] [--timeout SEC]
 *                     [--max-size MB]
 *   triggerdump stats FILE.nettrace   (events per provider, samples per
 *                                      counter; non-zero if truncated)
 *   triggerdump dump [<pid> | -p PID | -n NAME] [-o FILE|DIR]
 *                    [--type heap] [--method ipc|exec]
 *   triggerdump heap-types [<pid> | -p PID | -n NAME] [--top N]
 *                    [--format text|csv|json] [--timeout SEC]
 *   triggerdump alloc-types [<pid> | -p PID | -n NAME] [--duration SEC]
 *                    [--top N] [--format text|csv|json] [--timeout SEC]
 *   triggerdump <pid> <threshold-MB> [-o FILE|DIR] [--type heap]
 *                    [--method ipc|exec] [--interval SEC] [--providers A,B]
 *                    [--actions alloc-types,heap-types,dump] [--top N]
 *                    [--format F] [--duration SEC] [--timeout SEC]
 *   triggerdump help [COMMAND], triggerdump --version
 */
#include "clock.h"
#include "dotnet_config.h"

#include "counters.h"
#include "discovery.h"
#include "dump.h"
#include "gctypes.h"
#include "ipc.h"
#include "listen.h"
#include "naming.h"
#include "nettrace.h"
#include "session.h"
#include "trace.h"
#include "typesrun.h"
#include "action.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define IPC_TIMEOUT_MS 3000

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static void install_signals(void) {
  struct sigaction sa = {.sa_handler = on_signal};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

/* ---- options ---- */

/* Every option of every command; each command takes the ones in its mask
 * (struct command) and refuses the others by name. */
enum opt_id {
  OPT_HELP,
  OPT_VERSION,
  OPT_PID,
  OPT_NAME,
  OPT_OUTPUT,
  OPT_INTERVAL,
  OPT_PROVIDERS,
  OPT_METERS,
  OPT_COUNTERS,
  OPT_FORMAT,
  OPT_COLLECTD_NAMES,
  OPT_DURATION,
  OPT_TYPE,
  OPT_METHOD,
  OPT_TOP,
  OPT_TIMEOUT,
  OPT_ACTIONS,
  OPT_MAX_SIZE,
  OPT_DIAGNOSTIC_PORT,
  OPT_COUNT
};
#define BIT(o) (1u << (o))
#define OPT_LONG_BASE 1000 /* getopt_long's val for OPT_x: base + x */

/* How an option is named in messages (the short form after a slash). */
static const char *const opt_names[OPT_COUNT] = {
    [OPT_HELP] = "--help/-h",
    [OPT_VERSION] = "--version",
    [OPT_PID] = "--process-id/-p",
    [OPT_NAME] = "--name/-n",
    [OPT_OUTPUT] = "--output/-o",
    [OPT_INTERVAL] = "--interval",
    [OPT_PROVIDERS] = "--providers",
    [OPT_METERS] = "--meters",
    [OPT_COUNTERS] = "--counters",
    [OPT_FORMAT] = "--format",
    [OPT_COLLECTD_NAMES] = "--collectd-names",
    [OPT_DURATION] = "--duration",
    [OPT_TYPE] = "--type",
    [OPT_METHOD] = "--method",
    [OPT_TOP] = "--top",
    [OPT_TIMEOUT] = "--timeout",
    [OPT_ACTIONS] = "--actions",
    [OPT_MAX_SIZE] = "--max-size",
    [OPT_DIAGNOSTIC_PORT] = "--diagnostic-port",
};

static const struct option long_opts[] = {
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_LONG_BASE + OPT_VERSION},
    {"top", required_argument, NULL, OPT_LONG_BASE + OPT_TOP},
    {"timeout", required_argument, NULL, OPT_LONG_BASE + OPT_TIMEOUT},
    {"actions", required_argument, NULL, OPT_LONG_BASE + OPT_ACTIONS},
    {"max-size", required_argument, NULL, OPT_LONG_BASE + OPT_MAX_SIZE},
    {"process-id", required_argument, NULL, 'p'},
    {"name", required_argument, NULL, 'n'},
    {"output", required_argument, NULL, 'o'},
    {"interval", required_argument, NULL, OPT_LONG_BASE + OPT_INTERVAL},
    {"refresh-interval", required_argument, NULL, OPT_LONG_BASE + OPT_INTERVAL},
    {"providers", required_argument, NULL, OPT_LONG_BASE + OPT_PROVIDERS},
    {"meters", required_argument, NULL, OPT_LONG_BASE + OPT_METERS},
    {"counters", required_argument, NULL, OPT_LONG_BASE + OPT_COUNTERS},
    {"format", required_argument, NULL, OPT_LONG_BASE + OPT_FORMAT},
    {"collectd-names", no_argument, NULL, OPT_LONG_BASE + OPT_COLLECTD_NAMES},
    {"duration", required_argument, NULL, OPT_LONG_BASE + OPT_DURATION},
    {"type", required_argument, NULL, OPT_LONG_BASE + OPT_TYPE},
    {"method", required_argument, NULL, OPT_LONG_BASE + OPT_METHOD},
    {"diagnostic-port", required_argument, NULL,
     OPT_LONG_BASE + OPT_DIAGNOSTIC_PORT},
    {NULL, 0, NULL, 0},
};
static const char short_opts[] = ":hp:n:o:";

#define COMMON_OPTS (BIT(OPT_HELP) | BIT(OPT_VERSION))
#define PICK_OPTS (BIT(OPT_PID) | BIT(OPT_NAME))
#define SESSION_OPTS (BIT(OPT_INTERVAL) | BIT(OPT_PROVIDERS) | BIT(OPT_METERS))
#define TYPES_OPTS                                                             \
  (COMMON_OPTS | PICK_OPTS | BIT(OPT_TOP) | BIT(OPT_FORMAT) | BIT(OPT_TIMEOUT))

/* heap-types and alloc-types */
#define TYPES_TOP_DEFAULT 20
#define HEAP_TIMEOUT_S 60 /* the induced GC and its walk, on a large heap */
#define ALLOC_DURATION_S 5

struct command {
  const char *name;
  unsigned opts;
  const char *help;
};

static const struct command commands[] = {
    {"ps", COMMON_OPTS | BIT(OPT_DIAGNOSTIC_PORT),
     "Usage: triggerdump ps [--diagnostic-port PATH]\n"
     "List the .NET processes on this host: pid, runtime version, entry\n"
     "assembly, command line.\n"
     "      --diagnostic-port PATH   instead, listen on the unix socket PATH\n"
     "                           and list the runtimes that connect to it\n"
     "                           within 3 seconds (started with\n"
     "                           DOTNET_DiagnosticPorts=PATH,connect); the\n"
     "                           pid is the one each runtime sees itself as\n"},
    {"monitor",
     COMMON_OPTS | PICK_OPTS | SESSION_OPTS | BIT(OPT_COUNTERS) |
         BIT(OPT_FORMAT) | BIT(OPT_COLLECTD_NAMES) | BIT(OPT_DURATION) |
         BIT(OPT_OUTPUT) | BIT(OPT_DIAGNOSTIC_PORT),
     "Usage: triggerdump monitor [<pid> | -p PID | -n NAME] [options]\n"
     "Print counters as they arrive, until interrupted or --duration ends.\n"
     "  -p, --process-id PID     the process (or give <pid> alone)\n"
     "  -n, --name NAME          the one .NET process whose entry assembly or\n"
     "                           process name is NAME\n"
     "      --diagnostic-port PATH   listen on the unix socket PATH for a\n"
     "                           runtime started with\n"
     "                           "
     "DOTNET_DiagnosticPorts=PATH,connect[,suspend]\n"
     "                           and watch the first that connects (with -p:\n"
     "                           the one that says it is PID; with -n: whose\n"
     "                           entry assembly is NAME); one that waits\n"
     "                           (suspend) is resumed once its session runs\n"
     "      --interval SEC       counter interval (default 1); also\n"
     "      --refresh-interval SEC\n"
     "      --providers A,B      EventCounters providers (default\n"
     "                           System.Runtime)\n"
     "      --meters M,N         System.Diagnostics.Metrics meters\n"
     "      --counters P[a,b],Q  show only these counters: provider P's a and\n"
     "                           b, all of Q (adds P and Q to --providers\n"
     "                           unless they are --meters)\n"
     "      --format text|csv|json   (default text)\n"
     "      --collectd-names     add the collectd type and type instance the\n"
     "                           dotnet plugin publishes each value under\n"
     "      --duration SEC       stop after SEC seconds\n"
     "  -o, --output FILE        write to FILE instead of stdout (- : "
     "stdout)\n"},
    {"record",
     COMMON_OPTS | PICK_OPTS | SESSION_OPTS | BIT(OPT_DURATION) |
         BIT(OPT_OUTPUT),
     "Usage: triggerdump record [<pid> | -p PID | -n NAME] -o FILE [options]\n"
     "Save the raw nettrace stream of a counters session to FILE.\n"
     "  -o, --output FILE        the file (required)\n"
     "  -p, --process-id PID, -n, --name NAME   as for monitor\n"
     "      --interval SEC, --refresh-interval SEC   (default 1)\n"
     "      --providers A,B, --meters M,N   as for monitor\n"
     "      --duration SEC       stop after SEC seconds\n"},
    {"trace",
     COMMON_OPTS | PICK_OPTS | BIT(OPT_OUTPUT) | BIT(OPT_DURATION) |
         BIT(OPT_PROVIDERS) | BIT(OPT_TIMEOUT) | BIT(OPT_MAX_SIZE),
     "Usage: triggerdump trace [<pid> | -p PID | -n NAME] -o FILE [options]\n"
     "Trace the process for a while into FILE, a .nettrace file that\n"
     "PerfView, TraceEvent and dotnet-trace convert read: CPU samples and GC\n"
     "events by default, the methods named by the runtime's rundown at the\n"
     "end. Exit 3 when the file is incomplete (it says why).\n"
     "  -o, --output FILE        the file, created (never replaced), 0600\n"
     "  -p, --process-id PID, -n, --name NAME   as for monitor\n"
     "      --duration SEC       how long to trace (default 5)\n"
     "      --providers Name[:KEYWORDS[:LEVEL]],...   instead of the\n"
     "                           defaults, as dotnet-trace takes them:\n"
     "                           KEYWORDS hex, LEVEL 0-5 (default 0 and 4)\n"
     "      --timeout SEC        for the session's start, and again for its\n"
     "                           end after the stop (default 10)\n"
     "      --max-size MB        the file's cap (1-65536, default 256); the\n"
     "                           session is stopped early before it\n"},
    {"stats", COMMON_OPTS,
     "Usage: triggerdump stats FILE.nettrace\n"
     "Read a nettrace file; print events per provider and event, and\n"
     "samples per counter. Exit 1 when the file is truncated or malformed.\n"},
    {"dump",
     COMMON_OPTS | PICK_OPTS | BIT(OPT_OUTPUT) | BIT(OPT_TYPE) |
         BIT(OPT_METHOD),
     "Usage: triggerdump dump [<pid> | -p PID | -n NAME] [options]\n"
     "Write a core dump now; print its path.\n"
     "  -p, --process-id PID, -n, --name NAME   as for monitor\n"
     "  -o, --output FILE|DIR    the dump file (never replaced), or an\n"
     "                           existing directory or one ending in /\n"
     "                           (default .) to write\n"
     "                           <entry-assembly>-<pid>-<UTC time>.dmp in\n"
     "      --type mini|heap|triage|full   (default heap)\n"
     "      --method ipc|exec    the runtime writes it (default), or\n"
     "                           createdump is run\n"},
    {"threshold",
     COMMON_OPTS | BIT(OPT_OUTPUT) | BIT(OPT_TYPE) | BIT(OPT_METHOD) |
         BIT(OPT_INTERVAL) | BIT(OPT_PROVIDERS) | BIT(OPT_ACTIONS) |
         BIT(OPT_TOP) | BIT(OPT_FORMAT) | BIT(OPT_DURATION) |
         BIT(OPT_TIMEOUT),
     "Usage: triggerdump <pid> <threshold-MB> [options]\n"
     "Wait until the GC heap of <pid> (System.Runtime gc-heap-size) exceeds\n"
     "<threshold-MB> MB, then run the actions (default: write a core dump and\n"
     "print its path); exit 0 when all succeeded, 3 when a types result is\n"
     "incomplete, 1 when one failed or on an interrupt before the breach.\n"
     "      --actions LIST       alloc-types, heap-types, dump, comma-separated,\n"
     "                           run in that order (default dump); types\n"
     "                           results are printed as those commands print\n"
     "      --top N, --format text|csv|json, --duration SEC, --timeout SEC\n"
     "                           for the types actions\n"
     "  -o, --output FILE|DIR    as for dump (default .)\n"
     "      --type mini|heap|triage|full   (default heap)\n"
     "      --method ipc|exec    (default ipc)\n"
     "      --interval SEC, --refresh-interval SEC   (default 1)\n"
     "      --providers A,B      must include System.Runtime\n"},
    {"heap-types", TYPES_OPTS,
     "Usage: triggerdump heap-types [<pid> | -p PID | -n NAME] [options]\n"
     "Take a GC heap snapshot (as dotnet-gcdump does: the target runs one\n"
     "blocking gen2 GC) and print objects and bytes per type, largest first.\n"
     "Exit 3 when the result is incomplete (it says why).\n"
     "  -p, --process-id PID, -n, --name NAME   as for monitor\n"
     "      --top N              the N largest types (1-64, default 20)\n"
     "      --format text|csv|json   (default text; csv: type,count,bytes)\n"
     "      --timeout SEC        give up after SEC seconds (default 60)\n"},
    {"alloc-types", TYPES_OPTS | BIT(OPT_DURATION),
     "Usage: triggerdump alloc-types [<pid> | -p PID | -n NAME] [options]\n"
     "Sample the allocations of the target for a while and print samples and\n"
     "estimated bytes per type, largest first. No GC is induced.\n"
     "Exit 3 when the result is incomplete (it says why).\n"
     "  -p, --process-id PID, -n, --name NAME   as for monitor\n"
     "      --duration SEC       how long to sample (default 5)\n"
     "      --top N              the N largest types (1-64, default 20)\n"
     "      --format text|csv|json   (default text; csv: type,samples,bytes)\n"
     "      --timeout SEC        give up when the session has not started\n"
     "                           within SEC seconds (default 60)\n"},
};

static const char usage_text[] =
    "Usage:\n"
    "  triggerdump <pid> <threshold-MB> [-o FILE|DIR]\n"
    "              [--type mini|heap|triage|full] [--method ipc|exec]\n"
    "              [--interval SEC] [--providers A,B]\n"
    "              [--actions alloc-types,heap-types,dump]\n"
    "      Wait until the GC heap of <pid> exceeds <threshold-MB> MB, then run\n"
    "      the actions in order (default: a core dump into .); exit 0 (1 when\n"
    "      interrupted or one failed, 3 when a types result is incomplete).\n"
    "  triggerdump ps\n"
    "      List the .NET processes on this host.\n"
    "  triggerdump monitor [<pid> | -p PID | -n NAME] [--interval SEC]\n"
    "              [--providers A,B] [--meters M,N] [--counters P[a,b],Q]\n"
    "              [--format text|csv|json] [--collectd-names]\n"
    "              [--duration SEC] [-o FILE]\n"
    "      Print counters as they arrive, until interrupted.\n"
    "  triggerdump record [<pid> | -p PID | -n NAME] -o FILE\n"
    "              [--duration SEC] [--interval SEC] [--providers A,B]\n"
    "              [--meters M,N]\n"
    "      Save the raw nettrace stream of a counters session to FILE.\n"
    "  triggerdump trace [<pid> | -p PID | -n NAME] -o FILE\n"
    "              [--duration SEC] [--providers Name[:KEYWORDS[:LEVEL]],...]\n"
    "              [--timeout SEC] [--max-size MB]\n"
    "      Trace CPU samples and GC events (or --providers) into a .nettrace\n"
    "      file.\n"
    "  triggerdump stats FILE.nettrace\n"
    "      Read a nettrace file; print events per provider and event, and\n"
    "      samples per counter.\n"
    "  triggerdump dump [<pid> | -p PID | -n NAME] [-o FILE|DIR]\n"
    "              [--type mini|heap|triage|full] [--method ipc|exec]\n"
    "      Write a core dump now (default type: heap).\n"
    "  triggerdump heap-types [<pid> | -p PID | -n NAME] [--top N]\n"
    "              [--format text|csv|json] [--timeout SEC]\n"
    "      Objects and bytes per type from a GC heap snapshot (a blocking\n"
    "      gen2 GC in the target).\n"
    "  triggerdump alloc-types [<pid> | -p PID | -n NAME] [--duration SEC]\n"
    "              [--top N] [--format text|csv|json] [--timeout SEC]\n"
    "      Sampled allocations per type over --duration seconds.\n"
    "  triggerdump help [COMMAND], triggerdump --version\n"
    "Options take --opt=value or --opt value; -- ends the options.\n"
    "Each command takes --help (triggerdump help threshold: the first form).\n";

static void usage(FILE *out) { fputs(usage_text, out); }

static const struct command *command_find(const char *name) {
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
    if (strcmp(commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

static void version(void) {
  printf("triggerdump (" PACKAGE_NAME ") " PACKAGE_VERSION "\n");
}

/* The counters --counters lets through: providers, each with the counter
 * names it shows (none: all of the provider's). */
#define FILTER_MAX_NAMES 64
struct filter_provider {
  const char *name;
  const char *counters[FILTER_MAX_NAMES];
  size_t ncounters;
};
struct filter {
  char buf[4096]; /* the option's text, cut into the names */
  struct filter_provider providers[SESSION_MAX_PROVIDERS];
  size_t nproviders;
};

struct opts {
  pid_t pid; /* -p, or the positional pid; 0: none */
  const char *name;
  double interval;
  const char *providers;
  const char *meters;
  const char *counters;
  const char *format;
  int collectd_names;
  double duration;
  const char *output;
  enum ipc_dump_type type;
  enum dump_method method;
  struct filter filter;
  unsigned top;   /* --top; 0: TYPES_TOP_DEFAULT */
  double timeout; /* --timeout; 0: HEAP_TIMEOUT_S */
  enum action_kind actions[4]; /* --actions, in order; none: dump */
  size_t nactions;
  /* --max-size (trace); 0: its default */
  unsigned max_size_mb;
  const char *port; /* --diagnostic-port */
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

/* Parses dotnet-counters' --counters syntax into f:
 *   Provider[counter,counter],Provider,...
 * commas inside brackets separate counters, outside them providers.
 * 0, or -1 after printing why. */
static int filter_parse(const char *s, struct filter *f) {
  if ((size_t)snprintf(f->buf, sizeof(f->buf), "%s", s) >= sizeof(f->buf)) {
    fprintf(stderr, "triggerdump: --counters is too long\n");
    return -1;
  }
  char *p = f->buf;
  while (*p) {
    if (*p == ',') {
      p++;
      continue;
    }
    if (f->nproviders == SESSION_MAX_PROVIDERS) {
      fprintf(stderr, "triggerdump: --counters names more than %d providers\n",
              SESSION_MAX_PROVIDERS);
      return -1;
    }
    struct filter_provider *fp = &f->providers[f->nproviders++];
    fp->name = p;
    p += strcspn(p, ",[]");
    if (*p == ']' || p == fp->name) {
      fprintf(stderr,
              "triggerdump: --counters is Provider[counter,...],Provider,... "
              "not '%s'\n",
              s);
      return -1;
    }
    if (*p == ',') {
      *p++ = 0;
      continue;
    }
    if (*p == 0)
      break;
    *p++ = 0; /* '[' */
    for (;;) {
      char *c = p;
      p += strcspn(p, ",[]");
      if (*p == 0 || *p == '[') {
        fprintf(stderr,
                "triggerdump: --counters: no ']' after the counters of '%s'\n",
                fp->name);
        return -1;
      }
      char end = *p;
      *p++ = 0;
      if (*c) {
        if (fp->ncounters == FILTER_MAX_NAMES) {
          fprintf(stderr,
                  "triggerdump: --counters names more than %d counters of "
                  "'%s'\n",
                  FILTER_MAX_NAMES, fp->name);
          return -1;
        }
        fp->counters[fp->ncounters++] = c;
      }
      if (end == ']')
        break;
    }
    if (*p != 0 && *p != ',') {
      fprintf(stderr,
              "triggerdump: --counters: ',' expected after ']' of '%s'\n",
              fp->name);
      return -1;
    }
  }
  if (f->nproviders == 0) {
    fprintf(stderr, "triggerdump: --counters names no provider\n");
    return -1;
  }
  return 0;
}

/* Whether --counters (when given) lets this sample through. */
static int filter_match(const struct filter *f, const char *provider,
                        const char *name) {
  if (f->nproviders == 0)
    return 1;
  for (size_t i = 0; i < f->nproviders; i++) {
    const struct filter_provider *fp = &f->providers[i];
    if (strcasecmp(fp->name, provider) != 0)
      continue;
    if (fp->ncounters == 0)
      return 1;
    for (size_t j = 0; j < fp->ncounters; j++)
      if (strcmp(fp->counters[j], name) == 0)
        return 1;
  }
  return 0;
}

/* --interval, --duration: seconds above 0, at most max. */
static int get_seconds(const char *v, double max, const char *opt,
                       double *out) {
  char *end;
  double x = strtod(v, &end);
  if (*end || !(x > 0 && x <= max)) {
    fprintf(stderr, "triggerdump: %s takes seconds (> 0), not '%s'\n", opt, v);
    return -1;
  }
  *out = x;
  return 0;
}

/* -n, -o: any text but empty; else the error says. */
static int get_text(const char *v, const char *say, const char **out) {
  if (!*v) {
    fprintf(stderr, "triggerdump: %s\n", say);
    return -1;
  }
  *out = v;
  return 0;
}

/* One option (id, value v) of command c into o: as parse_opts returns. */
/* --actions a,b: the actions of threshold mode, each once, in order. */
static int parse_actions(const char *v, struct opts *o) {
  char buf[256];
  snprintf(buf, sizeof(buf), "%s", v);
  o->nactions = 0;
  for (char *save = NULL, *t = strtok_r(buf, ",", &save); t;
       t = strtok_r(NULL, ",", &save)) {
    int k;
    if (dump_name_parse(action_kinds, t, &k) != 0 || k == ACTION_TRACE) {
      fprintf(stderr,
              "triggerdump: --actions takes alloc-types, heap-types and "
              "dump, not '%s'\n",
              t);
      return -1;
    }
    for (size_t j = 0; j < o->nactions; j++)
      if ((int)o->actions[j] == k) {
        fprintf(stderr, "triggerdump: --actions names %s twice\n", t);
        return -1;
      }
    o->actions[o->nactions++] = (enum action_kind)k;
  }
  if (o->nactions == 0) {
    fprintf(stderr, "triggerdump: --actions needs at least one action\n");
    return -1;
  }
  return 0;
}

static int set_opt(const struct command *c, int id, const char *v,
                   struct opts *o) {
  int e = 0;
  switch (id) {
  case OPT_HELP:
    fputs(c->help, stdout);
    return 1;
  case OPT_VERSION:
    version();
    return 1;
  case OPT_PID:
    if (parse_pid(v, &o->pid) != 0) {
      fprintf(stderr, "triggerdump: -p takes a pid, not '%s'\n", v);
      return -1;
    }
    return 0;
  case OPT_NAME:
    return get_text(v, "-n takes a process name", &o->name);
  case OPT_OUTPUT:
    return get_text(v, "-o takes a file name", &o->output);
  case OPT_INTERVAL:
    return get_seconds(v, 86400, "--interval", &o->interval);
  case OPT_DURATION:
    return get_seconds(v, HUGE_VAL, "--duration", &o->duration);
  case OPT_PROVIDERS:
    o->providers = v;
    return 0;
  case OPT_METERS:
    o->meters = v;
    return 0;
  case OPT_COUNTERS:
    o->counters = v;
    memset(&o->filter, 0, sizeof(o->filter));
    return filter_parse(v, &o->filter) != 0 ? -1 : 0;
  case OPT_ACTIONS:
    return parse_actions(v, o);
  case OPT_FORMAT:
    if (strcmp(v, "text") && strcmp(v, "csv") && strcmp(v, "json")) {
      fprintf(stderr, "triggerdump: --format is text, csv or json, not '%s'\n",
              v);
      return -1;
    }
    o->format = v;
    return 0;
  case OPT_COLLECTD_NAMES:
    o->collectd_names = 1;
    return 0;
  case OPT_TYPE:
    if (dump_name_parse(dump_types, v, &e) != 0) {
      fprintf(stderr,
              "triggerdump: --type is mini, heap, triage or full, not '%s'\n",
              v);
      return -1;
    }
    o->type = (enum ipc_dump_type)e;
    return 0;
  case OPT_TOP: {
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    if (*end || v[0] < '0' || v[0] > '9' || n < 1 ||
        n > GCTYPES_FORMAT_MAX_ROWS) {
      fprintf(stderr, "triggerdump: --top takes 1 to %d, not '%s'\n",
              GCTYPES_FORMAT_MAX_ROWS, v);
      return -1;
    }
    o->top = (unsigned)n;
    return 0;
  }
  case OPT_MAX_SIZE: {
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    if (*end || v[0] < '0' || v[0] > '9' || n < 1 || n > 65536) {
      fprintf(stderr,
              "triggerdump: --max-size takes 1 to 65536 (MB), not '%s'\n", v);
      return -1;
    }
    o->max_size_mb = (unsigned)n;
    return 0;
  }
  case OPT_TIMEOUT:
    return get_seconds(v, 86400, "--timeout", &o->timeout);
  case OPT_DIAGNOSTIC_PORT:
    if (v[0] != '/' ||
        strlen(v) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
      fprintf(stderr,
              "triggerdump: --diagnostic-port takes an absolute socket path "
              "(at most %zu bytes), not '%s'\n",
              sizeof(((struct sockaddr_un *)0)->sun_path) - 1, v);
      return -1;
    }
    o->port = v;
    return 0;
  case OPT_METHOD:
    if (dump_name_parse(dump_methods, v, &e) != 0) {
      fprintf(stderr, "triggerdump: --method is ipc or exec, not '%s'\n", v);
      return -1;
    }
    o->method = (enum dump_method)e;
    return 0;
  }
  return 0;
}

/* Parses argv[0..argc) (argv[0]: the command, or the program for the
 * threshold form) for command c; the operands are left in argv[*first..).
 * Returns 0, -1 for a usage error (said), or 1 when --help or --version
 * was answered. */
static int parse_opts(const struct command *c, int argc, char **argv,
                      struct opts *o, int *first) {
  opterr = 0;
  optind = 1;
  for (;;) {
    int ch = getopt_long(argc, argv, short_opts, long_opts, NULL);
    if (ch == -1)
      break;
    if (ch == '?') {
      /* glibc: optopt is 0 for an unknown long option, the option's val for
       * one given a value it does not take, the letter for a short one */
      if (optopt == 0) {
        const char *a = argv[optind - 1];
        fprintf(stderr, "triggerdump %s: unknown option %.*s", c->name,
                (int)strcspn(a, "="), a);
      } else if (optopt >= OPT_LONG_BASE && optopt < OPT_LONG_BASE + OPT_COUNT)
        fprintf(stderr, "triggerdump %s: %s takes no value", c->name,
                opt_names[optopt - OPT_LONG_BASE]);
      else if (optopt == 'h')
        fprintf(stderr, "triggerdump %s: --help takes no value", c->name);
      else
        fprintf(stderr, "triggerdump %s: unknown option -%c", c->name, optopt);
      fprintf(stderr, " (see triggerdump %s --help)\n", c->name);
      return -1;
    }
    if (ch == ':') {
      const char *a = argv[optind - 1];
      if (optopt && optopt < OPT_LONG_BASE && a[0] == '-' && a[1] != '-')
        fprintf(stderr, "triggerdump: -%c needs a value\n", optopt);
      else
        fprintf(stderr, "triggerdump: %s needs a value\n", a);
      return -1;
    }
    int id = ch == 'h'   ? OPT_HELP
             : ch == 'p' ? OPT_PID
             : ch == 'n' ? OPT_NAME
             : ch == 'o' ? OPT_OUTPUT
                         : ch - OPT_LONG_BASE;
    if (id < 0 || id >= OPT_COUNT)
      return -1; /* not in the tables: cannot happen */
    if (!(c->opts & BIT(id))) {
      fprintf(stderr,
              "triggerdump %s: %s is not an option of this command (see "
              "triggerdump %s --help)\n",
              c->name, opt_names[id], c->name);
      return -1;
    }
    int r = set_opt(c, id, optarg, o);
    if (r != 0)
      return r;
  }
  *first = optind;
  return 0;
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
  int r = discovery_find(pid, ep);
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

/* ---- --diagnostic-port: runtimes that connect in ---- */

#define PORT_PS_WAIT_MS 3000
#define PORT_TRIED_MAX 256

/* The listener's warnings and errors go to stderr. */
static void port_log(void *ctx, int level, const char *msg) {
  (void)ctx;
  if (level <= 4)
    fprintf(stderr, "triggerdump: %s\n", msg);
}

static struct listen *port_open(const char *path) {
  struct listen_config lc = {.path = path, .gid = (gid_t)-1, .log = port_log};
  char err[512];
  struct listen *l = listen_open(&lc, err, sizeof(err));
  if (l == NULL)
    fprintf(stderr, "triggerdump: %s\n", err);
  return l;
}

/* Waits for a runtime to connect (or anything to happen) for up to ms;
 * interrupted by a signal. */
static void port_wait(struct listen *l, int ms) {
  struct pollfd pfd = {.fd = listen_event_fd(l), .events = POLLIN};
  if (poll(&pfd, 1, ms) > 0)
    listen_drain(l);
}

static int ps_port(const char *path) {
  struct listen *l = port_open(path);
  if (l == NULL)
    return 1;
  install_signals();
  int64_t end = clock_mono_ms() + PORT_PS_WAIT_MS;
  for (int64_t now; !stop_requested && (now = clock_mono_ms()) < end;)
    port_wait(l, (int)(end - now));
  struct listen_runtime rts[PORT_TRIED_MAX];
  size_t n = listen_list(l, rts, PORT_TRIED_MAX);
  if (n > PORT_TRIED_MAX)
    n = PORT_TRIED_MAX;
  printf("%8s  %-12s  %-24s  %s\n", "PID", "RUNTIME", "ENTRY ASSEMBLY",
         "COMMAND");
  for (size_t k = 0; k < n; k++) {
    struct ipc_endpoint ep;
    listen_endpoint(l, &rts[k], &ep);
    struct ipc_process_info info;
    struct ipc_error err = {0};
    char ebuf[512];
    if (ipc_process_info(&ep, 1000, &info, &err) != 0)
      printf("%8llu  %-12s  %-24s  (no answer: %s)\n",
             (unsigned long long)rts[k].claimed_pid, "?", "?",
             term_safe(err.message, ebuf, sizeof(ebuf)));
    else
      printf("%8llu  %-12s  %-24s  %s\n",
             (unsigned long long)rts[k].claimed_pid,
             info.runtime_version[0] ? info.runtime_version : "?",
             info.entry_assembly[0] ? info.entry_assembly : "?",
             info.command_line);
  }
  listen_close(l);
  return 0;
}

static int cmd_ps(struct opts *o, int argc, char **argv, int i) {
  if (i != argc) {
    fprintf(stderr, "triggerdump: unexpected argument '%s'\n", argv[i]);
    return 2;
  }
  if (o->port)
    return ps_port(o->port);
  printf("%8s  %-12s  %-24s  %s\n", "PID", "RUNTIME", "ENTRY ASSEMBLY",
         "COMMAND");
  int r = discovery_list(ps_one, NULL);
  if (r < 0) {
    fprintf(stderr, "triggerdump: cannot list processes: %s\n", strerror(-r));
    return 1;
  }
  return 0;
}

/* ---- -n NAME: the one .NET process of that name ---- */

#define NAME_MAX_SHOWN 8
struct name_match {
  const char *name;
  pid_t pids[NAME_MAX_SHOWN];
  size_t n;
};

/* Whether the process of ep is called name, as dotnet-counters' -n sees a
 * process: its process name (/proc/<pid>/comm, which the kernel cuts to 15
 * bytes, or the file name of its executable) or its entry assembly. */
static int name_one(void *ctx, const struct ipc_endpoint *ep) {
  struct name_match *m = ctx;
  char path[64], buf[PATH_MAX];
  int hit = 0;
  snprintf(path, sizeof(path), "/proc/%d/comm", (int)ep->pid);
  FILE *f = fopen(path, "re");
  if (f != NULL) {
    if (fgets(buf, sizeof(buf), f) != NULL) {
      buf[strcspn(buf, "\n")] = 0;
      hit = strcmp(buf, m->name) == 0;
    }
    fclose(f);
  }
  if (!hit) {
    snprintf(path, sizeof(path), "/proc/%d/exe", (int)ep->pid);
    ssize_t n = readlink(path, buf, sizeof(buf) - 1);
    if (n > 0) {
      buf[n] = 0;
      const char *base = strrchr(buf, '/');
      hit = strcmp(base ? base + 1 : buf, m->name) == 0;
    }
  }
  if (!hit) {
    struct ipc_process_info info;
    hit = ipc_process_info(ep, 1000, &info, NULL) == 0 &&
          strcmp(info.entry_assembly, m->name) == 0;
  }
  if (hit) {
    if (m->n < NAME_MAX_SHOWN)
      m->pids[m->n] = ep->pid;
    m->n++;
  }
  return 0;
}

/* The pid the options name (-p, -n or the operand); 0, or 2 for a usage
 * error, 1 for no such process (both said). */
static int pick_process(const char *cmd, struct opts *o, int argc, char **argv,
                        int i) {
  if (i < argc) {
    pid_t pid;
    if (parse_pid(argv[i], &pid) != 0) {
      fprintf(stderr, "triggerdump: '%s' is not a pid\n", argv[i]);
      return 2;
    }
    if (o->pid || o->name) {
      fprintf(stderr, "triggerdump: give the process once: a pid, -p or -n\n");
      return 2;
    }
    o->pid = pid;
    i++;
  }
  if (i < argc) {
    fprintf(stderr, "triggerdump: unexpected argument '%s'\n", argv[i]);
    return 2;
  }
  if (o->pid && o->name) {
    fprintf(stderr, "triggerdump: give the process once: a pid, -p or -n\n");
    return 2;
  }
  if (o->pid)
    return 0;
  if (o->name == NULL) {
    fprintf(stderr,
            "triggerdump: %s needs a pid, -p PID or -n NAME (see triggerdump "
            "ps)\n",
            cmd);
    return 2;
  }
  struct name_match m = {.name = o->name};
  int r = discovery_list(name_one, &m);
  if (r < 0) {
    fprintf(stderr, "triggerdump: cannot list processes: %s\n", strerror(-r));
    return 1;
  }
  if (m.n == 1) {
    o->pid = m.pids[0];
    return 0;
  }
  if (m.n == 0) {
    fprintf(stderr,
            "triggerdump: no .NET process is named '%s' (see triggerdump "
            "ps)\n",
            o->name);
    return 1;
  }
  fprintf(stderr, "triggerdump: %zu .NET processes are named '%s' (pids", m.n,
          o->name);
  for (size_t k = 0; k < m.n && k < NAME_MAX_SHOWN; k++)
    fprintf(stderr, "%s %d", k ? "," : "", (int)m.pids[k]);
  fprintf(stderr, "%s): give one with -p PID\n",
          m.n > NAME_MAX_SHOWN ? ", ..." : "");
  return 1;
}

/* pick_process, then the process's endpoint: 0, 1 (said why) or 2. */
static int pick_target(const char *cmd, struct opts *o, int argc, char **argv,
                       int i, struct ipc_endpoint *ep) {
  int r = pick_process(cmd, o, argc, argv, i);
  if (r != 0)
    return r;
  return find_target(o->pid, ep) < 0 ? 1 : 0;
}

/* ---- monitor / threshold ---- */

struct printer {
  const char *format;
  pid_t pid;
  FILE *out;                   /* stdout, or -o FILE */
  const struct filter *filter; /* --counters; NULL: all */
  int collectd_names;          /* --collectd-names: */
  struct counters_table table; /* the plugin's table, for its names */
  /* threshold mode */
  double threshold_mb;
  int breached;
  double breach_value;
};

static void iso_time(int64_t ms, char *out, size_t cap) {
  if (ms <= 0)
    ms = clock_wall_ms();
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

/* The collectd type and type instance the plugin publishes a printed row
 * under, made by the plugin's own table and naming (naming_rows): row q of
 * a histogram is the quantile row with that suffix; "-" where the plugin
 * publishes none (a quantile it does not publish, a table full). */
struct collectd_name {
  const char *type;
  char type_instance[NAMING_MAX];
};

/* One row. JSON rows of mean counters (EventCounter, PollingCounter) also
 * carry the interval's "min", "max" and "count"; histogram rows "count" and
 * "sum" (null where the runtime did not say). */
static void print_row(const struct printer *p, const char *when,
                      const struct counters_sample *s, const char *counter_,
                      double value, const struct collectd_name *cn) {
  FILE *f = p->out;
  /* names and units are the runtime's (or the process's) to choose */
  char pbuf[512], cbuf[1024], ubuf[256], tbuf[NAMING_MAX];
  const char *provider = term_safe(s->provider, pbuf, sizeof(pbuf));
  const char *counter = term_safe(counter_, cbuf, sizeof(cbuf));
  const char *unit = term_safe(s->units, ubuf, sizeof(ubuf));
  const char *ti = cn ? term_safe(cn->type_instance, tbuf, sizeof(tbuf)) : "";
  if (strcmp(p->format, "csv") == 0) {
    fprintf(f, "%s,%d,", when, (int)p->pid);
    csv_str(f, provider);
    fputc(',', f);
    csv_str(f, counter);
    fprintf(f, ",%.17g,", value);
    csv_str(f, unit);
    if (cn) {
      fprintf(f, ",%s,", cn->type);
      csv_str(f, ti);
    }
    fputc('\n', f);
  } else if (strcmp(p->format, "json") == 0) {
    fprintf(f, "{\"time\":\"%s\",\"pid\":%d,\"provider\":", when, (int)p->pid);
    json_str(f, provider);
    fprintf(f, ",\"counter\":");
    json_str(f, counter);
    json_num(f, "value", value);
    fprintf(f, ",\"unit\":");
    json_str(f, unit);
    if (s->kind == COUNTERS_MEAN) {
      json_num(f, "min", s->min);
      json_num(f, "max", s->max);
      json_num(f, "count", s->count);
    } else if (s->kind == COUNTERS_HISTOGRAM) {
      json_num(f, "count", s->count);
      json_num(f, "sum", s->sum);
    }
    if (cn) {
      fprintf(f, ",\"collectd_type\":");
      json_str(f, cn->type);
      fprintf(f, ",\"collectd_type_instance\":");
      json_str(f, ti);
    }
    fprintf(f, "}\n");
  } else if (cn) {
    fprintf(f, "%s  %-28s %-40s %16.6g %-8s %-12s %s\n", when, provider,
            counter, value, unit, cn->type, ti);
  } else {
    fprintf(f, "%s  %-28s %-40s %16.6g %s\n", when, provider, counter, value,
            unit);
  }
}

/* cn for row q (-1: the one row of a counter that is not a histogram) of
 * the sample whose table entry is e (NULL: not in the table). */
static void collectd_name_of(struct counters_entry *e,
                             const struct naming_row *rows, size_t nrows,
                             const struct counters_sample *s, int q,
                             struct collectd_name *cn) {
  cn->type = "-";
  snprintf(cn->type_instance, sizeof(cn->type_instance), "-");
  if (e == NULL)
    return;
  const char *suffix = q >= 0 ? naming_quantile_suffix(s->quantile[q]) : NULL;
  if (q >= 0 && suffix == NULL)
    return;
  for (size_t i = 0; i < nrows; i++) {
    if (suffix) {
      size_t tl = strlen(rows[i].type_instance), sl = strlen(suffix);
      if (tl <= sl || rows[i].type_instance[tl - sl - 1] != ':' ||
          strcmp(rows[i].type_instance + tl - sl, suffix) != 0)
        continue;
    }
    cn->type = rows[i].type;
    snprintf(cn->type_instance, sizeof(cn->type_instance), "%s",
             rows[i].type_instance);
    return;
  }
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
  if (p->filter && !filter_match(p->filter, s->provider, s->name))
    return;
  /* the plugin's names: the sample merged into a table as the plugin's
   * reader does, then named as the plugin publishes it */
  struct counters_entry *e = NULL;
  struct naming_row rows[COUNTERS_MAX_QUANTILES + 1];
  size_t nrows = 0;
  struct collectd_name cn;
  if (p->collectd_names) {
    e = counters_table_update(&p->table, s, time_ms);
    if (e != NULL)
      nrows = naming_rows(e, rows, COUNTERS_MAX_QUANTILES + 1);
  }
  char when[40], counter[512];
  iso_time(time_ms, when, sizeof(when));
  if (s->kind == COUNTERS_HISTOGRAM) {
    for (uint32_t i = 0; i < s->nquantiles; i++) {
      counters_sample_label(s, (int)i, counter, sizeof(counter));
      if (p->collectd_names)
        collectd_name_of(e, rows, nrows, s, (int)i, &cn);
      print_row(p, when, s, counter, s->quantile_value[i],
                p->collectd_names ? &cn : NULL);
    }
    return;
  }
  counters_sample_label(s, -1, counter, sizeof(counter));
  if (p->collectd_names)
    collectd_name_of(e, rows, nrows, s, -1, &cn);
  print_row(p, when, s, counter, s->value, p->collectd_names ? &cn : NULL);
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

/* The session's configuration from the options: --providers, --meters and
 * the providers --counters names (EventCounters providers too, unless they
 * are meters). The names point into o and into bufs (2 x 4096 bytes). */
static void session_config_of(const struct opts *o, struct session_config *cfg,
                              char (*bufs)[4096]) {
  *cfg = (struct session_config){
      .interval_sec = o->interval > 0 ? o->interval : 1,
      .timeout_ms = IPC_TIMEOUT_MS};
  if (o->providers) {
    snprintf(bufs[0], sizeof(bufs[0]), "%s", o->providers);
    cfg->nproviders = split_list(bufs[0], cfg->providers, SESSION_MAX_PROVIDERS);
  }
  if (o->meters) {
    snprintf(bufs[1], sizeof(bufs[1]), "%s", o->meters);
    cfg->nmeters = split_list(bufs[1], cfg->meters, SESSION_MAX_METERS);
  }
  for (size_t i = 0; i < o->filter.nproviders; i++) {
    const char *name = o->filter.providers[i].name;
    int known = 0;
    for (size_t k = 0; k < cfg->nproviders; k++)
      known |= strcasecmp(cfg->providers[k], name) == 0;
    for (size_t k = 0; k < cfg->nmeters; k++)
      known |= strcasecmp(cfg->meters[k], name) == 0;
    if (!known && cfg->nproviders < SESSION_MAX_PROVIDERS)
      cfg->providers[cfg->nproviders++] = name;
  }
}

/* Reads s until interrupted, the duration ends, the stream ends, or
 * (threshold mode) the threshold is crossed: 0, or 1 after an error (said). */
static int session_loop(struct session *s, pid_t pid, const struct opts *o,
                        const struct printer *p) {
  double end = o->duration > 0 ? clock_mono_s() + o->duration : 0;
  while (!stop_requested && !p->breached) {
    int timeout = 500;
    if (end > 0) {
      double left = end - clock_mono_s();
      if (left <= 0)
        break;
      if (left * 1000 < timeout)
        timeout = (int)(left * 1000) + 1;
    }
    struct pollfd pfd = {.fd = session_fd(s), .events = POLLIN};
    int pr = poll(&pfd, 1, timeout);
    if (pr < 0 && errno != EINTR) {
      perror("poll");
      return 1;
    }
    if (pr > 0 && session_read(s) < 0) {
      char ebuf[512];
      fprintf(stderr, "triggerdump: pid %d: %s\n", (int)pid,
              term_safe(session_error(s), ebuf, sizeof(ebuf)));
      return 1;
    }
  }
  return 0;
}

/* Stops the session's tracing in the target, if it is still connected. */
static void session_end(struct session *s, pid_t pid) {
  if (session_fd(s) < 0)
    return;
  char ebuf[512];
  int r = session_stop(s, IPC_TIMEOUT_MS);
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

/* Runs one session of the target (pid: as printed; see session_loop),
 * printing through p and recording into rec (may be NULL). A runtime that
 * connected in is resumed once its session runs (it may wait for that:
 * DOTNET_DiagnosticPorts=...,suspend), so its first values are caught. */
static int run_session_on(const struct ipc_endpoint *ep, pid_t pid,
                          struct opts *o, struct printer *p,
                          struct recorder *rec) {
  struct session_config cfg;
  char bufs[2][4096];
  session_config_of(o, &cfg, bufs);
  struct session *s = session_new(ep, &cfg, on_sample, p);
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
  if (ep->take != NULL &&
      (r = ipc_resume_runtime(ep, IPC_TIMEOUT_MS, &err)) < 0)
    fprintf(stderr, "triggerdump: cannot resume pid %d: %s\n", (int)pid,
            err.message[0] ? err.message : strerror(-r));
  if (p->threshold_mb > 0)
    fprintf(stderr,
            "triggerdump: watching pid %d until its GC heap exceeds %g MB\n",
            (int)pid, p->threshold_mb);
  else if (strcmp(p->format, "csv") == 0)
    fprintf(p->out, "time,pid,provider,counter,value,unit%s\n",
            p->collectd_names ? ",collectd_type,collectd_type_instance" : "");
  int rc = session_loop(s, pid, o, p);
  session_end(s, pid);
  session_free(s);
  return rc;
}

/* Runs one session of pid: run_session_on; ep_out (may be NULL) gets the
 * target. */
static int run_session(pid_t pid, struct opts *o, struct printer *p,
                       struct recorder *rec, struct ipc_endpoint *ep_out) {
  struct ipc_endpoint ep;
  if (find_target(pid, &ep) < 0)
    return 1;
  if (ep_out)
    *ep_out = ep;
  return run_session_on(&ep, pid, o, p, rec);
}

/* monitor --diagnostic-port: waits for the first runtime that connects and
 * matches -p (the pid it says it is) or -n (its entry assembly), watches
 * it, and ends with its stream. */
static int monitor_port(struct opts *o, struct printer *p) {
  struct listen *l = port_open(o->port);
  if (l == NULL)
    return 1;
  fprintf(stderr, "triggerdump: waiting for a runtime on %s\n", o->port);
  uint8_t tried[PORT_TRIED_MAX][16];
  size_t ntried = 0;
  int rc = 1;
  while (!stop_requested) {
    struct listen_runtime rts[PORT_TRIED_MAX];
    size_t n = listen_list(l, rts, PORT_TRIED_MAX);
    int done = 0;
    for (size_t k = 0; k < n && k < PORT_TRIED_MAX && !done; k++) {
      int seen = 0;
      for (size_t t = 0; t < ntried; t++)
        seen |= memcmp(tried[t], rts[k].cookie, 16) == 0;
      if (seen || ntried == PORT_TRIED_MAX)
        continue;
      memcpy(tried[ntried++], rts[k].cookie, 16);
      if (o->pid && rts[k].claimed_pid != (uint64_t)o->pid)
        continue;
      struct ipc_endpoint ep;
      listen_endpoint(l, &rts[k], &ep);
      if (o->name) {
        struct ipc_process_info info;
        if (ipc_process_info(&ep, 1000, &info, NULL) != 0 ||
            strcmp(info.entry_assembly, o->name) != 0)
          continue;
      }
      pid_t pid =
          (pid_t)(rts[k].claimed_pid <= INT_MAX ? rts[k].claimed_pid : 0);
      fprintf(stderr, "triggerdump: runtime pid %d (uid %u) connected\n",
              (int)pid, (unsigned)rts[k].uid);
      p->pid = pid;
      rc = run_session_on(&ep, pid, o, p, NULL);
      done = 1;
    }
    if (done)
      break;
    port_wait(l, 500);
  }
  listen_close(l);
  return rc;
}

/* A file for -o: created, or truncated when it is there, never through a
 * symlink at its name. An fd, or -1 after saying why. */
static int output_open(const char *path) {
  int fd = open(
      path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
      0644);
  if (fd < 0)
    fprintf(stderr, "triggerdump: cannot create %s: %s\n", path,
            strerror(errno));
  return fd;
}

static int cmd_monitor(struct opts *o, int argc, char **argv, int i) {
  int r = o->port && i == argc ? 0 : pick_process("monitor", o, argc, argv, i);
  if (r != 0)
    return r;
  struct printer p = {.format = o->format,
                      .pid = o->pid,
                      .out = stdout,
                      .filter = o->counters ? &o->filter : NULL,
                      .collectd_names = o->collectd_names};
  if (o->output && strcmp(o->output, "-") != 0) {
    int fd = output_open(o->output);
    if (fd < 0)
      return 1;
    p.out = fdopen(fd, "w");
    if (p.out == NULL) {
      fprintf(stderr, "triggerdump: %s: %s\n", o->output, strerror(errno));
      close(fd);
      return 1;
    }
    setvbuf(p.out, NULL, _IOLBF, 0);
  }
  if (o->collectd_names)
    counters_table_init(&p.table, 0);
  install_signals();
  int rc =
      o->port ? monitor_port(o, &p) : run_session(o->pid, o, &p, NULL, NULL);
  if (p.out != stdout) {
    int failed = fflush(p.out) != 0 || ferror(p.out);
    int err = errno;
    if (fclose(p.out) != 0 && !failed) {
      failed = 1;
      err = errno;
    }
    if (failed) {
      fprintf(stderr, "triggerdump: writing %s failed: %s\n", o->output,
              strerror(err));
      rc = 1;
    }
  }
  if (o->collectd_names)
    counters_table_fini(&p.table);
  return rc;
}

static int cmd_record(struct opts *o, int argc, char **argv, int i) {
  if (o->output == NULL) {
    fprintf(stderr, "triggerdump: record needs -o FILE\n");
    return 2;
  }
  int r = pick_process("record", o, argc, argv, i);
  if (r != 0)
    return r;
  struct recorder rec = {.fd = output_open(o->output)};
  if (rec.fd < 0)
    return 1;
  struct printer p = {.format = "none", .pid = o->pid, .out = stdout};
  install_signals();
  int rc = run_session(o->pid, o, &p, &rec, NULL);
  if (close(rec.fd) != 0 || rec.failed) {
    fprintf(stderr, "triggerdump: writing %s failed: %s\n", o->output,
            strerror(rec.failed ? rec.failed : errno));
    rc = 1;
  }
  return rc;
}

/* ---- trace ---- */

#define TRACE_EXIT_INCOMPLETE 3

/* The trace's file: created, never an existing file or a symlink at its
 * name, 0600 (a trace holds the target's method names and more). An fd,
 * or -1 after saying why. */
static int trace_output_open(const char *path) {
  int fd = open(path,
                O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
                0600);
  if (fd < 0)
    fprintf(stderr, "triggerdump: cannot create %s: %s%s\n", path,
            strerror(errno),
            errno == EEXIST ? " (an existing file is never replaced)" : "");
  return fd;
}

/* Removes the file trace_output_open made, if its name still names it. */
static void trace_output_remove(const char *path, int fd) {
  struct stat a, b;
  if (fstat(fd, &a) == 0 && lstat(path, &b) == 0 && a.st_dev == b.st_dev &&
      a.st_ino == b.st_ino)
    unlink(path);
}

static int cmd_trace(struct opts *o, int argc, char **argv, int i) {
  struct trace_config cfg = {.duration_s = o->duration,
                             .timeout_ms =
                                 o->timeout > 0 ? (int)(o->timeout * 1000) : 0,
                             .max_bytes = (uint64_t)o->max_size_mb << 20,
                             .stop_flag = &stop_requested};
  char err[256];
  if (o->providers &&
      trace_providers_parse(o->providers, &cfg, err, sizeof(err)) != 0) {
    fprintf(stderr, "triggerdump: --providers: %s\n", err);
    return 2;
  }
  if (o->output == NULL) {
    fprintf(stderr, "triggerdump: trace needs -o FILE\n");
    return 2;
  }
  struct ipc_endpoint ep;
  int r = pick_target("trace", o, argc, argv, i, &ep);
  if (r != 0)
    return r;
  int fd = trace_output_open(o->output);
  if (fd < 0)
    return 1;
  install_signals();
  fprintf(stderr, "triggerdump: tracing pid %d for %g s into %s\n", (int)o->pid,
          cfg.duration_s > 0 ? cfg.duration_s : TRACE_DEFAULT_DURATION_S,
          o->output);
  struct trace_result res;
  r = trace_run(&ep, &cfg, fd, &res);
  int rc = 0;
  if (fsync(fd) != 0 && errno != EINVAL && r >= 0) {
    res.end = TRACE_FAILED;
    snprintf(res.reason, sizeof(res.reason), "writing %s: %s", o->output,
             strerror(errno));
    r = -EIO;
  }
  if (res.bytes == 0)
    trace_output_remove(o->output, fd);
  close(fd);
  char ebuf[512];
  const char *why = term_safe(res.reason, ebuf, sizeof(ebuf));
  if (r == 0) {
    fprintf(stderr,
            "triggerdump: trace of pid %d: %" PRIu64 " bytes, %" PRIu64
            " events (%" PRIu64 " CPU samples) in %.1f s%s%s%s: %s\n",
            (int)o->pid, res.bytes, res.events, res.samples, res.seconds,
            res.reason[0] ? " (" : "", why, res.reason[0] ? ")" : "",
            o->output);
  } else if (res.bytes > 0 && res.end != TRACE_FAILED) {
    fprintf(stderr,
            "triggerdump: trace of pid %d %s after %.1f s: %s; %s holds the "
            "%" PRIu64 " bytes that came (%" PRIu64
            " events) and is incomplete\n",
            (int)o->pid, trace_end_name(res.end), res.seconds, why, o->output,
            res.bytes, res.events);
    rc = TRACE_EXIT_INCOMPLETE;
  } else {
    fprintf(stderr, "triggerdump: trace of pid %d %s: %s%s\n", (int)o->pid,
            trace_end_name(res.end), why,
            res.bytes == 0 ? "" : " (the file is left as it is)");
    rc = 1;
  }
  return rc;
}

/* ---- stats ---- */

/* One row of `stats`: an event (provider, its id and name) or a counter
 * (provider, its label as `monitor` shows it, id 0), how often it came and,
 * for a counter, its last value. */
struct stats_row {
  char provider[128];
  char name[256];
  uint32_t id;
  uint64_t count;
  double last;
};

struct stats_table {
  struct stats_row *rows; /* NULL until the first row */
  size_t n, cap;
};

struct stats_ctx {
  struct stats_table events, samples;
  uint64_t counter_samples;
  uint64_t bad_samples;
  char scratch[8192];
};

#define STATS_MAX_ROWS 100000

/* The row of (provider, name, id) in t, added when new; NULL at
 * STATS_MAX_ROWS or out of memory (the row is then not counted
 * separately). */
static struct stats_row *stats_row(struct stats_table *t, const char *provider,
                                   const char *name, uint32_t id) {
  for (size_t i = 0; i < t->n; i++)
    if (t->rows[i].id == id && strcmp(t->rows[i].provider, provider) == 0 &&
        strcmp(t->rows[i].name, name) == 0)
      return &t->rows[i];
  if (t->n == t->cap) {
    size_t ncap = t->cap ? t->cap * 2 : 64;
    struct stats_row *nr =
        ncap > STATS_MAX_ROWS ? NULL : realloc(t->rows, ncap * sizeof(*nr));
    if (nr == NULL)
      return NULL;
    t->rows = nr;
    t->cap = ncap;
  }
  struct stats_row *r = &t->rows[t->n++];
  *r = (struct stats_row){.id = id};
  snprintf(r->provider, sizeof(r->provider), "%s", provider);
  snprintf(r->name, sizeof(r->name), "%s", name);
  return r;
}

static void stats_sample(struct stats_ctx *c, const char *provider,
                         const char *label, double value) {
  struct stats_row *r = stats_row(&c->samples, provider, label, 0);
  if (r != NULL) {
    r->count++;
    r->last = value;
  }
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
        counters_sample_label(&smp, (int)q, label, sizeof(label));
        stats_sample(c, smp.provider, label, smp.quantile_value[q]);
      }
    } else {
      counters_sample_label(&smp, -1, label, sizeof(label));
      stats_sample(c, smp.provider, label, smp.value);
    }
  } else if (d < 0) {
    c->bad_samples++;
  }
  struct stats_row *r =
      stats_row(&c->events, m->provider, m->event_name, m->event_id);
  if (r != NULL)
    r->count++;
}

static int sample_cmp(const void *a, const void *b) {
  const struct stats_row *x = a, *y = b;
  int c = strcmp(x->provider, y->provider);
  return c ? c : strcmp(x->name, y->name);
}

static int row_cmp(const void *a, const void *b) {
  const struct stats_row *x = a, *y = b;
  int c = strcmp(x->provider, y->provider);
  if (c)
    return c;
  return x->id < y->id ? -1 : x->id > y->id ? 1 : strcmp(x->name, y->name);
}

/* The two tables of `stats`: events per provider and event id (with a
 * sum per provider), then samples per counter. */
static void stats_print(struct stats_ctx *c) {
  struct stats_table *ev = &c->events, *sm = &c->samples;
  if (ev->n > 0) /* rows is NULL until the first event */
    qsort(ev->rows, ev->n, sizeof(*ev->rows), row_cmp);
  printf("%-48s %6s  %-40s %10s\n", "PROVIDER", "ID", "EVENT", "COUNT");
  const char *prev = "";
  uint64_t sum = 0;
  for (size_t i = 0; i < ev->n; i++) {
    if (strcmp(prev, ev->rows[i].provider) != 0 && sum > 0) {
      printf("%-48s %6s  %-40s %10" PRIu64 "\n", prev, "", "(all)", sum);
      sum = 0;
    }
    prev = ev->rows[i].provider;
    sum += ev->rows[i].count;
    printf("%-48s %6u  %-40s %10" PRIu64 "\n", ev->rows[i].provider,
           ev->rows[i].id, ev->rows[i].name, ev->rows[i].count);
  }
  if (sum > 0)
    printf("%-48s %6s  %-40s %10" PRIu64 "\n", prev, "", "(all)", sum);
  if (sm->n > 0) {
    qsort(sm->rows, sm->n, sizeof(*sm->rows), sample_cmp);
    printf("\n%-48s %-40s %10s  %s\n", "PROVIDER", "COUNTER", "SAMPLES",
           "LAST");
    for (size_t i = 0; i < sm->n; i++)
      printf("%-48s %-40s %10" PRIu64 "  %.17g\n", sm->rows[i].provider,
             sm->rows[i].name, sm->rows[i].count, sm->rows[i].last);
    printf("\n");
  }
}

static int cmd_stats(struct opts *o, int argc, char **argv, int first) {
  (void)o; /* no options but --help */
  if (argc - first != 1) {
    fprintf(stderr, "triggerdump: stats takes one nettrace file\n");
    return 2;
  }
  const char *path = argv[first];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    fprintf(stderr, "triggerdump: cannot open %s: %s\n", path, strerror(errno));
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
      fprintf(stderr, "triggerdump: reading %s: %s\n", path, strerror(errno));
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
  stats_print(c);
  const struct nettrace_stats *st = nettrace_reader_stats(r);
  printf("events %" PRIu64 ", dropped %" PRIu64 ", counter samples %" PRIu64
         ", malformed counter events %" PRIu64 ", bytes %" PRIu64 "\n",
         st->events, st->dropped, c->counter_samples, c->bad_samples,
         st->bytes);
  if (fr < 0) {
    fprintf(stderr, "triggerdump: %s: %s at byte %" PRIu64 "\n", path,
            fr == -ENODATA ? "truncated stream" : nettrace_reader_error(r),
            nettrace_reader_error_offset(r));
    rc = 1;
  }
  nettrace_reader_free(r);
  free(c->events.rows);
  free(c->samples.rows);
  free(c);
  return rc;
}

/* ---- dumps ---- */

/* Where -o puts a dump: into a directory (an existing one, or a path
 * ending in '/'; default ".") under the generated name, or else as the file
 * it names, in the directory above it. The directory is checked, and
 * created when missing, by dump_dir_open; the file is never replaced. */
static int dump_output(const char *output, struct dump_request *req) {
  const char *o = output ? output : ".";
  size_t len = strlen(o);
  struct stat st;
  char dir[PATH_MAX];
  if (len >= sizeof(dir)) {
    fprintf(stderr, "triggerdump: -o %s: too long\n", o);
    return -1;
  }
  if (o[len - 1] == '/' || (stat(o, &st) == 0 && S_ISDIR(st.st_mode))) {
    snprintf(dir, sizeof(dir), "%s", o);
  } else {
    const char *slash = strrchr(o, '/');
    const char *file = slash ? slash + 1 : o;
    if (strlen(file) >= sizeof(req->file_name) || !strcmp(file, "..") ||
        !strcmp(file, ".")) {
      fprintf(stderr, "triggerdump: -o %s: not a file name\n", o);
      return -1;
    }
    snprintf(req->file_name, sizeof(req->file_name), "%s", file);
    if (slash == NULL)
      snprintf(dir, sizeof(dir), ".");
    else
      snprintf(dir, sizeof(dir), "%.*s", slash == o ? 1 : (int)(slash - o), o);
  }
  if (realpath(dir, req->directory) == NULL)
    snprintf(req->directory, sizeof(req->directory), "%s", dir);
  return 0;
}

static int do_dump(const struct ipc_endpoint *ep, const struct opts *o) {
  struct dump_request req = {.ep = *ep,
                             .type = o->type ? o->type : IPC_DUMP_HEAP,
                             .method = o->method};
  if (dump_output(o->output, &req) != 0)
    return 2;
  struct ipc_process_info info;
  if (ipc_process_info(ep, IPC_TIMEOUT_MS, &info, NULL) == 0 &&
      info.entry_assembly[0])
    snprintf(req.instance, sizeof(req.instance), "%s", info.entry_assembly);
  struct dump_result res;
  fprintf(stderr, "triggerdump: writing a %s dump of pid %d %s %s%s%s ...\n",
          dump_name_of(dump_types, (int)req.type), (int)ep->pid,
          req.file_name[0] ? "to" : "into", req.directory,
          req.file_name[0] ? "/" : "", req.file_name);
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

static int cmd_dump(struct opts *o, int argc, char **argv, int i) {
  struct dump_request probe = {0};
  if (dump_output(o->output, &probe) != 0)
    return 2;
  struct ipc_endpoint ep;
  int r = pick_target("dump", o, argc, argv, i, &ep);
  if (r != 0)
    return r;
  return do_dump(&ep, o);
}

/* Whether an EventCounters provider list names System.Runtime (provider
 * names are matched without case, as the runtime does). */
static int has_system_runtime(const char *list) {
  char buf[4096];
  const char *names[SESSION_MAX_PROVIDERS];
  snprintf(buf, sizeof(buf), "%s", list);
  size_t n = split_list(buf, names, SESSION_MAX_PROVIDERS);
  for (size_t i = 0; i < n; i++)
    if (strcasecmp(names[i], "System.Runtime") == 0)
      return 1;
  return 0;
}

static int types_once(enum gctypes_mode mode, const struct ipc_endpoint *ep,
                      const struct opts *o);

static int cmd_threshold(struct opts *o, int argc, char **argv, int i) {
  pid_t pid;
  if (i >= argc || parse_pid(argv[i], &pid) != 0) {
    fprintf(stderr, "triggerdump: '%s' is not a pid\n",
            i < argc ? argv[i] : "");
    return 2;
  }
  char *end;
  double mb = i + 1 < argc ? strtod(argv[i + 1], &end) : 0;
  if (i + 1 >= argc || *end || !(mb > 0)) {
    fprintf(stderr, "triggerdump: the threshold must be a size in MB (> 0)\n");
    return 2;
  }
  if (i + 2 < argc) {
    fprintf(stderr, "triggerdump: unexpected argument '%s'\n", argv[i + 2]);
    return 2;
  }
  /* the threshold reads System.Runtime's gc-heap-size: a session without
   * that provider would never see it */
  if (o->providers && !has_system_runtime(o->providers)) {
    fprintf(stderr,
            "triggerdump: --providers %s lacks System.Runtime, whose "
            "gc-heap-size the threshold reads\n",
            o->providers);
    return 2;
  }
  /* the types options are the types actions' */
  int types = 0, alloc = 0;
  for (size_t k = 0; k < o->nactions; k++) {
    types |= o->actions[k] != ACTION_DUMP;
    alloc |= o->actions[k] == ACTION_ALLOC_TYPES;
  }
  const char *stray = o->duration > 0 && !alloc ? "--duration"
                      : !types && o->top       ? "--top"
                      : !types && o->timeout   ? "--timeout"
                                               : NULL;
  if (stray != NULL) {
    fprintf(stderr,
            "triggerdump: threshold: %s is for --actions %s only\n", stray,
            strcmp(stray, "--duration") == 0 ? "alloc-types"
                                             : "heap-types or alloc-types");
    return 2;
  }
  /* a dump file that cannot be written is said now, not after the wait */
  struct dump_request probe = {0};
  if (dump_output(o->output, &probe) != 0)
    return 2;
  struct stat st;
  char at[PATH_MAX + NAME_MAX + 2];
  snprintf(at, sizeof(at), "%s/%s", probe.directory, probe.file_name);
  if (probe.file_name[0] && lstat(at, &st) == 0) {
    fprintf(stderr,
            "triggerdump: %s exists already: refusing to overwrite it\n", at);
    return 1;
  }
  struct printer p = {
      .format = "none", .pid = pid, .out = stdout, .threshold_mb = mb};
  install_signals();
  struct ipc_endpoint ep;
  int rc = run_session(pid, o, &p, NULL, &ep);
  if (!p.breached) {
    if (stop_requested)
      fprintf(stderr, "triggerdump: interrupted before the threshold was "
                      "crossed: no dump written\n");
    return rc ? rc : 1;
  }
  fprintf(stderr, "triggerdump: GC heap %.1f MB > %g MB\n", p.breach_value, mb);
  if (o->nactions == 0)
    return do_dump(&ep, o);
  int worst = 0; /* 1 (failed) over 3 (incomplete) over 0 */
  for (size_t k = 0; k < o->nactions; k++) {
    int r = o->actions[k] == ACTION_DUMP ? do_dump(&ep, o)
            : types_once(o->actions[k] == ACTION_HEAP_TYPES ? GCTYPES_HEAP
                                                            : GCTYPES_ALLOC,
                         &ep, o);
    if (r == 1 || (r != 0 && worst == 0))
      worst = r;
    if (stop_requested)
      break;
  }
  return worst;
}

/* ---- heap-types, alloc-types ---- */

#define TYPES_EXIT_INCOMPLETE 3

/* Prints g's result in o's format: 0 when complete, else
 * TYPES_EXIT_INCOMPLETE (the reason also on stderr), 1 on ENOMEM. */
static int types_print(const struct gctypes *g, const struct opts *o,
                       pid_t pid) {
  enum gctypes_format fmt = strcmp(o->format, "csv") == 0    ? GCTYPES_CSV
                            : strcmp(o->format, "json") == 0 ? GCTYPES_JSON
                                                             : GCTYPES_TEXT;
  size_t top = o->top ? o->top : TYPES_TOP_DEFAULT;
  size_t need = gctypes_format(g, fmt, top, NULL, 0) + 1;
  char *buf = malloc(need);
  if (buf == NULL) {
    fprintf(stderr, "triggerdump: out of memory\n");
    return 1;
  }
  gctypes_format(g, fmt, top, buf, need);
  fputs(buf, stdout);
  free(buf);
  struct gctypes_summary sum;
  gctypes_summary(g, &sum);
  if (sum.complete)
    return 0;
  fprintf(stderr, "triggerdump: pid %d: the result is incomplete: %s\n",
          (int)pid, sum.reason);
  return TYPES_EXIT_INCOMPLETE;
}

/* The cancel fd of a types run: written by the signal handler (write is
 * async-signal-safe), so that an interrupt ends the run at once. */
static int types_cancel_fd = -1;

static void on_types_signal(int sig) {
  on_signal(sig);
  uint64_t one = 1;
  ssize_t n = write(types_cancel_fd, &one, sizeof(one));
  (void)n;
}

/* One heap-types or alloc-types run (plugin/typesrun.c) of ep into
 * gctypes, the result printed: 0, 3 incomplete, 1 error. */
static int types_once(enum gctypes_mode mode, const struct ipc_endpoint *ep,
                      const struct opts *o) {
  struct gctypes *g = gctypes_new(mode, NULL);
  if (types_cancel_fd < 0)
    types_cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (g == NULL || types_cancel_fd < 0) {
    fprintf(stderr, "triggerdump: %s\n", strerror(g ? errno : ENOMEM));
    gctypes_free(g);
    return 1;
  }
  struct sigaction sa = {.sa_handler = on_types_signal};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  ipc_set_cancel_fd(types_cancel_fd);
  struct typesrun_config cfg = {.mode = mode,
                                .timeout_s = o->timeout > 0 ? o->timeout
                                                            : HEAP_TIMEOUT_S,
                                .duration_s = o->duration > 0
                                                  ? o->duration
                                                  : ALLOC_DURATION_S,
                                .cancel_fd = types_cancel_fd};
  struct typesrun_result res;
  int rc = typesrun(ep, &cfg, g, &res);
  char ebuf[512];
  if (res.cancelled) {
    fprintf(stderr, "triggerdump: interrupted\n");
    rc = 1;
  } else if (rc < 0) {
    fprintf(stderr, "triggerdump: pid %d: %s%s\n", (int)ep->pid,
            term_safe(res.reason, ebuf, sizeof(ebuf)),
            res.timed_out || rc == -ETIMEDOUT ? " (see --timeout)" : "");
    rc = 1;
  } else {
    struct gctypes_summary sum;
    gctypes_summary(g, &sum);
    if (mode == GCTYPES_HEAP)
      fprintf(stderr,
              "triggerdump: heap snapshot of pid %d in %.2f s, GC pause "
              "%.1f ms, %" PRIu64 " bytes of stream, %s buffering\n",
              (int)ep->pid, res.seconds, sum.gc_pause_ms, res.stream_bytes,
              res.lossless ? "lossless (Block where the runtime has it)"
                           : "Drop");
    rc = types_print(g, o, ep->pid);
  }
  gctypes_free(g);
  return rc;
}

/* The heap-types and alloc-types commands: 0, 3 incomplete, 1 error, 2
 * usage. */
static int run_types(enum gctypes_mode mode, struct opts *o, int argc,
                     char **argv, int i) {
  const char *cmd = mode == GCTYPES_HEAP ? "heap-types" : "alloc-types";
  struct ipc_endpoint ep;
  int r = pick_target(cmd, o, argc, argv, i, &ep);
  if (r != 0)
    return r;
  return types_once(mode, &ep, o);
}

static int cmd_heap_types(struct opts *o, int argc, char **argv, int i) {
  return run_types(GCTYPES_HEAP, o, argc, argv, i);
}

static int cmd_alloc_types(struct opts *o, int argc, char **argv, int i) {
  return run_types(GCTYPES_ALLOC, o, argc, argv, i);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *c = argv[1];
  if (strcmp(c, "--help") == 0 || strcmp(c, "-h") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(c, "--version") == 0) {
    version();
    return 0;
  }
  if (strcmp(c, "help") == 0) {
    if (argc == 2) {
      usage(stdout);
      return 0;
    }
    const struct command *h = command_find(argv[2]);
    if (argc > 3 || h == NULL) {
      fprintf(stderr, "triggerdump: help takes one of ps, monitor, record, "
                      "trace, stats, dump, heap-types, alloc-types, "
                      "threshold\n");
      return 2;
    }
    fputs(h->help, stdout);
    return 0;
  }
  /* a command sees its own name as argv[0], the threshold form its pid */
  static const struct {
    const char *name;
    int (*run)(struct opts *o, int argc, char **argv, int first);
  } runs[] = {{"ps", cmd_ps},         {"monitor", cmd_monitor},
              {"record", cmd_record}, {"stats", cmd_stats},
              {"dump", cmd_dump},     {"heap-types", cmd_heap_types},
              {"alloc-types", cmd_alloc_types}, {"trace", cmd_trace}};
  const char *name = "threshold";
  int (*run)(struct opts *, int, char **, int) = cmd_threshold;
  if (c[0] < '0' || c[0] > '9') {
    run = NULL;
    for (size_t k = 0; k < sizeof(runs) / sizeof(runs[0]); k++)
      if (strcmp(c, runs[k].name) == 0) {
        name = c;
        run = runs[k].run;
      }
    argc--;
    argv++;
  }
  if (run != NULL) {
    struct opts o = {.format = "text"};
    int first;
    int r = parse_opts(command_find(name), argc, argv, &o, &first);
    return r != 0 ? (r > 0 ? 0 : 2) : run(&o, argc, argv, first);
  }
  fprintf(stderr, "triggerdump: unknown command '%s'\n", c);
  usage(stderr);
  return 2;
}
