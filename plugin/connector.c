/**
 * collectd-dotnet - plugin/connector.c
 *
 * The watch's connector thread (see watch.h): passes over the processes
 * (discovery), matches them to the <Process> rules, asks new ones who
 * they are (ProcessInfo), starts their sessions (CollectTracing) and puts
 * them live for the reader. It never waits on one target: every exchange
 * is in flight beside the others, driven by one poll; the rules of when to
 * try again are in connect_policy.c.
 */
#include "clock.h"
#include "discovery.h"
#include "listen.h"
#include "watch_state.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RESUME_FOUND_MS 250 /* ResumeRuntime to a runtime found in /tmp */
#define MISS_INTERVALS                                                         \
  5 /* discovery intervals without a match before                              \
       "matches no process" */
/* How the ProcessInfo slots (PROBES_MAX) are shared so that sockets that
 * never answer (each holds its slot until the IPC timeout) cannot keep a
 * new runtime waiting: a process asked for the first time goes before one
 * asked again, the newest first; the first asks of one uid hold at most
 * PROBES_PER_UID slots, and asks again (of processes that did not answer)
 * at most PROBES_RETRY_MAX. */
#define PROBES_PER_UID 16
#define PROBES_RETRY_MAX 16
/* Processes with a diagnostic socket remembered (the seen table), in all
 * (SEEN_MAX) and per uid other than root: one user's sockets cannot take
 * all of it. */
#define SEEN_PER_UID (SEEN_MAX / 4)

enum {
  CAP_SEEN = 1,
  CAP_SEEN_UID = 2,
  CAP_NAMES = 4,
  CAP_AUTO = 8,
  CAP_SILENT_IN = 16 /* not a cap: a runtime connected in did not answer */
};

/* Logs once per watch that the cap `which` was reached. */
static void cap_log(struct watch *w, unsigned which, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void cap_log(struct watch *w, unsigned which, const char *fmt, ...) {
  if (w->conn.caps_logged & which)
    return;
  w->conn.caps_logged |= which;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  wlog(w, WATCH_LOG_WARNING, "%s (logged once)", msg);
}

/* ---- the ProcessInfo exchanges in flight ---- */

static const struct ipc_endpoint *probe_ep(const struct watch *w, size_t i) {
  return ipc_call_endpoint(w->conn.probes[i]);
}

static int probe_fd(const struct watch *w, size_t i) {
  return ipc_call_fd(w->conn.probes[i]);
}

static int64_t probe_deadline(const struct watch *w, size_t i) {
  return ipc_call_deadline(w->conn.probes[i]);
}

/* Starts a ProcessInfo exchange in the next slot: -EINPROGRESS when it is
 * in flight (counted), else its failure. */
static int probe_start(struct watch *w, const struct ipc_endpoint *ep,
                       int again, struct ipc_error *err) {
  size_t i = w->conn.nprobes;
  int r = ipc_probe_start(&w->conn.probes[i], ep, w->cfg.ipc_timeout_ms, err);
  if (r == -EINPROGRESS) {
    w->conn.probe_again[i] = (unsigned char)again;
    w->conn.nprobes++;
  }
  return r;
}

/* Steps probe i: -EINPROGRESS, or its end (then *ep is its endpoint and
 * the slot is free: the last one moved into it). */
static int probe_step(struct watch *w, size_t i, struct ipc_endpoint *ep,
                      struct ipc_process_info *info, struct ipc_error *err) {
  struct ipc_call *pr = w->conn.probes[i];
  int r = ipc_probe_step(pr, info, err);
  if (r == -EINPROGRESS)
    return r;
  *ep = *ipc_call_endpoint(pr);
  ipc_call_close(&w->conn.probes[i]);
  --w->conn.nprobes;
  w->conn.probes[i] = w->conn.probes[w->conn.nprobes];
  w->conn.probe_again[i] = w->conn.probe_again[w->conn.nprobes];
  return r;
}

static void probes_close(struct watch *w) {
  for (size_t i = 0; i < w->conn.nprobes; i++)
    ipc_call_close(&w->conn.probes[i]);
  w->conn.nprobes = 0;
}

/* ---- what the connector knows of each process ---- */

/* The seen entry of that very process, or NULL (forgotten meanwhile). */
static struct seen *seen_find(struct watch *w, pid_t pid, uint64_t start) {
  for (size_t i = 0; i < w->conn.nseen; i++)
    if (ipc_same_process(w->conn.seen[i].pid, w->conn.seen[i].start_time, pid,
                         start))
      return &w->conn.seen[i];
  return NULL;
}

/* Takes the session ends the reader posted into the seen table. */
static void apply_ended(struct watch *w, int64_t now_ms) {
  struct ended e[ENDED_MAX];
  pthread_mutex_lock(&w->shared.lock);
  size_t n = w->shared.nended;
  memcpy(e, w->shared.ended, n * sizeof(e[0]));
  w->shared.nended = 0;
  pthread_mutex_unlock(&w->shared.lock);
  for (size_t i = 0; i < n; i++) {
    struct seen *sn = seen_find(w, e[i].pid, e[i].start_time);
    if (sn != NULL)
      policy_session_ended(&sn->retry, e[i].failed, e[i].lived, now_ms);
  }
}

/* Drops the entries of processes gone in earlier passes. */
static void seen_compact(struct watch *w) {
  size_t o = 0;
  for (size_t i = 0; i < w->conn.nseen; i++)
    if (w->conn.seen[i].generation + 2 >= w->conn.generation)
      w->conn.seen[o++] = w->conn.seen[i];
  w->conn.nseen = o;
}

/* Whether a new entry for ep fits the caps (said once when not). */
static int seen_room(struct watch *w, const struct ipc_endpoint *ep) {
  if (w->conn.nseen >= SEEN_MAX) {
    cap_log(w, CAP_SEEN,
            "more than %d processes with a diagnostic socket: pid %d and "
            "other new ones are not looked at until some are gone",
            SEEN_MAX, (int)ep->pid);
    return 0;
  }
  if (ep->uid == 0)
    return 1;
  size_t mine = 0;
  for (size_t i = 0; i < w->conn.nseen; i++)
    mine += w->conn.seen[i].uid == ep->uid;
  if (mine < SEEN_PER_UID)
    return 1;
  cap_log(w, CAP_SEEN_UID,
          "uid %u has more than %d processes with a diagnostic socket: "
          "pid %d and its other new ones are not looked at until some "
          "are gone",
          (unsigned)ep->uid, SEEN_PER_UID, (int)ep->pid);
  return 0;
}

/* The seen entry of ep, a new one if there is room, or NULL. */
static struct seen *seen_get(struct watch *w, const struct ipc_endpoint *ep) {
  struct seen *s = seen_find(w, ep->pid, ep->start_time);
  if (s != NULL)
    return s;
  seen_compact(w);
  if (!seen_room(w, ep))
    return NULL;
  s = &w->conn.seen[w->conn.nseen++];
  memset(s, 0, sizeof(*s));
  s->pid = ep->pid;
  s->start_time = ep->start_time;
  s->uid = ep->uid;
  s->order = w->conn.seen_order++;
  return s;
}

static int read_cmdline(pid_t pid, char *out, size_t cap) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  ssize_t n = read(fd, out, cap - 1);
  close(fd);
  if (n < 0)
    return -errno;
  for (ssize_t i = 0; i < n; i++)
    if (out[i] == 0)
      out[i] = ' ';
  while (n > 0 && out[n - 1] == ' ')
    n--;
  out[n] = 0;
  return 0;
}

