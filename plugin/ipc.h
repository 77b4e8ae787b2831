/**
 * collectd-dotnet - plugin/ipc.h
 *
 * Client of the .NET runtime's Diagnostic IPC protocol over its unix socket
 * (dotnet/diagnostics documentation/design-docs/ipc-protocol.md):
 * connecting to an endpoint (found by discovery.h) with a verified peer, and
 * the commands this project needs. It never interprets the event stream.
 *
 * Message layout, little endian:
 *   0   char[14] magic "DOTNET_IPC_V1\0"
 *   14  uint16   size (header + payload)
 *   16  uint8    command set   (1 dump, 2 EventPipe, 4 process, 0xFF server)
 *   17  uint8    command id    (server replies: 0x00 OK, 0xFF error)
 *   18  uint16   reserved (0)
 *   20  payload
 *
 * Every call has a deadline (timeout_ms), is EINTR-safe, and returns 0 or
 * a negative errno. Where the runtime answered with an error,
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
  IPC_EP_COLLECT6 = 0x07, /* .NET 11: + buffering mode */
  IPC_PROCESS_INFO = 0x00,
  IPC_PROCESS_RESUME = 0x01,
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
  int32_t hresult;   /* 0 when the failure was not the runtime's answer */
  char message[256]; /* the runtime's or our own explanation, UTF-8 */
};

/* The runtime's well-known name for an HRESULT ("E_FAIL",
 * "CORDIAGIPC_E_UNKNOWN_COMMAND", ...), or NULL. */
const char *ipc_hresult_name(int32_t hr);

/* How a command reaches a runtime that connected in (listen.h): hands
 * over the connection of runtime `cookie` that waits for a command (the
 * caller owns *fd), waiting for the runtime to connect again until
 * deadline_ms (clock_mono_ms) or until cancel_fd (-1: none) is readable.
 * 0, or a negative errno with err filled. */
typedef int (*ipc_take_fn)(void *ctx, const uint8_t cookie[16],
                           int64_t deadline_ms, int cancel_fd, int *fd,
                           struct ipc_error *err);

/* How long a command whose connect_ms is 0 waits for a runtime that
 * connected in to connect again (it does at once after reading the
 * previous command); a command with a connect_ms waits that long. */
#define IPC_TAKE_MIN_MS 1000

/* Where a process's diagnostic socket is, and who it is. */
struct ipc_endpoint {
  pid_t pid;           /* in our pid namespace */
  pid_t ns_pid;        /* in the target's own pid namespace */
  uint64_t start_time; /* jiffies since boot, /proc/<pid>/stat field 22 */
  uid_t uid;           /* owner of /proc/<pid> */
  int foreign_mnt_ns;  /* 1 when the target has another mount namespace */
  /* The socket, reachable from here. The runtime binds it at most 107
   * bytes long (sun_path); with a /proc/<pid>/root prefix that is < 160. */
  char path[256];
  /* A runtime that connected in (the reverse diagnostic port): take is
   * set, and every command goes on the connection it hands over instead
   * of a connect to path (then a name for messages, see listen.h); the
   * peer is verified as for a path. cookie: the runtime's instance. */
  ipc_take_fn take;
  void *take_ctx;
  uint8_t cookie[16];
  /* For a runtime that connected in from beyond our pid namespace (a
   * sidecar's neighbour): where it writes its dumps, as it sees that
   * directory; path's directory is the same directory as we see it. ""
   * when there is none (its dumps cannot be made). */
  char dump_there[108];
};

/* The pid to show for ep: ours, or for a runtime beyond our pid namespace
 * (a sidecar's neighbour: pid 0 here) the pid it advertised. */
static inline pid_t ipc_endpoint_pid(const struct ipc_endpoint *ep) {
  return ep->pid > 0 ? ep->pid : ep->ns_pid;
}

/* Whether (pid, start_time) and (pid2, start_time2) name the same process:
 * a pid alone may have been reused by another process since. */
static inline int ipc_same_process(pid_t pid, uint64_t start_time, pid_t pid2,
                                   uint64_t start_time2) {
  return pid == pid2 && start_time == start_time2;
}

struct ipc_process_info {
  uint64_t pid;       /* as the runtime sees it (its own pid namespace) */
  uint8_t cookie[16]; /* runtime instance cookie (GUID) */
  char command_line[1024];
  char os[32];
  char arch[32];
  char entry_assembly[256]; /* "" for runtimes without ProcessInfo2 */
  char runtime_version[64]; /* "" for runtimes without ProcessInfo2 */
};

struct ipc_provider {
  const char *name;
  uint64_t keywords;
  uint32_t level;     /* 0 LogAlways .. 5 Verbose */
  const char *filter; /* "key=value;key=value" or NULL */
};

/* ---- the request engine ----
 *
 * Every command goes through one kind of call: connect (the peer verified,
 * see ipc_peer_verify), send the request, read one reply. A command comes
 * in forms, newest first (ProcessInfo2 then ProcessInfo; GenerateCoreDump3,
 * 2, 1): a runtime that answers UnknownCommand to one form is asked the
 * next on a new connection. A call is driven by its caller's poll, for a
 * caller that looks after many processes at once (the plugin's connector:
 * one process that never answers must not hold up the others): a start
 * function connects and sends; then, whenever ipc_call_fd is readable or
 * ipc_call_deadline (clock_mono_ms) has passed, the matching step reads
 * what has come. Starts and steps return -EINPROGRESS while the answer is
 * incomplete, 0 when it is in, or a negative errno with err->message (err
 * may be NULL). A call that ended (answered and taken, or failed) has
 * closed its connection; ipc_call_close frees it at any time. It holds its
 * requests and at most one reply (each < 64 KiB). A caller that blocks
 * uses ipc_call_wait, or the blocking commands below. */
