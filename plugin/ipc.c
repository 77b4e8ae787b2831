/**
 * collectd-dotnet - plugin/ipc.c
 *
 * Diagnostic IPC client: messages (encode, validate, strings), the connect
 * with its peer check, and the request engine every command goes through
 * (struct ipc_call: one request and reply, the command's forms tried
 * newest first). See ipc.h for the message layout and contracts.
 */
#include "ipc.h"
#include "clock.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const uint8_t ipc_magic[14] = "DOTNET_IPC_V1";

struct hresult_name {
  int32_t hr;
  const char *name;
};

/* HRESULTs a diagnostic server answers with, from the runtime's own
 * definitions (corerror.h, winerror.h) and the IPC spec. */
static const struct hresult_name hresult_names[] = {
    {IPC_E_BAD_ENCODING, "CORDIAGIPC_E_BAD_ENCODING"},
    {IPC_E_UNKNOWN_COMMAND, "CORDIAGIPC_E_UNKNOWN_COMMAND"},
    {IPC_E_UNKNOWN_MAGIC, "CORDIAGIPC_E_UNKNOWN_MAGIC"},
    {IPC_E_UNKNOWN_ERROR, "CORDIAGIPC_E_UNKNOWN_ERROR"},
    {(int32_t)0x80004001, "E_NOTIMPL"},
    {(int32_t)0x80004005, "E_FAIL"},
    {(int32_t)0x8000FFFF, "E_UNEXPECTED"},
    {(int32_t)0x80070005, "E_ACCESSDENIED"},
    {(int32_t)0x8007000E, "E_OUTOFMEMORY"},
    {(int32_t)0x80070057, "E_INVALIDARG"},
    {(int32_t)0x80131509, "COR_E_INVALIDOPERATION"},
};

const char *ipc_hresult_name(int32_t hr) {
  for (size_t i = 0; i < sizeof(hresult_names) / sizeof(hresult_names[0]); i++)
    if (hresult_names[i].hr == hr)
      return hresult_names[i].name;
  return NULL;
}

void ipc_sanitize(char *s) {
  unsigned char *p = (unsigned char *)s;
  while (*p) {
    unsigned c = *p;
    if (c < 0x20 || c == 0x7f) {
      *p++ = '?';
      continue;
    }
    if (c < 0x80) {
      p++;
      continue;
    }
    /* the length of a valid UTF-8 sequence starting here, or 0 */
    size_t k = (c >> 5) == 0x6 && c >= 0xC2    ? 2
               : (c >> 4) == 0xE               ? 3
               : (c >> 3) == 0x1E && c <= 0xF4 ? 4
                                               : 0;
    for (size_t j = 1; j < k; j++)
      if ((p[j] & 0xC0) != 0x80)
        k = 0; /* also stops at the terminator: 0 is no continuation */
    /* overlong 3- and 4-byte forms, surrogates, beyond U+10FFFF */
    if ((k == 3 &&
         ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0))) ||
        (k == 4 && ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90))))
      k = 0;
    if (k == 0) {
      *p++ = '?';
      continue;
    }
    if (k == 2 && c == 0xC2 && p[1] < 0xA0) { /* C1: U+0080..U+009F */
      p[0] = p[1] = '?';
    }
    p += k;
  }
}

static void set_error(struct ipc_error *err, int32_t hr, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_error(struct ipc_error *err, int32_t hr, const char *fmt, ...) {
  if (err == NULL)
    return;
  err->hresult = hr;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof(err->message), fmt, ap);
  va_end(ap);
  /* the runtime's text and paths from /proc go into it */
  ipc_sanitize(err->message);
}

static int remaining_ms(int64_t deadline) {
  int64_t left = deadline - clock_mono_ms();
  if (left <= 0)
    return 0;
  return left > INT_MAX ? INT_MAX : (int)left;
}

/* The calling thread's cancel fd (ipc_set_cancel_fd). */
static _Thread_local int cancel_fd = -1;

void ipc_set_cancel_fd(int fd) { cancel_fd = fd; }

int ipc_get_cancel_fd(void) { return cancel_fd; }

/* Waits until fd is ready for `events`, the deadline passes or the thread's
 * cancel fd becomes readable. 0, -ETIMEDOUT, -ECANCELED, or -errno. */
static int wait_fd(int fd, short events, int64_t deadline) {
  for (;;) {
    struct pollfd pfd[2] = {{.fd = fd, .events = events},
                            {.fd = cancel_fd, .events = POLLIN}};
    int left = remaining_ms(deadline);
    if (left == 0)
      return -ETIMEDOUT;
    int r = poll(pfd, cancel_fd >= 0 ? 2 : 1, left);
    if (r > 0 && pfd[1].revents != 0 && cancel_fd >= 0)
      return -ECANCELED;
    if (r > 0)
      return 0;
    if (r == 0)
      return -ETIMEDOUT;
    if (errno != EINTR)
      return -errno;
  }
}