/* ---- instance names ---- */

/* The target that holds the instance name, or NULL; under shared.lock
 * (the starting list is the connector's own). */
static const struct target *instance_holder(struct watch *w, const char *name) {
  const struct target *lists[2] = {w->shared.live, w->conn.starting};
  for (int l = 0; l < 2; l++)
    for (const struct target *t = lists[l]; t; t = t->next)
      if (strcmp(t->instance, name) == 0)
        return t;
  return NULL;
}

/* A name as a plugin instance may be: letters, digits, '.', '_', '-';
 * anything else becomes '_'; "dotnet" for an empty one. */
static void clean_name(const char *base, char *out, size_t cap) {
  static const char allowed[] = "abcdefghijklmnopqrstuvwxyz"
                                "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "0123456789._-";
  size_t o = 0;
  for (const char *p = base; *p && o + 1 < cap; p++)
    out[o++] = strchr(allowed, *p) != NULL ? *p : '_';
  out[o] = 0;
  if (o == 0)
    snprintf(out, cap, "dotnet");
}

/* Whether the name may be used: handed out before, or added now while
 * fewer than max_instances names have been (see watch.h). */
static int name_admit(struct watch *w, const char *name) {
  for (size_t i = 0; i < w->conn.nnames; i++)
    if (strcmp(w->conn.names[i], name) == 0)
      return 1;
  if (w->conn.nnames >= w->cfg.max_instances)
    return 0;
  snprintf(w->conn.names[w->conn.nnames++], INSTANCE_LEN, "%s", name);
  return 1;
}

/* The first free name of clean, "<clean>-<n>" (n from 2) after it, into
 * name[INSTANCE_LEN]; *holder: the target holding clean itself, or NULL
 * (its pid and uid copied to *pid, *uid). 0, or -ENOSPC when none is
 * free. */
static int free_name(struct watch *w, const char *clean, char *name,
                     pid_t *holder_pid, uid_t *holder_uid) {
  int found = 0;
  pthread_mutex_lock(&w->shared.lock);
  for (size_t n = 1; n <= w->cfg.max_targets + 1 && !found; n++) {
    if (n == 1)
      snprintf(name, INSTANCE_LEN, "%s", clean);
    else
      snprintf(name, INSTANCE_LEN, "%s-%zu", clean, n);
    const struct target *h = instance_holder(w, name);
    if (n == 1 && h != NULL) {
      *holder_pid = h->ep.pid;
      *holder_uid = h->ep.uid;
    }
    found = h == NULL;
  }
  pthread_mutex_unlock(&w->shared.lock);
  return found ? 0 : -ENOSPC;
}

/* Instance names: the rule's (or the entry assembly's) name for the first
 * process; "<name>-<n>" (the lowest free n from 2) for others matching at
 * the same time, so that the names one rule or assembly can have are as
 * many as its processes at once, not one per pid over time. A rule's
 * process that does not get the rule's own name is logged with the pid and
 * uid of the one that has it, as a warning when the two run as different
 * users (rules match what a process says about itself: see watch.h). 0, or
 * -ENOSPC when the name would be a new one past max_instances. */
static int pick_instance(struct watch *w, const char *base, int rule,
                         struct seen *sn, const struct ipc_endpoint *ep,
                         char *out, size_t cap) {
  char clean[100];
  clean_name(base, clean, sizeof(clean));
  char name[INSTANCE_LEN];
  pid_t holder_pid = 0;
  uid_t holder_uid = 0;
  if (free_name(w, clean, name, &holder_pid, &holder_uid) != 0 ||
      !name_admit(w, name)) {
    cap_log(w, CAP_NAMES,
            "%zu distinct instance names handed out: pid %d, which would be "
            "\"%s\", is not watched, nor any other process that needs a new "
            "name (a process chooses its entry assembly and command line; "
            "restart collectd to start afresh)",
            w->conn.nnames, (int)ep->pid, name);
    return -ENOSPC;
  }
  if (rule >= 0 && holder_pid != 0 && !sn->name_warned) {
    /* another user's process holding the name is what an imitation
     * looks like; the same user's is a restart overlapping its
     * predecessor, or several workers */
    sn->name_warned = 1;
    wlog(w, holder_uid != ep->uid ? WATCH_LOG_WARNING : WATCH_LOG_DEBUG,
         "<Process \"%s\"> also matches pid %d (uid %u), while pid %d "
         "(uid %u) holds the name \"%s\": pid %d is \"%s\". A rule "
         "matches what a process says about itself; if one of them is "
         "not the process meant, pin the rule with Pid or a tighter "
         "CommandLine",
         w->cfg.rules[rule].name, (int)ep->pid, (unsigned)ep->uid,
         (int)holder_pid, (unsigned)holder_uid, clean, (int)ep->pid, name);
  }
  snprintf(out, cap, "%s", name);
  return 0;
}

