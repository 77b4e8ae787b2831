/**
 * collectd-dotnet - plugin/ipc.c
 *
 * Diagnostic IPC client: see ipc.h for the message layout and contracts.
 */
#include "clock.h"
#include "ipc.h"
#include "wire.h"

#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
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

/* ---- discovery ---- */

/* A one-line /proc file (stat): procfs hands it out whole in the first
 * read, so a short read is the end (one read instead of two). */
static long read_proc_line(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  ssize_t n;
  do
    n = read(fd, buf, cap - 1);
  while (n < 0 && errno == EINTR);
  int e = errno;
  close(fd);
  if (n < 0)
    return -e;
  buf[n] = 0;
  return (long)n;
}

ssize_t ipc_read_at(int dirfd, const char *name, char *buf, size_t cap) {
  int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return -errno;
  size_t off = 0;
  while (off + 1 < cap) {
    ssize_t n = read(fd, buf + off, cap - 1 - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      return -e;
    }
    if (n == 0)
      break;
    off += (size_t)n;
  }
  close(fd);
  buf[off] = 0;
  return (ssize_t)off;
}

/* PF_EXITING (include/linux/sched.h), in the flags of /proc/<pid>/stat
 * (field 9): set when the task enters do_exit, before its files (the
 * listening diagnostic socket among them) are closed. */
#define PROC_PF_EXITING 0x4u

int ipc_proc_stat_parse(const char *line, uint64_t *start,
                        uint32_t *comm_hash) {
  const char *p = strrchr(line, ')');
  if (p == NULL)
    return -EINVAL;
  if (comm_hash) { /* FNV-1a of "(comm)": it changes on exec */
    uint32_t h = 2166136261u;
    for (const char *c = strchr(line, '('); c && c <= p; c++)
      h = (h ^ (uint8_t)*c) * 16777619u;
    *comm_hash = h;
  }
  p++;
  /* A zombie (exited, not yet reaped) keeps /proc/<pid> and its stale
   * diagnostic socket, but nothing listens there any more. */
  if (p[0] != ' ')
    return -EINVAL;
  if (p[1] == 'Z' || p[1] == 'X')
    return -ESRCH;
  /* after ")": field 3 (state) is the first; flags is field 9, starttime
   * field 22 */
  for (int field = 3; field < 22; field++) {
    p = strchr(p + 1, ' ');
    if (p == NULL)
      return -EINVAL;
    if (field + 1 == 9) { /* p is before field 9 */
      char *end;
      errno = 0;
      unsigned long flags = strtoul(p + 1, &end, 10);
      if (errno != 0 || end == p + 1 || *end != ' ')
        return -EINVAL;
      /* exiting: the socket closes, if it has not already; a connect gets
       * ECONNREFUSED, and the process will not come back */
      if (flags & PROC_PF_EXITING)
        return -ESRCH;
    }
  }
  char *end;
  errno = 0;
  unsigned long long v = strtoull(p + 1, &end, 10);
  if (errno != 0 || end == p + 1)
    return -EINVAL;
  *start = v;
  return 0;
}

/* ipc_proc_stat_parse of /proc/<pid>/stat: -ESRCH when the process is gone,
 * a zombie or exiting. */
static int proc_stat_read(pid_t pid, uint64_t *start, uint32_t *comm_hash) {
  char path[64], buf[1024];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  long n = read_proc_line(path, buf, sizeof(buf));
  if (n < 0)
    return n == -ENOENT ? -ESRCH : (int)n;
  return ipc_proc_stat_parse(buf, start, comm_hash);
}

static int proc_start_time(pid_t pid, uint64_t *start) {
  return proc_stat_read(pid, start, NULL);
}

/* The innermost pid of NSpid in /proc/<pid>/status (the pid the target sees
 * itself as, which names its socket). Falls back to pid. */
static pid_t proc_ns_pid(pid_t pid) {
  char path[64], buf[4096];
  snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
  if (ipc_read_at(AT_FDCWD, path, buf, sizeof(buf)) < 0)
    return pid;
  char *line = strstr(buf, "\nNSpid:");
  if (line == NULL)
    return pid;
  line += 7;
  char *eol = strchr(line, '\n');
  if (eol)
    *eol = 0;
  char *last = NULL;
  for (char *tok = strtok(line, " \t"); tok; tok = strtok(NULL, " \t"))
    last = tok;
  long v = last ? strtol(last, NULL, 10) : 0;
  return v > 0 ? (pid_t)v : pid;
}

/* One "NAME=value" variable (NUL-terminated) for ipc_environ_tmpdir: 1
 * when it is TMPDIR (out filled: the directory, or "/tmp"), else 0. */
