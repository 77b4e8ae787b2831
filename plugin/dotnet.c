/**
 * collectd-dotnet - plugin/dotnet.c
 *
 * The collectd plugin "dotnet": every runtime counter of the configured (or
 * discovered) .NET processes as collectd values, and core dumps when a
 * threshold notification fires for one of them.
 *
 *   LoadPlugin dotnet
 *   <Plugin dotnet>
 *     Interval 1                 # counter interval (s); default: collectd's
 *     AutoDiscover false         # true: every .NET process, named by its
 *                                # entry assembly
 *     AlignSessions true         # false: start sessions at once, not on
 *                                # the next whole Interval (at most 1 s)
 *     Gather 0.2                 # s to wait for the other streams once
 *                                # one has come (0: none)
 *     MaxProcesses 256
 *     MaxSeries 512              # series (type instances) per process
 *     Listen "/run/collectd-dotnet/diag.sock"  # repeatable: runtimes
 *                                # started with DOTNET_DiagnosticPorts=
 *                                # <path>,connect[,suspend] connect in
 *     <Listen "/run/diag/app.sock">  # the same, with the socket's
 *       Group "dotnet-diag"          # group (default: collectd's)
 *       Mode "0660"                  # and mode (default 0660)
 *     </Listen>
 *     <Process "shop">           # "shop" is the plugin instance
 *       CommandLine "Shop\\.dll" # or: Pid 1234 | EntryAssembly "Shop"
 *       Provider "System.Runtime"      # repeatable (default System.Runtime)
 *       Provider "Microsoft.AspNetCore.Hosting"
 *       Meter "Contoso.Shop"           # repeatable (System.Diagnostics.Metrics)
 *     </Process>
 *     <Dump>
 *       Directory "/var/lib/collectd/dotnet-dumps"
 *       Type "heap"              # mini | heap | triage | full
 *       Counter "gc-heap-size"   # repeatable
 *       Severity "warning"       # warning | failure
 *       MinInterval 300
 *       MaxDumps 5
 *       MaxDumpsTotal 20
 *       MinFreeSpace "2G"
 *       Method "ipc"             # ipc | exec
 *       Timeout 120
 *     </Dump>
 *     <Trigger>                  # repeatable: actions, in order
 *       Counter "gc-heap-size"   # repeatable
 *       Severity "warning"
 *       Directory "/var/lib/collectd/dotnet-dumps"
 *       MinFreeSpace "2G"
 *       Action "alloc-types"     # with its defaults, or a block:
 *       <Action "heap-types">    # alloc-types | heap-types | trace | dump
 *         MaxHeapSize "4G"
 *         MinInterval 300        # each action's own limits
 *       </Action>
 *       Action "dump"
 *     </Trigger>
 *   </Plugin>
 *
 * A <Dump> block is a trigger with the one action "dump".
 *
 * Threads: the watch (plugin/watch.c) reads the targets and its reader
 * thread dispatches each value as it arrives; the notification callback
 * only queues a request with the trigger's worker (plugin/dump_worker.c),
 * whose thread runs the actions (plugin/action.c) and sends a notification
 * per result; with a dump action, a read callback dispatches the dump
 * counts: every instance then has two DERIVE values, "derive-dumps" and
 * "derive-dump-failures", dumps written and failed since the plugin
 * started, counted by instance name.
 */
#include "clock.h"
#include "collectd.h"
#include "plugin.h"
#include "utils/common/common.h"

#include "action.h"
#include "dump_worker.h"
#include "naming.h"
#include "watch.h"

#include <errno.h>
#include <grp.h>
#include <math.h>
#include <stdatomic.h>
#include <time.h>

#define MAX_RULES 64
#define MAX_COUNTERS 16 /* Counter options of a trigger */
#define MAX_TRIGGERS 8  /* <Trigger> and <Dump> blocks */
#define MAX_PROVIDER_STRINGS 512
#define MAX_REFUSALS 64
#define MAX_DUMP_COUNTS 1024

/* A refusal to dump already logged (see log_refusal). */
struct refusal {
  char instance[NAMING_MAX];
  int reason;
};

/* Dumps written and failed attempts of one instance (see dump_count_add),
 * and its last GC heap size (for MaxHeapSize, see note_heap). */
struct dump_count {
  char instance[NAMING_MAX];
  int64_t written;
  int64_t failed;
  double heap_bytes; /* 0: not seen */
  bool heap_refused;  /* a MaxHeapSize refusal notified, no run since */
};

/* A <Trigger> (or <Dump>) block: which notifications, which actions. */
struct trigger {
  bool is_dump_block; /* <Dump>: its log wording */
  char counters[MAX_COUNTERS][NAMING_MAX];
  size_t ncounters;
  int severity; /* the least severe notification that triggers */
  char directory[PATH_MAX];
  uint64_t min_free_bytes;
  struct action_config actions[DUMP_WORKER_MAX_STEPS];
  char labels[DUMP_WORKER_MAX_STEPS][32]; /* "heap-types: " */
  size_t nactions;
  struct dump_worker *worker; /* under notify_lock */
};

/* A value of one read of one stream, waiting for flush(). */
struct batch_row {
  struct naming_row row;
  cdtime_t time;
};

/* A live instance, as dotnet_read dispatches its dump counts. */
struct dump_count_row {
  char instance[NAMING_MAX];
  cdtime_t interval;
};

struct collect {
  struct dump_count_row *v;
  size_t n, cap;
};

/* Where a notification that would have made a dump came from instead. */
enum foreign_kind { FOREIGN_HOST, FOREIGN_SHAPE, FOREIGN_KINDS };

/* The plugin's state. Who writes what:
 *  - cfg and triggers (but their workers): dotnet_config (collectd's main
 *    thread, before init); read-only from dotnet_init on (shutdown frees
 *    the rules and strings);
 *  - watch: set by dotnet_init, cleared by dotnet_shutdown; the notification
 *    callback uses it only under notify_lock while live is set;
 *  - live and the triggers' workers: under notify_lock (set by init,
 *    cleared by shutdown, used by dotnet_notify on any of collectd's
 *    threads);
 *  - refusals: under refusal_lock (dotnet_notify, any thread);
 *  - counts: under count_lock (the workers' threads write the dump counts
 *    and read the heap sizes, the reader thread writes the heap sizes, the
 *    read callback reads; nobody dispatches under it);
 *  - batch: the watch's reader thread's alone (publish, flush);
 *  - collected: the read callback's (collectd never runs it twice at once);
 *  - the log-once flags: counts_full under count_lock, refusals_full
 *    under refusal_lock, foreign_logged atomic.
 * Log-once is by flags, not collectd's c_complain_once: that asks
 * plugin_get_interval, which logs an error on a thread without a plugin
 * context, and these lines come from the dump worker's thread and from the
 * threshold plugin judging values our reader thread dispatched. */
static struct {
  struct {
    double interval; /* 0: collectd's interval */
    bool autodiscover;
    bool align_sessions;
    double gather; /* < 0: the watch's default */
    int max_processes;
    int max_series;
    struct watch_rule rules[MAX_RULES];
    size_t nrules;
    struct watch_listen listens[WATCH_LISTEN_MAX];
    size_t nlistens;
    struct session_config auto_session; /* Provider, Meter outside blocks */
    char *owned[MAX_PROVIDER_STRINGS];  /* the strings the lists point to */
    size_t nowned;
  } cfg;
  struct trigger triggers[MAX_TRIGGERS];
  size_t ntriggers;
  bool has_dumps;  /* a dump action: the dump counts are dispatched */
  bool note_heaps; /* a MaxHeapSize: the heap sizes are noted */
  struct watch *watch;
  pthread_mutex_t notify_lock;
  bool live; /* the workers run: under notify_lock */
  pthread_mutex_t refusal_lock;
  struct refusal refusals[MAX_REFUSALS];
  size_t nrefusals;
  bool refusals_full; /* said once */
  pthread_mutex_t count_lock;
  struct dump_count counts[MAX_DUMP_COUNTS];
  size_t ncounts;
  bool counts_full; /* said once */
  struct batch_row *batch;
  size_t nbatch, batch_cap;
  struct collect collected;
  atomic_bool foreign_logged[FOREIGN_KINDS];
} plugin = {
    .cfg = {.align_sessions = true,
            .gather = -1,
            .max_processes = 256,
            .max_series = COUNTERS_DEFAULT_MAX_SERIES},
    .notify_lock = PTHREAD_MUTEX_INITIALIZER,
    .refusal_lock = PTHREAD_MUTEX_INITIALIZER,
    .count_lock = PTHREAD_MUTEX_INITIALIZER,
};