/* ---- messages ---- */

long ipc_message_encode(uint8_t *buf, size_t cap, uint8_t set, uint8_t id,
                        const uint8_t *payload, size_t payload_len) {
  size_t size = IPC_HEADER_SIZE + payload_len;
  if (payload_len > IPC_MAX_MESSAGE - IPC_HEADER_SIZE || size > cap)
    return -EMSGSIZE;
  memcpy(buf, ipc_magic, sizeof(ipc_magic));
  wire_set_le16(buf + 14, (uint16_t)size);
  buf[16] = set;
  buf[17] = id;
  wire_set_le16(buf + 18, 0);
  if (payload_len > 0 && payload != buf + IPC_HEADER_SIZE)
    memmove(buf + IPC_HEADER_SIZE, payload, payload_len);
  return (long)size;
}

long ipc_header_decode(const uint8_t hdr[IPC_HEADER_SIZE], uint8_t *set,
                       uint8_t *id) {
  if (memcmp(hdr, ipc_magic, sizeof(ipc_magic)) != 0)
    return -EBADMSG;
  uint16_t size = wire_le16(hdr + 14);
  if (size < IPC_HEADER_SIZE)
    return -EBADMSG;
  *set = hdr[16];
  *id = hdr[17];
  return (long)(size - IPC_HEADER_SIZE);
}

long ipc_put_string(uint8_t *buf, size_t cap, size_t off, const char *s) {
  size_t n = s ? strlen(s) : 0;
  size_t len_off = off;
  if (!wire_fits(cap, off, 4))
    return -EMSGSIZE;
  off += 4; /* the length, written last */
  if (n == 0) {
    wire_set_le32(buf + len_off, 0);
    return (long)off;
  }
  /* UTF-8 to UTF-16: names and paths here; decode properly, not just
   * ASCII, so a dump path with non-ASCII letters still works. */
  uint32_t units = 0;
  for (size_t i = 0; i < n;) {
    uint32_t cp = (uint8_t)s[i];
    size_t k = cp < 0x80           ? 1
               : (cp >> 5) == 0x6  ? 2
               : (cp >> 4) == 0xE  ? 3
               : (cp >> 3) == 0x1E ? 4
                                   : 0;
    if (k == 0 || i + k > n)
      return -EILSEQ;
    if (k > 1) {
      cp &= 0x3Fu >> (k - 1);
      for (size_t j = 1; j < k; j++) {
        if (((uint8_t)s[i + j] & 0xC0) != 0x80)
          return -EILSEQ;
        cp = cp << 6 | ((uint8_t)s[i + j] & 0x3F);
      }
    }
    i += k;
    uint16_t u[2] = {0, 0};
    size_t nu = 1;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      u[0] = (uint16_t)(0xD800 + (cp >> 10));
      u[1] = (uint16_t)(0xDC00 + (cp & 0x3FF));
      nu = 2;
    } else {
      u[0] = (uint16_t)cp;
    }
    for (size_t j = 0; j < nu; j++, units++)
      if (wire_put_u16(buf, cap, &off, u[j]) != 0)
        return -EMSGSIZE;
  }
  if (wire_put_u16(buf, cap, &off, 0) != 0) /* the terminator */
    return -EMSGSIZE;
  wire_set_le32(buf + len_off, units + 1);
  return (long)off;
}

int ipc_take_string(struct wire_cursor *c, char *out, size_t cap) {
  struct wire_cursor save = *c;
  uint32_t units;
  if (cap > 0)
    out[0] = 0;
  if (wire_u32(c, &units) != 0)
    goto bad;
  if (units == 0)
    return 0;
  /* Check before multiplying: units * 2 must fit the remaining bytes. */
  if (units > c->len / 2)
    goto bad;
  const uint8_t *s = c->p;
  c->p += (size_t)units * 2;
  c->len -= (size_t)units * 2;
  if (wire_le16(s + 2 * (units - 1)) != 0)
    goto bad; /* the last unit must be the terminator */
  size_t n = units - 1;
  /* Convert at most what fits; a longer string is truncated, not refused. */
  while (n > 0 && wire_utf16_to_utf8(s, n, out, cap) < 0)
    n = n > 64 ? n - 64 : n - 1;
  return 0;
bad:
  *c = save;
  return -EBADMSG;
}

/* What a failed read of a reply says: before the header is complete
 * (in_payload 0) or within the payload. Returns the error to report. */
