/**
 * collectd-dotnet - plugin/ipc.c
 *
 * Diagnostic IPC client: see ipc.h for the message layout and contracts.
 */
#include "clock.h"
#include "ipc.h"
#include "wire.h"

#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
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
    {(int32_t)0x80131385, "CORDIAGIPC_E_UNKNOWN_COMMAND"},
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

static void set_error(struct ipc_error *err, int32_t hr, const char *fmt,
                      ...) __attribute__((format(printf, 3, 4)));
static void set_error(struct ipc_error *err, int32_t hr, const char *fmt,
                      ...) {
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

static int write_all(int fd, const uint8_t *buf, size_t len, int64_t deadline) {
  while (len > 0) {
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      buf += n;
      len -= (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int r = wait_fd(fd, POLLOUT, deadline);
      if (r < 0)
        return r;
      continue;
    }
    return n < 0 ? -errno : -EPIPE;
  }
  return 0;
}

/* Reads exactly len bytes. -EPIPE on EOF before that. */
static int read_all(int fd, uint8_t *buf, size_t len, int64_t deadline) {
  while (len > 0) {
    ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);
    if (n > 0) {
      buf += n;
      len -= (size_t)n;
      continue;
    }
    if (n == 0)
      return -EPIPE;
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      int r = wait_fd(fd, POLLIN, deadline);
      if (r < 0)
        return r;
      continue;
    }
    return -errno;
  }
  return 0;
}

/* ---- messages ---- */