static void watch_log(int level, const char *msg) {
  plugin_log(level, "dotnet plugin: %s", msg);
}

/* ---- configuration ---- */

static const char *keep_string(const char *s) {
  if (plugin.cfg.nowned >= MAX_PROVIDER_STRINGS)
    return NULL;
  char *d = strdup(s);
  if (d)
    plugin.cfg.owned[plugin.cfg.nowned++] = d;
  return d;
}

/* Reads one string option into a list of names (Provider, Meter). */
static int add_name(oconfig_item_t *ci, const char *block, const char **list,
                    size_t *n, size_t max) {
  char buf[256];
  if (cf_util_get_string_buffer(ci, buf, sizeof(buf)) != 0)
    return -1;
  if (buf[0] == 0) {
    ERROR("dotnet plugin: %s: %s must not be empty.", block, ci->key);
    return -1;
  }
  if (*n >= max) {
    ERROR("dotnet plugin: %s: at most %zu %s options.", block, max, ci->key);
    return -1;
  }
  const char *s = keep_string(buf);
  if (s == NULL)
    return -1;
  list[(*n)++] = s;
  return 0;
}

/* A number out of its range: logged naming the option (prefix: "" or
 * "<Dump>: ") and what it must_be, -1. */
static int out_of_range(oconfig_item_t *c, const char *prefix,
                        const char *must_be) {
  ERROR("dotnet plugin: %s%s must be %s.", prefix, c->key, must_be);
  return -1;
}

/* Reads a number into *out, lo <= *out <= hi. */
static int get_number(oconfig_item_t *c, const char *prefix, double lo,
                      double hi, const char *must_be, double *out) {
  if (cf_util_get_double(c, out) != 0)
    return -1;
  return *out >= lo && *out <= hi ? 0 : out_of_range(c, prefix, must_be);
}

/* The same for a whole number. */
static int get_int(oconfig_item_t *c, const char *prefix, int lo, int hi,
                   const char *must_be, int *out) {
  if (cf_util_get_int(c, out) != 0)
    return -1;
  return *out >= lo && *out <= hi ? 0 : out_of_range(c, prefix, must_be);
}

/* An option key that block (NULL: the plugin's own level) does not take:
 * logged with the ones it does (known), -1. */
static int unknown_option(const char *block, const char *key,
                          const char *known) {
  ERROR("dotnet plugin: %s%sunknown option \"%s\" (known: %s).",
        block ? block : "", block ? ": " : "", key, known);
  return -1;
}

/* Reads a string option that names one value of table into *out; the
 * error names the block (prefix: "<Dump>: ") and lists the names (names:
 * "one of a, b, c" or "a or b"). */
static int get_choice(oconfig_item_t *c, const char *prefix,
                      const struct dump_name *table, const char *names,
                      int *out) {
  char buf[256];
  if (cf_util_get_string_buffer(c, buf, sizeof(buf)) != 0)
    return -1;
  if (dump_name_parse(table, buf, out) == 0)
    return 0;
  ERROR("dotnet plugin: %s%s \"%s\" is not %s.", prefix, c->key, buf, names);
  return -1;
}

/* Listen "PATH", or <Listen "PATH"> with Group and Mode. */
static int config_listen(oconfig_item_t *ci) {
  if (plugin.cfg.nlistens >= WATCH_LISTEN_MAX) {
    ERROR("dotnet plugin: at most %d Listen options.", WATCH_LISTEN_MAX);
    return -1;
  }
  struct watch_listen *l = &plugin.cfg.listens[plugin.cfg.nlistens];
  *l = (struct watch_listen){.gid = (gid_t)-1, .mode = 0660};
  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_STRING ||
      ci->values[0].value.string[0] != '/' ||
      strlen(ci->values[0].value.string) >= sizeof(l->path)) {
    ERROR("dotnet plugin: Listen takes the absolute path of a socket (at "
          "most %zu bytes).",
          sizeof(l->path) - 1);
    return -1;
  }
  sstrncpy(l->path, ci->values[0].value.string, sizeof(l->path));
  for (int i = 0; i < ci->children_num; i++) {
    oconfig_item_t *c = ci->children + i;
    char buf[256];
    if (strcasecmp("Group", c->key) == 0) {
      if (cf_util_get_string_buffer(c, buf, sizeof(buf)) != 0)
        return -1;
      struct group gr, *res = NULL;
      char gbuf[4096], *end;
      unsigned long id = strtoul(buf, &end, 10); /* or a number */
      if (getgrnam_r(buf, &gr, gbuf, sizeof(gbuf), &res) == 0 && res != NULL)
        l->gid = gr.gr_gid;
      else if (buf[0] >= '0' && buf[0] <= '9' && *end == 0 && id < 0x7fffffff)
        l->gid = (gid_t)id;
      else {
        ERROR("dotnet plugin: <Listen>: no group \"%s\".", buf);
        return -1;
      }
    } else if (strcasecmp("Mode", c->key) == 0) {
      char *end;
      if (cf_util_get_string_buffer(c, buf, sizeof(buf)) != 0)
        return -1;
      unsigned long m = strtoul(buf, &end, 8);
      /* the owner must be able to use it; nothing but rw bits */
      if (*end || buf[0] == 0 || (m & ~0666ul) || (m & 0600) != 0600) {
        ERROR("dotnet plugin: <Listen>: Mode \"%s\" is not an octal mode "
              "of read and write bits with 0600 in it (such as \"0660\").",
              buf);
        return -1;
      }
      l->mode = (mode_t)m;
    } else if (strcasecmp("DumpStaging", c->key) == 0) {
      if (c->values_num != 2 || c->values[0].type != OCONFIG_TYPE_STRING ||
          c->values[1].type != OCONFIG_TYPE_STRING ||
          c->values[0].value.string[0] != '/' ||
          c->values[1].value.string[0] != '/' ||
          strlen(c->values[0].value.string) >= sizeof(l->dump_there) ||
          strlen(c->values[1].value.string) >= sizeof(l->dump_here)) {
        ERROR("dotnet plugin: <Listen>: DumpStaging takes two absolute "
              "paths (at most %zu bytes): the directory as the runtimes see "
              "it, and as collectd sees it.",
              sizeof(l->dump_there) - 1);
        return -1;
      }
      sstrncpy(l->dump_there, c->values[0].value.string,
               sizeof(l->dump_there));
      sstrncpy(l->dump_here, c->values[1].value.string, sizeof(l->dump_here));
    } else {
      return unknown_option("<Listen>", c->key, "Group, Mode, DumpStaging");
    }
  }
  plugin.cfg.nlistens++;
  return 0;
}