struct ipc_call;

/* The fd to poll for POLLIN while the call is in flight; -1 once it
 * ended (poll ignores it) or for NULL. */
int ipc_call_fd(const struct ipc_call *c);
/* When the call gives up if unanswered (clock_mono_ms; INT64_MAX for
 * NULL). */
int64_t ipc_call_deadline(const struct ipc_call *c);
/* The endpoint the call talks to. */
const struct ipc_endpoint *ipc_call_endpoint(const struct ipc_call *c);
/* Closes the call's connection if open, frees it, and sets *c to NULL.
 * Accepts NULL and a NULL *c. */
void ipc_call_close(struct ipc_call **c);
/* Reads what has come: 0 when an OK reply is complete (the command's step
 * then takes it), -EINPROGRESS, or a negative errno (ended). For a command
 * whose reply says nothing more (StopTracing). */
int ipc_call_step(struct ipc_call *c, struct ipc_error *err);
/* Waits until the call's reply is complete (0: the step then takes it) or
 * it fails (ended); the thread's cancel fd (ipc_set_cancel_fd) ends the
 * wait with -ECANCELED. */
int ipc_call_wait(struct ipc_call *c, struct ipc_error *err);

/* ProcessInfo2 (ProcessInfo for older runtimes): 0 with *info filled.
 * The start sets *p (NULL when it fails at once). */
int ipc_probe_start(struct ipc_call **p, const struct ipc_endpoint *ep,
                    int timeout_ms, struct ipc_error *err);
int ipc_probe_step(struct ipc_call *p, struct ipc_process_info *info,
                   struct ipc_error *err);

/* An EventPipe session streaming nettrace: CollectTracing2 (CollectTracing
 * for older runtimes, whose sessions always end with a rundown). rundown:
 * flags: IPC_COLLECT_RUNDOWN, whether the runtime, when the session stops,
 * sends the rundown events
 * that name every loaded module and method (a trace's stacks need them; a
 * counters session does not, and the rundown costs the target time). The
 * step gives 0 with *fd the connection the stream follows on (caller owns
 * it; the call has let go of it) and *session_id the runtime's id for
 * StopTracing. */
enum {
  IPC_COLLECT_RUNDOWN = 1, /* the rundown at the session's end */
  /* Block buffering (CollectTracing6, .NET 11): the runtime's writers wait
   * for buffer space instead of dropping events. Lossless, but a runtime
   * whose buffer fills before the stream is read (a heap snapshot written
   * while the session starts) waits for good: only with a buffer that
   * surely holds what comes first. Older runtimes answer UnknownCommand
   * and get CollectTracing2 (Drop). */
  IPC_COLLECT_BLOCK = 2,
};
int ipc_collect_begin(struct ipc_call **c, const struct ipc_endpoint *ep,
                      const struct ipc_provider *providers, size_t n,
                      uint32_t buffer_mb, unsigned flags, int timeout_ms,
                      struct ipc_error *err);
int ipc_collect_step(struct ipc_call *c, int *fd, uint64_t *session_id,
                     struct ipc_error *err);

/* StopTracing of session_id, on a connection of its own; its step is
 * ipc_call_step. A runtime whose listen queue is full is waited for up to
 * connect_ms (in steps of 10 ms; 0: fails at once, as the others). */
int ipc_stop_begin(struct ipc_call **c, const struct ipc_endpoint *ep,
                   uint64_t session_id, int timeout_ms, int connect_ms,
                   struct ipc_error *err);

/* ---- blocking commands (engine calls waited for) ---- */

/* ProcessInfo2, falling back to ProcessInfo on UnknownCommand. */
int ipc_process_info(const struct ipc_endpoint *ep, int timeout_ms,
                     struct ipc_process_info *info, struct ipc_error *err);

/* StopTracing; a full listen queue is waited out until the deadline. */
int ipc_stop_tracing(const struct ipc_endpoint *ep, uint64_t session_id,
                     int timeout_ms, struct ipc_error *err);

/* ResumeRuntime: a runtime started with DOTNET_DiagnosticPorts=...,suspend
 * waits for it before running managed code; a running one answers OK. */
int ipc_resume_runtime(const struct ipc_endpoint *ep, int timeout_ms,
                       struct ipc_error *err);

enum ipc_dump_type {
  IPC_DUMP_MINI = 1, /* "Normal" */
  IPC_DUMP_HEAP = 2, /* "WithHeap" */
  IPC_DUMP_TRIAGE = 3,
  IPC_DUMP_FULL = 4,
};

/* Asks the runtime to write a core dump to `path` (a path as the target
 * sees it): GenerateCoreDump3, falling back to 2 and 1 on UnknownCommand.
 * Blocks until the runtime answers (dumps take seconds: give a generous
 * timeout); a full listen queue is waited out until the deadline. */
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

/* Building blocks, exposed for tests and the fault-injection server. */

/* Decodes the payload p[n] of a ProcessInfo (v2 = 0) or ProcessInfo2
 * (v2 = 1) reply into *out (zeroed first; strings truncated to fit).
 * 0 or -EBADMSG. Pure: no I/O. */
int ipc_process_info_decode(const uint8_t *p, size_t n, int v2,
                            struct ipc_process_info *out);

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
