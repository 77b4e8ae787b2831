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