static int config_process(oconfig_item_t *ci) {
  if (plugin.cfg.nrules >= MAX_RULES) {
    ERROR("dotnet plugin: at most %d <Process> blocks.", MAX_RULES);
    return -1;
  }
  struct watch_rule *r = &plugin.cfg.rules[plugin.cfg.nrules];
  memset(r, 0, sizeof(*r));
  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_STRING ||
      ci->values[0].value.string[0] == 0) {
    ERROR("dotnet plugin: <Process> needs one non-empty name: "
          "<Process \"shop\">.");
    return -1;
  }
  sstrncpy(r->name, ci->values[0].value.string, sizeof(r->name));
  for (size_t i = 0; i < plugin.cfg.nrules; i++) {
    if (strcmp(plugin.cfg.rules[i].name, r->name) == 0) {
      ERROR("dotnet plugin: <Process \"%s\"> is defined twice.", r->name);
      return -1;
    }
  }
  char block[128];
  snprintf(block, sizeof(block), "<Process \"%s\">", r->name);
  int matches = 0;
  for (int i = 0; i < ci->children_num; i++) {
    oconfig_item_t *c = ci->children + i;
    int status = 0;
    if (strcasecmp("Pid", c->key) == 0) {
      int pid = 0;
      status = cf_util_get_int(c, &pid);
      if (status == 0 && pid <= 0) {
        ERROR("dotnet plugin: %s: Pid must be a positive number.", block);
        status = -1;
      }
      r->match = WATCH_MATCH_PID;
      r->pid = pid;
      matches++;
    } else if (strcasecmp("CommandLine", c->key) == 0) {
      status = cf_util_get_string_buffer(c, r->pattern, sizeof(r->pattern));
      r->match = WATCH_MATCH_COMMAND_LINE;
      matches++;
    } else if (strcasecmp("EntryAssembly", c->key) == 0) {
      status = cf_util_get_string_buffer(c, r->pattern, sizeof(r->pattern));
      r->match = WATCH_MATCH_ENTRY;
      matches++;
    } else if (strcasecmp("Provider", c->key) == 0) {
      status = add_name(c, block, r->session.providers, &r->session.nproviders,
                        SESSION_MAX_PROVIDERS);
    } else if (strcasecmp("Meter", c->key) == 0) {
      status = add_name(c, block, r->session.meters, &r->session.nmeters,
                        SESSION_MAX_METERS);
    } else {
      status = unknown_option(block, c->key,
                              "Pid, CommandLine, EntryAssembly, Provider, "
                              "Meter");
    }
    if (status != 0)
      return -1;
  }
  if (matches != 1) {
    ERROR("dotnet plugin: %s needs exactly one of Pid, CommandLine or "
          "EntryAssembly (it has %d).",
          block, matches);
    return -1;
  }
  char err[256];
  if (watch_rule_compile(r, err, sizeof(err)) != 0) {
    ERROR("dotnet plugin: %s: CommandLine \"%s\" is not a valid regular "
          "expression: %s.",
          block, r->pattern, err);
    return -1;
  }
  plugin.cfg.nrules++;
  return 0;
}

/* A size (MinFreeSpace, MaxHeapSize, MaxSize): a number of bytes, or a
 * size such as "2G". */
static int get_size(oconfig_item_t *c, const char *prefix, uint64_t *out) {
  if (c->values_num == 1 && c->values[0].type == OCONFIG_TYPE_NUMBER) {
    *out = (uint64_t)c->values[0].value.number;
    return 0;
  }
  char buf[256];
  if (cf_util_get_string_buffer(c, buf, sizeof(buf)) != 0)
    return -1;
  if (dump_size_parse(buf, out) == 0)
    return 0;
  ERROR("dotnet plugin: %s%s \"%s\" is not a size such as \"2G\" or "
        "\"500M\".",
        prefix, c->key, buf);
  return -1;
}

static const struct dump_name severities[] = {
    {"warning", NOTIF_WARNING}, {"failure", NOTIF_FAILURE}, {NULL, 0}};

/* A Counter option of a trigger. */
static int add_counter(oconfig_item_t *c, const char *prefix,
                       struct trigger *t) {
  if (t->ncounters >= MAX_COUNTERS) {
    ERROR("dotnet plugin: %sat most %d Counter options.", prefix,
          MAX_COUNTERS);
    return -1;
  }
  if (cf_util_get_string_buffer(c, t->counters[t->ncounters], NAMING_MAX) != 0)
    return -1;
  t->ncounters++;
  return 0;
}

/* A timeout in (0, 86400) s: the open range between the doubles next to
 * its ends. */
static int get_timeout(oconfig_item_t *c, const char *prefix, double *out) {
  return get_number(c, prefix, nextafter(0, 1), nextafter(86400, 0),
                    "in (0, 86400) seconds", out);
}

/* The options every action and <Dump> take: MinInterval and the limits
 * (<Dump>'s MaxDumps and MaxDumpsTotal, an action's MaxPerProcess and
 * MaxTotal). 1 when c is not one of them. */
static int config_limit(oconfig_item_t *c, const char *prefix,
                        bool dump_block, struct dump_policy *pol) {
  int v = 0, status;
  if (strcasecmp("MinInterval", c->key) == 0)
    return get_number(c, prefix, 0, HUGE_VAL, ">= 0 seconds",
                      &pol->min_interval_sec);
  bool per_process = dump_block ? strcasecmp("MaxDumps", c->key) == 0
                                : strcasecmp("MaxPerProcess", c->key) == 0;
  bool total = dump_block ? strcasecmp("MaxDumpsTotal", c->key) == 0
                          : strcasecmp("MaxTotal", c->key) == 0;
  if (per_process) {
    status = get_int(c, prefix, 1, INT_MAX, "at least 1", &v);
    pol->max_per_process = (unsigned)v;
    return status;
  }
  if (total) {
    status = get_int(c, prefix, 1, INT_MAX, "at least 1", &v);
    pol->max_total = (unsigned)v;
    return status;
  }
  return 1;
}

/* The dump's own options (of <Dump> and <Action "dump">): Type, Method,
 * Timeout. 1 when c is not one of them. */
static int config_dump_option(oconfig_item_t *c, const char *prefix,
                              struct dump_request *req) {
  int v = 0, status;
  double t = 0;
  if (strcasecmp("Type", c->key) == 0) {
    status = get_choice(c, prefix, dump_types,
                        "one of mini, heap, triage, full", &v);
    req->type = (enum ipc_dump_type)v;
    return status;
  }
  if (strcasecmp("Method", c->key) == 0) {
    status = get_choice(c, prefix, dump_methods, "ipc or exec", &v);
    req->method = (enum dump_method)v;
    return status;
  }
  if (strcasecmp("Timeout", c->key) == 0) {
    status = get_timeout(c, prefix, &t);
    req->timeout_ms = (int)(t * 1000);
    return status;
  }
  return 1;
}

/* The trigger's own options (of <Trigger> and <Dump>): Counter, Severity,
 * Directory, MinFreeSpace. 1 when c is not one of them. */
static int config_trigger_option(oconfig_item_t *c, const char *prefix,
                                 struct trigger *t) {
  if (strcasecmp("Counter", c->key) == 0)
    return add_counter(c, prefix, t);
  if (strcasecmp("Severity", c->key) == 0)
    return get_choice(c, prefix, severities, "warning or failure",
                      &t->severity);
  if (strcasecmp("MinFreeSpace", c->key) == 0)
    return get_size(c, prefix, &t->min_free_bytes);
  if (strcasecmp("Directory", c->key) != 0)
    return 1;
  if (cf_util_get_string_buffer(c, t->directory, sizeof(t->directory)) != 0)
    return -1;
  if (t->directory[0] != '/') {
    ERROR("dotnet plugin: %sDirectory must be an absolute path.", prefix);
    return -1;
  }
  return 0;
}

/* A new trigger (NULL after saying why). */
static struct trigger *trigger_new(const char *block) {
  if (plugin.ntriggers >= MAX_TRIGGERS) {
    ERROR("dotnet plugin: at most %d <Trigger> and <Dump> blocks; %s is one "
          "too many.",
          MAX_TRIGGERS, block);
    return NULL;
  }
  struct trigger *t = &plugin.triggers[plugin.ntriggers++];
  *t = (struct trigger){.severity = NOTIF_WARNING};
  return t;
}

/* What a trigger's actions take from it, once all its options are read:
 * the directory and MinFreeSpace; and its defaults (Counter). */
static int trigger_finish(struct trigger *t, const char *prefix) {
  if (t->directory[0] == 0) {
    ERROR("dotnet plugin: %sa Directory is needed (where the results go).",
          prefix);
    return -1;
  }
  if (t->nactions == 0) {
    ERROR("dotnet plugin: %sno Action: say what the trigger does (one or "
          "more of alloc-types, heap-types, trace, dump).",
          prefix);
    return -1;
  }
  if (t->ncounters == 0) {
    sstrncpy(t->counters[0], "gc-heap-size", NAMING_MAX);
    t->ncounters = 1;
  }
  for (size_t i = 0; i < t->nactions; i++) {
    struct dump_request *d = &t->actions[i].dump;
    sstrncpy(d->directory, t->directory, sizeof(d->directory));
    d->min_free_bytes = t->min_free_bytes;
    if (t->actions[i].kind == ACTION_DUMP)
      plugin.has_dumps = true;
    if (t->actions[i].max_heap_bytes > 0)
      plugin.note_heaps = true;
  }
  return 0;
}