/* ---- the targets ---- */

/* Whether a target of the list is this process (pid + start time). */
static int in_list(const struct target *t, pid_t pid, uint64_t start_time) {
  for (; t; t = t->next)
    if (ipc_same_process(t->ep.pid, t->ep.start_time, pid, start_time))
      return 1;
  return 0;
}

/* Whether a live or starting target is this process. */
static int target_exists(struct watch *w, const struct ipc_endpoint *ep) {
  if (in_list(w->conn.starting, ep->pid, ep->start_time))
    return 1; /* the connector's own list: no lock */
  pthread_mutex_lock(&w->shared.lock);
  int found = in_list(w->shared.live, ep->pid, ep->start_time);
  pthread_mutex_unlock(&w->shared.lock);
  return found;
}

/* For discovery: a live session streams from this very process. */
static int streaming_from(void *ctx, pid_t pid, uint64_t start_time) {
  struct watch *w = ctx;
  pthread_mutex_lock(&w->shared.lock);
  int found = in_list(w->shared.live, pid, start_time);
  pthread_mutex_unlock(&w->shared.lock);
  return found;
}

/* Targets live and starting; *autos: how many of them are autodiscovered. */
static size_t target_count(struct watch *w, size_t *autos) {
  size_t n = 0, a = 0;
  pthread_mutex_lock(&w->shared.lock);
  const struct target *lists[2] = {w->shared.live, w->conn.starting};
  for (int l = 0; l < 2; l++)
    for (const struct target *t = lists[l]; t; t = t->next) {
      n++;
      a += t->rule < 0;
    }
  pthread_mutex_unlock(&w->shared.lock);
  *autos = a;
  return n;
}

/* Whether MaxProcesses has room for one more target of the rule (-1:
 * autodiscovered); when not, says so (once) and sets the retry. */
static int target_room(struct watch *w, struct seen *sn, int rule,
                       const struct ipc_endpoint *ep, int64_t now) {
  size_t autos = 0;
  size_t n = target_count(w, &autos);
  /* autodiscovered processes leave a slot to each rule (at most half of
   * MaxProcesses): processes that anyone can start do not crowd out the
   * ones configured */
  size_t keep = w->cfg.nrules < w->cfg.max_targets / 2 ? w->cfg.nrules
                                                       : w->cfg.max_targets / 2;
  if (n >= w->cfg.max_targets) {
    if (!sn->complained)
      wlog(w, WATCH_LOG_WARNING,
           "not watching pid %d: MaxProcesses (%zu) reached", (int)ep->pid,
           w->cfg.max_targets);
    sn->complained = 1;
    policy_retry_later(&sn->retry, now);
    return 0;
  }
  if (rule < 0 && autos >= w->cfg.max_targets - keep) {
    cap_log(w, CAP_AUTO,
            "not watching pid %d nor other autodiscovered processes beyond "
            "%zu: the other %zu of MaxProcesses (%zu) are kept for the "
            "<Process> blocks",
            (int)ep->pid, w->cfg.max_targets - keep, keep, w->cfg.max_targets);
    policy_retry_later(&sn->retry, now);
    return 0;
  }
  return 1;
}

/* A target that matched a rule (or autodiscovery): its session starts at
 * the next grid point (policy_start_at), without the connector waiting
 * for the runtime's answer (starting_step). */
static void start_target(struct watch *w, struct seen *sn, int rule,
                         const struct ipc_endpoint *ep) {
  int64_t now = clock_mono_ms();
  if (!target_room(w, sn, rule, ep, now))
    return;
  struct session_config cfg =
      rule >= 0 ? w->cfg.rules[rule].session : w->cfg.auto_session;
  cfg.interval_sec = w->cfg.interval_sec;
  cfg.timeout_ms = w->cfg.ipc_timeout_ms;
  struct target *t = calloc(1, sizeof(*t));
  if (t == NULL)
    return;
  t->w = w;
  t->rule = rule;
  t->ep = *ep;
  t->interval = w->cfg.interval_sec;
  snprintf(t->entry, sizeof(t->entry), "%s", sn->entry);
  snprintf(t->version, sizeof(t->version), "%s", sn->version);
  counters_table_init(&t->table, w->cfg.max_series);
  if (pick_instance(w, rule >= 0 ? w->cfg.rules[rule].name : sn->entry, rule,
                    sn, ep, t->instance, sizeof(t->instance)) != 0) {
    policy_retry_later(&sn->retry, now);
    watch_target_free(t);
    return;
  }
  t->session = session_new(ep, &cfg, watch_reader_sample, t);
  if (t->session == NULL) {
    watch_target_free(t);
    return;
  }
  t->quiet = sn->retry.stream_failures > 0;
  t->begin_at =
      policy_start_at(&w->conn.start_grid_ms, w->cfg.interval_sec,
                      w->cfg.start_at_once, clock_mono_ms(), clock_wall_ms());
  t->next = w->conn.starting;
  w->conn.starting = t;
  w->conn.nstarting++;
}

