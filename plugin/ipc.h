/**
 * collectd-dotnet - plugin/ipc.h
 *
 * Client of the .NET runtime's Diagnostic IPC protocol over its unix socket
 * (dotnet/diagnostics documentation/design-docs/ipc-protocol.md): finding
 * the socket of a process, connecting with a verified peer, and the commands
 * this project needs. It never interprets the event stream.
 *
 * Message layout, little endian:
 *   0   char[14] magic "DOTNET_IPC_V1\0"
 *   14  uint16   size (header + payload)
 *   16  uint8    command set   (1 dump, 2 EventPipe, 4 process, 0xFF server)
 *   17  uint8    command id    (server replies: 0x00 OK, 0xFF error)
 *   18  uint16   reserved (0)
 *   20  payload
 *
 * All calls are blocking with a deadline (timeout_ms), EINTR-safe, and
 * return 0 or a negative errno. Where the runtime answered with an error,
 * the return is -EPROTO and `struct ipc_error` (if given) holds the HRESULT
 * and, where the runtime sent one, its message.
 */
#ifndef IPC_H
#define IPC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define IPC_HEADER_SIZE 20
#define IPC_MAX_MESSAGE 65535 /* the header's size field is 16 bits */

enum {
  IPC_SET_DUMP = 0x01,
  IPC_SET_EVENTPIPE = 0x02,
  IPC_SET_PROCESS = 0x04,
  IPC_SET_SERVER = 0xFF,
};
enum {
  IPC_DUMP_GENERATE = 0x01,
  IPC_DUMP_GENERATE2 = 0x02,
  IPC_DUMP_GENERATE3 = 0x03,
  IPC_EP_STOP = 0x01,
  IPC_EP_COLLECT = 0x02,
  IPC_EP_COLLECT2 = 0x03,
  IPC_PROCESS_INFO = 0x00,
  IPC_PROCESS_INFO2 = 0x04,
  IPC_SERVER_OK = 0x00,
  IPC_SERVER_ERROR = 0xFF,
};

/* HRESULTs of the diagnostic server. */
#define IPC_E_BAD_ENCODING ((int32_t)0x80131384)
#define IPC_E_UNKNOWN_COMMAND ((int32_t)0x80131385)
#define IPC_E_UNKNOWN_MAGIC ((int32_t)0x80131386)
#define IPC_E_UNKNOWN_ERROR ((int32_t)0x80131387)

struct ipc_error {
  int32_t hresult;  /* 0 when the failure was not the runtime's answer */
  char message[256]; /* the runtime's or our own explanation, UTF-8 */
};

/* The runtime's well-known name for an HRESULT ("E_FAIL",
 * "CORDIAGIPC_E_UNKNOWN_COMMAND", ...), or NULL. */
const char *ipc_hresult_name(int32_t hr);

/* Where a process's diagnostic socket is, and who it is. */
struct ipc_endpoint {
  pid_t pid;              /* in our pid namespace */
  pid_t ns_pid;           /* in the target's own pid namespace */
  uint64_t start_time;    /* jiffies since boot, /proc/<pid>/stat field 22 */
  uid_t uid;              /* owner of /proc/<pid> */
  int foreign_mnt_ns;     /* 1 when the target has another mount namespace */
  /* The socket, reachable from here. The runtime binds it at most 107
   * bytes long (sun_path); with a /proc/<pid>/root prefix that is < 160. */
  char path[256];
};

/* Whether (pid, start_time) and (pid2, start_time2) name the same process:
 * a pid alone may have been reused by another process since. */
static inline int ipc_same_process(pid_t pid, uint64_t start_time, pid_t pid2,
                                   uint64_t start_time2) {
  return pid == pid2 && start_time == start_time2;
}

/* Finds the diagnostic socket of `pid` in its TMPDIR (from
 * /proc/<pid>/environ, else /tmp), through /proc/<pid>/root for a process in
 * another mount namespace. Among several sockets for that pid (stale ones of
 * a dead process with the same pid), the one whose key equals the process's
 * start time wins. -ESRCH: no such process; -ENOENT: no socket (not .NET,
 * or diagnostics disabled); -EACCES: /proc or the directory not readable. */
int ipc_endpoint_find(pid_t pid, struct ipc_endpoint *ep);

/* 0 when the process ep names has gone: exited, a zombie, exiting (its
 * socket closed or closing), or its pid reused (another start time); else 1,
 * also when /proc cannot tell. For a caller whose connect was refused or cut:
 * a target that went away is not an error to report. */
