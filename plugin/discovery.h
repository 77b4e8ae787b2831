/**
 * collectd-dotnet - plugin/discovery.h
 *
 * Finding .NET processes and their diagnostic sockets: from /proc (start
 * time, uid, pid namespace, mount namespace, TMPDIR from the environment)
 * and the socket directories, once (discovery_find, discovery_list) or
 * with memory across passes and inotify (struct discovery). What it finds
 * is a struct ipc_endpoint for the IPC client (ipc.h).
 */
#ifndef DISCOVERY_H
#define DISCOVERY_H

#include "ipc.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Finds the diagnostic socket of `pid` in its TMPDIR (from
 * /proc/<pid>/environ, else /tmp), through /proc/<pid>/root for a process in
 * another mount namespace. Among several sockets for that pid (stale ones of
 * a dead process with the same pid), the one whose key equals the process's
 * start time wins. -ESRCH: no such process; -ENOENT: no socket (not .NET,
 * or diagnostics disabled); -EACCES: /proc or the directory not readable. */
int discovery_find(pid_t pid, struct ipc_endpoint *ep);

/* What /proc says of pid (start time, uid, pid namespace, mount
 * namespace) into *ep, whose path becomes its TMPDIR as reached from here
 * (through /proc/<pid>/root for another mount namespace) followed by
 * "/name": for a runtime that connected in (listen.h), whose Method ipc
 * dumps are staged there; nothing connects to it. 0, -ESRCH, -EACCES or
 * -ENAMETOOLONG. */
int discovery_process(pid_t pid, struct ipc_endpoint *ep, const char *name);

/* 0 when the process ep names has gone: exited, a zombie, exiting (its
 * socket closed or closing), or its pid reused (another start time); else 1,
 * also when /proc cannot tell (or ep has no pid in our namespace: a runtime
 * that connected in from another). For a caller whose connect was refused or
 * cut: a target that went away is not an error to report. */
int discovery_alive(const struct ipc_endpoint *ep);

/* Parses one /proc/<pid>/stat line (NUL-terminated): the start time (field
 * 22) into *start and, if comm_hash is given, a hash of "(comm)". -ESRCH
 * for a zombie or an exiting process (state Z or X, or PF_EXITING in the
 * flags), -EINVAL for a line it cannot read. Pure: no I/O. */
int discovery_proc_stat_parse(const char *line, uint64_t *start,
                              uint32_t *comm_hash);

/* Calls cb for every .NET process whose socket is found; stops early when cb
 * returns non-zero (and returns that). */
typedef int (*discovery_cb)(void *ctx, const struct ipc_endpoint *ep);
int discovery_list(discovery_cb cb, void *ctx);

/* A discovery scanner with memory across passes, for a caller that lists
 * again and again (the plugin's connector, every interval). A pass reads
 * only /proc/<pid>/stat of a process it already knows (same pid and start
 * time) and lists each socket directory at most once, and not at all while
 * its mtime shows no change. Only every 10th pass lists /proc (and any pass
 * in which a diagnostic socket appeared in or vanished from a directory a
 * known process uses); so a new process is found at once when its TMPDIR
 * is one a known process uses (/tmp, nearly always), else within 10 passes.
 * discovery_free accepts NULL. Not thread-safe: one scanner per
 * thread. */
struct discovery;
struct discovery *discovery_new(void);
void discovery_free(struct discovery *d);
/* Like discovery_list, with what d remembers. */
int discovery_scan(struct discovery *d, discovery_cb cb, void *ctx);
/* How many passes listed /proc so far (for tests and debugging). */
unsigned discovery_full_passes(const struct discovery *d);
/* Passes between two full ones when nothing forces one. */
#define DISCOVERY_FULL_EVERY 10
/* Notification, so that a caller passes only when something may have
 * changed: enable_notify puts an inotify watch on every socket directory
 * (0, or a negative errno: then pass by time as before). notify_fd is the
 * fd to poll for reading once a full pass was made and while every
 * directory that exists is watched, else -1 (then pass every interval). When it
 * is readable, notified drains it and returns 1 if a diagnostic socket came,
 * went or may have (events lost, a directory gone), 0 for other files.
 * A process whose TMPDIR no known process uses makes no event: the caller
 * forces a full pass (want_full) every DISCOVERY_FULL_EVERY intervals. */
int discovery_enable_notify(struct discovery *d);
int discovery_notify_fd(const struct discovery *d);
int discovery_notified(struct discovery *d);
void discovery_want_full(struct discovery *d);

/* Optional: fn(ctx, pid, start_time) returns 1 while the caller holds an
 * open stream from that very process (it cannot have exited or been
 * replaced: its end would close the stream), so a pass need not read its
 * /proc/<pid>/stat. Called from discovery_scan. */
typedef int (*discovery_connected_fn)(void *ctx, pid_t pid,
                                      uint64_t start_time);
void discovery_set_connected(struct discovery *d, discovery_connected_fn fn,
                             void *ctx);

/* Optional: where the scanner says, once each, that one of its caps was
 * reached (see DISCOVERY_* below); fn gets a sentence without the
 * plugin's prefix. Called from discovery_scan. */
typedef void (*discovery_log_fn)(void *ctx, const char *msg);
void discovery_set_log(struct discovery *d, discovery_log_fn fn, void *ctx);
/* The scanner's caps: what one local user can make it hold is bounded.
 *   PROCS: processes remembered (/proc entries); more are not looked at.
 *   DIRS:  socket directories (distinct TMPDIRs) listed and watched; a
 *          process whose TMPDIR finds no room is looked up by its own
 *          socket name (below) at every full pass instead.
 *   SOCKS: diagnostic socket names kept per directory listing; beyond it
 *          (a directory filled with socket files, made by mknod or bind)
 *          each process's socket is looked up by the name its runtime
 *          gives it, dotnet-diagnostic-<pid>-<start time>-socket: one
 *          fstatat, so a runtime among the spam is still found. */
#define DISCOVERY_PROCS_MAX 131072
#define DISCOVERY_DIRS_MAX 256
#define DISCOVERY_SOCKS_MAX 1024

/* The directory the runtime of a process with this environment puts its
 * socket in, as glibc's getenv and the runtime read it: the first TMPDIR
 * (a later one is ignored), "/tmp" when there is none, it is empty or not
 * an absolute path; trailing slashes dropped. env is /proc/<pid>/environ
 * or a part of it: NUL-separated "NAME=value" strings, len bytes, the last
 * one terminated or not. 1 when it holds a TMPDIR, 0 when not, or
 * -ENAMETOOLONG when the first TMPDIR does not fit out[cap] (out is "/tmp"
 * then). Pure. */
int discovery_environ_tmpdir(const char *env, size_t len, char *out,
                             size_t cap);

/* Reads up to cap-1 bytes of the file `name` under dirfd (AT_FDCWD: a
 * path), not following a symlink at its last component; NUL-terminates.
 * Bytes read or negative errno. Only system calls: safe between fork and
 * exec. */
ssize_t discovery_read_at(int dirfd, const char *name, char *buf, size_t cap);

#endif /* DISCOVERY_H */