static int read_failed(struct ipc_error *err, int r, int in_payload) {
  if (in_payload) {
    set_error(err, 0, "reading the reply failed: %s",
              r == -EPIPE ? "truncated" : strerror(-r));
    return r == -EPIPE ? -EBADMSG : r;
  }
  set_error(err, 0, "%s",
            r == -EPIPE       ? "the runtime closed the connection "
                                "without an answer"
            : r == -ETIMEDOUT ? "no answer from the runtime "
                                "in time"
            : r == -ECANCELED ? "cancelled (shutting down)"
                              : strerror(-r));
  return r;
}

/* The payload length a reply's header announces (at most cap), or a
 * negative errno with err filled. */
static long reply_header(const uint8_t hdr[IPC_HEADER_SIZE], size_t cap,
                         uint8_t *set, uint8_t *id, struct ipc_error *err) {
  long plen = ipc_header_decode(hdr, set, id);
  if (plen < 0) {
    set_error(err, 0,
              "the reply is not a Diagnostic IPC message (bad magic "
              "or size)");
    return -EBADMSG;
  }
  if ((size_t)plen > cap) {
    set_error(err, 0, "the reply is too large (%ld bytes)", plen);
    return -EMSGSIZE;
  }
  return plen;
}

/* A complete reply: 0 for OK, -EPROTO with err filled for a server error
 * reply (its HRESULT in err->hresult), -EBADMSG for anything else. */
static int reply_check(uint8_t set, uint8_t id, const uint8_t *reply,
                       size_t len, struct ipc_error *err) {
  if (set != IPC_SET_SERVER) {
    set_error(err, 0, "unexpected reply command set 0x%02x", set);
    return -EBADMSG;
  }
  if (id == IPC_SERVER_ERROR) {
    struct wire_cursor c = wire_cursor(reply, len);
    uint32_t hr = 0;
    if (wire_u32(&c, &hr) != 0) {
      set_error(err, 0, "error reply without an HRESULT");
      return -EBADMSG;
    }
    char text[200] = "";
    if (c.len > 0)
      (void)ipc_take_string(&c, text, sizeof(text));
    const char *name = ipc_hresult_name((int32_t)hr);
    set_error(err, (int32_t)hr, "the runtime answered %s (0x%08x)%s%s",
              name ? name : "an error", hr, text[0] ? ": " : "", text);
    return -EPROTO;
  }
  if (id != IPC_SERVER_OK) {
    set_error(err, 0, "unexpected reply command id 0x%02x", id);
    return -EBADMSG;
  }
  return 0;
}

/* ---- connecting ---- */

/* Starts a non-blocking connect to the endpoint. Returns 0 with *fdp
 * connected, -EINPROGRESS with *fdp connecting (wait for POLLOUT, then
 * connect_finish), or a negative errno with err filled: -EAGAIN when the
 * runtime's listen queue is full (AF_UNIX: no connect is pending then; a
 * later one may succeed). */
static int connect_start(const struct ipc_endpoint *ep, int *fdp,
                         struct ipc_error *err) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  int dirfd_ = -1;
  int fd = -1;
  int r;
  *fdp = -1;
  if (strlen(ep->path) < sizeof(sa.sun_path)) {
    memcpy(sa.sun_path, ep->path, strlen(ep->path) + 1);
  } else {
    /* Too long for sun_path (deep TMPDIR, /proc/<pid>/root prefix): reach
     * it through a directory fd. */
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", ep->path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL) {
      r = -ENAMETOOLONG;
      goto fail;
    }
    *slash = 0;
    dirfd_ = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd_ < 0) {
      r = -errno;
      goto fail;
    }
    if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path),
                         "/proc/self/fd/%d/%s", dirfd_,
                         slash + 1) >= sizeof(sa.sun_path)) {
      r = -ENAMETOOLONG;
      goto fail;
    }
  }
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    r = -errno;
    goto fail;
  }
  do
    r = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : -errno;
  while (r == -EINTR);
  if (r == -EAGAIN || r == -EWOULDBLOCK) {
    r = -EAGAIN;
    set_error(err, 0,
              "cannot connect to %s: the runtime does not accept connections "
              "(its listen queue is full)",
              ep->path);
    goto fail;
  }
  if (r != 0 && r != -EINPROGRESS)
    goto fail;
  if (dirfd_ >= 0)
    close(dirfd_);
  *fdp = fd;
  return r;

fail:
  if (err != NULL && err->message[0] == 0)
    set_error(err, 0, "cannot connect to %s: %s", ep->path, strerror(-r));
  if (fd >= 0)
    close(fd);
  if (dirfd_ >= 0)
    close(dirfd_);
  return r;
}

/* After connect_start: the connect's outcome (pending ones once fd is
 * writable), then who serves the socket (SO_PEERCRED): its pid must be
 * ep->pid, or, where the kernel cannot tell the pid, its uid must be
 * ep->uid. 0, or a negative errno with err filled (fd stays open). */