/* The session of a starting target failed to start with r. */
static void start_failed(struct watch *w, struct target *t, int r,
                         const struct ipc_error *err) {
  int64_t now = clock_mono_ms();
  struct seen *sn = seen_find(w, t->ep.pid, t->ep.start_time);
  const char *why = err->message[0] ? err->message : strerror(-r);
  if (!discovery_alive(&t->ep)) { /* went away meanwhile */
    wlog(w, WATCH_LOG_DEBUG, "pid %d went away before its session started: %s",
         (int)t->ep.pid, why);
  } else {
    if (sn == NULL || !sn->complained)
      wlog(w, WATCH_LOG_ERR,
           "instance \"%s\": cannot start a session with pid %d: %s "
           "(retrying every %d s; logged once)",
           t->instance, (int)t->ep.pid, why, RETRY_SEC);
    if (sn != NULL)
      sn->complained = 1;
  }
  if (sn != NULL)
    policy_retry_later(&sn->retry, now);
  watch_target_free(t);
}

/* The session of a starting target runs: the reader takes it on. */
static void start_done(struct watch *w, struct target *t) {
  struct seen *sn = seen_find(w, t->ep.pid, t->ep.start_time);
  if (sn != NULL && sn->complained)
    wlog(w, WATCH_LOG_NOTICE, "instance \"%s\": pid %d reachable again",
         t->instance, (int)t->ep.pid);
  if (sn != NULL)
    sn->complained = 0;
  t->started = clock_mono_ms();
  wlog(w, t->quiet ? WATCH_LOG_DEBUG : WATCH_LOG_INFO,
       "instance \"%s\": watching pid %d (%s, .NET %s), session %llu, "
       "interval %g s%s",
       t->instance, (int)t->ep.pid, t->entry[0] ? t->entry : "?",
       t->version[0] ? t->version : "?",
       (unsigned long long)session_id(t->session), t->interval,
       t->ep.take != NULL ? ", connected in" : "");
  /* a runtime may wait for a tool to resume it (DOTNET_DiagnosticPorts=
   * ...,suspend, or DOTNET_DefaultDiagnosticPortSuspend): now that its
   * session runs, its first values are caught. Whichever way it was
   * reached (one that connects in has its socket on disk too, and either
   * may be found first), once per runtime; to a running one a no-op. */
  struct ipc_endpoint ep = t->ep;
  int resume = sn != NULL && !sn->resumed;
  if (sn != NULL && resume)
    sn->resumed = 1;
  int r = watch_reader_adopt(w, t); /* t is the reader's from here */
  if (r != 0) {
    wlog(w, WATCH_LOG_ERR,
         "instance \"%s\": cannot watch the stream of pid %d: "
         "epoll_ctl: %s",
         t->instance, (int)t->ep.pid, strerror(-r));
    watch_reader_end(w, t, r);
  }
  if (!resume)
    return;
  /* A runtime found through /tmp is resumed within RESUME_FOUND_MS and
   * silently: it is rarely suspended, a runtime that does not know the
   * command (UnknownCommand) cannot be, and a process that never answers
   * must not hold the connector for a whole IPC timeout. */
  int in = ep.take != NULL;
  struct ipc_error err = {0};
  r = ipc_resume_runtime(&ep, in ? w->cfg.ipc_timeout_ms : RESUME_FOUND_MS,
                         &err);
  if (r < 0 && (in || err.hresult != IPC_E_UNKNOWN_COMMAND))
    wlog(w, in ? WATCH_LOG_WARNING : WATCH_LOG_DEBUG,
         "cannot resume pid %d (%s): %s", (int)ep.pid, ep.path,
         err.message[0] ? err.message : strerror(-r));
}

/* Sends the CollectTracing of starting targets whose time has come, reads
 * the answers that came, and ends those answered, failed or past their
 * deadline. */
static void starting_step(struct watch *w) {
  int64_t now = clock_mono_ms();
  for (struct target **pp = &w->conn.starting; *pp;) {
    struct target *t = *pp;
    struct ipc_error err = {0};
    int r;
    if (!t->begun) {
      if (now < t->begin_at) {
        pp = &t->next;
        continue;
      }
      t->begun = 1;
      r = session_begin(t->session, &err);
    } else {
      r = session_begin_step(t->session, &err);
    }
    if (r == -EINPROGRESS) {
      pp = &t->next;
      continue;
    }
    *pp = t->next; /* off the starting list */
    t->next = NULL;
    w->conn.nstarting--;
    if (r == 0)
      start_done(w, t);
    else
      start_failed(w, t, r, &err);
  }
}

static void starting_free(struct watch *w) {
  while (w->conn.starting) {
    struct target *t = w->conn.starting;
    w->conn.starting = t->next;
    watch_target_free(t);
  }
  w->conn.nstarting = 0;
}

/* ---- rules ---- */

/* The first rule that matches the process, or -1. CommandLine rules are
 * tried on /proc/<pid>/cmdline and on the runtime's own command line (an
 * apphost's /proc cmdline lacks the .dll the runtime reports). */
static int match_rule(struct watch *w, const struct seen *sn,
                      const struct ipc_endpoint *ep) {
  char cmdline[4096] = "";
  int have_cmdline = 0;
  for (size_t i = 0; i < w->cfg.nrules; i++) {
    struct watch_rule *r = &w->cfg.rules[i];
    switch (r->match) {
    case WATCH_MATCH_PID:
      if (r->pid == ep->pid)
        return (int)i;
      break;
    case WATCH_MATCH_COMMAND_LINE:
      if (!have_cmdline)
        have_cmdline = read_cmdline(ep->pid, cmdline, sizeof(cmdline)) == 0;
      if (!r->compiled)
        break;
      if (have_cmdline && regexec(&r->regex, cmdline, 0, NULL, 0) == 0)
        return (int)i;
      if (sn->have_info &&
          regexec(&r->regex, sn->command_line, 0, NULL, 0) == 0)
        return (int)i;
      break;
    case WATCH_MATCH_ENTRY:
      if (sn->have_info && strcmp(r->pattern, sn->entry) == 0)
        return (int)i;
      break;
    }
  }
  return -1;
}