static int tmpdir_var(const char *var, char *out, size_t cap, int *r) {
  if (strncmp(var, "TMPDIR=", 7) != 0)
    return 0;
  const char *v = var + 7;
  size_t l = strlen(v);
  while (l > 1 && v[l - 1] == '/')
    l--;
  *r = 0;
  /* as the runtime: an empty TMPDIR is /tmp; a relative one names a
   * directory we cannot know (the runtime's working directory then), and
   * nothing is looked for there */
  if (v[0] != '/' || l >= cap) {
    *r = v[0] == '/' ? -ENAMETOOLONG : 0;
    snprintf(out, cap, "/tmp");
    return 1;
  }
  memcpy(out, v, l);
  out[l] = 0;
  return 1;
}

int ipc_environ_tmpdir(const char *env, size_t len, char *out, size_t cap) {
  snprintf(out, cap, "/tmp");
  int r = 0;
  size_t start = 0;
  char var[8192];
  for (size_t i = 0; i <= len; i++) {
    if (i < len && env[i] != 0)
      continue;
    size_t n = i - start;
    if (n >= 7 && n < sizeof(var)) {
      memcpy(var, env + start, n);
      var[n] = 0;
      if (tmpdir_var(var, out, cap, &r))
        return r; /* the first one: glibc's getenv takes it */
    } else if (n >= sizeof(var) && strncmp(env + start, "TMPDIR=", 7) == 0) {
      return -ENAMETOOLONG; /* "/tmp" */
    }
    start = i + 1;
  }
  return 0;
}

/* TMPDIR from /proc/<pid>/environ (bounded reads, see ipc_environ_tmpdir),
 * else /tmp. */
static void proc_tmpdir(pid_t pid, char *out, size_t cap) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
  snprintf(out, cap, "/tmp");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  /* The environment may be large; scan it in chunks, keeping a carry of
   * one variable's worth so a TMPDIR split over two reads is found. The
   * first TMPDIR ends the scan. */
  char buf[8192 + 1];
  size_t have = 0;
  int skipping = 0; /* within a variable longer than the buffer */
  for (;;) {
    ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    have += (size_t)n;
    buf[have] = 0;
    size_t start = 0;
    for (size_t i = 0; i < have; i++) {
      if (buf[i] != 0)
        continue;
      int r;
      if (!skipping && tmpdir_var(buf + start, out, cap, &r)) {
        close(fd);
        return;
      }
      skipping = 0;
      start = i + 1;
    }
    if (start == 0 && have == sizeof(buf) - 1) {
      /* one variable longer than the buffer: a TMPDIR that long is no
       * directory a runtime could bind a socket in ("/tmp" then) */
      if (!skipping && strncmp(buf, "TMPDIR=", 7) == 0)
        break;
      skipping = 1;
      start = have;
    }
    memmove(buf, buf + start, have - start);
    have -= start;
  }
  close(fd);
}

static int same_mnt_ns(pid_t pid) {
  char a[64], b[64], path[64];
  snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)pid);
  ssize_t na = readlink(path, a, sizeof(a) - 1);
  ssize_t nb = readlink("/proc/self/ns/mnt", b, sizeof(b) - 1);
  if (na < 0 || nb < 0)
    return 1; /* cannot tell: assume ours */
  return na == nb && memcmp(a, b, (size_t)na) == 0;
}

int ipc_endpoint_alive(const struct ipc_endpoint *ep) {
  uint64_t start;
  int r = proc_start_time(ep->pid, &start);
  if (r == -ESRCH || (r == 0 && start != ep->start_time))
    return 0;
  return 1; /* alive, or cannot tell (/proc unreadable): assume so */
}

int ipc_endpoint_find(pid_t pid, struct ipc_endpoint *ep) {
  memset(ep, 0, sizeof(*ep));
  if (pid <= 0)
    return -EINVAL;
  ep->pid = pid;
  int r = proc_start_time(pid, &ep->start_time);
  if (r < 0)
    return r;
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d", (int)pid);
  struct stat st;
  if (stat(path, &st) != 0)
    return errno == ENOENT ? -ESRCH : -errno;
  ep->uid = st.st_uid;
  ep->ns_pid = proc_ns_pid(pid);
  ep->foreign_mnt_ns = !same_mnt_ns(pid);

  char tmpdir[2048];
  proc_tmpdir(pid, tmpdir, sizeof(tmpdir));
  char dir[3072];
  if (ep->foreign_mnt_ns)
    snprintf(dir, sizeof(dir), "/proc/%d/root%s", (int)pid, tmpdir);
  else
    snprintf(dir, sizeof(dir), "%s", tmpdir);

  DIR *d = opendir(dir);
  if (d == NULL)
    return errno == ENOENT ? -ENOENT : -errno;
  char prefix[64];
  int plen = snprintf(prefix, sizeof(prefix), "dotnet-diagnostic-%d-",
                      (int)ep->ns_pid);
  char best[256] = "";
  int best_exact = 0;
  time_t best_mtime = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    const char *name = de->d_name;
    if (strncmp(name, prefix, (size_t)plen) != 0)
      continue;
    char *end;
    errno = 0;
    unsigned long long key = strtoull(name + plen, &end, 10);
    if (errno != 0 || end == name + plen || strcmp(end, "-socket") != 0)
      continue;
    struct stat sst;
    if (fstatat(dirfd(d), name, &sst, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISSOCK(sst.st_mode))
      continue;
    int exact = key == ep->start_time;
    if (exact > best_exact || (exact == best_exact && sst.st_mtime > best_mtime) ||
        best[0] == 0) {
      snprintf(best, sizeof(best), "%s", name);
      best_exact = exact;
      best_mtime = sst.st_mtime;
    }
  }
  closedir(d);
  if (best[0] == 0)
    return -ENOENT;
  if ((size_t)snprintf(ep->path, sizeof(ep->path), "%s/%s", dir, best) >=
      sizeof(ep->path))
    return -ENAMETOOLONG;
  return 0;
}