int ipc_endpoint_alive(const struct ipc_endpoint *ep);

/* Parses one /proc/<pid>/stat line (NUL-terminated): the start time (field
 * 22) into *start and, if comm_hash is given, a hash of "(comm)". -ESRCH
 * for a zombie or an exiting process (state Z or X, or PF_EXITING in the
 * flags), -EINVAL for a line it cannot read. Pure: no I/O. */
int ipc_proc_stat_parse(const char *line, uint64_t *start, uint32_t *comm_hash);

/* Calls cb for every .NET process whose socket is found; stops early when cb
 * returns non-zero (and returns that). */
typedef int (*ipc_endpoint_cb)(void *ctx, const struct ipc_endpoint *ep);
int ipc_endpoint_list(ipc_endpoint_cb cb, void *ctx);

/* A discovery scanner with memory across passes, for a caller that lists
 * again and again (the plugin's connector, every interval). A pass reads
 * only /proc/<pid>/stat of a process it already knows (same pid and start
 * time) and lists each socket directory at most once, and not at all while
 * its mtime shows no change. Only every 10th pass lists /proc (and any pass
 * in which a diagnostic socket appeared in or vanished from a directory a
 * known process uses); so a new process is found at once when its TMPDIR
 * is one a known process uses (/tmp, nearly always), else within 10 passes.
 * ipc_discovery_free accepts NULL. Not thread-safe: one scanner per
 * thread. */
struct ipc_discovery;
struct ipc_discovery *ipc_discovery_new(void);
void ipc_discovery_free(struct ipc_discovery *d);
/* Like ipc_endpoint_list, with what d remembers. */
int ipc_discovery_scan(struct ipc_discovery *d, ipc_endpoint_cb cb, void *ctx);
/* How many passes listed /proc so far (for tests and debugging). */
unsigned ipc_discovery_full_passes(const struct ipc_discovery *d);
/* Passes between two full ones when nothing forces one. */
#define IPC_DISCOVERY_FULL_EVERY 10
/* Notification, so that a caller passes only when something may have
 * changed: enable_notify puts an inotify watch on every socket directory
 * (0, or a negative errno: then pass by time as before). notify_fd is the
 * fd to poll for reading once a full pass was made and while every
 * directory that exists is watched, else -1 (then pass every interval). When it is
 * readable, notified drains it and returns 1 if a diagnostic socket came,
 * went or may have (events lost, a directory gone), 0 for other files.
 * A process whose TMPDIR no known process uses makes no event: the caller
 * forces a full pass (want_full) every IPC_DISCOVERY_FULL_EVERY intervals. */
int ipc_discovery_enable_notify(struct ipc_discovery *d);
int ipc_discovery_notify_fd(const struct ipc_discovery *d);
int ipc_discovery_notified(struct ipc_discovery *d);
void ipc_discovery_want_full(struct ipc_discovery *d);

/* Optional: fn(ctx, pid, start_time) returns 1 while the caller holds an
 * open stream from that very process (it cannot have exited or been
 * replaced: its end would close the stream), so a pass need not read its
 * /proc/<pid>/stat. Called from ipc_discovery_scan. */
typedef int (*ipc_connected_fn)(void *ctx, pid_t pid, uint64_t start_time);
void ipc_discovery_set_connected(struct ipc_discovery *d, ipc_connected_fn fn,
                                 void *ctx);

/* Optional: where the scanner says, once each, that one of its caps was
 * reached (see IPC_DISCOVERY_* below); fn gets a sentence without the
 * plugin's prefix. Called from ipc_discovery_scan. */
typedef void (*ipc_discovery_log_fn)(void *ctx, const char *msg);
void ipc_discovery_set_log(struct ipc_discovery *d, ipc_discovery_log_fn fn,
                           void *ctx);
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
#define IPC_DISCOVERY_PROCS_MAX 131072
#define IPC_DISCOVERY_DIRS_MAX 256
#define IPC_DISCOVERY_SOCKS_MAX 1024

/* Connects to the endpoint (non-blocking connect bounded by timeout_ms),
 * then verifies the peer with SO_PEERCRED: its pid must be ep->pid, or, where
 * the kernel cannot tell the pid, its uid must be ep->uid. Returns a
 * blocking CLOEXEC socket fd (caller closes), or a negative errno:
 * -EPERM with err->message when the peer is somebody else or cannot be
 * told (SO_PEERCRED failed). */