/* match_rule, once per process (pid + start time) and what is known of it:
 * not a read of /proc/<pid>/cmdline and two regexec per process per pass.
 * An answer without the runtime's info holds until the info comes. */
static int cached_rule(struct watch *w, struct seen *sn,
                       const struct ipc_endpoint *ep) {
  if (sn->rule_known)
    return sn->rule;
  sn->rule = match_rule(w, sn, ep);
  sn->rule_known = 1;
  return sn->rule;
}

/* A rule that has matched nothing for MISS_INTERVALS intervals: say so
 * once (a single empty pass is normal while a matched process restarts).
 * hits: per rule, the processes the pass matched. */
static void rules_missing(struct watch *w, const int *hits, int64_t now,
                          int64_t interval_ms) {
  for (size_t i = 0; i < w->cfg.nrules; i++) {
    int64_t *since = &w->conn.rule_missing[i];
    if (hits[i] > 0) {
      *since = 0;
      continue;
    }
    if (*since < 0)
      continue; /* warned */
    if (*since == 0) {
      *since = now > 0 ? now : 1;
      continue;
    }
    if (now - *since < MISS_INTERVALS * interval_ms)
      continue;
    struct watch_rule *rule = &w->cfg.rules[i];
    char what[600];
    if (rule->match == WATCH_MATCH_PID)
      snprintf(what, sizeof(what), "Pid %d", (int)rule->pid);
    else
      snprintf(what, sizeof(what), "%s \"%s\"",
               rule->match == WATCH_MATCH_COMMAND_LINE ? "CommandLine"
                                                       : "EntryAssembly",
               rule->pattern);
    wlog(w, WATCH_LOG_WARNING,
         "<Process \"%s\"> matches no .NET process yet (%s); will keep "
         "looking",
         rule->name, what);
    *since = -1;
  }
}

/* ---- who a process is (ProcessInfo) ---- */

/* A ProcessInfo of this process is in flight. */
static int probing(const struct watch *w, const struct ipc_endpoint *ep) {
  for (size_t i = 0; i < w->conn.nprobes; i++)
    if (ipc_same_process(probe_ep(w, i)->pid, probe_ep(w, i)->start_time,
                         ep->pid, ep->start_time))
      return 1;
  return 0;
}

/* What the runtime said of itself: once per process. */
static void info_ok(struct seen *sn, const struct ipc_process_info *info) {
  sn->have_info = 1;
  policy_probe_answered(&sn->retry);
  sn->rule_known = 0; /* match again, with the runtime's command line */
  snprintf(sn->entry, sizeof(sn->entry), "%s", info->entry_assembly);
  snprintf(sn->version, sizeof(sn->version), "%s", info->runtime_version);
  snprintf(sn->command_line, sizeof(sn->command_line), "%s",
           info->command_line);
}

/* A ProcessInfo that failed with r: when to try again, and what to say. */
static void info_failed(struct watch *w, struct seen *sn,
                        const struct ipc_endpoint *ep, int r,
                        const struct ipc_error *err, int64_t now) {
  int rule = cached_rule(w, sn, ep);
  switch (policy_probe_failed(&sn->retry, r, discovery_alive(ep), rule >= 0,
                              now)) {
  case POLICY_PROBE_GONE:
    wlog(w, WATCH_LOG_DEBUG, "pid %d went away before it answered: %s",
         (int)ep->pid, err->message);
    return;
  case POLICY_PROBE_REFUSED:
    wlog(w, WATCH_LOG_DEBUG, "pid %d does not listen yet: %s; retrying",
         (int)ep->pid, err->message);
    return;
  case POLICY_PROBE_FAILED:
    break;
  }
  /* anyone allowed on a Listen socket can advertise and then say nothing:
   * said once per watch, not once per cookie */
  if (ep->take != NULL && rule < 0)
    cap_log(w, CAP_SILENT_IN,
            "a runtime that connected in (pid %d, %s) does not answer: %s",
            (int)ep->pid, ep->path, err->message);
  if (rule >= 0 && !sn->complained)
    wlog(w, WATCH_LOG_WARNING,
         "pid %d matches <Process \"%s\"> but does not answer: %s "
         "(retrying every %d s; logged once)",
         (int)ep->pid, w->cfg.rules[rule].name, err->message, RETRY_SEC);
  if (rule >= 0)
    sn->complained = 1;
}

/* Reads what came for the ProcessInfo exchanges in flight and ends those
 * answered, failed or past their deadline (the pass that follows takes on
 * what they said). */
static void probes_step(struct watch *w) {
  for (size_t i = 0; i < w->conn.nprobes;) {
    struct ipc_endpoint ep;
    struct ipc_process_info info;
    struct ipc_error err = {0};
    int r = probe_step(w, i, &ep, &info, &err);
    if (r == -EINPROGRESS) {
      i++;
      continue;
    }
    struct seen *sn = seen_find(w, ep.pid, ep.start_time);
    if (r == 0 && ep.take != NULL)
      wlog(w, WATCH_LOG_DEBUG,
           "a runtime that connected in (pid %d, %s) is %s, .NET %s: %s",
           (int)ep.pid, ep.path,
           info.entry_assembly[0] ? info.entry_assembly : "?",
           info.runtime_version[0] ? info.runtime_version : "?",
           info.command_line);
    if (sn != NULL && r == 0)
      info_ok(sn, &info);
    else if (sn != NULL)
      info_failed(w, sn, &ep, r, &err, clock_mono_ms());
  }
}

