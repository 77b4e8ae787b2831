/**
 * collectd-dotnet - plugin/listen.c
 *
 * The reverse diagnostic port (see listen.h): the socket made safely, the
 * listener's thread (accept, advertise under a deadline, one waiting
 * connection per runtime cookie, the runtimes that went forgotten) and the
 * take that hands a waiting connection to the IPC engine.
 *
 *   <Plugin dotnet>
 *     Listen "/run/collectd-dotnet/diag.sock"
 *   </Plugin>
 *   app:
 * DOTNET_DiagnosticPorts=/run/collectd-dotnet/diag.sock,connect,nosuspend
 *
 * Threads: the listener's thread owns the listening socket and the
 * connections not yet advertised; the runtimes table (and each runtime's
 * waiting connection) is under `lock`, which listen_take and listen_list
 * take for a moment; a taker waits on `cond`, signalled when a connection
 * comes in.
 */
#include "listen.h"
#include "clock.h"
#include "discovery.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const uint8_t advertise_magic[8] = "ADVR_V1";

int listen_advertise_decode(const uint8_t *p, size_t n, uint8_t cookie[16],
                            uint64_t *pid) {
  if (n != LISTEN_ADVERTISE_SIZE ||
      memcmp(p, advertise_magic, sizeof(advertise_magic)) != 0 ||
      wire_le16(p + 32) != 0)
    return -EBADMSG;
  memcpy(cookie, p + 8, 16);
  *pid = wire_le64(p + 24);
  return 0;
}

/* What was said once (each hostile kind is logged once per listener). */
enum {
  SAID_MALFORMED = 1u << 0,
  SAID_SILENT = 1u << 1,
  SAID_PENDING_CAP = 1u << 2,
  SAID_RUNTIMES_CAP = 1u << 3,
  SAID_PID_CLAIM = 1u << 4,
  SAID_COOKIE = 1u << 5,
  SAID_UNSOLICITED = 1u << 6,
  SAID_EARLY_EOF = 1u << 7,
  SAID_ACCEPT = 1u << 8,
};

/* A connection not yet advertised: the thread's own. */
struct pending {
  int fd;
  int64_t deadline;
  size_t got;
  uint8_t buf[LISTEN_ADVERTISE_SIZE];
  struct ucred cred;
};

/* A runtime (under lock). */
struct runtime {
  struct listen_runtime info;
  struct ipc_endpoint ep; /* made once, when it came (listen_endpoint) */
  int fd;                 /* its connection waiting for a command, or -1 */
  int64_t since_ms;       /* when fd last became -1 */
};

struct listen {
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  char name[NAME_MAX + 1];
  int dirfd; /* the socket's directory (O_PATH) */
  dev_t dev;
  ino_t ino; /* the socket we made, removed only if still there */
  int lfd;
  int stop_fd, event_fd;
  size_t max_runtimes, max_pending;
  int advertise_ms, gone_ms;
  char dump_there[108], dump_here[160];
  listen_log_fn log;
  void *log_ctx;
  pthread_t thread;
  int thread_started;

  /* the thread's own */
  struct pending *pending;
  size_t npending;

  pthread_mutex_t lock;
  pthread_cond_t cond;
  int stopping;
  struct runtime *rt;
  size_t nrt;
  unsigned said;
  struct listen_stats stats;
};

static void say(struct listen *l, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(struct listen *l, int level, const char *fmt, ...) {
  if (l->log == NULL)
    return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  ipc_sanitize(msg);
  l->log(l->log_ctx, level, msg);
}

/* Logs the first time `which` happens (under lock); counts always. */
static int first_time(struct listen *l, unsigned which) {
  int first = (l->said & which) == 0;
  l->said |= which;
  return first;
}

static void cookie_hex(const uint8_t c[16], char out[33]) {
  for (int i = 0; i < 16; i++)
    snprintf(out + 2 * i, 3, "%02x", c[i]);
}

/* ---- the socket ---- */

static void set_err(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, cap, fmt, ap);
  va_end(ap);
}

