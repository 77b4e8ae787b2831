/**
 * collectd-dotnet - plugin/watch.h
 *
 * Keeps an EventPipe session to every .NET process that matches a
 * configured rule (or, with autodiscovery, to every .NET process), and the
 * latest counter values of each. Two threads, both owned here:
 *   - the connector: every tick finds processes (discovery), matches rules,
 *     starts sessions (blocking IPC with timeouts, so a hung target only
 *     delays its own start) and hands them to the reader;
 *   - the reader: one epoll set over all session sockets; parses the
 *     streams, merges each sample into its target's table and hands the
 *     updated entry to the consumer's publish callback at once (no
 *     waiting for a read: a breaching sample reaches collectd's threshold
 *     check as soon as the runtime flushes it). It never makes a blocking
 *     call.
 * Consumers (collectd's read callback, the dump hook) look up targets
 * under one mutex for a moment; nobody waits on a target.
 *
 * No collectd header here: logging goes through a callback.
 */
#ifndef WATCH_H
#define WATCH_H

#include "counters_table.h"
#include "ipc.h"
#include "session.h"

#include <regex.h>
#include <stdint.h>
#include <sys/types.h>

enum watch_match { WATCH_MATCH_PID, WATCH_MATCH_COMMAND_LINE, WATCH_MATCH_ENTRY };

/* A rule matches what a process says about itself (its command line,
 * its entry assembly) or its pid: any local user can start a process that
 * matches a CommandLine or EntryAssembly rule. The first process matched
 * gets the rule's name; another matched while that one runs gets
 * "<name>-<n>" (n = 2, 3, ...: the lowest free), and when the two run as
 * different users a warning naming both pids and uids, so a name is never
 * taken over silently by another user. */
struct watch_rule {
  char name[64];              /* the plugin instance */
  enum watch_match match;
  pid_t pid;                  /* WATCH_MATCH_PID */
  char pattern[512];          /* regex (command line) or assembly name */
  regex_t regex;              /* compiled by watch_rule_compile */
  int compiled;
  struct session_config session; /* providers, meters (strings owned by
                                    the rule's caller until watch_free) */
};

enum watch_log_level { WATCH_LOG_ERR = 3, WATCH_LOG_WARNING = 4,
                       WATCH_LOG_NOTICE = 5, WATCH_LOG_INFO = 6,
                       WATCH_LOG_DEBUG = 7 };
typedef void (*watch_log_cb)(int level, const char *msg);

struct watch_target_view;
/* Called on the reader thread for every sample, once merged into its
 * target's table: e is the entry (the callee may keep its own state for
 * it in e->consumer, which the table frees with the entry), valid during
 * the call only. Must be quick, must not wait on anything slow and must
 * not call into the watch. */
typedef void (*watch_publish_cb)(void *ctx, const struct watch_target_view *t,
                                 struct counters_entry *e);
/* Called on the reader thread after each read of a stream whose samples
 * went to publish: the consumer may hold them until then and hand them on
 * together (collectd's write threads are woken once for the lot, not once
 * per value). */
typedef void (*watch_flush_cb)(void *ctx, const struct watch_target_view *t);

/* A socket runtimes connect to (listen.h; Listen in the plugin's config). */
#define WATCH_LISTEN_MAX 16
struct watch_listen {
  char path[108]; /* sun_path */
  gid_t gid;      /* (gid_t)-1: ours */
  mode_t mode;    /* 0: 0660 */
  /* DumpStaging: where runtimes beyond our pid namespace write dumps, as
   * they see it and as we do ("": none) */
  char dump_there[108];
  char dump_here[108];
};

struct watch_config {
  double interval_sec;        /* counter interval */
  double discover_sec;        /* how often to look for processes; 0: interval */
  int autodiscover;
  int start_at_once;          /* 1: sessions start at once, not on the
                                 common grid (see connect_policy.h) */
  int gather_ms;              /* the reader's pause to gather streams from
                                 two sessions on (see reader.c); 0: 200 ms,
                                 < 0: none; at most a quarter interval */
  struct session_config auto_session; /* for autodiscovered processes */
  struct watch_rule *rules;   /* borrowed until watch_free */
  size_t nrules;
  size_t max_targets;         /* 0: 256 */
  size_t max_series;          /* per target: series (type instances) its
                                 counters table takes; 0: 512 */
  size_t max_instances;       /* distinct plugin instance names handed out
                                 over the watch's life (each is series and
                                 files downstream); once reached, a process
                                 that would need a new name is not watched
                                 (logged once); 0: 4 * max_targets */
  int ipc_timeout_ms;         /* 0: 2000 */
  /* Listen sockets, opened by watch_start, closed by watch_free: the
   * runtimes that connect to them are matched and named as those
   * discovery finds; one that discovery finds too (the same pid) is
   * reached through its own connection only. Borrowed until
   * watch_start returns; at most WATCH_LISTEN_MAX. */
  const struct watch_listen *listens;
  size_t nlistens;
  watch_log_cb log;
  watch_publish_cb publish;   /* NULL: values are only counted */
  watch_flush_cb flush;       /* optional */
  void *publish_ctx;
};

/* Compiles a COMMAND_LINE rule's regex: 0, or -EINVAL with err filled. */
int watch_rule_compile(struct watch_rule *r, char *err, size_t cap);
void watch_rule_free(struct watch_rule *r);

struct watch;

struct watch *watch_new(const struct watch_config *cfg);
int watch_start(struct watch *w);  /* starts the threads */
/* Stops the threads, sends StopTracing to every session (in parallel,
 * bounded by timeout_ms in all), frees nothing. */
void watch_stop(struct watch *w, int timeout_ms);
void watch_free(struct watch *w);  /* accepts NULL; stops first if needed */

/* One target as seen by a snapshot. */
struct watch_target_view {
  const char *instance;
  const struct ipc_endpoint *ep;
  const char *entry_assembly;
  const char *runtime_version;
  double interval_sec;
};

/* Calls cb for every live target, under the watch's mutex: cb must be
 * quick and must not call back into the watch. */
typedef void (*watch_view_cb)(void *ctx, const struct watch_target_view *t);
void watch_snapshot(struct watch *w, watch_view_cb cb, void *ctx);

/* The endpoint of the live target with that instance name: 0 or -ENOENT. */
int watch_lookup(struct watch *w, const char *instance, struct ipc_endpoint *ep);

struct watch_stats {
  uint64_t sessions_started;
  uint64_t samples;
  uint64_t reads, wakeups; /* stream reads; reader wakeups for them */
};
void watch_get_stats(struct watch *w, struct watch_stats *st);

#endif /* WATCH_H */