/* ---- discovery with memory ----
 *
 * ipc_endpoint_find looks at one pid from scratch: stat, status, environ,
 * ns/mnt and a listing of its TMPDIR. Done for every pid on every pass
 * (every interval), that is a listing of /tmp per process on the machine.
 * A scanner keeps instead, per pid + start time, what a process cannot
 * change once started (its TMPDIR from environ, its innermost pid, its mount
 * namespace, its uid), so a pass reads only /proc/<pid>/stat (the start time:
 * identity, pid reuse, zombies) of a process it knows, and of a known
 * process without a socket only every DISC_RECHECK full passes (below). Each
 * socket directory
 * is listed at most once per pass, and not at all while its mtime says that
 * nothing was created or removed in it since a listing taken well after that
 * mtime (file times come from a coarse clock: a socket created in the same
 * tick as a listing may leave the mtime as it was, hence the margin).
 *
 * Listing /proc itself costs the kernel a lookup per process (most of a
 * pass on a host with a few hundred processes), so only every DISC_FULL-th
 * pass is full: it lists /proc, reads the stat of the processes with a
 * socket it does not stream from (pid reuse, exec, zombies) and forgets what
 * is gone. The
 * passes between are quiet: they look at every socket directory a known
 * process uses (a stat, and a listing when its mtime moved) and hand on the
 * known processes that have a socket there. A diagnostic socket appearing
 * in or vanishing from any of those directories (a .NET process starting or
 * ending, or one seen before its socket existed creating it) makes that
 * pass a full one, so a new process in a known directory is found at once;
 * one whose TMPDIR no known process shares (a new container, an
 * unusual TMPDIR, an exec with another TMPDIR) within DISC_FULL passes.
 *
 * With notification on (ipc_discovery_enable_notify), every socket
 * directory also carries an inotify watch, so a caller need not pass at
 * all while nothing happens: a diagnostic socket created, removed or
 * renamed in one of them makes the fd readable (ipc_discovery_notified
 * tells those from other files' events), and the caller forces a full
 * pass now and then for the directories nobody uses yet. */
#define DISC_MTIME_MARGIN_NS 1000000000LL
#define DISC_NAME_MAX 80
#define DISC_FULL IPC_DISCOVERY_FULL_EVERY
#define DISC_RECHECK 10

struct disc_sock {
  pid_t ns_pid;
  uint64_t key;
  time_t mtime; /* DISC_MTIME_UNKNOWN until needed (disc_sock_mtime) */
  char name[DISC_NAME_MAX];
};

#define DISC_MTIME_UNKNOWN ((time_t)-1)

struct disc_dir {
  char *path;
  struct timespec mtime; /* of the directory when last listed */
  int64_t listed_ns;     /* CLOCK_REALTIME just before that listing */
  int valid;             /* socks holds a listing */
  uint64_t sig;          /* of the listing's (pid, key) pairs */
  uint64_t full_sig;     /* sig at the last full pass */
  int err;               /* negative errno of the last look, or 0 */
  int overflow;          /* the listing held more than SOCKS_MAX names:
                            socks has the first ones (see ipc.h) */
  int wd;                /* inotify watch, or <= 0 (none) */
  int unwatchable;       /* no watch, and not for want of the directory */
  unsigned checked;      /* pass that last looked at it */
  unsigned used;         /* pass that last needed it */
  struct disc_sock *socks;
  size_t nsocks, cap;
};

struct disc_proc {
  pid_t pid, ns_pid;
  uint64_t start_time;
  uid_t uid;
  int foreign_mnt_ns;
  uint32_t comm_hash; /* of /proc/<pid>/stat's comm when filled */
  int known; /* the fields above are filled for this start time and comm */
  size_t dir;
  unsigned seen; /* pass that last saw it */
};

struct ipc_discovery {
  struct disc_proc *procs; /* sorted by pid */
  size_t nprocs, pcap;
  struct disc_dir *dirs;
  size_t ndirs, dcap;
  unsigned pass;
  unsigned full_pass; /* the last full pass (0: none yet) */
  unsigned nfull;     /* full passes begun */
  char self_mnt[64];
  ssize_t self_mnt_len;
  int notify_fd; /* inotify, or -1 */
  ipc_connected_fn connected;
  void *connected_ctx;
  ipc_discovery_log_fn log;
  void *log_ctx;
  unsigned logged; /* DISC_CAP_* said once */
};