static int connect_finish(int fd, const struct ipc_endpoint *ep,
                          struct ipc_error *err) {
  int soerr = 0;
  socklen_t sl = sizeof(soerr);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
    soerr = errno;
  if (soerr != 0) {
    set_error(err, 0, "cannot connect to %s: %s", ep->path, strerror(soerr));
    return -soerr;
  }
  return ipc_peer_verify(fd, ep, err);
}

int ipc_peer_verify(int fd, const struct ipc_endpoint *ep,
                    struct ipc_error *err) {
  struct ucred cred;
  socklen_t cl = sizeof(cred);
  /* a peer that cannot be told is not the target */
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0 ||
      cl != sizeof(cred)) {
    int e = cl != sizeof(cred) ? EPROTO : errno;
    set_error(err, 0,
              "cannot tell who serves socket %s (SO_PEERCRED: %s): refusing "
              "it",
              ep->path, strerror(e));
    return -EPERM;
  }
  if (cred.pid > 0 && cred.pid != ep->pid) {
    set_error(err, 0,
              "socket %s is served by pid %d, not by pid %d: refusing it "
              "(another process may be impersonating the target)",
              ep->path, (int)cred.pid, (int)ep->pid);
    return -EPERM;
  }
  if (cred.pid <= 0 && cred.uid != ep->uid) {
    set_error(err, 0,
              "socket %s is served by uid %u, but pid %d runs as uid %u: "
              "refusing it",
              ep->path, (unsigned)cred.uid, (int)ep->pid, (unsigned)ep->uid);
    return -EPERM;
  }
  return 0;
}

/* int64 pid, GUID cookie, string cmdline, string os, string arch
 * [, string entry assembly, string runtime version] */
int ipc_process_info_decode(const uint8_t *p, size_t n, int v2,
                            struct ipc_process_info *out) {
  struct wire_cursor c = wire_cursor(p, n);
  memset(out, 0, sizeof(*out));
  if (wire_u64(&c, &out->pid) != 0 || wire_take(&c, out->cookie, 16) != 0 ||
      ipc_take_string(&c, out->command_line, sizeof(out->command_line)) ||
      ipc_take_string(&c, out->os, sizeof(out->os)) ||
      ipc_take_string(&c, out->arch, sizeof(out->arch)) ||
      (v2 &&
       (ipc_take_string(&c, out->entry_assembly, sizeof(out->entry_assembly)) ||
        ipc_take_string(&c, out->runtime_version,
                        sizeof(out->runtime_version)))))
    return -EBADMSG;
  /* the process says what it likes: nothing of it reaches a log or a
   * terminal raw */
  ipc_sanitize(out->command_line);
  ipc_sanitize(out->os);
  ipc_sanitize(out->arch);
  ipc_sanitize(out->entry_assembly);
  ipc_sanitize(out->runtime_version);
  return 0;
}

/* ---- the request engine ---- */

/* The forms of one command, newest first, and the most a command has
 * (GenerateCoreDump 3, 2, 1). */
#define CALL_FORMS_MAX 3

struct call_form {
  uint8_t id;
  const uint8_t *payload;
  size_t len;
};

enum call_state {
  CALL_HEADER,  /* a request sent; reading the reply's header */
  CALL_PAYLOAD, /* reading the payload the header announced */
  CALL_REPLIED, /* an OK reply complete in reply; the connection open */
  CALL_ENDED,   /* the connection closed: taken, failed or given up */
};

struct ipc_call {
  struct ipc_endpoint ep;
  enum call_state state;
  int fd;                /* the connection, or -1 */
  int64_t deadline;      /* clock_mono_ms: of the form being asked */
  int timeout_ms;        /* each form's own */
  int connect_ms;        /* how long a full listen queue is waited out */
  size_t cap;            /* largest reply payload taken */
  unsigned form, nforms; /* the form asked (0: the newest) */
  size_t msg_off[CALL_FORMS_MAX], msg_len[CALL_FORMS_MAX];
  uint8_t hdr[IPC_HEADER_SIZE];
  size_t got;      /* bytes of the reply read, header included */
  size_t plen;     /* the payload's length (CALL_PAYLOAD on) */
  uint8_t set, id; /* the reply's */
  uint8_t *reply;  /* plen bytes (CALL_PAYLOAD on) */
  uint8_t msgs[];  /* the encoded requests, one per form */
};

int ipc_call_fd(const struct ipc_call *c) { return c ? c->fd : -1; }

int64_t ipc_call_deadline(const struct ipc_call *c) {
  return c ? c->deadline : INT64_MAX;
}

const struct ipc_endpoint *ipc_call_endpoint(const struct ipc_call *c) {
  return &c->ep;
}