static int cand_cmp(const void *a, const void *b) {
  const struct probe_cand *x = a, *y = b;
  if (x->again != y->again)
    return x->again - y->again;
  return (x->key > y->key) - (x->key < y->key);
}

/* Whether the shares leave a slot for the candidate (see PROBES_PER_UID). */
static int probe_share(const struct watch *w, const struct probe_cand *pc) {
  size_t agains = 0, same = 0;
  for (size_t i = 0; i < w->conn.nprobes; i++) {
    agains += w->conn.probe_again[i];
    same += !w->conn.probe_again[i] && probe_ep(w, i)->uid == pc->ep.uid;
  }
  return pc->again ? agains < PROBES_RETRY_MAX : same < PROBES_PER_UID;
}

/* Asks the processes the pass wanted asked, as slots allow, in the order
 * and shares PROBES_PER_UID describes: first asks before asks again, the
 * newest process first; asks again the longest due first. Those left wait
 * for a later pass (one comes when a slot frees). */
static void probes_schedule(struct watch *w, int64_t now) {
  if (w->conn.ncand == 0)
    return;
  qsort(w->conn.cand, w->conn.ncand, sizeof(w->conn.cand[0]), cand_cmp);
  for (size_t c = 0; c < w->conn.ncand && w->conn.nprobes < PROBES_MAX; c++) {
    struct probe_cand *pc = &w->conn.cand[c];
    if (!probe_share(w, pc))
      continue;
    /* (the seen table may have been compacted since the pass) */
    struct seen *sn = seen_find(w, pc->ep.pid, pc->ep.start_time);
    if (sn == NULL)
      continue;
    struct ipc_error err = {0};
    int r = probe_start(w, &pc->ep, pc->again, &err);
    if (r != -EINPROGRESS)
      info_failed(w, sn, &pc->ep, r, &err, now);
  }
  w->conn.ncand = 0;
}

/* ---- a pass ---- */

struct pass {
  struct watch *w;
  int64_t now_ms; /* monotonic, at the start of the pass */
  int *rule_hits;
};

/* Whether the process is watched already, waiting to retry or being asked
 * who it is; a process not yet asked becomes a candidate to be (asked
 * after the pass, in the order of probes_schedule, without waiting for
 * the answer: probes_step takes it; with no slot for it, at a later
 * pass). */
static int waiting(struct watch *w, struct seen *sn,
                   const struct ipc_endpoint *ep, int64_t now) {
  if (target_exists(w, ep) || now < sn->retry.retry_at || probing(w, ep))
    return 1;
  if (sn->have_info)
    return 0;
  if (w->conn.ncand < SEEN_MAX) { /* one per seen entry: always room */
    unsigned failures = sn->retry.probe_failures;
    w->conn.cand[w->conn.ncand++] = (struct probe_cand){
        .again = failures > 0,
        .key = failures > 0 ? sn->retry.retry_at : -(int64_t)sn->order,
        .ep = *ep};
  }
  return 1;
}

/* A runtime that connected in says its command line only once its host
 * has set it: asked early in its start (or while it waits, suspended), it
 * gives its executable alone. One that matches no block is asked again
 * (1, 2 and 4 s later); if it still matches none, it is resumed (one
 * started with suspend must not wait for a collectd that does not watch
 * it) and left alone. */
static void reverse_unmatched(struct watch *w, struct seen *sn,
                              const struct ipc_endpoint *ep, int64_t now) {
  if (sn->reasks < REVERSE_REASKS) {
    sn->have_info = 0;
    sn->rule_known = 0;
    sn->retry.retry_at = now + ((int64_t)1000 << sn->reasks);
    sn->reasks++;
    return;
  }
  if (sn->resumed)
    return;
  sn->resumed = 1;
  struct ipc_error err = {0};
  int r = ipc_resume_runtime(ep, w->cfg.ipc_timeout_ms, &err);
  wlog(w, WATCH_LOG_INFO,
       "a runtime that connected in (%s, pid %d, %s) matches no <Process> "
       "block: %s%s",
       sn->entry[0] ? sn->entry : "?", (int)ep->pid, ep->path,
       r == 0 ? "resumed, not watched" : "cannot resume it: ",
       r == 0 ? "" : err.message);
}

/* Whether pid (ours) connected in to a Listen socket this pass. */
static int connected_in(const struct watch *w, pid_t pid) {
  for (size_t i = 0; i < w->conn.nreverse; i++)
    if (w->conn.reverse_pids[i] == pid)
      return 1;
  return 0;
}

static int consider(void *ctx, const struct ipc_endpoint *ep) {
  struct pass *p = ctx;
  struct watch *w = p->w;
  if (atomic_load(&w->stopping))
    return 1;
  /* a runtime that connected in is reached through its connection only:
   * not through the socket discovery finds of it too */
  if (ep->take == NULL && connected_in(w, ep->pid))
    return 0;
  struct seen *sn = seen_get(w, ep);
  if (sn == NULL)
    return 0;
  sn->generation = w->conn.generation;
  /* a process waiting still matches (no "matches no process" warning) */
  int wait = waiting(w, sn, ep, p->now_ms);
  int rule = cached_rule(w, sn, ep);
  if (rule >= 0)
    p->rule_hits[rule]++;
  if (!wait && rule < 0 && !w->cfg.autodiscover && ep->take != NULL) {
    reverse_unmatched(w, sn, ep, p->now_ms);
    return 0;
  }
  /* with STARTING_MAX starts in flight, at the pass after one ends */
  if (wait || (rule < 0 && !w->cfg.autodiscover) ||
      w->conn.nstarting >= STARTING_MAX)
    return 0;
  /* Its last session may have ended since the pass began: the reader
   * unlinks a target and posts its end at once, at any time. Take those
   * ends first, so that a session that failed at once waits for its retry
   * (and its repeat is quiet) instead of starting again now. */
  apply_ended(w, p->now_ms);
  if (p->now_ms < sn->retry.retry_at)
    return 0;
  start_target(w, sn, rule, ep);
  return 0;
}

