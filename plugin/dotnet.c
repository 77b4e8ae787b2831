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
#include "utils_complain.h"

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

/* ---- configuration state (written by config, read-only after init) ---- */

static double cfg_interval; /* 0: collectd's interval */
static bool cfg_autodiscover;
static bool cfg_align_sessions = true;
static double cfg_gather = -1; /* < 0: the watch's default */
static int cfg_max_processes = 256;
static int cfg_max_series = COUNTERS_DEFAULT_MAX_SERIES;
static struct watch_rule rules[MAX_RULES];
static size_t nrules;
static char *owned_strings[MAX_PROVIDER_STRINGS];
static size_t nowned;
static const char *auto_providers[SESSION_MAX_PROVIDERS];
static size_t nauto_providers;
static const char *auto_meters[SESSION_MAX_METERS];
static size_t nauto_meters;

static bool dump_enabled;
static struct dump_request dump_tmpl = {.type = IPC_DUMP_HEAP,
                                        .method = DUMP_METHOD_IPC};
static struct dump_policy dump_pol = {.min_interval_sec = 300,
                                      .max_per_process = 5,
                                      .max_total = 20};
static char triggers[MAX_TRIGGERS][NAMING_MAX];
static size_t ntriggers;
static int trigger_severity = NOTIF_WARNING;

/* ---- runtime state ---- */

static struct watch *watch;
/* Set by dotnet_init and cleared by dotnet_shutdown under notify_lock, and
 * used by dotnet_notify only under it (with watch, which outlives it). */
static pthread_mutex_t notify_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dump_worker *dumper;
static pthread_mutex_t refusal_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  char instance[NAMING_MAX];
  int reason;
} refusals[64];
static size_t nrefusals;

static void watch_log(int level, const char *msg) {
  plugin_log(level, "dotnet plugin: %s", msg);
}

