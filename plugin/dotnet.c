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
 *   </Plugin>
 *
 * Threads: the watch (plugin/watch.c) reads the targets and its reader
 * thread dispatches each value as it arrives; the notification callback
 * only queues a dump request (plugin/dump_worker.c); with <Dump>, a read
 * callback dispatches the dump counts.
 * With <Dump>, every instance also has two DERIVE values, "derive-dumps"
 * and "derive-dump-failures": dumps written and failed since the plugin
 * started, counted by instance name.
 */
#include "clock.h"
#include "collectd.h"
#include "plugin.h"
#include "utils/common/common.h"

#include "dump_worker.h"
#include "naming.h"
#include "watch.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <time.h>

#define MAX_RULES 64
#define MAX_TRIGGERS 16
#define MAX_PROVIDER_STRINGS 512
#define MAX_REFUSALS 64
#define MAX_DUMP_COUNTS 1024

/* A refusal to dump already logged (see log_refusal). */
struct refusal {
  char instance[NAMING_MAX];
  int reason;
};

/* Dumps written and failed attempts of one instance (see dump_count_add). */
struct dump_count {
  char instance[NAMING_MAX];
  int64_t written;
  int64_t failed;
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
 *  - cfg and dump: dotnet_config (collectd's main thread, before init);
 *    read-only from dotnet_init on (shutdown frees the rules and strings);
 *  - watch: set by dotnet_init, cleared by dotnet_shutdown; the notification
 *    callback uses it only under notify_lock while dumper is set;
 *  - dumper: under notify_lock (set by init, cleared by shutdown, used by
 *    dotnet_notify on any of collectd's threads);
 *  - refusals: under refusal_lock (dotnet_notify, any thread);
 *  - counts: under count_lock (the dump worker's thread writes, the read
 *    callback reads; nobody dispatches under it);
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
    struct session_config auto_session; /* Provider, Meter outside blocks */
    char *owned[MAX_PROVIDER_STRINGS];  /* the strings the lists point to */
    size_t nowned;
  } cfg;
  struct {
    bool enabled; /* a <Dump> block */
    struct dump_request tmpl;
    struct dump_policy policy;
    char triggers[MAX_TRIGGERS][NAMING_MAX];
    size_t ntriggers;
    int severity; /* the least severe notification that dumps */
  } dump;
  struct watch *watch;
  pthread_mutex_t notify_lock;
  struct dump_worker *dumper;
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
    .dump = {.tmpl = {.type = IPC_DUMP_HEAP, .method = DUMP_METHOD_IPC},
             .policy = {.min_interval_sec = 300,
                        .max_per_process = 5,
                        .max_total = 20},
             .severity = NOTIF_WARNING},
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
 * error lists the names (names: "one of a, b, c" or "a or b"). */
static int get_choice(oconfig_item_t *c, const struct dump_name *table,
                      const char *names, int *out) {
  char buf[256];
  if (cf_util_get_string_buffer(c, buf, sizeof(buf)) != 0)
    return -1;
  if (dump_name_parse(table, buf, out) == 0)
    return 0;
  ERROR("dotnet plugin: <Dump>: %s \"%s\" is not %s.", c->key, buf, names);
  return -1;
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

/* MinFreeSpace: a number of bytes, or a size such as "2G". */
static int get_size(oconfig_item_t *c, uint64_t *out) {
  if (c->values_num == 1 && c->values[0].type == OCONFIG_TYPE_NUMBER) {
    *out = (uint64_t)c->values[0].value.number;
    return 0;
  }
  char buf[256];
  if (cf_util_get_string_buffer(c, buf, sizeof(buf)) != 0)
    return -1;
  if (dump_size_parse(buf, out) == 0)
    return 0;
  ERROR("dotnet plugin: <Dump>: MinFreeSpace \"%s\" is not a size such as "
        "\"2G\" or \"500M\".",
        buf);
  return -1;
}

static const struct dump_name severities[] = {
    {"warning", NOTIF_WARNING}, {"failure", NOTIF_FAILURE}, {NULL, 0}};

static int config_dump(oconfig_item_t *ci) {
  struct dump_request *tmpl = &plugin.dump.tmpl;
  struct dump_policy *pol = &plugin.dump.policy;
  plugin.dump.enabled = true;
  for (int i = 0; i < ci->children_num; i++) {
    oconfig_item_t *c = ci->children + i;
    int status = 0, v = 0;
    double t = 0;
    if (strcasecmp("Directory", c->key) == 0) {
      status = cf_util_get_string_buffer(c, tmpl->directory,
                                         sizeof(tmpl->directory));
      if (status == 0 && tmpl->directory[0] != '/') {
        ERROR("dotnet plugin: <Dump>: Directory must be an absolute path.");
        status = -1;
      }
    } else if (strcasecmp("Type", c->key) == 0) {
      status = get_choice(c, dump_types, "one of mini, heap, triage, full", &v);
      tmpl->type = (enum ipc_dump_type)v;
    } else if (strcasecmp("Method", c->key) == 0) {
      status = get_choice(c, dump_methods, "ipc or exec", &v);
      tmpl->method = (enum dump_method)v;
    } else if (strcasecmp("Severity", c->key) == 0) {
      status = get_choice(c, severities, "warning or failure",
                          &plugin.dump.severity);
    } else if (strcasecmp("Counter", c->key) == 0) {
      if (plugin.dump.ntriggers >= MAX_TRIGGERS) {
        ERROR("dotnet plugin: <Dump>: at most %d Counter options.", MAX_TRIGGERS);
        status = -1;
      } else {
        status = cf_util_get_string_buffer(
            c, plugin.dump.triggers[plugin.dump.ntriggers], NAMING_MAX);
        if (status == 0)
          plugin.dump.ntriggers++;
      }
    } else if (strcasecmp("MinInterval", c->key) == 0) {
      status = get_number(c, "<Dump>: ", 0, HUGE_VAL, ">= 0 seconds",
                          &pol->min_interval_sec);
    } else if (strcasecmp("MaxDumps", c->key) == 0) {
      status = get_int(c, "<Dump>: ", 1, INT_MAX, "at least 1", &v);
      pol->max_per_process = (unsigned)v;
    } else if (strcasecmp("MaxDumpsTotal", c->key) == 0) {
      status = get_int(c, "<Dump>: ", 1, INT_MAX, "at least 1", &v);
      pol->max_total = (unsigned)v;
    } else if (strcasecmp("MinFreeSpace", c->key) == 0) {
      status = get_size(c, &tmpl->min_free_bytes);
    } else if (strcasecmp("Timeout", c->key) == 0) {
      /* (0, 86400): the closed range between the doubles next to them */
      status = get_number(c, "<Dump>: ", nextafter(0, 1), nextafter(86400, 0),
                          "in (0, 86400) seconds", &t);
      tmpl->timeout_ms = (int)(t * 1000);
    } else {
      status = unknown_option("<Dump>", c->key,
                              "Directory, Type, Counter, Severity, "
                              "MinInterval, MaxDumps, MaxDumpsTotal, "
                              "MinFreeSpace, Method, Timeout");
    }
    if (status != 0)
      return -1;
  }
  if (tmpl->directory[0] == 0) {
    ERROR("dotnet plugin: <Dump> needs a Directory.");
    return -1;
  }
  if (plugin.dump.ntriggers == 0) {
    sstrncpy(plugin.dump.triggers[0], "gc-heap-size", NAMING_MAX);
    plugin.dump.ntriggers = 1;
  }
  return 0;
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
    } else {
      status = unknown_option(NULL, c->key,
                              "Interval, AutoDiscover, AlignSessions, Gather, "
                              "MaxProcesses, MaxSeries, Provider, Meter, "
                              "<Process>, <Dump>");
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

/* ---- dumps ---- */

static void dump_done(void *ctx, const char *instance,
                      const struct ipc_endpoint *ep, int rc,
                      const struct dump_result *res, const char *trigger) {
  (void)ctx;
  dump_count_add(instance, rc == 0);
  if (res->note[0])
    INFO("dotnet plugin: instance \"%s\": pid %d: %s", instance, (int)ep->pid,
         res->note);
  notification_t n = {.severity = rc == 0 ? NOTIF_OKAY : NOTIF_FAILURE,
                      .time = cdtime()};
  sstrncpy(n.host, hostname_g, sizeof(n.host));
  sstrncpy(n.plugin, "dotnet", sizeof(n.plugin));
  sstrncpy(n.plugin_instance, instance, sizeof(n.plugin_instance));
  sstrncpy(n.type, "dump", sizeof(n.type));
  sstrncpy(n.type_instance, trigger, sizeof(n.type_instance));
  if (rc == 0) {
    snprintf(n.message, sizeof(n.message),
             "dump of pid %d written: %s (%.1f MB, %.2f s)", (int)ep->pid,
             res->path, (double)res->size / 1e6, res->seconds);
    INFO("dotnet plugin: instance \"%s\": %s", instance, n.message);
    plugin_notification_meta_add_string(&n, "path", res->path);
    plugin_notification_meta_add_unsigned_int(&n, "size", res->size);
  } else {
    snprintf(n.message, sizeof(n.message), "dump of pid %d failed: %s",
             (int)ep->pid, res->reason);
    ERROR("dotnet plugin: instance \"%s\": %s", instance, n.message);
  }
  plugin_notification_meta_add_double(&n, "seconds", res->seconds);
  plugin_notification_meta_add_signed_int(&n, "pid", ep->pid);
  plugin_dispatch_notification(&n);
  plugin_notification_meta_free(n.meta);
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
static void log_refusal(const char *instance, int reason, const char *why) {
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
    NOTICE("dotnet plugin: instance \"%s\": no dump: %s (logged once)",
           instance, why);
  else if (say_full)
    NOTICE("dotnet plugin: refusals to dump logged for %d instances: those "
           "of further instances are not logged.",
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
  if (kind == FOREIGN_HOST)
    NOTICE("dotnet plugin: instance \"%s\": no dump: a notification for %s "
           "names host \"%s\", not this host (\"%s\"): only notifications "
           "for this host make dumps (logged once).",
           inst, ti, host, me);
  else
    NOTICE("dotnet plugin: instance \"%s\": no dump: a notification for %s "
           "(host \"%s\") is not the threshold plugin's: it lacks its meta "
           "(CurrentValue and the thresholds as numbers, which PUTNOTIF and "
           "the network plugin cannot send) or came from the network; only "
           "the threshold plugin's notifications make dumps (logged once).",
           inst, ti, host);
}

/* Any thread of collectd (a write thread for the threshold plugin,
 * unixsock's, the network plugin's, the dump worker's for dump_done) and
 * possibly while dotnet_shutdown runs: dumper and watch are used only under
 * notify_lock, which is held for one table lookup and one short lock of the
 * dump worker, never across I/O. */
static int dotnet_notify(const notification_t *n, user_data_t *ud) {
  (void)ud;
  if (strcmp(n->plugin, "dotnet") != 0 || strcmp(n->type, "dump") == 0)
    return 0;
  /* NOTIF_FAILURE (1) is more severe than NOTIF_WARNING (2). */
  if (n->severity == NOTIF_OKAY || n->severity > plugin.dump.severity)
    return 0;
  size_t i;
  for (i = 0; i < plugin.dump.ntriggers; i++)
    if (strcmp(n->type_instance, plugin.dump.triggers[i]) == 0)
      break;
  if (i == plugin.dump.ntriggers || is_missing_value(n))
    return 0;
  if (hostname_g == NULL || strcmp(n->host, hostname_g) != 0) {
    log_foreign(n, FOREIGN_HOST);
    return 0;
  }
  if (!is_threshold_shaped(n)) {
    log_foreign(n, FOREIGN_SHAPE);
    return 0;
  }

  struct ipc_endpoint ep;
  char why[256];
  int r;
  cdtime_t now = cdtime();
  pthread_mutex_lock(&plugin.notify_lock);
  if (plugin.dumper == NULL) { /* no <Dump>, or shut down */
    pthread_mutex_unlock(&plugin.notify_lock);
    return 0;
  }
  r = watch_lookup(plugin.watch, n->plugin_instance, &ep);
  if (r == 0)
    r = dump_worker_request(plugin.dumper, &ep, n->plugin_instance, n->type_instance,
                            why, sizeof(why));
  else
    sstrncpy(why, "no live session for this instance (the process exited?)",
             sizeof(why));
  pthread_mutex_unlock(&plugin.notify_lock);
  if (r < 0) {
    log_refusal(n->plugin_instance, -r, why);
    return 0;
  }
  forget_refusals(n->plugin_instance);
  /* The threshold plugin stamps its notification with the time of the value
   * that breached: log how long that value took to get here (ms; collectd's
   * log timestamps have whole seconds). */
  char lag[64] = "";
  if (n->time != 0 && n->time <= now)
    snprintf(lag, sizeof(lag), ", %.0f ms after the value",
             CDTIME_T_TO_DOUBLE(now - n->time) * 1000.0);
  INFO("dotnet plugin: instance \"%s\": %s notification for %s: dumping pid "
       "%d (%s, method %s, value %g%s)",
       n->plugin_instance, n->severity == NOTIF_FAILURE ? "FAILURE" : "WARNING",
       n->type_instance, (int)ep.pid,
       dump_name_of(dump_types, (int)plugin.dump.tmpl.type),
       dump_name_of(dump_methods, (int)plugin.dump.tmpl.method),
       meta_find(n, "CurrentValue", NM_TYPE_DOUBLE)->nm_value.nm_double, lag);
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

/* With <Dump>: checks the directory (a warning only: it may be mounted
 * later) and starts the dump worker; from then on notifications reach it.
 * 0 or -1, logged. */
static int dumps_begin(void) {
  const struct dump_request *tmpl = &plugin.dump.tmpl;
  char why[512];
  int dfd = dump_dir_open(tmpl->directory, 1, NULL, NULL, 0, why, sizeof(why));
  if (dfd < 0)
    WARNING("dotnet plugin: <Dump>: Directory \"%s\": %s; dumps fail "
            "until this is fixed.",
            tmpl->directory, why);
  else
    close(dfd);
  static const struct dump_worker_ops ops = {.take = dump_take,
                                             .now = clock_mono_s};
  struct dump_worker *d =
      dump_worker_new(tmpl, &plugin.dump.policy, &ops, dump_done, NULL);
  int r = d == NULL ? -ENOMEM : dump_worker_start(d);
  if (r < 0) {
    ERROR("dotnet plugin: <Dump>: cannot start the dump worker thread: %s.",
          STRERROR(-r));
    dump_worker_free(d);
    return -1;
  }
  pthread_mutex_lock(&plugin.notify_lock);
  plugin.dumper = d;
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
  if (plugin.dump.enabled && dumps_begin() != 0) {
    watch_stop(plugin.watch, 500);
    watch_free(plugin.watch);
    plugin.watch = NULL;
    return -1;
  }
  INFO("dotnet plugin: interval %g s, %zu <Process> block(s), AutoDiscover "
       "%s, dumps %s",
       interval, plugin.cfg.nrules, plugin.cfg.autodiscover ? "on" : "off",
       plugin.dumper ? "on" : "off");
  if (plugin.dump.enabled)
    plugin_register_complex_read(NULL, "dotnet", dotnet_read,
                                 DOUBLE_TO_CDTIME_T(interval), NULL);
  return 0;
}

static int dotnet_shutdown(void) {
  free(plugin.collected.v); /* the read threads are gone */
  plugin.collected = (struct collect){0};
  /* Notifications can still come (from unixsock's or the network plugin's
   * threads, whose shutdown may come after this one): once dumper is NULL
   * under notify_lock, none uses the worker or the watch, and a callback
   * already in there is waited for (one short lookup). */
  pthread_mutex_lock(&plugin.notify_lock);
  struct dump_worker *d = plugin.dumper;
  plugin.dumper = NULL;
  pthread_mutex_unlock(&plugin.notify_lock);
  dump_worker_free(d);
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