/* A runtime that connected in (listen_scan): noted, so that discovery's
 * socket of the same process is passed over, and considered. */
static int consider_reverse(void *ctx, const struct ipc_endpoint *ep) {
  struct pass *p = ctx;
  struct watch *w = p->w;
  if (ep->pid > 0 && w->conn.nreverse < REVERSE_PIDS_MAX)
    w->conn.reverse_pids[w->conn.nreverse++] = ep->pid;
  return consider(ctx, ep);
}

/* When the connector must pass again even if nothing wakes it: the next
 * forced full pass, the first answer or start due, the first retry due,
 * the first "matches no process" warning due (monotonic ms). */
static int64_t next_due(struct watch *w, int64_t now, int64_t last_full,
                        int64_t interval_ms) {
  int64_t due = last_full + DISCOVERY_FULL_EVERY * interval_ms;
  for (size_t i = 0; i < w->conn.nprobes; i++)
    if (probe_deadline(w, i) < due)
      due = probe_deadline(w, i);
  for (const struct target *t = w->conn.starting; t; t = t->next) {
    int64_t at = t->begun ? session_begin_deadline(t->session) : t->begin_at;
    if (at < due)
      due = at;
  }
  for (size_t i = 0; i < w->conn.nseen; i++) {
    int64_t at = w->conn.seen[i].retry.retry_at;
    if (at > now && at < due)
      due = at;
  }
  for (size_t i = 0; i < w->cfg.nrules; i++) {
    int64_t since = w->conn.rule_missing[i];
    if (since > 0 && since + MISS_INTERVALS * interval_ms < due)
      due = since + MISS_INTERVALS * interval_ms;
  }
  return due;
}

/* The fds the connector waits on: stop, kick, discovery's notification
 * (ignored when -1), then every exchange in flight, then the Listen
 * sockets' event fds (a runtime came). */
enum { WAIT_STOP, WAIT_KICK, WAIT_NOTIFY, WAIT_CALLS };

static nfds_t wait_fds(struct watch *w, int nfd, struct pollfd *pfd) {
  pfd[WAIT_STOP] = (struct pollfd){.fd = w->stop_fd, .events = POLLIN};
  pfd[WAIT_KICK] = (struct pollfd){.fd = w->kick_fd, .events = POLLIN};
  pfd[WAIT_NOTIFY] = (struct pollfd){.fd = nfd, .events = POLLIN};
  nfds_t n = WAIT_CALLS;
  for (size_t i = 0; i < w->conn.nprobes; i++)
    pfd[n++] = (struct pollfd){.fd = probe_fd(w, i), .events = POLLIN};
  for (const struct target *t = w->conn.starting; t; t = t->next)
    if (t->begun) /* -1 (ignored) if it ended */
      pfd[n++] =
          (struct pollfd){.fd = session_begin_fd(t->session), .events = POLLIN};
  for (size_t i = 0; i < w->nlisteners; i++)
    pfd[n++] = (struct pollfd){.fd = listen_event_fd(w->listeners[i]),
                               .events = POLLIN};
  return n;
}

/* What a poll of wait_fds woke for: 1 stop, 0 a kick or an answer (or
 * its end: probes_step or starting_step take it), -1 neither. */
static int woken_by(struct watch *w, const struct pollfd *pfd, nfds_t n) {
  if (pfd[WAIT_STOP].revents)
    return 1; /* the stop fd stays readable */
  if (pfd[WAIT_KICK].revents) {
    uint64_t v;
    ssize_t got = read(w->kick_fd, &v, sizeof(v));
    (void)got;
    return 0;
  }
  for (nfds_t i = WAIT_CALLS; i < n; i++)
    if (pfd[i].revents)
      return 0;
  return -1;
}

/* Discovery's notify fd is readable: 1 when a diagnostic socket came or
 * went. Events are taken no more than once an interval, so that a busy
 * /tmp costs at most the wakeups polling did: until an interval has
 * passed since the last look (*last_pass), wait for a kick, stop or
 * answer only (what comes meanwhile waits in the kernel's queue; 0 then,
 * and the caller's loop takes what woke it). */
static int notified(struct discovery *disc, struct pollfd *pfd, nfds_t n,
                    int64_t *last_pass, int64_t interval_ms) {
  int64_t now = clock_mono_ms();
  if (now < *last_pass + interval_ms) {
    pfd[WAIT_NOTIFY].fd = -1; /* answers are not held back */
    if (poll(pfd, n, (int)(*last_pass + interval_ms - now + 1)) > 0)
      return 0;
  }
  if (discovery_notified(disc))
    return 1;
  *last_pass = clock_mono_ms(); /* other files only */
  return 0;
}

/* Sleeps until the next pass is due (see watch_connector_main); 1 when
 * stopping. */
static int connector_wait(struct watch *w, struct discovery *disc,
                          int64_t last_pass, int64_t due, int64_t interval_ms) {
  for (;;) {
    if (atomic_load(&w->stopping))
      return 1;
    int64_t now = clock_mono_ms();
    int nfd = discovery_notify_fd(disc);
    /* without notification (or before the first full pass), every
     * interval */
    if (nfd < 0 && last_pass + interval_ms < due)
      due = last_pass + interval_ms;
    if (now >= due)
      return 0;
    struct pollfd
        pfd[WAIT_CALLS + PROBES_MAX + STARTING_MAX + WATCH_LISTEN_MAX];
    nfds_t n = wait_fds(w, nfd, pfd);
    int r = poll(pfd, n, (int)(due - now + 1));
    if (r < 0 && errno != EINTR) {
      struct timespec ts = {0, 100000000}; /* cannot happen; do not spin */
      nanosleep(&ts, NULL);
      continue;
    }
    if (r <= 0)
      continue; /* a timeout: the loop above decides */
    r = woken_by(w, pfd, n);
    if (r >= 0)
      return r;
    if (nfd >= 0 && pfd[WAIT_NOTIFY].revents &&
        notified(disc, pfd, n, &last_pass, interval_ms))
      return 0;
  }
}