enum { DISC_CAP_PROCS = 1, DISC_CAP_DIRS = 2, DISC_CAP_SOCKS = 4 };

void ipc_discovery_set_log(struct ipc_discovery *d, ipc_discovery_log_fn fn,
                           void *ctx) {
  d->log = fn;
  d->log_ctx = ctx;
}

/* Says once per scanner that the cap `which` was reached. */
static void disc_cap_log(struct ipc_discovery *d, unsigned which,
                         const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void disc_cap_log(struct ipc_discovery *d, unsigned which,
                         const char *fmt, ...) {
  if (d->logged & which)
    return;
  d->logged |= which;
  if (d->log == NULL)
    return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  ipc_sanitize(msg); /* a directory name is the process's TMPDIR */
  d->log(d->log_ctx, msg);
}

void ipc_discovery_set_connected(struct ipc_discovery *d, ipc_connected_fn fn,
                                 void *ctx) {
  d->connected = fn;
  d->connected_ctx = ctx;
}

struct ipc_discovery *ipc_discovery_new(void) {
  struct ipc_discovery *d = calloc(1, sizeof(*d));
  if (d != NULL)
    d->notify_fd = -1;
  return d;
}

/* What makes a socket directory's watch fire: entries coming and going
 * (a socket is created by bind, removed by unlink), and the directory
 * itself going away. */
#define DISC_WATCH_MASK                                                        \
  (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF |      \
   IN_MOVE_SELF | IN_ONLYDIR)

static void disc_dir_watch(struct ipc_discovery *d, struct disc_dir *dd) {
  if (d->notify_fd < 0 || dd->wd > 0)
    return;
  int wd = inotify_add_watch(d->notify_fd, dd->path, DISC_WATCH_MASK);
  dd->wd = wd > 0 ? wd : 0;
  /* A directory that is not there holds no socket: a runtime could not
   * make one in it. If it comes, a full pass watches it. Any other failure
   * (the watch limit, permissions): the caller passes by time. */
  dd->unwatchable = wd <= 0 && errno != ENOENT && errno != ENOTDIR;
}

int ipc_discovery_enable_notify(struct ipc_discovery *d) {
  if (d->notify_fd >= 0)
    return 0;
  d->notify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (d->notify_fd < 0)
    return -errno;
  for (size_t i = 0; i < d->ndirs; i++)
    disc_dir_watch(d, &d->dirs[i]);
  return 0;
}

int ipc_discovery_notify_fd(const struct ipc_discovery *d) {
  if (d->notify_fd < 0 || d->nfull == 0)
    return -1;
  for (size_t i = 0; i < d->ndirs; i++)
    if (d->dirs[i].unwatchable)
      return -1;
  return d->notify_fd;
}

int ipc_discovery_notified(struct ipc_discovery *d) {
  if (d->notify_fd < 0)
    return 0;
  static const char prefix[] = "dotnet-diagnostic-";
  int changed = 0;
  char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
  for (;;) {
    ssize_t n = read(d->notify_fd, buf, sizeof(buf));
    if (n <= 0)
      break; /* EAGAIN: drained */
    for (char *p = buf; p + sizeof(struct inotify_event) <= buf + n;) {
      const struct inotify_event *ev = (const struct inotify_event *)p;
      size_t len = sizeof(*ev) + ev->len;
      if (len > (size_t)(buf + n - p))
        break; /* the kernel never splits an event; be safe anyway */
      p += len;
      if (ev->mask & (IN_Q_OVERFLOW | IN_DELETE_SELF | IN_MOVE_SELF |
                      IN_UNMOUNT))
        changed = 1; /* events lost, or the directory itself changed */
      if (ev->mask & IN_IGNORED) { /* the directory went (or its mount):
                                      the next full pass watches it again */
        for (size_t i = 0; i < d->ndirs; i++)
          if (d->dirs[i].wd == ev->wd)
            d->dirs[i].wd = 0;
        changed = 1;
      }
      if (ev->len > 0 &&
          strncmp(ev->name, prefix, sizeof(prefix) - 1) == 0)
        changed = 1;
    }
  }
  return changed;
}

void ipc_discovery_want_full(struct ipc_discovery *d) { d->full_pass = 0; }

void ipc_discovery_free(struct ipc_discovery *d) {
  if (d == NULL)
    return;
  for (size_t i = 0; i < d->ndirs; i++) {
    free(d->dirs[i].path);
    free(d->dirs[i].socks);
  }
  free(d->dirs);
  free(d->procs);
  if (d->notify_fd >= 0)
    close(d->notify_fd); /* drops every watch */
  free(d);
}

static int64_t ts_ns(struct timespec ts) {
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The entry for pid (inserted, unknown, when missing), or NULL on ENOMEM. */
static struct disc_proc *disc_proc_get(struct ipc_discovery *d, pid_t pid) {
  size_t lo = 0, hi = d->nprocs;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (d->procs[mid].pid < pid)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < d->nprocs && d->procs[lo].pid == pid)
    return &d->procs[lo];
  if (d->nprocs >= IPC_DISCOVERY_PROCS_MAX) {
    disc_cap_log(d, DISC_CAP_PROCS,
                 "more than %d processes: the ones beyond are not looked at "
                 "(logged once)",
                 IPC_DISCOVERY_PROCS_MAX);
    return NULL;
  }
  if (d->nprocs == d->pcap) {
    size_t cap = d->pcap ? d->pcap * 2 : 256;
    struct disc_proc *np = realloc(d->procs, cap * sizeof(*np));
    if (np == NULL)
      return NULL;
    d->procs = np;
    d->pcap = cap;
  }
  memmove(&d->procs[lo + 1], &d->procs[lo],
          (d->nprocs - lo) * sizeof(d->procs[0]));
  d->nprocs++;
  d->procs[lo] = (struct disc_proc){.pid = pid};
  return &d->procs[lo];
}

/* Index of the directory entry for path (added when missing), -1 on
 * ENOMEM, -2 when IPC_DISCOVERY_DIRS_MAX directories are held. */
static long disc_dir_index(struct ipc_discovery *d, const char *path) {
  for (size_t i = 0; i < d->ndirs; i++)
    if (strcmp(d->dirs[i].path, path) == 0)
      return (long)i;
  if (d->ndirs >= IPC_DISCOVERY_DIRS_MAX) {
    disc_cap_log(d, DISC_CAP_DIRS,
                 "processes use more than %d distinct TMPDIRs: those beyond "
                 "(the first: %s) are not listed nor watched; their "
                 "processes' sockets are looked up by name at every full "
                 "pass (logged once)",
                 IPC_DISCOVERY_DIRS_MAX, path);
    return -2;
  }
  if (d->ndirs == d->dcap) {
    size_t cap = d->dcap ? d->dcap * 2 : 8;
    struct disc_dir *nd = realloc(d->dirs, cap * sizeof(*nd));
    if (nd == NULL)
      return -1;
    d->dirs = nd;
    d->dcap = cap;
  }
  char *p = strdup(path);
  if (p == NULL)
    return -1;
  d->dirs[d->ndirs] = (struct disc_dir){.path = p};
  disc_dir_watch(d, &d->dirs[d->ndirs]);
  return (long)d->ndirs++;
}

static int disc_same_mnt_ns(struct ipc_discovery *d, pid_t pid) {
  char a[64], path[64];
  snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)pid);
  ssize_t na = readlink(path, a, sizeof(a) - 1);
  if (na < 0 || d->self_mnt_len < 0)
    return 1; /* cannot tell: assume ours */
  return na == d->self_mnt_len && memcmp(a, d->self_mnt, (size_t)na) == 0;
}