static int config_dump(oconfig_item_t *ci) {
  static const char prefix[] = "<Dump>: ";
  struct trigger *t = trigger_new("<Dump>");
  if (t == NULL)
    return -1;
  t->is_dump_block = true;
  t->nactions = 1;
  struct action_config *a = &t->actions[0];
  a->dump = (struct dump_request){.type = IPC_DUMP_HEAP,
                                  .method = DUMP_METHOD_IPC};
  action_defaults(a, ACTION_DUMP);
  for (int i = 0; i < ci->children_num; i++) {
    oconfig_item_t *c = ci->children + i;
    int status = config_trigger_option(c, prefix, t);
    if (status > 0)
      status = config_dump_option(c, prefix, &a->dump);
    if (status > 0)
      status = config_limit(c, prefix, true, &a->policy);
    if (status > 0)
      status = unknown_option("<Dump>", c->key,
                              "Directory, Type, Counter, Severity, "
                              "MinInterval, MaxDumps, MaxDumpsTotal, "
                              "MinFreeSpace, Method, Timeout");
    if (status != 0)
      return -1;
  }
  return trigger_finish(t, prefix);
}

/* The options of an action of kind k, for the error of an unknown one. */
static const char *action_options(enum action_kind k) {
  switch (k) {
  case ACTION_ALLOC_TYPES:
    return "Duration, Top, MinInterval, MaxPerProcess, MaxTotal";
  case ACTION_HEAP_TYPES:
    return "MaxHeapSize, Timeout, Top, MinInterval, MaxPerProcess, MaxTotal";
  case ACTION_TRACE:
    return "Duration, Provider, MaxSize, MinInterval, MaxPerProcess, "
           "MaxTotal";
  case ACTION_DUMP:
    break;
  }
  return "Type, Method, Timeout, MinInterval, MaxPerProcess, MaxTotal";
}

/* A Provider of a trace action, as dotnet-trace writes one
 * ("Name:0xKEYWORDS:LEVEL"); repeatable. */
static int add_trace_provider(oconfig_item_t *c, const char *prefix,
                              struct trace_config *t) {
  char buf[TRACE_NAME_MAX + 64], err[256];
  if (cf_util_get_string_buffer(c, buf, sizeof(buf)) != 0)
    return -1;
  if (strchr(buf, ',') != NULL) {
    ERROR("dotnet plugin: %sProvider \"%s\": one provider per Provider "
          "option.",
          prefix, buf);
    return -1;
  }
  struct trace_config one = {0};
  if (trace_providers_parse(buf, &one, err, sizeof(err)) != 0) {
    ERROR("dotnet plugin: %sProvider \"%s\": %s", prefix, buf, err);
    return -1;
  }
  for (size_t i = 0; i < t->nproviders; i++)
    if (strcmp(t->providers[i].name, one.providers[0].name) == 0) {
      ERROR("dotnet plugin: %sProvider %s is named twice.", prefix,
            one.providers[0].name);
      return -1;
    }
  if (t->nproviders >= TRACE_MAX_PROVIDERS) {
    ERROR("dotnet plugin: %sat most %d Provider options.", prefix,
          TRACE_MAX_PROVIDERS);
    return -1;
  }
  t->providers[t->nproviders++] = one.providers[0];
  return 0;
}

/* One option of an action of kind a->kind: 1 when it takes no such
 * option. */
static int config_action_option(oconfig_item_t *c, const char *prefix,
                                 struct action_config *a) {
  enum action_kind k = a->kind;
  int v = 0, status;
  int status0 = config_limit(c, prefix, false, &a->policy);
  if (status0 <= 0)
    return status0;
  if (k == ACTION_DUMP)
    return config_dump_option(c, prefix, &a->dump);
  if ((k == ACTION_ALLOC_TYPES || k == ACTION_TRACE) &&
      strcasecmp("Duration", c->key) == 0)
    return get_number(c, prefix, 0.1, 3600, "between 0.1 and 3600 seconds",
                      &a->duration_s);
  if ((k == ACTION_ALLOC_TYPES || k == ACTION_HEAP_TYPES) &&
      strcasecmp("Top", c->key) == 0) {
    status = get_int(c, prefix, 1, ACTION_TOP_MAX, "between 1 and 64", &v);
    a->top = (unsigned)v;
    return status;
  }
  if (k == ACTION_HEAP_TYPES && strcasecmp("Timeout", c->key) == 0)
    return get_timeout(c, prefix, &a->timeout_s);
  if (k == ACTION_HEAP_TYPES && strcasecmp("MaxHeapSize", c->key) == 0)
    return get_size(c, prefix, &a->max_heap_bytes);
  if (k == ACTION_TRACE && strcasecmp("MaxSize", c->key) == 0) {
    status = get_size(c, prefix, &a->trace.max_bytes);
    if (status == 0 && a->trace.max_bytes < (1u << 20)) {
      ERROR("dotnet plugin: %sMaxSize must be at least 1M.", prefix);
      status = -1;
    }
    return status;
  }
  if (k == ACTION_TRACE && strcasecmp("Provider", c->key) == 0)
    return add_trace_provider(c, prefix, &a->trace);
  return 1;
}

/* Action "kind", or a block <Action "kind"> with its options. */
static int config_action(oconfig_item_t *ci, struct trigger *t) {
  int kind = 0;
  if (get_choice(ci, "<Trigger>: ", action_kinds,
                 "one of alloc-types, heap-types, trace, dump", &kind) != 0)
    return -1;
  const char *name = dump_name_of(action_kinds, kind);
  for (size_t i = 0; i < t->nactions; i++)
    if ((int)t->actions[i].kind == kind) {
      ERROR("dotnet plugin: <Trigger>: Action \"%s\" is there twice.", name);
      return -1;
    }
  struct action_config *a = &t->actions[t->nactions];
  a->dump = (struct dump_request){.type = IPC_DUMP_HEAP,
                                  .method = DUMP_METHOD_IPC};
  action_defaults(a, (enum action_kind)kind);
  char prefix[64];
  snprintf(prefix, sizeof(prefix), "<Action \"%s\">: ", name);
  for (int i = 0; i < ci->children_num; i++) {
    oconfig_item_t *c = ci->children + i;
    int status = config_action_option(c, prefix, a);
    if (status > 0) {
      char block[48];
      snprintf(block, sizeof(block), "<Action \"%s\">", name);
      status = unknown_option(block, c->key, action_options(a->kind));
    }
    if (status != 0)
      return -1;
  }
  snprintf(t->labels[t->nactions], sizeof(t->labels[0]), "%s: ", name);
  t->nactions++;
  return 0;
}

static int config_trigger(oconfig_item_t *ci) {
  static const char prefix[] = "<Trigger>: ";
  struct trigger *t = trigger_new("<Trigger>");
  if (t == NULL)
    return -1;
  for (int i = 0; i < ci->children_num; i++) {
    oconfig_item_t *c = ci->children + i;
    int status = config_trigger_option(c, prefix, t);
    if (status > 0 && strcasecmp("Action", c->key) == 0) {
      if (t->nactions >= DUMP_WORKER_MAX_STEPS) {
        ERROR("dotnet plugin: <Trigger>: at most %d actions.",
              DUMP_WORKER_MAX_STEPS);
        return -1;
      }
      status = config_action(c, t);
    }
    if (status > 0)
      status = unknown_option("<Trigger>", c->key,
                              "Counter, Severity, Directory, MinFreeSpace, "
                              "Action, <Action>");
    if (status != 0)
      return -1;
  }
  return trigger_finish(t, prefix);
}