/* The discovery scanner's word that one of its caps was reached. */
static void discovery_log(void *ctx, const char *msg) {
  wlog(ctx, WATCH_LOG_WARNING, "%s", msg);
}

/* The scanner the connector uses, set up; NULL (logged) on ENOMEM. */
static struct discovery *discovery_open(struct watch *w) {
  struct discovery *disc = discovery_new();
  if (disc == NULL) {
    wlog(w, WATCH_LOG_ERR, "out of memory: not discovering processes");
    return NULL;
  }
  discovery_set_connected(disc, streaming_from, w);
  discovery_set_log(disc, discovery_log, w);
  int nr = discovery_enable_notify(disc);
  if (nr < 0)
    wlog(w, WATCH_LOG_INFO,
         "no inotify (%s): looking for processes every interval",
         strerror(-nr));
  return disc;
}

/* One pass over the processes (now: its start): takes the ends posted and
 * the answers that came, considers every process, asks the new ones who
 * they are and warns of rules that match nothing. */
static void pass(struct watch *w, struct discovery *disc, int *hits,
                 int64_t now, int64_t interval_ms) {
  w->conn.generation++;
  memset(hits, 0, (w->cfg.nrules + 1) * sizeof(int));
  struct pass p = {.w = w, .now_ms = now, .rule_hits = hits};
  apply_ended(w, now);
  probes_step(w);
  starting_step(w);
  w->conn.ncand = 0;
  /* the runtimes that connected in first: discovery then passes over
   * their sockets */
  w->conn.nreverse = 0;
  for (size_t i = 0; i < w->nlisteners; i++) {
    listen_drain(w->listeners[i]);
    listen_scan(w->listeners[i], consider_reverse, &p);
  }
  int r = discovery_scan(disc, consider, &p);
  if (r < 0)
    wlog(w, WATCH_LOG_ERR, "cannot list processes: %s", strerror(-r));
  probes_schedule(w, clock_mono_ms());
  rules_missing(w, hits, now, interval_ms);
}

/* The connector passes over the processes (discovery_scan) when a
 * session ended, when a diagnostic socket came or went in a directory a
 * known process uses (inotify, looked at once an interval at most), when an
 * answer, a start, a retry or a warning is due, and at least every
 * DISCOVERY_FULL_EVERY intervals (a full pass: new socket
 * directories). Where notification is not to be had, every interval. An
 * idle host costs one wakeup in ten intervals instead of one an
 * interval. */
void *watch_connector_main(void *arg) {
  struct watch *w = arg;
  int *hits = calloc(w->cfg.nrules + 1, sizeof(int));
  /* discovery remembers what it learnt of each process across passes */
  struct discovery *disc = hits != NULL ? discovery_open(w) : NULL;
  if (hits == NULL || disc == NULL) {
    if (hits == NULL)
      wlog(w, WATCH_LOG_ERR, "out of memory: not discovering processes");
    free(hits);
    return NULL;
  }
  /* the rules' own names are always there to be had */
  for (size_t i = 0; i < w->cfg.nrules; i++) {
    char clean[100];
    clean_name(w->cfg.rules[i].name, clean, sizeof(clean));
    (void)name_admit(w, clean);
  }
  /* stopping cancels the IPC waits of this thread at once */
  ipc_set_cancel_fd(w->stop_fd);
  int64_t interval_ms = (int64_t)(w->cfg.discover_sec * 1000.0 + 0.5);
  if (interval_ms < 1)
    interval_ms = 1;
  int64_t last_full = clock_mono_ms();
  while (!atomic_load(&w->stopping)) {
    int64_t now = clock_mono_ms();
    /* full when due within the next interval: a pass woken for a retry
     * just before does not cost a second wakeup */
    if (now + interval_ms > last_full + DISCOVERY_FULL_EVERY * interval_ms)
      discovery_want_full(disc);
    unsigned full0 = discovery_full_passes(disc);
    pass(w, disc, hits, now, interval_ms);
    if (discovery_full_passes(disc) != full0)
      last_full = now;
    if (connector_wait(w, disc, now, next_due(w, now, last_full, interval_ms),
                       interval_ms))
      break;
  }
  probes_close(w);
  starting_free(w);
  discovery_free(disc);
  free(hits);
  return NULL;
}

int watch_connector_init(struct watch *w) {
  w->conn.seen = calloc(SEEN_MAX, sizeof(*w->conn.seen));
  w->conn.names = calloc(w->cfg.max_instances, sizeof(*w->conn.names));
  w->conn.cand = calloc(SEEN_MAX, sizeof(*w->conn.cand));
  w->conn.reverse_pids =
      calloc(REVERSE_PIDS_MAX, sizeof(*w->conn.reverse_pids));
  w->conn.rule_missing =
      calloc(w->cfg.nrules + 1, sizeof(*w->conn.rule_missing));
  if (w->conn.seen == NULL || w->conn.names == NULL || w->conn.cand == NULL ||
      w->conn.rule_missing == NULL || w->conn.reverse_pids == NULL) {
    watch_connector_fini(w);
    return -ENOMEM;
  }
  return 0;
}

void watch_connector_fini(struct watch *w) {
  free(w->conn.seen);
  free(w->conn.names);
  free(w->conn.cand);
  free(w->conn.rule_missing);
  free(w->conn.reverse_pids);
  w->conn.reverse_pids = NULL;
  w->conn.seen = NULL;
  w->conn.names = NULL;
  w->conn.cand = NULL;
  w->conn.rule_missing = NULL;
}