long ipc_message_encode(uint8_t *buf, size_t cap, uint8_t set, uint8_t id,
                        const uint8_t *payload, size_t payload_len) {
  size_t size = IPC_HEADER_SIZE + payload_len;
  if (payload_len > IPC_MAX_MESSAGE - IPC_HEADER_SIZE || size > cap)
    return -EMSGSIZE;
  memcpy(buf, ipc_magic, sizeof(ipc_magic));
  buf[14] = (uint8_t)(size & 0xff);
  buf[15] = (uint8_t)(size >> 8);
  buf[16] = set;
  buf[17] = id;
  buf[18] = 0;
  buf[19] = 0;
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
  if (n == 0) {
    if (off + 4 > cap)
      return -EMSGSIZE;
    memset(buf + off, 0, 4);
    return (long)(off + 4);
  }
  /* UTF-8 to UTF-16: names and paths here; decode properly, not just
   * ASCII, so a dump path with non-ASCII letters still works. */
  size_t len_off = off;
  off += 4;
  uint32_t units = 0;
  for (size_t i = 0; i < n;) {
    uint32_t cp = (uint8_t)s[i];
    size_t k = cp < 0x80 ? 1 : (cp >> 5) == 0x6 ? 2 : (cp >> 4) == 0xE ? 3
                                                : (cp >> 3) == 0x1E ? 4 : 0;
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
    uint16_t u[2];
    size_t nu = 1;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      u[0] = (uint16_t)(0xD800 + (cp >> 10));
      u[1] = (uint16_t)(0xDC00 + (cp & 0x3FF));
      nu = 2;
    } else {
      u[0] = (uint16_t)cp;
    }
    if (off + 2 * nu > cap)
      return -EMSGSIZE;
    for (size_t j = 0; j < nu; j++) {
      buf[off++] = (uint8_t)(u[j] & 0xff);
      buf[off++] = (uint8_t)(u[j] >> 8);
      units++;
    }
  }
  if (off + 2 > cap)
    return -EMSGSIZE;
  buf[off++] = 0;
  buf[off++] = 0;
  units++;
  buf[len_off] = (uint8_t)(units & 0xff);
  buf[len_off + 1] = (uint8_t)(units >> 8 & 0xff);
  buf[len_off + 2] = (uint8_t)(units >> 16 & 0xff);
  buf[len_off + 3] = (uint8_t)(units >> 24);
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
    set_error(err, 0, "the reply is not a Diagnostic IPC message (bad magic "
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

/* Sends one message and reads the reply's header and payload (at most
 * cap bytes; a larger reply is -EMSGSIZE). On a server error reply returns
 * -EPROTO with err filled. *reply_len is the payload length. */
static int transact(int fd, const uint8_t *msg, size_t msg_len, uint8_t *reply,
                    size_t cap, size_t *reply_len, int64_t deadline,
                    struct ipc_error *err) {
  int r = write_all(fd, msg, msg_len, deadline);
  if (r < 0) {
    set_error(err, 0, "sending the command failed: %s", strerror(-r));
    return r;
  }
  uint8_t hdr[IPC_HEADER_SIZE];
  r = read_all(fd, hdr, sizeof(hdr), deadline);
  if (r < 0)
    return read_failed(err, r, 0);
  uint8_t set, id;
  long plen = reply_header(hdr, cap, &set, &id, err);
  if (plen < 0)
    return (int)plen;
  r = read_all(fd, reply, (size_t)plen, deadline);
  if (r < 0)
    return read_failed(err, r, 1);
  *reply_len = (size_t)plen;
  return reply_check(set, id, reply, *reply_len, err);
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
    if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s",
                         dirfd_, slash + 1) >= sizeof(sa.sun_path)) {
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

int ipc_connect(const struct ipc_endpoint *ep, int timeout_ms,
                struct ipc_error *err) {
  int64_t deadline = clock_mono_ms() + timeout_ms;
  if (err)
    err->hresult = 0, err->message[0] = 0;
  int fd;
  int r;
  /* a full listen queue: as a blocking connect would, wait for room (in
   * steps of 10 ms) until the deadline */
  while ((r = connect_start(ep, &fd, err)) == -EAGAIN) {
    int left = remaining_ms(deadline);
    if (left == 0)
      return r;
    if (err != NULL)
      err->message[0] = 0; /* the next attempt says what it met */
    r = wait_fd(-1, 0, clock_mono_ms() + (left < 10 ? left : 10));
    if (r == -ECANCELED) {
      set_error(err, 0, "cancelled (shutting down)");
      return r;
    }
  }
  if (r == -EINPROGRESS) {
    r = wait_fd(fd, POLLOUT, deadline);
    if (r < 0)
      set_error(err, 0, "cannot connect to %s: %s", ep->path, strerror(-r));
  }
  if (r == 0)
    r = connect_finish(fd, ep, err);
  if (r < 0) {
    if (fd >= 0)
      close(fd);
    return r;
  }
  return fd;
}

/* Connects, sends one message, reads the reply, closes. */
static int command(const struct ipc_endpoint *ep, uint8_t set, uint8_t id,
                   const uint8_t *payload, size_t plen, uint8_t *reply,
                   size_t cap, size_t *rlen, int timeout_ms,
                   struct ipc_error *err) {
  uint8_t msg[IPC_MAX_MESSAGE];
  long mlen = ipc_message_encode(msg, sizeof(msg), set, id, payload, plen);
  if (mlen < 0) {
    set_error(err, 0, "command too large");
    return (int)mlen;
  }
  int64_t deadline = clock_mono_ms() + timeout_ms;
  int fd = ipc_connect(ep, timeout_ms, err);
  if (fd < 0)
    return fd;
  int r = transact(fd, msg, (size_t)mlen, reply, cap, rlen, deadline, err);
  close(fd);
  return r;
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
      (v2 && (ipc_take_string(&c, out->entry_assembly,
                              sizeof(out->entry_assembly)) ||
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

static int is_unknown_command(int r, const struct ipc_error *e) {
  return r == -EPROTO && e->hresult == IPC_E_UNKNOWN_COMMAND;
}

/* Connects and sends the call's current request (the first, or the
 * fallback once c->v2 is 0): -EINPROGRESS, or a negative errno with err
 * filled. A full listen queue (the runtime does not accept) is a failure
 * here, retried later by the caller like any other. */
static int call_send(struct ipc_call *c, struct ipc_error *err) {
  c->deadline = clock_mono_ms() + c->timeout_ms;
  c->got = 0;
  c->plen = -1;
  int r = connect_start(&c->ep, &c->fd, err);
  if (r == -EINPROGRESS) { /* not for AF_UNIX; never waited for here */
    r = -EAGAIN;
    set_error(err, 0, "cannot connect to %s: %s", c->ep.path, strerror(-r));
  }
  if (r == 0)
    r = connect_finish(c->fd, &c->ep, err);
  if (r < 0)
    return r;
  /* a new connection's empty send buffer takes a whole request (< 64 KiB;
   * a unix socket's buffer is 208 KiB unless tuned down): all or nothing */
  const uint8_t *msg = c->msg[c->v2];
  size_t len = c->len[c->v2];
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

void ipc_call_close(struct ipc_call *c) {
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  free(c->reply);
  c->reply = NULL;
  free(c->msg[0]);
  free(c->msg[1]);
  c->msg[0] = c->msg[1] = NULL;
}

/* Ends the call with r (its error already in err). */
static int call_end(struct ipc_call *c, int r) {
  ipc_call_close(c);
  return r;
}

/* Starts a call: request set/id2 with payload2 first, and, when the
 * runtime answers UnknownCommand, set/id1 with payload1 on a new
 * connection (id1 < 0: no fallback). Replies of up to cap payload bytes.
 * -EINPROGRESS, or a negative errno with err filled (closed then). */
static int call_begin(struct ipc_call *c, const struct ipc_endpoint *ep,
                      int timeout_ms, uint8_t set, uint8_t id2,
                      const uint8_t *payload2, size_t len2, int id1,
                      const uint8_t *payload1, size_t len1, size_t cap,
                      struct ipc_error *err) {
  memset(c, 0, sizeof(*c));
  c->fd = -1;
  c->ep = *ep;
  c->timeout_ms = timeout_ms;
  c->cap = cap;
  c->v2 = 1;
  c->fallback = id1 >= 0;
  err->hresult = 0, err->message[0] = 0;
  for (int v = c->fallback ? 0 : 1; v < 2; v++) {
    size_t plen = v ? len2 : len1;
    c->msg[v] = malloc(IPC_HEADER_SIZE + plen);
    long m = c->msg[v] == NULL
                 ? -ENOMEM
                 : ipc_message_encode(c->msg[v], IPC_HEADER_SIZE + plen, set,
                                      v ? id2 : (uint8_t)id1,
                                      v ? payload2 : payload1, plen);
    if (m < 0) {
      set_error(err, 0, "%s", m == -ENOMEM ? "out of memory"
                                           : "command too large");
      return call_end(c, (int)m);
    }
    c->len[v] = (size_t)m;
  }
  int r = call_send(c, err);
  return r == -EINPROGRESS ? r : call_end(c, r);
}

/* Reads what has come: 0 with an OK reply complete (c->reply, c->plen;
 * the connection still open), -EINPROGRESS, or a negative errno with err
 * filled (closed then). */
static int call_step(struct ipc_call *c, struct ipc_error *err) {
  if (c->fd < 0)
    return -EBADF;
  int late = clock_mono_ms() >= c->deadline;
  for (;;) {
    int in_payload = c->plen >= 0;
    uint8_t *dst = in_payload ? c->reply + (c->got - IPC_HEADER_SIZE)
                              : c->hdr + c->got;
    size_t want = in_payload ? IPC_HEADER_SIZE + (size_t)c->plen - c->got
                             : IPC_HEADER_SIZE - c->got;
    if (want == 0)
      break;
    ssize_t n = recv(c->fd, dst, want, MSG_DONTWAIT);
    if (n > 0) {
      c->got += (size_t)n;
      if (!in_payload && c->got == IPC_HEADER_SIZE) {
        long plen = reply_header(c->hdr, c->cap, &c->set, &c->id, err);
        if (plen < 0)
          return call_end(c, (int)plen);
        c->reply = malloc(plen > 0 ? (size_t)plen : 1); /* <= cap */
        if (c->reply == NULL) {
          set_error(err, 0, "out of memory");
          return call_end(c, -ENOMEM);
        }
        c->plen = plen;
      }
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
    return call_end(c, read_failed(err, r, in_payload));
  }
  int r = reply_check(c->set, c->id, c->reply, (size_t)c->plen, err);
  if (is_unknown_command(r, err) && c->v2 && c->fallback) {
    /* a runtime before this command: its older form, on a new connection */
    close(c->fd);
    c->fd = -1;
    free(c->reply);
    c->reply = NULL;
    c->v2 = 0;
    err->hresult = 0, err->message[0] = 0;
    r = call_send(c, err);
    return r == -EINPROGRESS ? r : call_end(c, r);
  }
  return r == 0 ? 0 : call_end(c, r);
}

int ipc_call_wait(struct ipc_call *c, struct ipc_error *err) {
  int r = -EINPROGRESS;
  while (r == -EINPROGRESS) {
    r = wait_fd(c->fd, POLLIN, c->deadline);
    if (r < 0 && r != -ETIMEDOUT) { /* cancelled, or poll failed */
      int in_payload = c->plen >= 0;
      ipc_call_close(c);
      return read_failed(err, r, in_payload);
    }
    r = call_step(c, err); /* past the deadline: it says so */
  }
  return r;
}

int ipc_probe_start(struct ipc_call *p, const struct ipc_endpoint *ep,
                    int timeout_ms, struct ipc_error *err) {
  struct ipc_error local;
  return call_begin(p, ep, timeout_ms, IPC_SET_PROCESS, IPC_PROCESS_INFO2,
                    NULL, 0, IPC_PROCESS_INFO, NULL, 0,
                    IPC_MAX_MESSAGE - IPC_HEADER_SIZE, err ? err : &local);
}

/* A complete ProcessInfo(2) reply into *info; ends the call. */
static int probe_finish(struct ipc_call *p, struct ipc_process_info *info,
                        struct ipc_error *err) {
  int r = ipc_process_info_decode(p->reply, (size_t)p->plen, p->v2, info);
  if (r < 0)
    set_error(err, 0, "malformed ProcessInfo reply (%ld bytes)", p->plen);
  return call_end(p, r);
}

int ipc_probe_step(struct ipc_call *p, struct ipc_process_info *info,
                   struct ipc_error *err) {
  struct ipc_error local;
  struct ipc_error *e = err ? err : &local;
  int r = call_step(p, e);
  return r == 0 ? probe_finish(p, info, e) : r;
}

int ipc_process_info(const struct ipc_endpoint *ep, int timeout_ms,
                     struct ipc_process_info *info, struct ipc_error *err) {
  struct ipc_error local;
  struct ipc_error *e = err ? err : &local;
  struct ipc_call p;
  memset(info, 0, sizeof(*info));
  int r = ipc_probe_start(&p, ep, timeout_ms, e);
  if (r == -EINPROGRESS)
    r = ipc_call_wait(&p, e);
  return r == 0 ? probe_finish(&p, info, e) : r;
}

/* Encodes the CollectTracing(2) payload. */
static long collect_payload(uint8_t *buf, size_t cap, int v2,
                            const struct ipc_provider *providers, size_t n,
                            uint32_t buffer_mb) {
  size_t off = 0;
  if (cap < 13 || n > 1000)
    return -EMSGSIZE;
  memcpy(buf + off, (uint8_t[4]){(uint8_t)buffer_mb, (uint8_t)(buffer_mb >> 8),
                                 (uint8_t)(buffer_mb >> 16),
                                 (uint8_t)(buffer_mb >> 24)},
         4);
  off += 4;
  memcpy(buf + off, (uint8_t[4]){1, 0, 0, 0}, 4); /* format: nettrace */
  off += 4;
  if (v2)
    buf[off++] = 0; /* requestRundown: false */
  uint32_t cnt = (uint32_t)n;
  for (int i = 0; i < 4; i++)
    buf[off++] = (uint8_t)(cnt >> (8 * i));
  for (size_t i = 0; i < n; i++) {
    if (off + 12 > cap)
      return -EMSGSIZE;
    for (int b = 0; b < 8; b++)
      buf[off++] = (uint8_t)(providers[i].keywords >> (8 * b));
    for (int b = 0; b < 4; b++)
      buf[off++] = (uint8_t)(providers[i].level >> (8 * b));
    long o = ipc_put_string(buf, cap, off, providers[i].name);
    if (o < 0)
      return o;
    o = ipc_put_string(buf, cap, (size_t)o, providers[i].filter);
    if (o < 0)
      return o;
    off = (size_t)o;
  }
  return (long)off;
}

/* A complete CollectTracing(2) reply: the session id, and the connection
 * the stream follows on (taken from the call, which ends). */
static int collect_finish(struct ipc_call *c, int *fd, uint64_t *session_id,
                          struct ipc_error *err) {
  struct wire_cursor cur = wire_cursor(c->reply, (size_t)c->plen);
  if (wire_u64(&cur, session_id) != 0) {
    set_error(err, 0, "CollectTracing reply without a session id");
    return call_end(c, -EBADMSG);
  }
  *fd = c->fd;
  c->fd = -1;
  ipc_call_close(c);
  return 0;
}

int ipc_collect_begin(struct ipc_call *c, const struct ipc_endpoint *ep,
                      const struct ipc_provider *providers, size_t n,
                      uint32_t buffer_mb, int timeout_ms,
                      struct ipc_error *err) {
  struct ipc_error local;
  struct ipc_error *e = err ? err : &local;
  /* both forms now: the providers' strings need not outlive this call */
  uint8_t *payload = malloc(2 * (IPC_MAX_MESSAGE - IPC_HEADER_SIZE));
  if (payload == NULL) {
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    set_error(e, 0, "out of memory");
    return -ENOMEM;
  }
  uint8_t *p1 = payload + (IPC_MAX_MESSAGE - IPC_HEADER_SIZE);
  long len2 = collect_payload(payload, IPC_MAX_MESSAGE - IPC_HEADER_SIZE, 1,
                              providers, n, buffer_mb);
  long len1 = collect_payload(p1, IPC_MAX_MESSAGE - IPC_HEADER_SIZE, 0,
                              providers, n, buffer_mb);
  int r;
  if (len2 < 0 || len1 < 0) {
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    set_error(e, 0, "provider list too large for one IPC message");
    r = (int)(len2 < 0 ? len2 : len1);
  } else {
    r = call_begin(c, ep, timeout_ms, IPC_SET_EVENTPIPE, IPC_EP_COLLECT2,
                   payload, (size_t)len2, IPC_EP_COLLECT, p1, (size_t)len1,
                   64, e);
  }
  free(payload);
  return r;
}

int ipc_collect_step(struct ipc_call *c, int *fd, uint64_t *session_id,
                     struct ipc_error *err) {
  struct ipc_error local;
  struct ipc_error *e = err ? err : &local;
  int r = call_step(c, e);
  return r == 0 ? collect_finish(c, fd, session_id, e) : r;
}

int ipc_collect_tracing(const struct ipc_endpoint *ep,
                        const struct ipc_provider *providers, size_t n,
                        uint32_t buffer_mb, int timeout_ms, int *fd,
                        uint64_t *session_id, struct ipc_error *err) {
  struct ipc_error local;
  struct ipc_error *e = err ? err : &local;
  struct ipc_call c;
  *fd = -1;
  int r = ipc_collect_begin(&c, ep, providers, n, buffer_mb, timeout_ms, e);
  if (r == -EINPROGRESS)
    r = ipc_call_wait(&c, e);
  return r == 0 ? collect_finish(&c, fd, session_id, e) : r;
}

int ipc_stop_tracing(const struct ipc_endpoint *ep, uint64_t session_id,
                     int timeout_ms, struct ipc_error *err) {
  uint8_t payload[8], reply[64];
  size_t rlen = 0;
  for (int i = 0; i < 8; i++)
    payload[i] = (uint8_t)(session_id >> (8 * i));
  return command(ep, IPC_SET_EVENTPIPE, IPC_EP_STOP, payload, sizeof(payload),
                 reply, sizeof(reply), &rlen, timeout_ms, err);
}

int ipc_dump(const struct ipc_endpoint *ep, const char *path,
             enum ipc_dump_type type, int timeout_ms, struct ipc_error *err) {
  struct ipc_error local;
  struct ipc_error *e = err ? err : &local;
  uint8_t payload[8192], reply[1024];
  size_t rlen = 0;
  if (type < IPC_DUMP_MINI || type > IPC_DUMP_FULL)
    return -EINVAL;
  long off = ipc_put_string(payload, sizeof(payload), 0, path);
  if (off < 0 || (size_t)off + 8 > sizeof(payload)) {
    set_error(e, 0, "dump path too long");
    return off < 0 ? (int)off : -EMSGSIZE;
  }
  uint8_t *p = payload + off;
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)((uint32_t)type >> (8 * i));
  memset(p + 4, 0, 4); /* diagnostics / flags: none */
  size_t plen = (size_t)off + 8;
  static const uint8_t ids[] = {IPC_DUMP_GENERATE3, IPC_DUMP_GENERATE2,
                                IPC_DUMP_GENERATE};
  int r = -EINVAL;
  for (size_t i = 0; i < sizeof(ids); i++) {
    r = command(ep, IPC_SET_DUMP, ids[i], payload, plen, reply, sizeof(reply),
                &rlen, timeout_ms, e);
    if (!is_unknown_command(r, e))
      break;
  }
  if (r < 0)
    return r;
  /* OK reply: int32 HRESULT, 0 on success. */
  struct wire_cursor c = wire_cursor(reply, rlen);
  uint32_t hr = 0;
  if (c.len >= 4)
    (void)wire_u32(&c, &hr);
  if (hr != 0) {
    const char *name = ipc_hresult_name((int32_t)hr);
    set_error(e, (int32_t)hr, "the runtime answered %s (0x%08x)",
              name ? name : "an error", hr);
    return -EPROTO;
  }
  return 0;
}