static int is_unknown_command(int r, const struct ipc_error *e) {
  return r == -EPROTO && e->hresult == IPC_E_UNKNOWN_COMMAND;
}

static void call_disconnect(struct ipc_call *c) {
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  free(c->reply);
  c->reply = NULL;
}

/* Ends the call with r (its error already in err). */
static int call_end(struct ipc_call *c, int r) {
  call_disconnect(c);
  c->state = CALL_ENDED;
  return r;
}

void ipc_call_close(struct ipc_call **c) {
  if (c == NULL || *c == NULL)
    return;
  call_disconnect(*c);
  free(*c);
  *c = NULL;
}

/* Connects to the call's endpoint and verifies the peer; a full listen
 * queue is waited out (10 ms steps, cancel fd honoured) for up to
 * c->connect_ms. 0, or a negative errno with err filled. */
static int call_connect(struct ipc_call *c, struct ipc_error *err) {
  int64_t until = clock_mono_ms() + c->connect_ms;
  int r;
  if (c->ep.take != NULL) {
    /* a runtime that connected in: its connection waiting for a command,
     * or the next one it opens (at once after reading the previous one) */
    int wait = c->connect_ms > 0 ? c->connect_ms : IPC_TAKE_MIN_MS;
    r = c->ep.take(c->ep.take_ctx, c->ep.cookie, clock_mono_ms() + wait,
                   cancel_fd, &c->fd, err);
    return r == 0 ? ipc_peer_verify(c->fd, &c->ep, err) : r;
  }
  while ((r = connect_start(&c->ep, &c->fd, err)) == -EAGAIN) {
    int left = remaining_ms(until);
    if (left == 0)
      return r;
    err->message[0] = 0; /* the next attempt says what it met */
    r = wait_fd(-1, 0, clock_mono_ms() + (left < 10 ? left : 10));
    if (r == -ECANCELED) {
      set_error(err, 0, "cancelled (shutting down)");
      return r;
    }
  }
  if (r == -EINPROGRESS) { /* not for AF_UNIX; never waited for here */
    r = -EAGAIN;
    set_error(err, 0, "cannot connect to %s: %s", c->ep.path, strerror(-r));
  }
  return r == 0 ? connect_finish(c->fd, &c->ep, err) : r;
}

/* Connects and sends the request of the current form: -EINPROGRESS, or a
 * negative errno with err filled. */
static int call_send(struct ipc_call *c, struct ipc_error *err) {
  c->deadline = clock_mono_ms() + c->timeout_ms;
  c->got = 0;
  c->state = CALL_HEADER;
  int r = call_connect(c, err);
  if (r < 0)
    return r;
  /* a new connection's empty send buffer takes a whole request (< 64 KiB;
   * a unix socket's buffer is 208 KiB unless tuned down): all or nothing */
  const uint8_t *msg = c->msgs + c->msg_off[c->form];
  size_t len = c->msg_len[c->form];
  ssize_t n;
  do
    n = send(c->fd, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n != (ssize_t)len) {
    r = n < 0 ? -errno : -EPIPE;
    set_error(err, 0, "sending the command failed: %s", strerror(-r));
    return r;
  }
  return -EINPROGRESS;
}

/* Starts a call of `set` in its forms (newest first), replies of up to cap
 * payload bytes: -EINPROGRESS with *out the call, or a negative errno with
 * err filled and *out NULL. The payloads are copied. */
static int call_start(struct ipc_call **out, const struct ipc_endpoint *ep,
                      int timeout_ms, int connect_ms, uint8_t set,
                      const struct call_form *forms, unsigned nforms,
                      size_t cap, struct ipc_error *err) {
  err->hresult = 0, err->message[0] = 0;
  *out = NULL;
  if (nforms == 0 || nforms > CALL_FORMS_MAX) {
    set_error(err, 0, "no such command");
    return -EINVAL;
  }
  size_t total = 0;
  for (unsigned i = 0; i < nforms; i++) {
    if (forms[i].len > IPC_MAX_MESSAGE - IPC_HEADER_SIZE) {
      set_error(err, 0, "command too large");
      return -EMSGSIZE;
    }
    total += IPC_HEADER_SIZE + forms[i].len;
  }
  struct ipc_call *c = calloc(1, sizeof(*c) + total);
  if (c == NULL) {
    set_error(err, 0, "out of memory");
    return -ENOMEM;
  }
  c->ep = *ep;
  c->fd = -1;
  c->timeout_ms = timeout_ms;
  c->connect_ms = connect_ms;
  c->cap = cap;
  c->nforms = nforms;
  size_t off = 0;
  for (unsigned i = 0; i < nforms; i++) {
    long m = ipc_message_encode(c->msgs + off, total - off, set, forms[i].id,
                                forms[i].payload, forms[i].len);
    c->msg_off[i] = off;
    c->msg_len[i] = (size_t)m; /* fits: sized above */
    off += (size_t)m;
  }
  int r = call_send(c, err);
  if (r != -EINPROGRESS) {
    ipc_call_close(&c);
    return r;
  }
  *out = c;
  return r;
}