int ipc_connect(const struct ipc_endpoint *ep, int timeout_ms,
                struct ipc_error *err);

struct ipc_process_info {
  uint64_t pid;        /* as the runtime sees it (its own pid namespace) */
  uint8_t cookie[16];  /* runtime instance cookie (GUID) */
  char command_line[1024];
  char os[32];
  char arch[32];
  char entry_assembly[256]; /* "" for runtimes without ProcessInfo2 */
  char runtime_version[64]; /* "" for runtimes without ProcessInfo2 */
};

/* ProcessInfo2, falling back to ProcessInfo on UnknownCommand. */
int ipc_process_info(const struct ipc_endpoint *ep, int timeout_ms,
                     struct ipc_process_info *info, struct ipc_error *err);

/* A command in flight, driven by its caller's poll: for a caller that
 * looks after many processes at once (the plugin's connector: one process
 * that never answers must not hold up the others). Started by
 * ipc_probe_start (ProcessInfo) or ipc_collect_begin (CollectTracing),
 * which connect and send; then, whenever c->fd is readable or c->deadline
 * (clock_mono_ms) has passed, the matching step reads what has come. Start and
 * step return -EINPROGRESS while the answer is incomplete, 0 when it is in,
 * or a negative errno with err->message as the waiting calls give them. The
 * call is closed when it ends (ipc_call_close for one given up before). A
 * runtime that does not know the newer command is asked the older one on a
 * new connection. Holds its requests and at most one reply (each < 64 KiB)
 * while in flight. */
struct ipc_call {
  struct ipc_endpoint ep;
  int fd;           /* poll for POLLIN; -1 once closed */
  int64_t deadline; /* monotonic ms */
  int timeout_ms;
  int v2;       /* 1: the newer command is asked; 0: the older */
  int fallback; /* the older one is there to ask */
  uint8_t *msg[2]; /* [1] the newer request, [0] the older */
  size_t len[2];
  size_t cap; /* largest reply payload taken */
  uint8_t set, id;
  uint8_t hdr[IPC_HEADER_SIZE];
  size_t got;     /* bytes of the reply read */
  long plen;      /* the payload's length once the header is in, else -1 */
  uint8_t *reply; /* plen bytes */
};
void ipc_call_close(struct ipc_call *c);
/* Waits until the call's reply is complete (0: the step then takes it) or
 * it fails (closed); the thread's cancel fd (ipc_set_cancel_fd) ends the
 * wait with -ECANCELED. */
int ipc_call_wait(struct ipc_call *c, struct ipc_error *err);

/* ProcessInfo2 (ProcessInfo for older runtimes): 0 with *info filled. */
int ipc_probe_start(struct ipc_call *p, const struct ipc_endpoint *ep,
                    int timeout_ms, struct ipc_error *err);
int ipc_probe_step(struct ipc_call *p, struct ipc_process_info *info,
                   struct ipc_error *err);

/* Decodes the payload p[n] of a ProcessInfo (v2 = 0) or ProcessInfo2
 * (v2 = 1) reply into *out (zeroed first; strings truncated to fit).
 * 0 or -EBADMSG. Pure: no I/O. */
int ipc_process_info_decode(const uint8_t *p, size_t n, int v2,
                            struct ipc_process_info *out);

struct ipc_provider {
  const char *name;
  uint64_t keywords;
  uint32_t level;     /* 0 LogAlways .. 5 Verbose */
  const char *filter; /* "key=value;key=value" or NULL */
};

/* Starts an EventPipe session streaming nettrace: CollectTracing2 with
 * rundown off, falling back to CollectTracing on runtimes that do not know
 * it. On success *fd is the connected socket the nettrace stream follows on
 * (caller owns it) and *session_id the runtime's id for StopTracing. */
int ipc_collect_tracing(const struct ipc_endpoint *ep,
                        const struct ipc_provider *providers, size_t n,
                        uint32_t buffer_mb, int timeout_ms, int *fd,
                        uint64_t *session_id, struct ipc_error *err);

/* ipc_collect_tracing without waiting (see struct ipc_call): 0 with *fd
 * the stream's connection (caller owns it) and *session_id. */
int ipc_collect_begin(struct ipc_call *c, const struct ipc_endpoint *ep,
                      const struct ipc_provider *providers, size_t n,
                      uint32_t buffer_mb, int timeout_ms,
                      struct ipc_error *err);