static const char *keep_string(const char *s) {
  if (nowned >= MAX_PROVIDER_STRINGS)
    return NULL;
  char *d = strdup(s);
  if (d)
    owned_strings[nowned++] = d;
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

static int config_process(oconfig_item_t *ci) {
  if (nrules >= MAX_RULES) {
    ERROR("dotnet plugin: at most %d <Process> blocks.", MAX_RULES);
    return -1;
  }
  struct watch_rule *r = &rules[nrules];
  memset(r, 0, sizeof(*r));
  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_STRING ||
      ci->values[0].value.string[0] == 0) {
    ERROR("dotnet plugin: <Process> needs one non-empty name: "
          "<Process \"shop\">.");
    return -1;
  }
  sstrncpy(r->name, ci->values[0].value.string, sizeof(r->name));
  for (size_t i = 0; i < nrules; i++) {
    if (strcmp(rules[i].name, r->name) == 0) {
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
      ERROR("dotnet plugin: %s: unknown option \"%s\" (known: Pid, "
            "CommandLine, EntryAssembly, Provider, Meter).",
            block, c->key);
      status = -1;
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
  nrules++;
  return 0;
}

static int config_dump(oconfig_item_t *ci) {
  char buf[256];
  dump_enabled = true;
  for (int i = 0; i < ci->children_num; i++) {
    oconfig_item_t *c = ci->children + i;
    int status = 0;
    if (strcasecmp("Directory", c->key) == 0) {
      status = cf_util_get_string_buffer(c, dump_tmpl.directory,
                                         sizeof(dump_tmpl.directory));
      if (status == 0 && dump_tmpl.directory[0] != '/') {
        ERROR("dotnet plugin: <Dump>: Directory must be an absolute path.");
        status = -1;
      }
    } else if (strcasecmp("Type", c->key) == 0) {
      status = cf_util_get_string_buffer(c, buf, sizeof(buf));
      if (status == 0 && dump_type_parse(buf, &dump_tmpl.type) != 0) {
        ERROR("dotnet plugin: <Dump>: Type \"%s\" is not one of mini, heap, "
              "triage, full.",
              buf);
        status = -1;
      }
    } else if (strcasecmp("Counter", c->key) == 0) {
      if (ntriggers >= MAX_TRIGGERS) {
        ERROR("dotnet plugin: <Dump>: at most %d Counter options.", MAX_TRIGGERS);
        status = -1;
      } else {
        status = cf_util_get_string_buffer(c, triggers[ntriggers], NAMING_MAX);
        if (status == 0)
          ntriggers++;
      }
    } else if (strcasecmp("Severity", c->key) == 0) {
      status = cf_util_get_string_buffer(c, buf, sizeof(buf));
      if (status == 0 && strcasecmp(buf, "warning") == 0)
        trigger_severity = NOTIF_WARNING;
      else if (status == 0 && strcasecmp(buf, "failure") == 0)
        trigger_severity = NOTIF_FAILURE;
      else if (status == 0) {
        ERROR("dotnet plugin: <Dump>: Severity \"%s\" is not warning or "
              "failure.",
              buf);
        status = -1;
      }
    } else if (strcasecmp("MinInterval", c->key) == 0) {
      status = cf_util_get_double(c, &dump_pol.min_interval_sec);
      if (status == 0 && !(dump_pol.min_interval_sec >= 0)) {
        ERROR("dotnet plugin: <Dump>: MinInterval must be >= 0 seconds.");
        status = -1;
      }
    } else if (strcasecmp("MaxDumps", c->key) == 0 ||
               strcasecmp("MaxDumpsTotal", c->key) == 0) {
      int v = 0;
      status = cf_util_get_int(c, &v);
      if (status == 0 && v <= 0) {
        ERROR("dotnet plugin: <Dump>: %s must be at least 1.", c->key);
        status = -1;
      }
      if (strcasecmp("MaxDumps", c->key) == 0)
        dump_pol.max_per_process = (unsigned)v;
      else
        dump_pol.max_total = (unsigned)v;
    } else if (strcasecmp("MinFreeSpace", c->key) == 0) {
      if (c->values_num == 1 && c->values[0].type == OCONFIG_TYPE_NUMBER) {
        dump_tmpl.min_free_bytes = (uint64_t)c->values[0].value.number;
      } else {
        status = cf_util_get_string_buffer(c, buf, sizeof(buf));
        if (status == 0 && dump_size_parse(buf, &dump_tmpl.min_free_bytes) != 0) {
          ERROR("dotnet plugin: <Dump>: MinFreeSpace \"%s\" is not a size "
                "such as \"2G\" or \"500M\".",
                buf);
          status = -1;
        }
      }
    } else if (strcasecmp("Method", c->key) == 0) {
      status = cf_util_get_string_buffer(c, buf, sizeof(buf));
      if (status == 0 && strcasecmp(buf, "ipc") == 0)
        dump_tmpl.method = DUMP_METHOD_IPC;
      else if (status == 0 && strcasecmp(buf, "exec") == 0)
        dump_tmpl.method = DUMP_METHOD_EXEC;
      else if (status == 0) {
        ERROR("dotnet plugin: <Dump>: Method \"%s\" is not ipc or exec.", buf);
        status = -1;
      }
    } else if (strcasecmp("Timeout", c->key) == 0) {
      double t = 0;
      status = cf_util_get_double(c, &t);
      if (status == 0 && !(t > 0 && t < 86400)) {
        ERROR("dotnet plugin: <Dump>: Timeout must be in (0, 86400) seconds.");
        status = -1;
      }
      dump_tmpl.timeout_ms = (int)(t * 1000);
    } else {
      ERROR("dotnet plugin: <Dump>: unknown option \"%s\" (known: Directory, "
            "Type, Counter, Severity, MinInterval, MaxDumps, MaxDumpsTotal, "
            "MinFreeSpace, Method, Timeout).",
            c->key);
      status = -1;
    }
    if (status != 0)
      return -1;
  }
  if (dump_tmpl.directory[0] == 0) {
    ERROR("dotnet plugin: <Dump> needs a Directory.");
    return -1;
  }
  if (ntriggers == 0) {
    sstrncpy(triggers[0], "gc-heap-size", NAMING_MAX);
    ntriggers = 1;
  }
  return 0;
}

static int dotnet_config(oconfig_item_t *ci) {
  for (int i = 0; i < ci->children_num; i++) {
    oconfig_item_t *c = ci->children + i;
    int status = 0;
    if (strcasecmp("Interval", c->key) == 0) {
      status = cf_util_get_double(c, &cfg_interval);
      if (status == 0 && !(cfg_interval >= 0.1 && cfg_interval <= 3600)) {
        ERROR("dotnet plugin: Interval must be between 0.1 and 3600 seconds.");
        status = -1;
      }
    } else if (strcasecmp("AutoDiscover", c->key) == 0) {
      status = cf_util_get_boolean(c, &cfg_autodiscover);
    } else if (strcasecmp("AlignSessions", c->key) == 0) {
      status = cf_util_get_boolean(c, &cfg_align_sessions);
    } else if (strcasecmp("Gather", c->key) == 0) {
      status = cf_util_get_double(c, &cfg_gather);
      if (status == 0 && !(cfg_gather >= 0 && cfg_gather <= 900)) {
        ERROR("dotnet plugin: Gather must be between 0 and 900 seconds.");
        status = -1;
      }
    } else if (strcasecmp("MaxProcesses", c->key) == 0) {
      status = cf_util_get_int(c, &cfg_max_processes);
      if (status == 0 && cfg_max_processes <= 0) {
        ERROR("dotnet plugin: MaxProcesses must be at least 1.");
        status = -1;
      }
    } else if (strcasecmp("MaxSeries", c->key) == 0) {
      status = cf_util_get_int(c, &cfg_max_series);
      if (status == 0 &&
          !(cfg_max_series >= 1 && cfg_max_series <= COUNTERS_MAX_MAX_SERIES)) {
        ERROR("dotnet plugin: MaxSeries must be between 1 and %d.",
              COUNTERS_MAX_MAX_SERIES);
        status = -1;
      }
    } else if (strcasecmp("Provider", c->key) == 0) {
      status = add_name(c, "AutoDiscover", auto_providers, &nauto_providers,
                        SESSION_MAX_PROVIDERS);
    } else if (strcasecmp("Meter", c->key) == 0) {
      status = add_name(c, "AutoDiscover", auto_meters, &nauto_meters,
                        SESSION_MAX_METERS);
    } else if (strcasecmp("Process", c->key) == 0) {
      status = config_process(c);
    } else if (strcasecmp("Dump", c->key) == 0) {
      status = config_dump(c);
    } else {
      ERROR("dotnet plugin: unknown option \"%s\" (known: Interval, "
            "AutoDiscover, AlignSessions, Gather, MaxProcesses, MaxSeries, "
            "Provider, Meter, <Process>, <Dump>).",
            c->key);
      status = -1;
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

#define MAX_DUMP_COUNTS 1024

static pthread_mutex_t dump_count_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  char instance[NAMING_MAX];
  int64_t written;
  int64_t failed;
} dump_counts[MAX_DUMP_COUNTS];
static size_t ndump_counts;
static bool dump_counts_full; /* logged once */

/* The index of instance's counts, or -1; under dump_count_lock. */
static ssize_t dump_count_find(const char *instance) {
  for (size_t i = 0; i < ndump_counts; i++)
    if (strcmp(dump_counts[i].instance, instance) == 0)
      return (ssize_t)i;
  return -1;
}

static void dump_count_add(const char *instance, bool written) {
  bool log_full = false;
  pthread_mutex_lock(&dump_count_lock);
  ssize_t i = dump_count_find(instance);
  if (i < 0 && ndump_counts < MAX_DUMP_COUNTS) {
    i = (ssize_t)ndump_counts++;
    sstrncpy(dump_counts[i].instance, instance, NAMING_MAX);
  } else if (i < 0 && !dump_counts_full) {
    dump_counts_full = true;
    log_full = true;
  }
  if (i >= 0 && written)
    dump_counts[i].written++;
  else if (i >= 0)
    dump_counts[i].failed++;
  pthread_mutex_unlock(&dump_count_lock);
  if (log_full)
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

/* The values of one read of one stream: the reader thread's alone. Kept
 * from read to read, given back when far bigger than a read needed. */
struct batch_row {
  struct naming_row row;
  cdtime_t time;
};
static struct batch_row *batch;
static size_t nbatch, batch_cap;

static void publish(void *ctx, const struct watch_target_view *t,
                    struct counters_entry *e) {
  (void)ctx;
  if (nbatch + COUNTERS_MAX_QUANTILES + 1 > batch_cap) {
    size_t cap = batch_cap ? batch_cap * 2 : 64;
    struct batch_row *nb = realloc(batch, cap * sizeof(*nb));
    if (nb == NULL)
      return; /* not published: the next sample tries again */
    batch = nb;
    batch_cap = cap;
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
    batch[nbatch++] = (struct batch_row){.row = rows[k], .time = time};
}

static void flush(void *ctx, const struct watch_target_view *t) {
  (void)ctx;
  value_list_t vl;
  value_list_for(&vl, t->instance, DOUBLE_TO_CDTIME_T(t->interval_sec));
  for (size_t i = 0; i < nbatch; i++)
    dispatch_row(&vl, &batch[i].row, batch[i].time);
  if (batch_cap > 1024 && nbatch < batch_cap / 8) {
    free(batch);
    batch = NULL;
    batch_cap = 0;
  }
  nbatch = 0;
}

/* ---- read (with <Dump> only): the dump counts of every live instance ---- */

struct dump_count_row {
  char instance[NAMING_MAX];
  cdtime_t interval;
};

struct collect {
  struct dump_count_row *v;
  size_t n, cap;
};

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

/* Kept from read to read (collectd never runs a read callback twice at
 * once). */
static struct collect collected;

static int dotnet_read(user_data_t *ud) {
  (void)ud;
  struct collect c = collected;
  c.n = 0;
  cdtime_t now = cdtime();
  watch_snapshot(watch, collect_target, &c);
  for (size_t i = 0; i < c.n; i++) {
    struct naming_row rows[2] = {
        {.type = "derive", .type_instance = "dumps", .is_derive = 1},
        {.type = "derive", .type_instance = "dump-failures", .is_derive = 1}};
    /* Not under the watch's mutex: the two locks never nest. */
    pthread_mutex_lock(&dump_count_lock);
    ssize_t k = dump_count_find(c.v[i].instance);
    if (k >= 0) {
      rows[0].derive = dump_counts[k].written;
      rows[1].derive = dump_counts[k].failed;
    }
    pthread_mutex_unlock(&dump_count_lock);
    value_list_t vl;
    value_list_for(&vl, c.v[i].instance, c.v[i].interval);
    for (size_t j = 0; j < 2; j++)
      dispatch_row(&vl, &rows[j], now);
  }
  collected = c;
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
  static bool table_full_logged;
  bool log = true, log_full = false;
  pthread_mutex_lock(&refusal_lock);
  for (size_t i = 0; i < nrefusals; i++) {
    if (refusals[i].reason == reason &&
        strcmp(refusals[i].instance, instance) == 0) {
      pthread_mutex_unlock(&refusal_lock);
      return;
    }
  }
  if (nrefusals < sizeof(refusals) / sizeof(refusals[0])) {
    sstrncpy(refusals[nrefusals].instance, instance, NAMING_MAX);
    refusals[nrefusals].reason = reason;
    nrefusals++;
  } else {
    log = false;
    log_full = !table_full_logged;
    table_full_logged = true;
  }
  pthread_mutex_unlock(&refusal_lock);
  if (log)
    NOTICE("dotnet plugin: instance \"%s\": no dump: %s (logged once)",
           instance, why);
  else if (log_full)
    NOTICE("dotnet plugin: refusals to dump logged for %zu instances: those "
           "of further instances are not logged.",
           sizeof(refusals) / sizeof(refusals[0]));
}

static void forget_refusals(const char *instance) {
  pthread_mutex_lock(&refusal_lock);
  size_t o = 0;
  for (size_t i = 0; i < nrefusals; i++)
    if (strcmp(refusals[i].instance, instance) != 0)
      refusals[o++] = refusals[i];
  nrefusals = o;
  pthread_mutex_unlock(&refusal_lock);
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

enum foreign_kind { FOREIGN_HOST, FOREIGN_SHAPE, FOREIGN_KINDS };

/* Logs once per kind, for the life of the plugin, that a notification
 * which would have made a dump came from elsewhere: they can come in any
 * number, from anyone who can reach the network plugin or unixsock. */
static void log_foreign(const notification_t *n, enum foreign_kind kind) {
  static atomic_bool logged[FOREIGN_KINDS];
  if (atomic_exchange(&logged[kind], true))
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
  if (n->severity == NOTIF_OKAY || n->severity > trigger_severity)
    return 0;
  size_t i;
  for (i = 0; i < ntriggers; i++)
    if (strcmp(n->type_instance, triggers[i]) == 0)
      break;
  if (i == ntriggers || is_missing_value(n))
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
  pthread_mutex_lock(&notify_lock);
  if (dumper == NULL) { /* no <Dump>, or shut down */
    pthread_mutex_unlock(&notify_lock);
    return 0;
  }
  r = watch_lookup(watch, n->plugin_instance, &ep);
  if (r == 0)
    r = dump_worker_request(dumper, &ep, n->plugin_instance, n->type_instance,
                            why, sizeof(why));
  else
    sstrncpy(why, "no live session for this instance (the process exited?)",
             sizeof(why));
  pthread_mutex_unlock(&notify_lock);
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
       n->type_instance, (int)ep.pid, dump_type_name(dump_tmpl.type),
       dump_tmpl.method == DUMP_METHOD_IPC ? "ipc" : "exec",
       meta_find(n, "CurrentValue", NM_TYPE_DOUBLE)->nm_value.nm_double, lag);
  return 0;
}

/* ---- life cycle ---- */

/* Gather for the watch: 0 its default, -1 none, else ms (at least 1). */
static int gather_ms(void) {
  if (cfg_gather < 0)
    return 0;
  if (cfg_gather == 0)
    return -1;
  int ms = (int)(cfg_gather * 1000 + 0.5);
  return ms > 0 ? ms : 1;
}

static int dotnet_init(void) {
  if (watch != NULL)
    return 0;
  double interval = cfg_interval > 0 ? cfg_interval
                                     : CDTIME_T_TO_DOUBLE(plugin_get_interval());
  if (nrules == 0 && !cfg_autodiscover)
    WARNING("dotnet plugin: no <Process> block and AutoDiscover is false: "
            "nothing to watch.");
  struct watch_config wc = {.interval_sec = interval,
                            .autodiscover = cfg_autodiscover,
                            .start_at_once = !cfg_align_sessions,
                            .gather_ms = gather_ms(),
                            .rules = rules,
                            .nrules = nrules,
                            .max_targets = (size_t)cfg_max_processes,
                            .max_series = (size_t)cfg_max_series,
                            .log = watch_log,
                            .publish = publish,
                            .flush = flush};
  memcpy(wc.auto_session.providers, auto_providers, sizeof(auto_providers));
  wc.auto_session.nproviders = nauto_providers;
  memcpy(wc.auto_session.meters, auto_meters, sizeof(auto_meters));
  wc.auto_session.nmeters = nauto_meters;
  watch = watch_new(&wc);
  if (watch == NULL) {
    ERROR("dotnet plugin: out of memory.");
    return -1;
  }
  int r = watch_start(watch);
  if (r < 0) {
    ERROR("dotnet plugin: cannot start threads: %s", STRERROR(-r));
    watch_free(watch);
    watch = NULL;
    return -1;
  }
  if (dump_enabled) {
    char why[512];
    int dfd = dump_dir_open(dump_tmpl.directory, 1, NULL, NULL, 0, why,
                            sizeof(why));
    if (dfd < 0)
      WARNING("dotnet plugin: <Dump>: Directory \"%s\": %s; dumps fail "
              "until this is fixed.",
              dump_tmpl.directory, why);
    else
      close(dfd);
    static const struct dump_worker_ops ops = {.take = dump_take,
                                               .now = clock_mono_s};
    struct dump_worker *d =
        dump_worker_new(&dump_tmpl, &dump_pol, &ops, dump_done, NULL);
    r = d == NULL ? -ENOMEM : dump_worker_start(d);
    if (r < 0) {
      ERROR("dotnet plugin: <Dump>: cannot start the dump worker thread: %s.",
            STRERROR(-r));
      dump_worker_free(d);
      watch_stop(watch, 500);
      watch_free(watch);
      watch = NULL;
      return -1;
    }
    /* From here, notifications can reach it (and watch). */
    pthread_mutex_lock(&notify_lock);
    dumper = d;
    pthread_mutex_unlock(&notify_lock);
  }
  INFO("dotnet plugin: interval %g s, %zu <Process> block(s), AutoDiscover "
       "%s, dumps %s",
       interval, nrules, cfg_autodiscover ? "on" : "off",
       dumper ? "on" : "off");
  if (dump_enabled)
    plugin_register_complex_read(NULL, "dotnet", dotnet_read,
                                 DOUBLE_TO_CDTIME_T(interval), NULL);
  return 0;
}

static int dotnet_shutdown(void) {
  free(collected.v); /* the read threads are gone */
  collected = (struct collect){0};
  /* Notifications can still come (from unixsock's or the network plugin's
   * threads, whose shutdown may come after this one): once dumper is NULL
   * under notify_lock, none uses the worker or the watch, and a callback
   * already in there is waited for (one short lookup). */
  pthread_mutex_lock(&notify_lock);
  struct dump_worker *d = dumper;
  dumper = NULL;
  pthread_mutex_unlock(&notify_lock);
  dump_worker_free(d);
  if (watch) {
    watch_stop(watch, 500);
    struct watch_stats st;
    watch_get_stats(watch, &st);
    INFO("dotnet plugin: stopped: %" PRIu64 " sessions, %" PRIu64
         " samples, %" PRIu64 " stream reads in %" PRIu64
         " wakeups of the reader.",
         st.sessions_started, st.samples, st.reads, st.wakeups);
    watch_free(watch);
    watch = NULL;
  }
  /* what the stops' last samples put there: collectd's write threads are
   * gone by now */
  free(batch);
  batch = NULL;
  nbatch = batch_cap = 0;
  for (size_t i = 0; i < nrules; i++)
    watch_rule_free(&rules[i]);
  nrules = 0;
  for (size_t i = 0; i < nowned; i++)
    free(owned_strings[i]);
  nowned = 0;
  return 0;
}

void module_register(void) {
  plugin_register_complex_config("dotnet", dotnet_config);
  plugin_register_init("dotnet", dotnet_init);
  plugin_register_notification("dotnet", dotnet_notify, NULL);
  plugin_register_shutdown("dotnet", dotnet_shutdown);
}