/* The header is in: where the payload goes. 0, or a negative errno with
 * err filled. */
static int call_header_in(struct ipc_call *c, struct ipc_error *err) {
  long plen = reply_header(c->hdr, c->cap, &c->set, &c->id, err);
  if (plen < 0)
    return (int)plen;
  c->reply = malloc(plen > 0 ? (size_t)plen : 1); /* <= cap */
  if (c->reply == NULL) {
    set_error(err, 0, "out of memory");
    return -ENOMEM;
  }
  c->plen = (size_t)plen;
  c->state = CALL_PAYLOAD;
  return 0;
}

/* Reads what the socket holds of the reply: 0 once it is complete,
 * -EINPROGRESS, or a negative errno with err filled. */
static int call_read(struct ipc_call *c, struct ipc_error *err) {
  int late = clock_mono_ms() >= c->deadline;
  for (;;) {
    int in_payload = c->state == CALL_PAYLOAD;
    uint8_t *dst =
        in_payload ? c->reply + (c->got - IPC_HEADER_SIZE) : c->hdr + c->got;
    size_t want = in_payload ? IPC_HEADER_SIZE + c->plen - c->got
                             : IPC_HEADER_SIZE - c->got;
    if (want == 0)
      return 0;
    ssize_t n = recv(c->fd, dst, want, MSG_DONTWAIT);
    if (n > 0) {
      c->got += (size_t)n;
      int r = 0;
      if (!in_payload && c->got == IPC_HEADER_SIZE)
        r = call_header_in(c, err);
      if (r < 0)
        return r;
      continue;
    }
    int r = n == 0 ? -EPIPE : -errno;
    if (r == -EINTR)
      continue;
    if (r == -EAGAIN || r == -EWOULDBLOCK) {
      if (!late)
        return -EINPROGRESS;
      r = -ETIMEDOUT;
    }
    return read_failed(err, r, in_payload);
  }
}

/* A complete reply: kept when OK; an UnknownCommand asks the next form on
 * a new connection. */
static int call_replied(struct ipc_call *c, struct ipc_error *err) {
  int r = reply_check(c->set, c->id, c->reply, c->plen, err);
  if (r == 0) {
    c->state = CALL_REPLIED;
    return 0;
  }
  if (!is_unknown_command(r, err) || c->form + 1 >= c->nforms)
    return call_end(c, r);
  /* a runtime before this form: the next older, on a new connection */
  call_disconnect(c);
  c->form++;
  err->hresult = 0, err->message[0] = 0;
  r = call_send(c, err);
  return r == -EINPROGRESS ? r : call_end(c, r);
}

int ipc_call_step(struct ipc_call *c, struct ipc_error *err) {
  struct ipc_error local;
  struct ipc_error *e = err ? err : &local;
  switch (c->state) {
  case CALL_REPLIED:
    return 0;
  case CALL_ENDED:
    set_error(e, 0, "the call has ended");
    return -EBADF;
  case CALL_HEADER:
  case CALL_PAYLOAD:
    break;
  }
  int r = call_read(c, e);
  if (r == -EINPROGRESS)
    return r;
  return r < 0 ? call_end(c, r) : call_replied(c, e);
}

int ipc_call_wait(struct ipc_call *c, struct ipc_error *err) {
  struct ipc_error local;
  struct ipc_error *e = err ? err : &local;
  int r = ipc_call_step(c, e);
  while (r == -EINPROGRESS) {
    r = wait_fd(c->fd, POLLIN, c->deadline);
    if (r < 0 && r != -ETIMEDOUT) /* cancelled, or poll failed */
      return call_end(c, read_failed(e, r, c->state == CALL_PAYLOAD));
    r = ipc_call_step(c, e); /* past the deadline: it says so */
  }
  return r;
}

/* ---- the commands ---- */

int ipc_probe_start(struct ipc_call **p, const struct ipc_endpoint *ep,
                    int timeout_ms, struct ipc_error *err) {
  static const struct call_form forms[] = {{.id = IPC_PROCESS_INFO2},
                                           {.id = IPC_PROCESS_INFO}};
  struct ipc_error local;
  return call_start(p, ep, timeout_ms, 0, IPC_SET_PROCESS, forms, 2,
                    IPC_MAX_MESSAGE - IPC_HEADER_SIZE, err ? err : &local);
}