/* Fills what does not change while the process lives. -ENOSPC when its
 * directory found no room (dir[cap] holds it then; p stays unknown). */
static int disc_proc_fill(struct ipc_discovery *d, struct disc_proc *p,
                          char *dir, size_t dcap) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d", (int)p->pid);
  struct stat st;
  if (stat(path, &st) != 0)
    return errno == ENOENT ? -ESRCH : -errno;
  p->uid = st.st_uid;
  p->ns_pid = proc_ns_pid(p->pid);
  p->foreign_mnt_ns = !disc_same_mnt_ns(d, p->pid);
  char tmpdir[2048];
  proc_tmpdir(p->pid, tmpdir, sizeof(tmpdir));
  if (p->foreign_mnt_ns)
    snprintf(dir, dcap, "/proc/%d/root%s", (int)p->pid, tmpdir);
  else
    snprintf(dir, dcap, "%s", tmpdir);
  long i = disc_dir_index(d, dir); /* may move d->dirs, not d->procs */
  if (i < 0)
    return i == -2 ? -ENOSPC : -ENOMEM;
  p->dir = (size_t)i;
  p->known = 1;
  return 0;
}

static int sock_cmp(const void *a, const void *b) {
  pid_t x = ((const struct disc_sock *)a)->ns_pid;
  pid_t y = ((const struct disc_sock *)b)->ns_pid;
  return (x > y) - (x < y);
}

/* Lists the directory's diagnostic sockets unless the listing held is
 * still good (see above). */