static int dotnet_config(oconfig_item_t *ci) {
  struct session_config *auto_session = &plugin.cfg.auto_session;
  char max_series[64];
  snprintf(max_series, sizeof(max_series), "between 1 and %d",
           COUNTERS_MAX_MAX_SERIES);
  for (int i = 0; i < ci->children_num; i++) {
    oconfig_item_t *c = ci->children + i;
    int status = 0;
    if (strcasecmp("Interval", c->key) == 0) {
      status = get_number(c, "", 0.1, 3600, "between 0.1 and 3600 seconds",
                          &plugin.cfg.interval);
    } else if (strcasecmp("AutoDiscover", c->key) == 0) {
      status = cf_util_get_boolean(c, &plugin.cfg.autodiscover);
    } else if (strcasecmp("AlignSessions", c->key) == 0) {
      status = cf_util_get_boolean(c, &plugin.cfg.align_sessions);
    } else if (strcasecmp("Gather", c->key) == 0) {
      status = get_number(c, "", 0, 900, "between 0 and 900 seconds",
                          &plugin.cfg.gather);
    } else if (strcasecmp("MaxProcesses", c->key) == 0) {
      status = get_int(c, "", 1, INT_MAX, "at least 1",
                       &plugin.cfg.max_processes);
    } else if (strcasecmp("MaxSeries", c->key) == 0) {
      status = get_int(c, "", 1, COUNTERS_MAX_MAX_SERIES, max_series,
                       &plugin.cfg.max_series);
    } else if (strcasecmp("Provider", c->key) == 0) {
      status = add_name(c, "AutoDiscover", auto_session->providers,
                        &auto_session->nproviders, SESSION_MAX_PROVIDERS);
    } else if (strcasecmp("Meter", c->key) == 0) {
      status = add_name(c, "AutoDiscover", auto_session->meters,
                        &auto_session->nmeters, SESSION_MAX_METERS);
    } else if (strcasecmp("Process", c->key) == 0) {
      status = config_process(c);
    } else if (strcasecmp("Dump", c->key) == 0) {
      status = config_dump(c);
    } else if (strcasecmp("Trigger", c->key) == 0) {
      status = config_trigger(c);
    } else if (strcasecmp("Listen", c->key) == 0) {
      status = config_listen(c);
    } else {
      status = unknown_option(NULL, c->key,
                              "Interval, AutoDiscover, AlignSessions, Gather, "
                              "MaxProcesses, MaxSeries, Provider, Meter, "
                              "Listen, <Process>, <Dump>, <Trigger>");
    }
    if (status != 0)
      return -1;
  }
  return 0;
}

/* ---- dump counts: "derive-dumps" and "derive-dump-failures" ----
 *
 * Dumps written and failed attempts per instance since the plugin started,
 * dispatched as DERIVE values at every read of every live instance (from 0,
 * so that the series exist before the first dump). Keyed by the instance
 * name, not the pid: a restarted process counts on. dump_done (the dump
 * worker's thread) writes, dotnet_read (collectd's read thread) reads;
 * nobody dispatches under the lock. */

/* instance's counts, or NULL; under count_lock. */
static struct dump_count *dump_count_find(const char *instance) {
  for (size_t i = 0; i < plugin.ncounts; i++)
    if (strcmp(plugin.counts[i].instance, instance) == 0)
      return &plugin.counts[i];
  return NULL;
}

static void dump_count_add(const char *instance, bool written) {
  bool say_full = false;
  pthread_mutex_lock(&plugin.count_lock);
  struct dump_count *c = dump_count_find(instance);
  if (c == NULL && plugin.ncounts < MAX_DUMP_COUNTS) {
    c = &plugin.counts[plugin.ncounts++];
    sstrncpy(c->instance, instance, NAMING_MAX);
  }
  if (c == NULL) {
    say_full = !plugin.counts_full;
    plugin.counts_full = true;
  } else if (written) {
    c->written++;
  } else {
    c->failed++;
  }
  pthread_mutex_unlock(&plugin.count_lock);
  if (say_full)
    WARNING("dotnet plugin: dumps counted for %d instances: the dumps of "
            "others (first: \"%s\") are not counted in derive-dumps and "
            "derive-dump-failures (logged once).",
            MAX_DUMP_COUNTS, instance);
}

/* What the values of one instance share: plugin, plugin instance,
 * interval. Made once per batch; dispatch_row fills in the rest. */
static void value_list_for(value_list_t *vl, const char *instance,
                           cdtime_t interval) {
  *vl = (value_list_t)VALUE_LIST_INIT;
  vl->interval = interval;
  sstrncpy(vl->plugin, "dotnet", sizeof(vl->plugin));
  sstrncpy(vl->plugin_instance, instance, sizeof(vl->plugin_instance));
}

/* Copies src into dst[cap] (cut to fit); unlike sstrncpy, it does not fill
 * the rest of dst with zeros. */
static void copy_name(char *dst, const char *src, size_t cap) {
  size_t n = strnlen(src, cap - 1);
  memcpy(dst, src, n);
  dst[n] = '\0';
}

static void dispatch_row(value_list_t *vl, const struct naming_row *row,
                         cdtime_t time) {
  value_t v;
  if (row->is_derive)
    v.derive = row->derive;
  else
    v.gauge = row->gauge;
  vl->values = &v;
  vl->values_len = 1;
  vl->time = time;
  copy_name(vl->type, row->type, sizeof(vl->type));
  copy_name(vl->type_instance, row->type_instance, sizeof(vl->type_instance));
  plugin_dispatch_values(vl);
  vl->values = NULL;
}

/* ---- counter values: dispatched as they arrive ----
 *
 * The watch's reader thread calls publish() for every sample and flush()
 * after each read of a stream, which dispatches that read's values together
 * (plugin_dispatch_values only queues them for collectd's write threads,
 * where the cache, the threshold check and the writers run): a value is in
 * collectd as soon as the runtime has flushed it, so a breach is noticed at
 * once, not up to an Interval later at the next read. Each value carries
 * the time the runtime stamped on its sample.
 *
 * One value per counter and Interval on average (naming_due), counted on
 * this host's monotonic clock as the samples arrive, never by the times
 * the process put on them: another tool's session with the same process
 * at a shorter interval makes the runtime send the counters to every
 * session at that interval, and a hostile process could send as fast as
 * it likes with any times. Running totals (DERIVE) lose nothing by a
 * skipped sample. The time a value carries is the sample's when it is
 * plausible (naming_stamp), else the time it arrived. */

/* The values of one read of one stream (plugin.batch): kept from read to
 * read, given back when far bigger than a read needed. */

static void note_heap(const char *instance, double bytes);

static void publish(void *ctx, const struct watch_target_view *t,
                    struct counters_entry *e) {
  (void)ctx;
  if (plugin.nbatch + COUNTERS_MAX_QUANTILES + 1 > plugin.batch_cap) {
    size_t cap = plugin.batch_cap ? plugin.batch_cap * 2 : 64;
    struct batch_row *nb = realloc(plugin.batch, cap * sizeof(*nb));
    if (nb == NULL)
      return; /* not published: the next sample tries again */
    plugin.batch = nb;
    plugin.batch_cap = cap;
  }
  int64_t iv_ms = (int64_t)(t->interval_sec * 1000.0);
  if (!naming_due(e, clock_mono_ms(), iv_ms))
    return;
  int64_t ms =
      naming_stamp(e, e->time_ms, (int64_t)CDTIME_T_TO_MS(cdtime()), iv_ms);
  struct naming_row rows[COUNTERS_MAX_QUANTILES + 1];
  size_t nr = naming_rows(e, rows, COUNTERS_MAX_QUANTILES + 1);
  cdtime_t time = MS_TO_CDTIME_T(ms);
  for (size_t k = 0; k < nr; k++)
    plugin.batch[plugin.nbatch++] =
        (struct batch_row){.row = rows[k], .time = time};
  if (plugin.note_heaps && nr == 1 && !rows[0].is_derive &&
      strcmp(rows[0].type_instance, "gc-heap-size") == 0)
    note_heap(t->instance, rows[0].gauge);
}

static void flush(void *ctx, const struct watch_target_view *t) {
  (void)ctx;
  value_list_t vl;
  value_list_for(&vl, t->instance, DOUBLE_TO_CDTIME_T(t->interval_sec));
  for (size_t i = 0; i < plugin.nbatch; i++)
    dispatch_row(&vl, &plugin.batch[i].row, plugin.batch[i].time);
  if (plugin.batch_cap > 1024 && plugin.nbatch < plugin.batch_cap / 8) {
    free(plugin.batch);
    plugin.batch = NULL;
    plugin.batch_cap = 0;
  }
  plugin.nbatch = 0;
}

/* ---- read (with <Dump> only): the dump counts of every live instance ---- */

static void collect_target(void *ctx, const struct watch_target_view *t) {
  struct collect *c = ctx;
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 16;
    struct dump_count_row *nv = realloc(c->v, cap * sizeof(*nv));
    if (nv == NULL)
      return; /* this read goes without; the next tries again */
    c->v = nv;
    c->cap = cap;
  }
  struct dump_count_row *r = &c->v[c->n++];
  sstrncpy(r->instance, t->instance, sizeof(r->instance));
  r->interval = DOUBLE_TO_CDTIME_T(t->interval_sec);
}

