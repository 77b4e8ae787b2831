/**
 * collectd-dotnet - plugin/listen.h
 *
 * The reverse diagnostic port: a unix socket we listen on, to which .NET
 * runtimes started with DOTNET_DiagnosticPorts=PATH,connect[,suspend]
 * connect out. Each connection opens with an advertise message and then
 * waits for one command; the runtime connects again once it has read the
 * command (dotnet/diagnostics documentation/design-docs/ipc-protocol.md):
 *
 *   0   char[8]  magic "ADVR_V1\0"
 *   8   uint8[16] runtime instance cookie (a GUID: one per runtime start)
 *   24  uint64   the runtime's pid, as it sees it (its own pid namespace)
 *   32  uint16   reserved (0)
 *   34
 *
 * A listener has its own thread: it accepts, reads each advertise under a
 * deadline, and keeps per runtime (cookie) the one connection that waits
 * for a command. The IPC engine takes that connection when it sends a
 * command to such a runtime (the endpoint's take function, see ipc.h), so
 * everything that goes through ipc.h works for runtimes that connect in.
 *
 * Everything a peer sends is hostile: the advertise is read with a
 * deadline and a size limit, the pid it claims is checked against
 * SO_PEERCRED where the peer is in our pid namespace, a cookie is bound to
 * the credentials of its first connection, and connections not yet
 * advertised and runtimes are capped (each cap logged once).
 */
#ifndef LISTEN_H
#define LISTEN_H

#include "ipc.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LISTEN_ADVERTISE_SIZE 34

/* Decodes an advertise (n bytes): 0 with *cookie and *pid, or -EBADMSG
 * (wrong size, magic or reserved). Pure. */
int listen_advertise_decode(const uint8_t *p, size_t n, uint8_t cookie[16],
                            uint64_t *pid);

typedef void (*listen_log_fn)(void *ctx, int level, const char *msg);

struct listen_config {
  const char *path;    /* the socket; its directory must exist */
  gid_t gid;           /* the socket's group; (gid_t)-1: ours */
  mode_t mode;         /* the socket's mode; 0: 0660 */
  size_t max_runtimes; /* runtimes known at once; 0: 256 */
  size_t max_pending;  /* connections not yet advertised; 0: 64 */
  int advertise_ms;    /* deadline of an advertise; 0: 2000 */
  int gone_ms;         /* a runtime with no connection waiting this long
                          is forgotten; 0: 5000 */
  /* For runtimes whose pid the kernel does not tell here (another pid
   * namespace, not below ours): the directory they write dumps to as they
   * see it (dump_there) and as we see it (dump_here); NULL: none. */
  const char *dump_there, *dump_here;
  listen_log_fn log; /* levels as syslog (3 err .. 7 debug); NULL: none */
  void *log_ctx;
};

/* Creates the socket and starts the listener's thread. The socket is made
 * in a private directory beside PATH, given its group and mode there and
 * renamed to PATH: it is never reachable with other rights. An existing
 * PATH is replaced only when it is a socket of our uid; anything else
 * there (a file, a symlink, someone else's socket) is refused, as is a
 * directory that others may write to without the sticky bit. NULL with
 * err[cap] saying why. */
struct listen *listen_open(const struct listen_config *cfg, char *err,
                           size_t cap);
/* Stops the thread, closes every connection and removes the socket (if it
 * is still the one we made). Accepts NULL. */
void listen_close(struct listen *l);

/* A runtime known to the listener. */
struct listen_runtime {
  uint8_t cookie[16];
  uint64_t claimed_pid; /* the advertise's (its own pid namespace) */
  pid_t pid;            /* SO_PEERCRED in ours; 0 when not visible here */
  uid_t uid;
  gid_t gid;
  int64_t first_ms; /* clock_mono_ms of its first advertise */
  int waiting;      /* a connection of it waits for a command */
};

/* Copies up to cap runtimes into out (oldest first); returns how many
 * there are. */
size_t listen_list(struct listen *l, struct listen_runtime *out, size_t cap);

/* The endpoint that reaches rt through l: its pid, start time, uid and
 * mount namespace from /proc where SO_PEERCRED gave a pid (and it is still
 * that process), else pid 0 and a start time made from the cookie; path
 * names the socket and the cookie for messages only. */
void listen_endpoint(struct listen *l, const struct listen_runtime *rt,
                     struct ipc_endpoint *ep);

/* Calls cb(ctx, endpoint) for each runtime known (its listen_endpoint,
 * made once when it came: no /proc read per scan), oldest
 * first, outside the listener's lock; stops early when cb returns non-zero
 * (and returns that). -ENOMEM when it cannot copy the list. */
int listen_scan(struct listen *l,
                int (*cb)(void *ctx, const struct ipc_endpoint *ep), void *ctx);

/* Takes the connection of runtime `cookie` that waits for a command (the
 * caller owns *fd), waiting until deadline_ms (clock_mono_ms) for the
 * runtime to connect again, or until cancel_fd (-1: none) is readable.
 * 0, -ENOENT (not known, or gone: a runtime whose waiting connection ends
 * has exited and is forgotten at once, one without a connection for
 * gone_ms too), -ETIMEDOUT, -ECANCELED, -ESHUTDOWN (the listener stops),
 * with err filled when it fails. The ipc_take_fn of listen_endpoint's
 * endpoints. */
int listen_take(void *l, const uint8_t cookie[16], int64_t deadline_ms,
                int cancel_fd, int *fd, struct ipc_error *err);

/* An fd that is readable after a runtime came (for a caller's poll); the
 * caller drains it with listen_drain. */
int listen_event_fd(const struct listen *l);
void listen_drain(struct listen *l);

struct listen_stats {
  uint64_t accepted, advertised, malformed, timed_out, refused, over_cap;
  size_t pending, runtimes;
};
void listen_get_stats(struct listen *l, struct listen_stats *st);

#endif /* LISTEN_H */