int ipc_probe_step(struct ipc_call *p, struct ipc_process_info *info,
                   struct ipc_error *err) {
  int r = ipc_call_step(p, err);
  if (r == 0 &&
      ipc_process_info_decode(p->reply, p->plen, p->form == 0, info) != 0) {
    set_error(err, 0, "malformed ProcessInfo reply (%zu bytes)", p->plen);
    r = -EBADMSG;
  }
  return r == -EINPROGRESS ? r : call_end(p, r);
}

int ipc_process_info(const struct ipc_endpoint *ep, int timeout_ms,
                     struct ipc_process_info *info, struct ipc_error *err) {
  struct ipc_call *p;
  memset(info, 0, sizeof(*info));
  int r = ipc_probe_start(&p, ep, timeout_ms, err);
  if (r == -EINPROGRESS)
    r = ipc_call_wait(p, err);
  if (r == 0)
    r = ipc_probe_step(p, info, err);
  ipc_call_close(&p);
  return r;
}

/* The rundown keywords CollectTracing6 asks for when the rundown is wanted
 * (what CollectTracing2's requestRundown means: GC, Loader, Jit, Ngen,
 * JittedMethodILToNativeMap, ThreadTransfer). */
#define COLLECT_RUNDOWN_KEYWORDS 0x80020139ULL
#define COLLECT_BUFFERING_BLOCK 1

/* Encodes a CollectTracing payload of form 1, 2 or 6:
 *   [6: uint32 session type (0: IPC stream)]
 *   uint32 circular buffer MB, uint32 format (1: nettrace),
 *   [2: uint8 requestRundown | 6: uint64 rundown keywords, uint8 stacks]
 *   uint32 provider count, then per provider uint64 keywords, uint32 level,
 *   string name, string filter [6: uint8 event filter on (0), uint32 event
 *   ids (0)]
 *   [6: uint32 buffering mode]
 */
static long collect_payload(uint8_t *buf, size_t cap, int form,
                            const struct ipc_provider *providers, size_t n,
                            uint32_t buffer_mb, unsigned flags) {
  size_t off = 0;
  int rundown = (flags & IPC_COLLECT_RUNDOWN) != 0;
  if (n > 1000 || (form == 6 && wire_put_u32(buf, cap, &off, 0)) ||
      wire_put_u32(buf, cap, &off, buffer_mb) ||
      wire_put_u32(buf, cap, &off, 1) ||
      (form == 2 && wire_put_u8(buf, cap, &off, (uint8_t)rundown)) ||
      (form == 6 &&
       (wire_put_u64(buf, cap, &off, rundown ? COLLECT_RUNDOWN_KEYWORDS : 0) ||
        wire_put_u8(buf, cap, &off, 1))) ||
      wire_put_u32(buf, cap, &off, (uint32_t)n))
    return -EMSGSIZE;
  for (size_t i = 0; i < n; i++) {
    if (wire_put_u64(buf, cap, &off, providers[i].keywords) ||
        wire_put_u32(buf, cap, &off, providers[i].level))
      return -EMSGSIZE;
    long o = ipc_put_string(buf, cap, off, providers[i].name);
    if (o >= 0)
      o = ipc_put_string(buf, cap, (size_t)o, providers[i].filter);
    if (o < 0)
      return o;
    off = (size_t)o;
    if (form == 6 && (wire_put_u8(buf, cap, &off, 0) ||
                      wire_put_u32(buf, cap, &off, 0)))
      return -EMSGSIZE;
  }
  if (form == 6 && wire_put_u32(buf, cap, &off, COLLECT_BUFFERING_BLOCK))
    return -EMSGSIZE;
  return (long)off;
}

int ipc_collect_begin(struct ipc_call **c, const struct ipc_endpoint *ep,
                      const struct ipc_provider *providers, size_t n,
                      uint32_t buffer_mb, unsigned flags, int timeout_ms,
                      struct ipc_error *err) {
  struct ipc_error local;
  struct ipc_error *e = err ? err : &local;
  enum { MAX = IPC_MAX_MESSAGE - IPC_HEADER_SIZE };
  static const struct {
    uint8_t id;
    int form;
  } all[] = {{IPC_EP_COLLECT6, 6}, {IPC_EP_COLLECT2, 2}, {IPC_EP_COLLECT, 1}};
  *c = NULL;
  /* every form now: the providers' strings need not outlive this call */
  size_t first = (flags & IPC_COLLECT_BLOCK) ? 0 : 1, nforms = 3 - first;
  uint8_t *payload = malloc(nforms * MAX);
  if (payload == NULL) {
    set_error(e, 0, "out of memory");
    return -ENOMEM;
  }
  struct call_form forms[3];
  int r = 0;
  for (size_t i = 0; r == 0 && i < nforms; i++) {
    uint8_t *p = payload + i * MAX;
    long len = collect_payload(p, MAX, all[first + i].form, providers, n,
                               buffer_mb, flags);
    if (len < 0) {
      set_error(e, 0, "provider list too large for one IPC message");
      r = (int)len;
    }
    forms[i] = (struct call_form){all[first + i].id, p, (size_t)(len < 0 ? 0 : len)};
  }
  if (r == 0)
    r = call_start(c, ep, timeout_ms, 0, IPC_SET_EVENTPIPE, forms, nforms, 64,
                   e);
  free(payload);
  return r;
}