static int dotnet_read(user_data_t *ud) {
  (void)ud;
  struct collect c = plugin.collected; /* kept from read to read */
  c.n = 0;
  cdtime_t now = cdtime();
  watch_snapshot(plugin.watch, collect_target, &c);
  for (size_t i = 0; i < c.n; i++) {
    struct naming_row rows[2] = {
        {.type = "derive", .type_instance = "dumps", .is_derive = 1},
        {.type = "derive", .type_instance = "dump-failures", .is_derive = 1}};
    /* Not under the watch's mutex: the two locks never nest. */
    pthread_mutex_lock(&plugin.count_lock);
    const struct dump_count *k = dump_count_find(c.v[i].instance);
    if (k != NULL) {
      rows[0].derive = k->written;
      rows[1].derive = k->failed;
    }
    pthread_mutex_unlock(&plugin.count_lock);
    value_list_t vl;
    value_list_for(&vl, c.v[i].instance, c.v[i].interval);
    for (size_t j = 0; j < 2; j++)
      dispatch_row(&vl, &rows[j], now);
  }
  plugin.collected = c;
  return 0;
}

/* ---- heap sizes: for MaxHeapSize ----
 *
 * The last gc-heap-size (bytes) of each instance, noted by
 * publish() on the reader thread as it goes by, read by the workers'
 * threads before a heap snapshot. Kept in the dump counts' table. */

static void note_heap(const char *instance, double bytes) {
  pthread_mutex_lock(&plugin.count_lock);
  struct dump_count *c = dump_count_find(instance);
  if (c == NULL && plugin.ncounts < MAX_DUMP_COUNTS) {
    c = &plugin.counts[plugin.ncounts++];
    sstrncpy(c->instance, instance, NAMING_MAX);
  }
  if (c != NULL)
    c->heap_bytes = bytes;
  pthread_mutex_unlock(&plugin.count_lock);
}

/* Whether a MaxHeapSize refusal of instance is the first since its last
 * heap-types run (refused: 1, and noted; ran: clears the note). A refusal
 * leaves MinInterval alone, so it comes again at every breach: only the
 * first makes a notification and a log line. */
static bool heap_refusal(const char *instance, bool refused) {
  pthread_mutex_lock(&plugin.count_lock);
  struct dump_count *c = dump_count_find(instance);
  if (c == NULL && refused && plugin.ncounts < MAX_DUMP_COUNTS) {
    c = &plugin.counts[plugin.ncounts++];
    sstrncpy(c->instance, instance, NAMING_MAX);
  }
  bool first = c != NULL && refused && !c->heap_refused;
  if (c != NULL)
    c->heap_refused = refused;
  pthread_mutex_unlock(&plugin.count_lock);
  return first;
}

/* instance's last GC heap size in bytes, 0 when not known. */
static uint64_t heap_bytes_of(const char *instance) {
  pthread_mutex_lock(&plugin.count_lock);
  const struct dump_count *c = dump_count_find(instance);
  double b = c ? c->heap_bytes : 0;
  pthread_mutex_unlock(&plugin.count_lock);
  return b > 0 && b < 1.8e19 ? (uint64_t)b : 0;
}

/* ---- actions: run on a trigger's worker thread ---- */

/* The result of one action as a notification: type the action's name,
 * type instance the counter that triggered; OKAY when done, WARNING when
 * a types result is incomplete, FAILURE with the reason. */
static void notify_result(const struct action_config *a,
                          const struct dump_job *job, int rc,
                          const struct action_result *res) {
  const char *instance = job->instance;
  const char *kind = dump_name_of(action_kinds, (int)a->kind);
  int sev = rc < 0 ? NOTIF_FAILURE : res->complete ? NOTIF_OKAY : NOTIF_WARNING;
  notification_t n = {.severity = sev, .time = cdtime()};
  sstrncpy(n.host, hostname_g, sizeof(n.host));
  sstrncpy(n.plugin, "dotnet", sizeof(n.plugin));
  sstrncpy(n.plugin_instance, instance, sizeof(n.plugin_instance));
  sstrncpy(n.type, kind, sizeof(n.type));
  sstrncpy(n.type_instance, job->trigger, sizeof(n.type_instance));
  sstrncpy(n.message, res->message, sizeof(n.message));
  if (res->file.note[0])
    INFO("dotnet plugin: instance \"%s\": pid %d: %s", instance,
         (int)ipc_endpoint_pid(&job->ep), res->file.note);
  if (rc < 0)
    ERROR("dotnet plugin: instance \"%s\": %s", instance, n.message);
  else if (sev == NOTIF_WARNING)
    WARNING("dotnet plugin: instance \"%s\": %s", instance, n.message);
  else
    INFO("dotnet plugin: instance \"%s\": %s", instance, n.message);
  if (rc == 0 && a->kind != ACTION_DUMP && res->file.path[0] == 0)
    WARNING("dotnet plugin: instance \"%s\": the %s result of pid %d is in "
            "the notification only: %s",
            instance, kind, (int)ipc_endpoint_pid(&job->ep), res->file.reason);
  if (res->file.path[0]) {
    plugin_notification_meta_add_string(&n, "path", res->file.path);
    plugin_notification_meta_add_unsigned_int(&n, "size", res->file.size);
  }
  if (rc == 0 && (a->kind == ACTION_ALLOC_TYPES || a->kind == ACTION_HEAP_TYPES)) {
    plugin_notification_meta_add_boolean(&n, "complete", res->complete);
    plugin_notification_meta_add_unsigned_int(&n, "count", res->count);
    plugin_notification_meta_add_unsigned_int(&n, "bytes", res->bytes);
  }
  if (rc == 0 && a->kind == ACTION_TRACE)
    plugin_notification_meta_add_unsigned_int(&n, "events", res->count);
  plugin_notification_meta_add_double(&n, "seconds", res->file.seconds);
  plugin_notification_meta_add_signed_int(&n, "pid", ipc_endpoint_pid(&job->ep));
  plugin_dispatch_notification(&n);
  plugin_notification_meta_free(n.meta);
}

/* The dump worker's step: action `step` of trigger ctx for job. */
static int run_action(void *ctx, size_t step, const struct dump_job *job) {
  const struct trigger *t = ctx;
  const struct action_config *a = &t->actions[step];
  struct action_result res;
  int rc = action_run(a, &job->ep, job->instance,
                      a->kind == ACTION_HEAP_TYPES ? heap_bytes_of(job->instance)
                                                   : 0,
                      &res);
  if (a->kind == ACTION_DUMP)
    dump_count_add(job->instance, rc == 0);
  /* refused by MaxHeapSize: nothing was done, the next breach may try */
  bool skipped = rc == -EFBIG && a->kind == ACTION_HEAP_TYPES;
  bool first = a->kind == ACTION_HEAP_TYPES && heap_refusal(job->instance, skipped);
  if (!skipped || first)
    notify_result(a, job, rc, &res);
  return skipped ? DUMP_WORKER_SKIPPED : rc;
}

/* ---- notifications: which ones make a dump ----
 *
 * Only the threshold plugin of this collectd, judging a value of this host,
 * makes a dump. What else can name plugin "dotnet":
 *  - another host's collectd, through the network plugin: its notification
 *    carries the sender's Host (which it chooses) and no meta at all; the
 *    network plugin adds the boolean "network:received";
 *  - unixsock's (and exec's) PUTNOTIF: any Host, and meta only as strings
 *    ("s:key=value");
 *  - the threshold plugin's "missing value" notification (FAILURE, "... has
 *    not been updated for N seconds.", no meta): it comes while the runtime
 *    is suspended writing a dump and when a target exits. No breach.
 * The threshold plugin (collectd 5.12, ut_report_state) sends the host of
 * the value and six meta: "DataSource" (string), "CurrentValue",
 * "WarningMin", "WarningMax", "FailureMin", "FailureMax" (doubles). The
 * plugin's own values carry collectd's Hostname (hostname_g). Neither
 * PUTNOTIF nor the network plugin can make a double meta, so these six
 * with their types are the threshold plugin's mark. */

/* Logs a refusal once per instance and reason until a dump succeeds. The
 * table is bounded: past its size, refusals of further instances are not
 * logged (said once). */