static void disc_dir_refresh(struct ipc_discovery *d, struct disc_dir *dd) {
  dd->used = d->pass;
  if (dd->checked == d->pass)
    return;
  dd->checked = d->pass;
  struct stat st;
  if (stat(dd->path, &st) != 0) {
    dd->err = errno == ENOENT ? -ENOENT : -errno;
    dd->valid = 0;
    dd->nsocks = 0;
    dd->sig = (uint64_t)(int64_t)dd->err; /* a lasting error is no change */
    return;
  }
  if (dd->valid && st.st_mtim.tv_sec == dd->mtime.tv_sec &&
      st.st_mtim.tv_nsec == dd->mtime.tv_nsec &&
      dd->listed_ns - ts_ns(st.st_mtim) >= DISC_MTIME_MARGIN_NS)
    return;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  DIR *dir = opendir(dd->path);
  if (dir == NULL) {
    dd->err = errno == ENOENT ? -ENOENT : -errno;
    dd->valid = 0;
    dd->nsocks = 0;
    dd->sig = (uint64_t)(int64_t)dd->err;
    return;
  }
  dd->nsocks = 0;
  dd->err = 0;
  dd->overflow = 0;
  /* the signature covers every name listed, kept or not (a sum: the order
   * of the listing does not matter), so that a socket coming or going
   * beyond the cap still makes a full pass */
  uint64_t h = 0, count = 0;
  static const char prefix[] = "dotnet-diagnostic-";
  struct dirent *de;
  while ((de = readdir(dir)) != NULL) {
    const char *name = de->d_name;
    if (strncmp(name, prefix, sizeof(prefix) - 1) != 0 ||
        strlen(name) >= DISC_NAME_MAX)
      continue;
    if (de->d_type != DT_SOCK && de->d_type != DT_UNKNOWN)
      continue;
    const char *p = name + sizeof(prefix) - 1;
    char *end;
    errno = 0;
    long ns_pid = strtol(p, &end, 10);
    if (errno != 0 || end == p || *end != '-' || ns_pid <= 0 || ns_pid > INT_MAX)
      continue;
    p = end + 1;
    errno = 0;
    unsigned long long key = strtoull(p, &end, 10);
    if (errno != 0 || end == p || strcmp(end, "-socket") != 0)
      continue;
    /* the type from the listing where the file system gives it: a /tmp
     * with hundreds of stale sockets is listed again whenever it changed,
     * and a stat of each cost more than the listing. Their times are
     * wanted only to choose among several sockets of one pid. */
    struct stat sst;
    time_t mtime = DISC_MTIME_UNKNOWN;
    if (de->d_type == DT_UNKNOWN) {
      if (fstatat(dirfd(dir), name, &sst, AT_SYMLINK_NOFOLLOW) != 0 ||
          !S_ISSOCK(sst.st_mode))
        continue;
      mtime = sst.st_mtime;
    }
    uint64_t v[2] = {(uint64_t)ns_pid, key}, eh = 1469598103934665603ULL;
    const unsigned char *b = (const unsigned char *)v;
    for (size_t k = 0; k < sizeof(v); k++) /* FNV-1a of the pair */
      eh = (eh ^ b[k]) * 1099511628211ULL;
    h += eh;
    count++;
    if (dd->nsocks >= IPC_DISCOVERY_SOCKS_MAX) {
      if (!dd->overflow)
        disc_cap_log(d, DISC_CAP_SOCKS,
                     "more than %d diagnostic socket names in %s: beyond "
                     "them each process's socket is looked up by its own "
                     "name (logged once)",
                     IPC_DISCOVERY_SOCKS_MAX, dd->path);
      dd->overflow = 1;
      continue;
    }
    if (dd->nsocks == dd->cap) {
      size_t cap = dd->cap ? dd->cap * 2 : 16;
      struct disc_sock *ns = realloc(dd->socks, cap * sizeof(*ns));
      if (ns == NULL)
        break; /* keep what fits; not valid, so listed again next pass */
      dd->socks = ns;
      dd->cap = cap;
    }
    struct disc_sock *s = &dd->socks[dd->nsocks++];
    s->ns_pid = (pid_t)ns_pid;
    s->key = key;
    s->mtime = mtime;
    snprintf(s->name, sizeof(s->name), "%s", name);
  }
  closedir(dir);
  if (dd->nsocks > 1) /* socks is NULL while nothing was ever listed */
    qsort(dd->socks, dd->nsocks, sizeof(dd->socks[0]), sock_cmp);
  dd->sig = h ^ (count * 0x9E3779B97F4A7C15ULL);
  dd->mtime = st.st_mtim;
  dd->listed_ns = ts_ns(now);
  dd->valid = de == NULL; /* a listing cut short is taken again next pass */
}

/* The first socket named for ns_pid in a listing (sorted by pid: a /tmp
 * full of stale sockets costs a lookup per process, not a scan), or
 * nsocks. */