/* OK reply: uint64 session id; the stream follows on the connection. */
int ipc_collect_step(struct ipc_call *c, int *fd, uint64_t *session_id,
                     struct ipc_error *err) {
  int r = ipc_call_step(c, err);
  if (r != 0)
    return r;
  struct wire_cursor cur = wire_cursor(c->reply, c->plen);
  if (wire_u64(&cur, session_id) != 0) {
    set_error(err, 0, "CollectTracing reply without a session id");
    return call_end(c, -EBADMSG);
  }
  *fd = c->fd; /* the stream's: the call lets go of it */
  c->fd = -1;
  return call_end(c, 0);
}

/* Payload: uint64 session id. */
int ipc_stop_begin(struct ipc_call **c, const struct ipc_endpoint *ep,
                   uint64_t session_id, int timeout_ms, int connect_ms,
                   struct ipc_error *err) {
  struct ipc_error local;
  uint8_t id[8];
  wire_set_le64(id, session_id);
  const struct call_form form = {IPC_EP_STOP, id, sizeof(id)};
  return call_start(c, ep, timeout_ms, connect_ms, IPC_SET_EVENTPIPE, &form, 1,
                    64, err ? err : &local);
}

int ipc_stop_tracing(const struct ipc_endpoint *ep, uint64_t session_id,
                     int timeout_ms, struct ipc_error *err) {
  struct ipc_call *c;
  int r = ipc_stop_begin(&c, ep, session_id, timeout_ms, timeout_ms, err);
  if (r == -EINPROGRESS)
    r = ipc_call_wait(c, err);
  ipc_call_close(&c);
  return r;
}

/* No payload. OK reply: uint32 HRESULT (0). */
int ipc_resume_runtime(const struct ipc_endpoint *ep, int timeout_ms,
                       struct ipc_error *err) {
  struct ipc_error local;
  struct ipc_error *e = err ? err : &local;
  const struct call_form form = {IPC_PROCESS_RESUME, NULL, 0};
  struct ipc_call *c;
  int r = call_start(&c, ep, timeout_ms, 0, IPC_SET_PROCESS, &form, 1, 64, e);
  if (r == -EINPROGRESS)
    r = ipc_call_wait(c, e);
  ipc_call_close(&c);
  return r;
}

/* Payload: string path, uint32 dump type, uint32 diagnostics / flags (0).
 * OK reply: int32 HRESULT, 0 when the dump was written. */
int ipc_dump(const struct ipc_endpoint *ep, const char *path,
             enum ipc_dump_type type, int timeout_ms, struct ipc_error *err) {
  struct ipc_error local;
  struct ipc_error *e = err ? err : &local;
  uint8_t payload[8192];
  if (type < IPC_DUMP_MINI || type > IPC_DUMP_FULL)
    return -EINVAL;
  long off = ipc_put_string(payload, sizeof(payload), 0, path);
  size_t plen = off < 0 ? 0 : (size_t)off;
  if (off < 0 || wire_put_u32(payload, sizeof(payload), &plen, type) ||
      wire_put_u32(payload, sizeof(payload), &plen, 0)) {
    set_error(e, 0, "dump path too long");
    return off < 0 ? (int)off : -EMSGSIZE;
  }
  const struct call_form forms[] = {{IPC_DUMP_GENERATE3, payload, plen},
                                    {IPC_DUMP_GENERATE2, payload, plen},
                                    {IPC_DUMP_GENERATE, payload, plen}};
  struct ipc_call *c;
  int r = call_start(&c, ep, timeout_ms, timeout_ms, IPC_SET_DUMP, forms, 3,
                     1024, e);
  if (r == -EINPROGRESS)
    r = ipc_call_wait(c, e);
  uint32_t hr = 0;
  if (r == 0) {
    struct wire_cursor cur = wire_cursor(c->reply, c->plen);
    (void)wire_u32(&cur, &hr); /* a reply without one: 0 */
  }
  ipc_call_close(&c);
  if (r < 0)
    return r;
  if (hr != 0) {
    const char *name = ipc_hresult_name((int32_t)hr);
    set_error(e, (int32_t)hr, "the runtime answered %s (0x%08x)",
              name ? name : "an error", hr);
    return -EPROTO;
  }
  return 0;
}