static void log_refusal(const char *instance, const char *what, int reason,
                        const char *why) {
  bool say = true, say_full = false;
  pthread_mutex_lock(&plugin.refusal_lock);
  for (size_t i = 0; say && i < plugin.nrefusals; i++)
    if (plugin.refusals[i].reason == reason &&
        strcmp(plugin.refusals[i].instance, instance) == 0)
      say = false;
  if (say && plugin.nrefusals < MAX_REFUSALS) {
    struct refusal *r = &plugin.refusals[plugin.nrefusals++];
    sstrncpy(r->instance, instance, NAMING_MAX);
    r->reason = reason;
  } else if (say) {
    say = false;
    say_full = !plugin.refusals_full;
    plugin.refusals_full = true;
  }
  pthread_mutex_unlock(&plugin.refusal_lock);
  if (say)
    NOTICE("dotnet plugin: instance \"%s\": %s: %s (logged once)", instance,
           what, why);
  else if (say_full)
    NOTICE("dotnet plugin: refusals of triggers logged for %d instances: "
           "those of further instances are not logged.",
           MAX_REFUSALS);
}

static void forget_refusals(const char *instance) {
  pthread_mutex_lock(&plugin.refusal_lock);
  size_t o = 0;
  for (size_t i = 0; i < plugin.nrefusals; i++)
    if (strcmp(plugin.refusals[i].instance, instance) != 0)
      plugin.refusals[o++] = plugin.refusals[i];
  plugin.nrefusals = o;
  pthread_mutex_unlock(&plugin.refusal_lock);
}

/* The threshold plugin's "value missing" notification: no meta, and its
 * message. */
static bool is_missing_value(const notification_t *n) {
  return n->meta == NULL &&
         strstr(n->message, " has not been updated for ") != NULL;
}

/* The meta called name, if it has that type; else NULL. */
static const notification_meta_t *
meta_find(const notification_t *n, const char *name,
          enum notification_meta_type_e type) {
  for (const notification_meta_t *m = n->meta; m != NULL; m = m->next)
    if (strcmp(m->name, name) == 0)
      return m->type == type ? m : NULL;
  return NULL;
}

/* True if n has the threshold plugin's meta (see above) and was not
 * received from the network. */
static bool is_threshold_shaped(const notification_t *n) {
  static const char *const doubles[] = {
      "CurrentValue", "WarningMin", "WarningMax", "FailureMin", "FailureMax"};
  for (const notification_meta_t *m = n->meta; m != NULL; m = m->next)
    if (strcmp(m->name, "network:received") == 0)
      return false;
  if (meta_find(n, "DataSource", NM_TYPE_STRING) == NULL)
    return false;
  for (size_t i = 0; i < sizeof(doubles) / sizeof(doubles[0]); i++)
    if (meta_find(n, doubles[i], NM_TYPE_DOUBLE) == NULL)
      return false;
  return true;
}

/* src for a log line: bytes below 0x20 and 0x7f as '?' (a Host or
 * instance from the network or unixsock is anyone's text). */