int ipc_collect_step(struct ipc_call *c, int *fd, uint64_t *session_id,
                     struct ipc_error *err);

/* StopTracing on a second connection. */
int ipc_stop_tracing(const struct ipc_endpoint *ep, uint64_t session_id,
                     int timeout_ms, struct ipc_error *err);

enum ipc_dump_type {
  IPC_DUMP_MINI = 1,   /* "Normal" */
  IPC_DUMP_HEAP = 2,   /* "WithHeap" */
  IPC_DUMP_TRIAGE = 3,
  IPC_DUMP_FULL = 4,
};

/* Asks the runtime to write a core dump to `path` (a path as the target
 * sees it): GenerateCoreDump3, falling back to 2 and 1 on UnknownCommand.
 * Blocks until the runtime answers (dumps take seconds: give a generous
 * timeout). */
int ipc_dump(const struct ipc_endpoint *ep, const char *path,
             enum ipc_dump_type type, int timeout_ms, struct ipc_error *err);

/* Makes every blocking wait of the calling thread's IPC calls give up with
 * -ECANCELED as soon as fd is readable (a pipe or eventfd that a stopping
 * owner writes to and never drains); -1: none (the default). Lets a thread
 * that talks to targets be stopped at once instead of after its timeouts. */
void ipc_set_cancel_fd(int fd);
/* The calling thread's cancel fd, or -1: for waits outside this module
 * (the copy of a dump) that must end as promptly. */
int ipc_get_cancel_fd(void);

/* Reads up to cap-1 bytes of the file `name` under dirfd (AT_FDCWD: a
 * path), not following a symlink at its last component; NUL-terminates.
 * Bytes read or negative errno. Only system calls: safe between fork and
 * exec. */
ssize_t ipc_read_at(int dirfd, const char *name, char *buf, size_t cap);

/* Building blocks, exposed for tests and the fault-injection server. */

/* Who serves the connected socket fd (SO_PEERCRED): 0 when it is ep's
 * process (its pid, or where the kernel cannot tell the pid, its uid);
 * -EPERM with err->message when it is somebody else or when SO_PEERCRED
 * fails (an fd that is not a unix socket): a peer not verified is
 * refused. */
int ipc_peer_verify(int fd, const struct ipc_endpoint *ep,
                    struct ipc_error *err);

/* Makes s (NUL-terminated, modified in place) safe to print on a terminal
 * or in a log line: every control character (C0, DEL, and C1 as UTF-8)
 * and every byte that is not part of valid UTF-8 becomes '?'. The length
 * does not change. Everything here that comes from a peer or /proc
 * (ProcessInfo strings, the runtime's error text, paths in messages) goes
 * through it before anyone sees it. */
void ipc_sanitize(char *s);

/* The directory the runtime of a process with this environment puts its
 * socket in, as glibc's getenv and the runtime read it: the first TMPDIR
 * (a later one is ignored), "/tmp" when there is none, it is empty or not
 * an absolute path; trailing slashes dropped. env is /proc/<pid>/environ:
 * NUL-separated "NAME=value" strings, len bytes. 0, or -ENAMETOOLONG when
 * the first TMPDIR does not fit out[cap] (out is "/tmp" then). Pure. */
int ipc_environ_tmpdir(const char *env, size_t len, char *out, size_t cap);

/* Encodes a message into buf[cap]; returns its size or -EMSGSIZE. */
long ipc_message_encode(uint8_t *buf, size_t cap, uint8_t set, uint8_t id,
                        const uint8_t *payload, size_t payload_len);

/* Validates a 20-byte header: magic, reserved, size >= 20. Returns the
 * payload length, or -EBADMSG. */
long ipc_header_decode(const uint8_t hdr[IPC_HEADER_SIZE], uint8_t *set,
                       uint8_t *id);

/* Appends UTF-8 `s` as the protocol encodes a string at buf[off]: uint32
 * length in UTF-16 units including the terminator, then UTF-16LE; NULL or
 * "" as length 0. Returns the new offset, -EMSGSIZE, or -EILSEQ for input
 * that is not UTF-8. */
long ipc_put_string(uint8_t *buf, size_t cap, size_t off, const char *s);

/* Reads a protocol string from the cursor into UTF-8 out[cap] (truncated
 * safely if longer). 0 or -EBADMSG. */
struct wire_cursor;
int ipc_take_string(struct wire_cursor *c, char *out, size_t cap);

#endif /* IPC_H */