/* Splits l->path into its directory (opened into l->dirfd) and name. */
static int open_dir(struct listen *l, char *err, size_t cap) {
  const char *slash = strrchr(l->path, '/');
  if (l->path[0] != '/' || slash == NULL || slash[1] == 0 ||
      strcmp(slash + 1, ".") == 0 || strcmp(slash + 1, "..") == 0) {
    set_err(err, cap, "Listen \"%s\": not an absolute path to a file", l->path);
    return -EINVAL;
  }
  snprintf(l->name, sizeof(l->name), "%s", slash + 1);
  char dir[sizeof(l->path)];
  size_t dl = (size_t)(slash - l->path);
  memcpy(dir, l->path, dl);
  dir[dl] = 0;
  l->dirfd = open(dl ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (l->dirfd < 0) {
    int r = -errno;
    set_err(err, cap, "Listen \"%s\": cannot open its directory: %s", l->path,
            strerror(-r));
    return r;
  }
  struct stat st;
  if (fstat(l->dirfd, &st) != 0) {
    int r = -errno;
    set_err(err, cap, "Listen \"%s\": %s", l->path, strerror(-r));
    return r;
  }
  if (st.st_uid != 0 && st.st_uid != geteuid()) {
    set_err(err, cap,
            "Listen \"%s\": its directory belongs to uid %u, not to us: "
            "refusing it (its owner could replace our socket)",
            l->path, (unsigned)st.st_uid);
    return -EPERM;
  }
  if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
    say(l, 4,
        "Listen \"%s\": its directory is writable by everyone (mode %04o): "
        "anyone may replace the socket; a directory of its own is safer",
        l->path, (unsigned)(st.st_mode & 07777));
  return 0;
}

/* An old socket of ours at the name is removed; anything else refused. */
static int clear_name(struct listen *l, char *err, size_t cap) {
  struct stat st;
  if (fstatat(l->dirfd, l->name, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return errno == ENOENT ? 0 : -errno;
  if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid()) {
    set_err(err, cap,
            "Listen \"%s\": something else is there (%s of uid %u): "
            "refusing to replace it",
            l->path,
            S_ISLNK(st.st_mode)    ? "a symlink"
            : S_ISSOCK(st.st_mode) ? "a socket"
            : S_ISDIR(st.st_mode)  ? "a directory"
                                   : "a file",
            (unsigned)st.st_uid);
    return -EEXIST;
  }
  if (unlinkat(l->dirfd, l->name, 0) != 0 && errno != ENOENT) {
    int r = -errno;
    set_err(err, cap, "Listen \"%s\": cannot remove the old socket: %s",
            l->path, strerror(-r));
    return r;
  }
  return 0;
}

/* Binds the socket in a private directory beside the name (0700, ours),
 * gives it its group and mode there, and renames it into place (never
 * over anything). */
static int make_socket(struct listen *l, gid_t gid, mode_t mode, char *err,
                       size_t cap) {
  char tmp[64];
  int tfd = -1, r = 0;
  unsigned seed = (unsigned)getpid() ^ (unsigned)clock_mono_ms();
  for (int tries = 0;; tries++) {
    snprintf(tmp, sizeof(tmp), ".collectd-dotnet-%d-%08x", (int)getpid(),
             seed = seed * 1103515245u + 12345u);
    if (mkdirat(l->dirfd, tmp, 0700) == 0)
      break;
    if (errno != EEXIST || tries > 8) {
      r = -errno;
      set_err(err, cap, "Listen \"%s\": cannot make a directory beside it: %s",
              l->path, strerror(-r));
      return r;
    }
  }
  tfd = openat(l->dirfd, tmp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  l->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (tfd < 0 || l->lfd < 0) {
    r = -errno;
    set_err(err, cap, "Listen \"%s\": %s", l->path, strerror(-r));
    goto out;
  }
  snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/s", tfd);
  if (bind(l->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
      (gid != (gid_t)-1 &&
       fchownat(tfd, "s", (uid_t)-1, gid, AT_SYMLINK_NOFOLLOW) != 0) ||
      fchmodat(tfd, "s", mode, 0) != 0 || listen(l->lfd, 128) != 0) {
    r = -errno;
    set_err(err, cap, "Listen \"%s\": cannot make the socket: %s", l->path,
            strerror(-r));
    goto out;
  }
  if (renameat2(tfd, "s", l->dirfd, l->name, RENAME_NOREPLACE) != 0) {
    r = -errno;
    set_err(err, cap, "Listen \"%s\": cannot put the socket in place: %s",
            l->path, strerror(-r));
    goto out;
  }
  struct stat st;
  if (fstatat(l->dirfd, l->name, &st, AT_SYMLINK_NOFOLLOW) == 0)
    l->dev = st.st_dev, l->ino = st.st_ino;
out:
  if (tfd >= 0) {
    unlinkat(tfd, "s", 0);
    close(tfd);
  }
  unlinkat(l->dirfd, tmp, AT_REMOVEDIR);
  return r;
}

/* ---- the runtimes (under lock) ---- */

static struct runtime *rt_find(struct listen *l, const uint8_t cookie[16]) {
  for (size_t i = 0; i < l->nrt; i++)
    if (memcmp(l->rt[i].info.cookie, cookie, 16) == 0)
      return &l->rt[i];
  return NULL;
}

static void rt_drop(struct listen *l, size_t i) {
  if (l->rt[i].fd >= 0)
    close(l->rt[i].fd);
  memmove(&l->rt[i], &l->rt[i + 1], (l->nrt - i - 1) * sizeof(l->rt[0]));
  l->nrt--;
}

/* The peer's claim of its pid, checked where the kernel tells us its pid:
 * the innermost pid of its NSpid must be the claim. */
static int claim_ok(const struct ucred *cred, uint64_t claimed) {
  if (cred->pid <= 0)
    return 1; /* beyond our pid namespace: nothing to check against */
  struct ipc_endpoint ep;
  if (discovery_process(cred->pid, &ep, "x") != 0)
    return 0;
  return ep.ns_pid > 0 && (uint64_t)ep.ns_pid == claimed;
}

/* The same peer as the cookie's first connection: its pid where the
 * kernel tells it, else its uid and gid. */
static int same_peer(const struct listen_runtime *a, const struct ucred *c) {
  if (a->pid > 0 || c->pid > 0)
    return a->pid == c->pid;
  return a->uid == c->uid && a->gid == c->gid;
}

/* A complete advertise on p: the connection joins its runtime. */
static void advertised(struct listen *l, struct pending *p, int64_t now) {
  uint8_t cookie[16];
  uint64_t pid;
  int fd = p->fd;
  p->fd = -1;
  int bad = listen_advertise_decode(p->buf, sizeof(p->buf), cookie, &pid);
  int claimed = bad || claim_ok(&p->cred, pid); /* /proc: not under lock */
  /* its endpoint, should it be new: /proc read once, not at every scan */
  struct listen_runtime info = {.claimed_pid = pid,
                                .pid = p->cred.pid > 0 ? p->cred.pid : 0,
                                .uid = p->cred.uid,
                                .gid = p->cred.gid,
                                .first_ms = now};
  memcpy(info.cookie, cookie, 16);
  struct ipc_endpoint ep;
  if (!bad && claimed)
    listen_endpoint(l, &info, &ep);
  pthread_mutex_lock(&l->lock);
  if (bad) {
    l->stats.malformed++;
    if (first_time(l, SAID_MALFORMED))
      say(l, 4,
          "Listen \"%s\": a connection from pid %d uid %u sent no valid "
          "advertise: closed (further ones are not logged)",
          l->path, (int)p->cred.pid, (unsigned)p->cred.uid);
    goto refuse;
  }
  if (!claimed) {
    l->stats.refused++;
    if (first_time(l, SAID_PID_CLAIM))
      say(l, 4,
          "Listen \"%s\": pid %d (uid %u) advertised itself as pid %llu, "
          "which it is not in its namespace: refused (further ones are "
          "not logged)",
          l->path, (int)p->cred.pid, (unsigned)p->cred.uid,
          (unsigned long long)pid);
    goto refuse;
  }
  struct runtime *rt = rt_find(l, cookie);
  if (rt != NULL && !same_peer(&rt->info, &p->cred)) {
    l->stats.refused++;
    if (first_time(l, SAID_COOKIE))
      say(l, 4,
          "Listen \"%s\": pid %d (uid %u) advertised the cookie of pid %d "
          "(uid %u): refused (further ones are not logged)",
          l->path, (int)p->cred.pid, (unsigned)p->cred.uid, (int)rt->info.pid,
          (unsigned)rt->info.uid);
    goto refuse;
  }
  int fresh = rt == NULL;
  if (fresh) {
    if (l->nrt >= l->max_runtimes) {
      l->stats.over_cap++;
      if (first_time(l, SAID_RUNTIMES_CAP))
        say(l, 4,
            "Listen \"%s\": %zu runtimes connected: a new one (pid %d uid "
            "%u) is refused until one goes (further ones are not logged)",
            l->path, l->nrt, (int)p->cred.pid, (unsigned)p->cred.uid);
      goto refuse;
    }
    rt = &l->rt[l->nrt++];
    memset(rt, 0, sizeof(*rt));
    rt->info = info;
    rt->ep = ep;
    rt->fd = -1;
    char hex[33];
    cookie_hex(cookie, hex);
    say(l, 6, "Listen \"%s\": runtime %s connected: pid %llu (%d here), uid %u",
        l->path, hex, (unsigned long long)pid, (int)rt->info.pid,
        (unsigned)rt->info.uid);
  }
  if (rt->fd >= 0) /* an older one it gave up (it keeps one at a time) */
    close(rt->fd);
  rt->fd = fd;
  l->stats.advertised++;
  pthread_cond_broadcast(&l->cond);
  pthread_mutex_unlock(&l->lock);
  if (fresh) {
    uint64_t one = 1;
    ssize_t n = write(l->event_fd, &one, sizeof(one));
    (void)n; /* a counter at its maximum wakes as well */
  }
  return;
refuse:
  pthread_mutex_unlock(&l->lock);
  close(fd);
}

/* A waiting connection is readable: the runtime closed it (it exits: a
 * live runtime keeps its waiting connection open; it is forgotten at once,
 * so that nobody waits for its next connection) or sent what it never
 * sends unasked (closed). Under lock. */
static void waiting_event(struct listen *l, struct runtime *rt, int64_t now) {
  uint8_t b;
  ssize_t n = recv(rt->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  if (n <= 0) {
    char hex[33];
    cookie_hex(rt->info.cookie, hex);
    say(l, 7,
        "Listen \"%s\": runtime %s (pid %llu) closed its connection: gone",
        l->path, hex, (unsigned long long)rt->info.claimed_pid);
    rt_drop(l, (size_t)(rt - l->rt));
    return;
  }
  if (n > 0 && first_time(l, SAID_UNSOLICITED)) {
    char hex[33];
    cookie_hex(rt->info.cookie, hex);
    say(l, 4,
        "Listen \"%s\": runtime %s (pid %d) sent data unasked: its "
        "connection is closed (further ones are not logged)",
        l->path, hex, (int)rt->info.pid);
  }
  close(rt->fd);
  rt->fd = -1;
  rt->since_ms = now;
}

/* Runtimes without a waiting connection for gone_ms are forgotten. */
static void forget_gone(struct listen *l, int64_t now) {
  for (size_t i = l->nrt; i-- > 0;) {
    struct runtime *rt = &l->rt[i];
    if (rt->fd < 0 && now - rt->since_ms >= l->gone_ms) {
      char hex[33];
      cookie_hex(rt->info.cookie, hex);
      say(l, 7, "Listen \"%s\": runtime %s (pid %llu) gone", l->path, hex,
          (unsigned long long)rt->info.claimed_pid);
      rt_drop(l, i);
    }
  }
}

/* ---- the thread ---- */

static void accept_all(struct listen *l, int64_t now) {
  for (;;) {
    int fd = accept4(l->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        pthread_mutex_lock(&l->lock);
        int first = first_time(l, SAID_ACCEPT);
        pthread_mutex_unlock(&l->lock);
        if (first)
          say(l, 3, "Listen \"%s\": accept: %s", l->path, strerror(errno));
      }
      return;
    }
    struct ucred cred = {0};
    socklen_t cl = sizeof(cred);
    int ok = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 &&
             cl == sizeof(cred);
    pthread_mutex_lock(&l->lock);
    l->stats.accepted++;
    if (ok && l->npending >= l->max_pending) {
      ok = 0;
      l->stats.over_cap++;
      if (first_time(l, SAID_PENDING_CAP))
        say(l, 4,
            "Listen \"%s\": %zu connections have not advertised yet: more "
            "are closed at once (pid %d uid %u; further ones are not "
            "logged)",
            l->path, l->npending, (int)cred.pid, (unsigned)cred.uid);
    }
    pthread_mutex_unlock(&l->lock);
    if (!ok) {
      close(fd);
      continue;
    }
    struct pending *p = &l->pending[l->npending++];
    *p = (struct pending){
        .fd = fd, .deadline = now + l->advertise_ms, .cred = cred};
  }
}

/* Reads what p's peer sent of its advertise: 1 while it is incomplete,
 * 0 when done with p (advertised or closed). */
static int pending_read(struct listen *l, struct pending *p, int64_t now) {
  for (;;) {
    ssize_t n =
        recv(p->fd, p->buf + p->got, sizeof(p->buf) - p->got, MSG_DONTWAIT);
    if (n > 0) {
      p->got += (size_t)n;
      if (p->got == sizeof(p->buf)) {
        advertised(l, p, now);
        return 0;
      }
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return 1;
    pthread_mutex_lock(&l->lock);
    l->stats.malformed++;
    if (first_time(l, SAID_EARLY_EOF))
      say(l, 4,
          "Listen \"%s\": a connection from pid %d uid %u closed after %zu "
          "bytes of its advertise (further ones are not logged)",
          l->path, (int)p->cred.pid, (unsigned)p->cred.uid, p->got);
    pthread_mutex_unlock(&l->lock);
    close(p->fd);
    p->fd = -1;
    return 0;
  }
}

static void pending_expire(struct listen *l, struct pending *p) {
  pthread_mutex_lock(&l->lock);
  l->stats.timed_out++;
  if (first_time(l, SAID_SILENT))
    say(l, 4,
        "Listen \"%s\": a connection from pid %d uid %u sent %zu of the %d "
        "bytes of its advertise in %d ms: closed (further ones are not "
        "logged)",
        l->path, (int)p->cred.pid, (unsigned)p->cred.uid, p->got,
        LISTEN_ADVERTISE_SIZE, l->advertise_ms);
  pthread_mutex_unlock(&l->lock);
  close(p->fd);
  p->fd = -1;
}

static void *listen_main(void *arg) {
  struct listen *l = arg;
  size_t cap = 2 + l->max_pending + l->max_runtimes;
  struct pollfd *pfd = calloc(cap, sizeof(*pfd));
  uint8_t(*cookies)[16] = calloc(l->max_runtimes, 16);
  if (pfd == NULL || cookies == NULL) {
    say(l, 3, "Listen \"%s\": out of memory: not listening", l->path);
    free(pfd);
    free(cookies);
    return NULL;
  }
  for (;;) {
    int64_t now = clock_mono_ms();
    nfds_t n = 0;
    pfd[n++] = (struct pollfd){.fd = l->stop_fd, .events = POLLIN};
    pfd[n++] = (struct pollfd){.fd = l->lfd, .events = POLLIN};
    /* no tick: the next advertise deadline, the next runtime without a
     * connection to forget, else a minute (a runtime taken meanwhile wakes
     * us when it connects again or its taken connection ends) */
    int64_t wake = now + 60000;
    for (size_t i = 0; i < l->npending; i++) {
      pfd[n++] = (struct pollfd){.fd = l->pending[i].fd, .events = POLLIN};
      if (l->pending[i].deadline < wake)
        wake = l->pending[i].deadline;
    }
    nfds_t first_rt = n;
    pthread_mutex_lock(&l->lock);
    size_t nw = 0;
    for (size_t i = 0; i < l->nrt; i++)
      if (l->rt[i].fd >= 0) {
        memcpy(cookies[nw++], l->rt[i].info.cookie, 16);
        pfd[n++] = (struct pollfd){.fd = l->rt[i].fd, .events = POLLIN};
      } else if (l->rt[i].since_ms + l->gone_ms < wake) {
        wake = l->rt[i].since_ms + l->gone_ms;
      }
    pthread_mutex_unlock(&l->lock);
    int left = wake > now ? (int)(wake - now) : 0;
    int r = poll(pfd, n, left);
    if (r < 0 && errno != EINTR) {
      say(l, 3, "Listen \"%s\": poll: %s", l->path, strerror(errno));
      break;
    }
    if (pfd[0].revents)
      break;
    now = clock_mono_ms();
    /* the waiting connections first: an fd number taken meanwhile is not
     * the runtime's any more (listen_take set it to -1) */
    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < nw; i++) {
      if (pfd[first_rt + i].revents == 0)
        continue;
      struct runtime *rt = rt_find(l, cookies[i]);
      if (rt != NULL && rt->fd == pfd[first_rt + i].fd)
        waiting_event(l, rt, now);
    }
    forget_gone(l, now);
    pthread_mutex_unlock(&l->lock);
    /* the pending ones, then new connections */
    size_t k = 0;
    for (size_t i = 0; i < l->npending; i++) {
      struct pending *p = &l->pending[i];
      int keep = 1;
      if (pfd[2 + i].revents)
        keep = pending_read(l, p, now);
      if (keep && now >= p->deadline) {
        pending_expire(l, p);
        keep = 0;
      }
      if (keep)
        l->pending[k++] = *p;
    }
    l->npending = k;
    if (pfd[1].revents)
      accept_all(l, now);
    pthread_mutex_lock(&l->lock);
    l->stats.pending = l->npending;
    pthread_mutex_unlock(&l->lock);
  }
  free(pfd);
  free(cookies);
  return NULL;
}

/* ---- the face ---- */

struct listen *listen_open(const struct listen_config *cfg, char *err,
                           size_t cap) {
  struct listen *l = calloc(1, sizeof(*l));
  if (l == NULL) {
    set_err(err, cap, "out of memory");
    return NULL;
  }
  l->dirfd = l->lfd = l->stop_fd = l->event_fd = -1;
  l->max_runtimes = cfg->max_runtimes ? cfg->max_runtimes : 256;
  l->max_pending = cfg->max_pending ? cfg->max_pending : 64;
  l->advertise_ms = cfg->advertise_ms > 0 ? cfg->advertise_ms : 2000;
  l->gone_ms = cfg->gone_ms > 0 ? cfg->gone_ms : 5000;
  l->log = cfg->log;
  l->log_ctx = cfg->log_ctx;
  if (cfg->dump_there != NULL && cfg->dump_here != NULL) {
    snprintf(l->dump_there, sizeof(l->dump_there), "%s", cfg->dump_there);
    snprintf(l->dump_here, sizeof(l->dump_here), "%s", cfg->dump_here);
  }
  pthread_mutex_init(&l->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&l->cond, &ca);
  pthread_condattr_destroy(&ca);
  if (cfg->path == NULL || strlen(cfg->path) >= sizeof(l->path)) {
    set_err(err, cap, "Listen \"%s\": longer than a socket path may be (%zu)",
            cfg->path ? cfg->path : "", sizeof(l->path) - 1);
    goto fail;
  }
  snprintf(l->path, sizeof(l->path), "%s", cfg->path);
  l->pending = calloc(l->max_pending, sizeof(*l->pending));
  l->rt = calloc(l->max_runtimes, sizeof(*l->rt));
  l->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  l->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (l->pending == NULL || l->rt == NULL || l->stop_fd < 0 ||
      l->event_fd < 0) {
    set_err(err, cap, "Listen \"%s\": out of resources", l->path);
    goto fail;
  }
  if (open_dir(l, err, cap) != 0 || clear_name(l, err, cap) != 0 ||
      make_socket(l, cfg->gid, cfg->mode ? cfg->mode : 0660, err, cap) != 0)
    goto fail;
  if (pthread_create(&l->thread, NULL, listen_main, l) != 0) {
    set_err(err, cap, "Listen \"%s\": cannot start its thread", l->path);
    goto fail;
  }
  l->thread_started = 1;
  return l;
fail:
  listen_close(l);
  return NULL;
}

void listen_close(struct listen *l) {
  if (l == NULL)
    return;
  pthread_mutex_lock(&l->lock);
  l->stopping = 1;
  pthread_cond_broadcast(&l->cond);
  pthread_mutex_unlock(&l->lock);
  if (l->thread_started) {
    uint64_t one = 1;
    ssize_t n = write(l->stop_fd, &one, sizeof(one));
    (void)n;
    pthread_join(l->thread, NULL);
  }
  for (size_t i = 0; i < l->npending; i++)
    close(l->pending[i].fd);
  while (l->nrt > 0)
    rt_drop(l, l->nrt - 1);
  if (l->lfd >= 0) {
    close(l->lfd);
    struct stat st;
    if (l->ino != 0 &&
        fstatat(l->dirfd, l->name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        st.st_dev == l->dev && st.st_ino == l->ino)
      unlinkat(l->dirfd, l->name, 0);
  }
  if (l->dirfd >= 0)
    close(l->dirfd);
  if (l->stop_fd >= 0)
    close(l->stop_fd);
  if (l->event_fd >= 0)
    close(l->event_fd);
  pthread_cond_destroy(&l->cond);
  pthread_mutex_destroy(&l->lock);
  free(l->pending);
  free(l->rt);
  free(l);
}

int listen_event_fd(const struct listen *l) { return l->event_fd; }

void listen_drain(struct listen *l) {
  uint64_t v;
  ssize_t n = read(l->event_fd, &v, sizeof(v));
  (void)n; /* EAGAIN: nothing came */
}

size_t listen_list(struct listen *l, struct listen_runtime *out, size_t cap) {
  pthread_mutex_lock(&l->lock);
  size_t n = l->nrt;
  for (size_t i = 0; i < n && i < cap; i++) {
    out[i] = l->rt[i].info;
    out[i].waiting = l->rt[i].fd >= 0;
  }
  pthread_mutex_unlock(&l->lock);
  return n;
}

void listen_get_stats(struct listen *l, struct listen_stats *st) {
  pthread_mutex_lock(&l->lock);
  *st = l->stats;
  st->runtimes = l->nrt;
  pthread_mutex_unlock(&l->lock);
}

void listen_endpoint(struct listen *l, const struct listen_runtime *rt,
                     struct ipc_endpoint *ep) {
  char hex[33], name[64];
  cookie_hex(rt->cookie, hex);
  snprintf(name, sizeof(name), "dotnet-diagnostic-reverse-%.8s", hex);
  if (rt->pid <= 0 || discovery_process(rt->pid, ep, name) != 0 ||
      ep->uid != rt->uid) {
    /* not visible here (or no longer that process): the cookie is its
     * identity, a start time made of it (never a real one's: bit 63) */
    memset(ep, 0, sizeof(*ep));
    ep->pid = rt->pid;
    ep->ns_pid = (pid_t)(rt->claimed_pid <= INT_MAX ? rt->claimed_pid : 0);
    ep->uid = rt->uid;
    ep->foreign_mnt_ns = 1;
    ep->start_time = wire_le64(rt->cookie) | (1ull << 63);
    if (rt->pid <= 0 && l->dump_there[0]) { /* dumps through a shared dir */
      snprintf(ep->path, sizeof(ep->path), "%s/%s", l->dump_here, name);
      snprintf(ep->dump_there, sizeof(ep->dump_there), "%s", l->dump_there);
    } else {
      snprintf(ep->path, sizeof(ep->path), "%s (runtime %.8s)", l->path, hex);
    }
  }
  ep->take = listen_take;
  ep->take_ctx = l;
  memcpy(ep->cookie, rt->cookie, 16);
}

int listen_scan(struct listen *l,
                int (*cb)(void *ctx, const struct ipc_endpoint *ep),
                void *ctx) {
  pthread_mutex_lock(&l->lock);
  size_t n = l->nrt;
  pthread_mutex_unlock(&l->lock);
  if (n == 0)
    return 0;
  struct ipc_endpoint *eps = malloc(n * sizeof(*eps));
  if (eps == NULL)
    return -ENOMEM;
  pthread_mutex_lock(&l->lock);
  if (n > l->nrt) /* some went meanwhile */
    n = l->nrt;
  for (size_t i = 0; i < n; i++)
    eps[i] = l->rt[i].ep;
  pthread_mutex_unlock(&l->lock);
  int r = 0;
  for (size_t i = 0; i < n && r == 0; i++)
    r = cb(ctx, &eps[i]);
  free(eps);
  return r;
}

int listen_take(void *ctx, const uint8_t cookie[16], int64_t deadline_ms,
                int cancel_fd, int *fd, struct ipc_error *err) {
  struct listen *l = ctx;
  char hex[33];
  cookie_hex(cookie, hex);
  *fd = -1;
  pthread_mutex_lock(&l->lock);
  int r;
  for (;;) {
    struct runtime *rt = rt_find(l, cookie);
    if (rt == NULL) {
      r = -ENOENT;
      break;
    }
    if (rt->fd >= 0) {
      *fd = rt->fd;
      rt->fd = -1;
      rt->since_ms = clock_mono_ms();
      r = 0;
      break;
    }
    if (l->stopping) {
      r = -ESHUTDOWN;
      break;
    }
    int64_t now = clock_mono_ms();
    if (now >= deadline_ms) {
      r = -ETIMEDOUT;
      break;
    }
    /* short slices: the cancel fd is looked at between them */
    int64_t until = deadline_ms < now + 50 ? deadline_ms : now + 50;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = (int64_t)ts.tv_nsec + (until - now) * 1000000;
    ts.tv_sec += ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    pthread_cond_timedwait(&l->cond, &l->lock, &ts);
    if (cancel_fd >= 0) {
      struct pollfd p = {.fd = cancel_fd, .events = POLLIN};
      if (poll(&p, 1, 0) > 0) {
        r = -ECANCELED;
        break;
      }
    }
  }
  pthread_mutex_unlock(&l->lock);
  if (r != 0 && err != NULL) {
    err->hresult = 0;
    snprintf(err->message, sizeof(err->message),
             r == -ETIMEDOUT
                 ? "runtime %.8s on %s did not connect again in time"
             : r == -ENOENT    ? "runtime %.8s on %s has gone"
             : r == -ECANCELED ? "runtime %.8s on %s: cancelled (shutting down)"
                               : "runtime %.8s on %s: the listener stops",
             hex, l->path);
  }
  return r;
}