static void log_safe(char *dst, size_t cap, const char *src) {
  size_t i = 0;
  for (; i + 1 < cap && src[i] != '\0'; i++) {
    unsigned char c = (unsigned char)src[i];
    dst[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
  }
  dst[i] = '\0';
}

/* Logs once per kind, for the life of the plugin, that a notification
 * which would have made a dump came from elsewhere: they can come in any
 * number, from anyone who can reach the network plugin or unixsock, on
 * several threads at once. */
static void log_foreign(const notification_t *n, enum foreign_kind kind) {
  if (atomic_exchange(&plugin.foreign_logged[kind], true))
    return;
  char host[DATA_MAX_NAME_LEN], inst[DATA_MAX_NAME_LEN];
  char ti[DATA_MAX_NAME_LEN], me[DATA_MAX_NAME_LEN];
  log_safe(host, sizeof(host), n->host);
  log_safe(inst, sizeof(inst), n->plugin_instance);
  log_safe(ti, sizeof(ti), n->type_instance);
  log_safe(me, sizeof(me), hostname_g ? hostname_g : "");
  const char *no = "no dump"; /* <Dump> blocks only: as they always said */
  for (size_t i = 0; i < plugin.ntriggers; i++)
    if (!plugin.triggers[i].is_dump_block)
      no = "no action";
  if (kind == FOREIGN_HOST)
    NOTICE("dotnet plugin: instance \"%s\": %s: a notification for %s "
           "names host \"%s\", not this host (\"%s\"): only notifications "
           "for this host make dumps (logged once).",
           inst, no, ti, host, me);
  else
    NOTICE("dotnet plugin: instance \"%s\": %s: a notification for %s "
           "(host \"%s\") is not the threshold plugin's: it lacks its meta "
           "(CurrentValue and the thresholds as numbers, which PUTNOTIF and "
           "the network plugin cannot send) or came from the network; only "
           "the threshold plugin's notifications make dumps (logged once).",
           inst, no, ti, host);
}

/* Whether n is a result of ours (type: an action's name). */
static bool is_result(const notification_t *n) {
  int k;
  return dump_name_parse(action_kinds, n->type, &k) == 0;
}

/* Whether trigger t takes n (severity, counter). */
static bool trigger_takes(const struct trigger *t, const notification_t *n) {
  /* NOTIF_FAILURE (1) is more severe than NOTIF_WARNING (2). */
  if (n->severity == NOTIF_OKAY || n->severity > t->severity)
    return false;
  for (size_t i = 0; i < t->ncounters; i++)
    if (strcmp(n->type_instance, t->counters[i]) == 0)
      return true;
  return false;
}

/* Asks trigger ti's worker to run its actions for n's instance; logs what
 * happens. */
static void trigger_fire(size_t ti, const notification_t *n, cdtime_t now) {
  struct trigger *t = &plugin.triggers[ti];
  const char *what = t->is_dump_block ? "no dump" : "trigger actions not run";
  struct ipc_endpoint ep;
  char why[1024];
  int r;
  pthread_mutex_lock(&plugin.notify_lock);
  if (!plugin.live) { /* not started, or shut down */
    pthread_mutex_unlock(&plugin.notify_lock);
    return;
  }
  r = watch_lookup(plugin.watch, n->plugin_instance, &ep);
  if (r == 0)
    r = dump_worker_request(t->worker, &ep, n->plugin_instance,
                            n->type_instance, why, sizeof(why));
  else
    sstrncpy(why, "no live session for this instance (the process exited?)",
             sizeof(why));
  pthread_mutex_unlock(&plugin.notify_lock);
  /* the refusals of trigger ti are logged apart from those of others */
  int key = (int)ti * 4096;
  if (r < 0) {
    log_refusal(n->plugin_instance, what, key + (-r & 4095), why);
    return;
  }
  if (r == 0)
    forget_refusals(n->plugin_instance);
  else
    log_refusal(n->plugin_instance, "some actions not run", key + 4095, why);
  /* The threshold plugin stamps its notification with the time of the value
   * that breached: log how long that value took to get here (ms; collectd's
   * log timestamps have whole seconds). */
  char lag[64] = "", actions[128] = "";
  if (n->time != 0 && n->time <= now)
    snprintf(lag, sizeof(lag), ", %.0f ms after the value",
             CDTIME_T_TO_DOUBLE(now - n->time) * 1000.0);
  const notification_meta_t *cv = meta_find(n, "CurrentValue", NM_TYPE_DOUBLE);
  double value = cv ? cv->nm_value.nm_double : NAN;
  const char *sev = n->severity == NOTIF_FAILURE ? "FAILURE" : "WARNING";
  if (t->is_dump_block) {
    const struct dump_request *d = &t->actions[0].dump;
    INFO("dotnet plugin: instance \"%s\": %s notification for %s: dumping pid "
         "%d (%s, method %s, value %g%s)",
         n->plugin_instance, sev, n->type_instance, (int)ipc_endpoint_pid(&ep),
         dump_name_of(dump_types, (int)d->type),
         dump_name_of(dump_methods, (int)d->method), value, lag);
    return;
  }
  for (size_t i = 0; i < t->nactions; i++) {
    size_t l = strlen(actions);
    snprintf(actions + l, sizeof(actions) - l, "%s%s", i ? ", " : "",
             dump_name_of(action_kinds, (int)t->actions[i].kind));
  }
  INFO("dotnet plugin: instance \"%s\": %s notification for %s: pid %d: %s "
       "(value %g%s)",
       n->plugin_instance, sev, n->type_instance, (int)ipc_endpoint_pid(&ep), actions, value,
       lag);
}

/* Any thread of collectd (a write thread for the threshold plugin,
 * unixsock's, the network plugin's, a worker's for our results) and
 * possibly while dotnet_shutdown runs: the workers and the watch are used
 * only under notify_lock, which is held for one table lookup and one short
 * lock of a worker, never across I/O. */
static int dotnet_notify(const notification_t *n, user_data_t *ud) {
  (void)ud;
  if (strcmp(n->plugin, "dotnet") != 0 || is_result(n))
    return 0;
  size_t taken = 0;
  for (size_t i = 0; i < plugin.ntriggers; i++)
    taken += trigger_takes(&plugin.triggers[i], n);
  if (taken == 0 || is_missing_value(n))
    return 0;
  if (hostname_g == NULL || strcmp(n->host, hostname_g) != 0) {
    log_foreign(n, FOREIGN_HOST);
    return 0;
  }
  if (!is_threshold_shaped(n)) {
    log_foreign(n, FOREIGN_SHAPE);
    return 0;
  }
  cdtime_t now = cdtime();
  for (size_t i = 0; i < plugin.ntriggers; i++)
    if (trigger_takes(&plugin.triggers[i], n))
      trigger_fire(i, n, now);
  return 0;
}

/* ---- life cycle ---- */

/* Gather for the watch: 0 its default, -1 none, else ms (at least 1). */
static int gather_ms(void) {
  if (plugin.cfg.gather < 0)
    return 0;
  if (plugin.cfg.gather == 0)
    return -1;
  int ms = (int)(plugin.cfg.gather * 1000 + 0.5);
  return ms > 0 ? ms : 1;
}

/* Starts the watch (its threads): 0 or -1, logged. */
static int watch_begin(double interval) {
  struct watch_config wc = {.interval_sec = interval,
                            .autodiscover = plugin.cfg.autodiscover,
                            .start_at_once = !plugin.cfg.align_sessions,
                            .gather_ms = gather_ms(),
                            .rules = plugin.cfg.rules,
                            .nrules = plugin.cfg.nrules,
                            .max_targets = (size_t)plugin.cfg.max_processes,
                            .max_series = (size_t)plugin.cfg.max_series,
                            .auto_session = plugin.cfg.auto_session,
                            .listens = plugin.cfg.listens,
                            .nlistens = plugin.cfg.nlistens,
                            .log = watch_log,
                            .publish = publish,
                            .flush = flush};
  plugin.watch = watch_new(&wc);
  if (plugin.watch == NULL) {
    ERROR("dotnet plugin: out of memory.");
    return -1;
  }
  int r = watch_start(plugin.watch);
  if (r < 0) {
    ERROR("dotnet plugin: cannot start threads: %s", STRERROR(-r));
    watch_free(plugin.watch);
    plugin.watch = NULL;
    return -1;
  }
  return 0;
}

/* Stops every trigger's worker (a step in progress is cancelled); from
 * then on notifications reach none. Callbacks already in are waited for
 * (one short lookup under notify_lock). */
static void triggers_end(void) {
  struct dump_worker *w[MAX_TRIGGERS];
  pthread_mutex_lock(&plugin.notify_lock);
  plugin.live = false;
  for (size_t i = 0; i < plugin.ntriggers; i++) {
    w[i] = plugin.triggers[i].worker;
    plugin.triggers[i].worker = NULL;
  }
  pthread_mutex_unlock(&plugin.notify_lock);
  for (size_t i = 0; i < plugin.ntriggers; i++)
    dump_worker_free(w[i]);
}

/* Checks a trigger's directory (a warning only: it may be mounted later)
 * and starts its worker. 0 or -1, logged. */
static int trigger_begin(struct trigger *t) {
  const char *block = t->is_dump_block ? "<Dump>" : "<Trigger>";
  char why[512];
  int dfd = dump_dir_open(t->directory, 1, NULL, NULL, 0, why, sizeof(why));
  if (dfd < 0)
    WARNING("dotnet plugin: %s: Directory \"%s\": %s; %s fail until this is "
            "fixed.",
            block, t->directory, why, t->is_dump_block ? "dumps" : "actions");
  else
    close(dfd);
  struct dump_step steps[DUMP_WORKER_MAX_STEPS];
  for (size_t i = 0; i < t->nactions; i++) {
    const char *kind = dump_name_of(action_kinds, (int)t->actions[i].kind);
    steps[i] = (struct dump_step){
        .policy = t->actions[i].policy,
        .label = t->is_dump_block ? "" : t->labels[i],
        .noun = kind,
        .per_process_opt = t->is_dump_block ? "MaxDumps" : "MaxPerProcess",
        .total_opt = t->is_dump_block ? "MaxDumpsTotal" : "MaxTotal"};
  }
  static const struct dump_worker_ops ops = {.run = run_action,
                                             .now = clock_mono_s};
  struct dump_worker *w = dump_worker_new(steps, t->nactions, 0, &ops, t);
  int r = w == NULL ? -ENOMEM : dump_worker_start(w);
  if (r < 0) {
    ERROR("dotnet plugin: %s: cannot start its worker thread: %s.", block,
          STRERROR(-r));
    dump_worker_free(w);
    return -1;
  }
  t->worker = w;
  return 0;
}

/* Starts every trigger's worker; from then on notifications reach them.
 * 0 or -1, logged (none left running). */
static int triggers_begin(void) {
  for (size_t i = 0; i < plugin.ntriggers; i++)
    if (trigger_begin(&plugin.triggers[i]) != 0) {
      triggers_end();
      return -1;
    }
  pthread_mutex_lock(&plugin.notify_lock);
  plugin.live = true;
  pthread_mutex_unlock(&plugin.notify_lock);
  return 0;
}

static int dotnet_init(void) {
  if (plugin.watch != NULL)
    return 0;
  double interval = plugin.cfg.interval > 0
                        ? plugin.cfg.interval
                        : CDTIME_T_TO_DOUBLE(plugin_get_interval());
  if (plugin.cfg.nrules == 0 && !plugin.cfg.autodiscover)
    WARNING("dotnet plugin: no <Process> block and AutoDiscover is false: "
            "nothing to watch.");
  if (watch_begin(interval) != 0)
    return -1;
  if (triggers_begin() != 0) {
    watch_stop(plugin.watch, 500);
    watch_free(plugin.watch);
    plugin.watch = NULL;
    return -1;
  }
  INFO("dotnet plugin: interval %g s, %zu <Process> block(s), AutoDiscover "
       "%s, %zu trigger(s), dumps %s",
       interval, plugin.cfg.nrules, plugin.cfg.autodiscover ? "on" : "off",
       plugin.ntriggers, plugin.has_dumps ? "on" : "off");
  if (plugin.has_dumps)
    plugin_register_complex_read(NULL, "dotnet", dotnet_read,
                                 DOUBLE_TO_CDTIME_T(interval), NULL);
  return 0;
}

static int dotnet_shutdown(void) {
  free(plugin.collected.v); /* the read threads are gone */
  plugin.collected = (struct collect){0};
  /* Notifications can still come (from unixsock's or the network plugin's
   * threads, whose shutdown may come after this one): once live is false
   * under notify_lock, none uses a worker or the watch. */
  triggers_end();
  if (plugin.watch) {
    watch_stop(plugin.watch, 500);
    struct watch_stats st;
    watch_get_stats(plugin.watch, &st);
    INFO("dotnet plugin: stopped: %" PRIu64 " sessions, %" PRIu64
         " samples, %" PRIu64 " stream reads in %" PRIu64
         " wakeups of the reader.",
         st.sessions_started, st.samples, st.reads, st.wakeups);
    watch_free(plugin.watch);
    plugin.watch = NULL;
  }
  /* what the stops' last samples put there: collectd's write threads are
   * gone by now */
  free(plugin.batch);
  plugin.batch = NULL;
  plugin.nbatch = plugin.batch_cap = 0;
  for (size_t i = 0; i < plugin.cfg.nrules; i++)
    watch_rule_free(&plugin.cfg.rules[i]);
  plugin.cfg.nrules = 0;
  for (size_t i = 0; i < plugin.cfg.nowned; i++)
    free(plugin.cfg.owned[i]);
  plugin.cfg.nowned = 0;
  return 0;
}

void module_register(void) {
  plugin_register_complex_config("dotnet", dotnet_config);
  plugin_register_init("dotnet", dotnet_init);
  plugin_register_notification("dotnet", dotnet_notify, NULL);
  plugin_register_shutdown("dotnet", dotnet_shutdown);
}