static size_t disc_first_sock(const struct disc_dir *dd, pid_t ns_pid) {
  size_t lo = 0, hi = dd->nsocks;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (dd->socks[mid].ns_pid < ns_pid)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Whether dir holds a socket named as the runtime of ns_pid started at
 * start_time names its own (name[cap] filled then): one lstat, not a
 * listing. */
static int disc_exact_sock(const char *dir, pid_t ns_pid, uint64_t start_time,
                           char *name, size_t cap) {
  char path[PATH_MAX];
  struct stat st;
  if ((size_t)snprintf(name, cap, "dotnet-diagnostic-%d-%llu-socket",
                       (int)ns_pid, (unsigned long long)start_time) >= cap ||
      (size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
    return 0;
  return lstat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* Whether p's directory holds a socket named for it (marks the directory
 * used in this pass). */
static int disc_has_socket(struct ipc_discovery *d, const struct disc_proc *p) {
  struct disc_dir *dd = &d->dirs[p->dir];
  disc_dir_refresh(d, dd);
  size_t i = disc_first_sock(dd, p->ns_pid);
  if (i < dd->nsocks && dd->socks[i].ns_pid == p->ns_pid)
    return 1;
  char name[DISC_NAME_MAX];
  return dd->overflow && disc_exact_sock(dd->path, p->ns_pid, p->start_time,
                                         name, sizeof(name));
}

/* A listed socket's modification time (0 when it cannot be had). */
static time_t disc_sock_mtime(const struct disc_dir *dd, struct disc_sock *s) {
  if (s->mtime == DISC_MTIME_UNKNOWN) {
    char path[PATH_MAX];
    struct stat st;
    s->mtime = (size_t)snprintf(path, sizeof(path), "%s/%s", dd->path,
                                s->name) < sizeof(path) &&
                       lstat(path, &st) == 0
                   ? st.st_mtime
                   : 0;
  }
  return s->mtime;
}

/* The endpoint of a known process, from its directory's listing. */
static int disc_endpoint(struct ipc_discovery *d, const struct disc_proc *p,
                         struct ipc_endpoint *ep) {
  struct disc_dir *dd = &d->dirs[p->dir];
  disc_dir_refresh(d, dd);
  if (dd->err < 0)
    return dd->err;
  struct disc_sock *best = NULL;
  for (size_t i = disc_first_sock(dd, p->ns_pid);
       i < dd->nsocks && dd->socks[i].ns_pid == p->ns_pid; i++) {
    struct disc_sock *s = &dd->socks[i];
    /* as ipc_endpoint_find: the exact key wins, then the newest */
    int exact = s->key == p->start_time;
    int best_exact = best && best->key == p->start_time;
    if (best == NULL || exact > best_exact ||
        (exact == best_exact &&
         disc_sock_mtime(dd, s) > disc_sock_mtime(dd, best)))
      best = s;
  }
  /* a listing cut at the cap may lack the process's own socket */
  struct disc_sock own = {.ns_pid = p->ns_pid, .key = p->start_time};
  if ((best == NULL || best->key != p->start_time) && dd->overflow &&
      disc_exact_sock(dd->path, p->ns_pid, p->start_time, own.name,
                      sizeof(own.name)))
    best = &own;
  if (best == NULL)
    return -ENOENT;
  memset(ep, 0, sizeof(*ep));
  ep->pid = p->pid;
  ep->ns_pid = p->ns_pid;
  ep->start_time = p->start_time;
  ep->uid = p->uid;
  ep->foreign_mnt_ns = p->foreign_mnt_ns;
  if ((size_t)snprintf(ep->path, sizeof(ep->path), "%s/%s", dd->path,
                       best->name) >= sizeof(ep->path))
    return -ENAMETOOLONG;
  return 0;
}

/* A quiet pass (see above): 1 when it found a reason for a full one
 * (nothing handed on then), else 0 or cb's non-zero result. */
static int disc_quiet_pass(struct ipc_discovery *d, ipc_endpoint_cb cb,
                           void *ctx) {
  for (size_t i = 0; i < d->ndirs; i++) {
    struct disc_dir *dd = &d->dirs[i];
    disc_dir_refresh(d, dd);
    if (dd->sig != dd->full_sig)
      return 1;
  }
  for (size_t i = 0; i < d->nprocs; i++) {
    struct disc_proc *p = &d->procs[i];
    if (!p->known || !disc_has_socket(d, p))
      continue;
    if (d->connected == NULL ||
        !d->connected(d->connected_ctx, p->pid, p->start_time)) {
      uint64_t start;
      uint32_t comm;
      if (proc_stat_read(p->pid, &start, &comm) != 0 ||
          start != p->start_time || comm != p->comm_hash)
        continue; /* gone or replaced: the next full pass sorts it out */
    }
    struct ipc_endpoint ep;
    if (disc_endpoint(d, p, &ep) != 0)
      continue;
    int ret = cb(ctx, &ep);
    if (ret != 0)
      return ret;
  }
  return 0;
}

int ipc_discovery_scan(struct ipc_discovery *d, ipc_endpoint_cb cb, void *ctx) {
  d->pass++;
  if (d->full_pass != 0 && d->pass - d->full_pass < DISC_FULL) {
    int r = disc_quiet_pass(d, cb, ctx);
    if (r != 1)
      return r;
  }
  DIR *dir = opendir("/proc");
  if (dir == NULL)
    return -errno;
  d->nfull++;
  d->self_mnt_len = readlink("/proc/self/ns/mnt", d->self_mnt,
                             sizeof(d->self_mnt) - 1);
  int ret = 0;
  struct dirent *de;
  while ((de = readdir(dir)) != NULL) {
    char *end;
    long pid = strtol(de->d_name, &end, 10);
    if (*end != 0 || pid <= 0 || pid > INT_MAX)
      continue;
    struct disc_proc *p = disc_proc_get(d, (pid_t)pid);
    if (p == NULL)
      continue;
    p->seen = d->pass;
    /* A process looked at before that has no socket is, nearly always,
     * just not .NET: its stat is read again only every DISC_RECHECK full
     * passes (staggered by pid), for an exec into .NET with a TMPDIR no
     * known process uses. Its socket appearing in its directory brings it
     * back at once. */
    if (p->known && (d->nfull + (unsigned)pid) % DISC_RECHECK != 0 &&
        !disc_has_socket(d, p))
      continue;
    uint64_t start = p->start_time;
    uint32_t comm = p->comm_hash;
    if (p->known && d->connected != NULL &&
        d->connected(d->connected_ctx, p->pid, p->start_time)) {
      /* streaming to the caller: alive, and the same process */
    } else if (proc_stat_read((pid_t)pid, &start, &comm) != 0) {
      continue; /* gone, or a zombie */
    }
    /* an exec keeps pid and start time but may bring another TMPDIR or
     * mount namespace: a new comm says so, and we look again */
    struct ipc_endpoint ep;
    if (!p->known || p->start_time != start || p->comm_hash != comm) {
      p->known = 0;
      p->start_time = start;
      p->comm_hash = comm;
      char pdir[3072];
      int fr = disc_proc_fill(d, p, pdir, sizeof(pdir));
      if (fr == -ENOSPC) {
        /* no room for its directory: its own socket name, looked up
         * again at every full pass */
        p->known = 0;
        char name[DISC_NAME_MAX];
        if (!disc_exact_sock(pdir, p->ns_pid, start, name, sizeof(name)))
          continue;
        ep = (struct ipc_endpoint){.pid = p->pid,
                                   .ns_pid = p->ns_pid,
                                   .start_time = start,
                                   .uid = p->uid,
                                   .foreign_mnt_ns = p->foreign_mnt_ns};
        if ((size_t)snprintf(ep.path, sizeof(ep.path), "%s/%s", pdir, name) >=
            sizeof(ep.path))
          continue;
        ret = cb(ctx, &ep);
        if (ret != 0)
          break;
        continue;
      }
      if (fr != 0) {
        p->known = 0;
        continue;
      }
    }
    if (disc_endpoint(d, p, &ep) != 0)
      continue;
    ret = cb(ctx, &ep);
    if (ret != 0)
      break;
  }
  closedir(dir);
  if (ret != 0)
    return ret; /* a partial pass: forget nothing, full again next time */
  d->full_pass = d->pass;
  for (size_t i = 0; i < d->ndirs; i++) {
    d->dirs[i].full_sig = d->dirs[i].sig;
    disc_dir_watch(d, &d->dirs[i]); /* one missing before (not there yet) */
  }
  /* forget processes that are gone, then directories no process needs
   * (every known process seen in this pass marked its directory used) */
  size_t o = 0;
  for (size_t i = 0; i < d->nprocs; i++)
    if (d->procs[i].seen == d->pass)
      d->procs[o++] = d->procs[i];
  d->nprocs = o;
  size_t *map = d->ndirs > 0 ? malloc(d->ndirs * sizeof(*map)) : NULL;
  if (map == NULL)
    return 0; /* keep them all until a later pass */
  o = 0;
  for (size_t i = 0; i < d->ndirs; i++) {
    if (d->dirs[i].used == d->pass) {
      map[i] = o;
      d->dirs[o++] = d->dirs[i];
    } else {
      map[i] = SIZE_MAX;
      /* one inode seen through two paths shares a watch: keep it while
       * a directory kept uses it */
      int shared = 0;
      for (size_t k = 0; k < d->ndirs && d->dirs[i].wd > 0; k++)
        shared |= k != i && d->dirs[k].used == d->pass &&
                  d->dirs[k].wd == d->dirs[i].wd;
      if (d->dirs[i].wd > 0 && !shared)
        inotify_rm_watch(d->notify_fd, d->dirs[i].wd);
      free(d->dirs[i].path);
      free(d->dirs[i].socks);
    }
  }
  d->ndirs = o;
  /* A process seen in this pass whose stat could not be read (a zombie,
   * or one that ended during the pass) on its DISC_RECHECK turn did not
   * mark its directory used: that directory may be gone now. Such a
   * process becomes unknown (a later pass looks it up again), never an
   * index into the shrunk array. */
  for (size_t i = 0; i < d->nprocs; i++) {
    struct disc_proc *p = &d->procs[i];
    if (!p->known)
      continue;
    if (map[p->dir] == SIZE_MAX)
      p->known = 0;
    else
      p->dir = map[p->dir];
  }
  free(map);
  return ret;
}

unsigned ipc_discovery_full_passes(const struct ipc_discovery *d) {
  return d->nfull;
}

int ipc_endpoint_list(ipc_endpoint_cb cb, void *ctx) {
  struct ipc_discovery *d = ipc_discovery_new();
  if (d == NULL)
    return -ENOMEM;
  int ret = ipc_discovery_scan(d, cb, ctx);
  ipc_discovery_free(d);
  return ret;
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
