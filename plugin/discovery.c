/**
 * collectd-dotnet - plugin/discovery.c
 *
 * Finding the diagnostic sockets of .NET processes: /proc, each process's
 * TMPDIR (through /proc/<pid>/root for another mount namespace), and a
 * scanner with memory and inotify for a caller that looks again and again.
 * See discovery.h for the contracts.
 */
#include "discovery.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
/* ---- /proc ---- */

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

ssize_t discovery_read_at(int dirfd, const char *name, char *buf, size_t cap) {
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

int discovery_proc_stat_parse(const char *line, uint64_t *start,
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

/* discovery_proc_stat_parse of /proc/<pid>/stat: -ESRCH when the process is
 * gone, a zombie or exiting. */
static int proc_stat_read(pid_t pid, uint64_t *start, uint32_t *comm_hash) {
  char path[64], buf[1024];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  long n = read_proc_line(path, buf, sizeof(buf));
  if (n < 0)
    return n == -ENOENT ? -ESRCH : (int)n;
  return discovery_proc_stat_parse(buf, start, comm_hash);
}

static int proc_start_time(pid_t pid, uint64_t *start) {
  return proc_stat_read(pid, start, NULL);
}

/* The innermost pid of NSpid in /proc/<pid>/status (the pid the target sees
 * itself as, which names its socket). Falls back to pid. */
static pid_t proc_ns_pid(pid_t pid) {
  char path[64], buf[4096];
  snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
  if (discovery_read_at(AT_FDCWD, path, buf, sizeof(buf)) < 0)
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

/* One "NAME=value" variable (NUL-terminated) for discovery_environ_tmpdir: 1
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

int discovery_environ_tmpdir(const char *env, size_t len, char *out,
                             size_t cap) {
  snprintf(out, cap, "/tmp");
  size_t start = 0;
  char var[8192];
  for (size_t i = 0; i <= len; i++) {
    if (i < len && env[i] != 0)
      continue;
    size_t n = i - start;
    int r = 0;
    if (n >= 7 && n < sizeof(var)) {
      memcpy(var, env + start, n);
      var[n] = 0;
      if (tmpdir_var(var, out, cap, &r))
        return r < 0 ? r : 1; /* the first one: glibc's getenv takes it */
    } else if (n >= sizeof(var) && strncmp(env + start, "TMPDIR=", 7) == 0) {
      return -ENAMETOOLONG; /* "/tmp" */
    }
    start = i + 1;
  }
  return 0;
}

/* TMPDIR from /proc/<pid>/environ (bounded reads, see
 * discovery_environ_tmpdir), else /tmp. */
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
    size_t end = have; /* the complete variables: up to the last NUL */
    while (end > 0 && buf[end - 1] != 0)
      end--;
    size_t start = 0;
    if (skipping && end > 0) { /* the rest of the long one */
      start = strlen(buf) + 1;
      skipping = 0;
    }
    if (end > start &&
        discovery_environ_tmpdir(buf + start, end - start, out, cap) != 0)
      break;
    start = end;
    if (end == 0 && have == sizeof(buf) - 1) {
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

int discovery_alive(const struct ipc_endpoint *ep) {
  uint64_t start;
  if (ep->pid <= 0) /* a runtime that connected in from beyond our pids */
    return 1;
  int r = proc_start_time(ep->pid, &start);
  if (r == -ESRCH || (r == 0 && start != ep->start_time))
    return 0;
  return 1; /* alive, or cannot tell (/proc unreadable): assume so */
}

/* Fills what /proc says of pid into ep (pid, start time, uid, pid in its
 * namespace, mount namespace) and dir[cap] with its TMPDIR as reached
 * from here. */
static int proc_describe(pid_t pid, struct ipc_endpoint *ep, char *dir,
                         size_t cap) {
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
  if (ep->foreign_mnt_ns)
    snprintf(dir, cap, "/proc/%d/root%s", (int)pid, tmpdir);
  else
    snprintf(dir, cap, "%s", tmpdir);
  return 0;
}

int discovery_process(pid_t pid, struct ipc_endpoint *ep, const char *name) {
  char dir[3072];
  int r = proc_describe(pid, ep, dir, sizeof(dir));
  if (r == 0 && (size_t)snprintf(ep->path, sizeof(ep->path), "%s/%s", dir,
                                 name) >= sizeof(ep->path))
    r = -ENAMETOOLONG;
  return r;
}

int discovery_find(pid_t pid, struct ipc_endpoint *ep) {
  char dir[3072];
  int r = proc_describe(pid, ep, dir, sizeof(dir));
  if (r < 0)
    return r;

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
    if (exact > best_exact ||
        (exact == best_exact && sst.st_mtime > best_mtime) || best[0] == 0) {
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
 * discovery_find looks at one pid from scratch: stat, status, environ,
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
 * With notification on (discovery_enable_notify), every socket
 * directory also carries an inotify watch, so a caller need not pass at
 * all while nothing happens: a diagnostic socket created, removed or
 * renamed in one of them makes the fd readable (discovery_notified
 * tells those from other files' events), and the caller forces a full
 * pass now and then for the directories nobody uses yet. */
#define DISC_MTIME_MARGIN_NS 1000000000LL
#define DISC_NAME_MAX 80
#define DISC_FULL DISCOVERY_FULL_EVERY
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
                            socks has the first ones (see discovery.h) */
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

struct discovery {
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
  discovery_connected_fn connected;
  void *connected_ctx;
  discovery_log_fn log;
  void *log_ctx;
  unsigned logged; /* DISC_CAP_* said once */
};

enum { DISC_CAP_PROCS = 1, DISC_CAP_DIRS = 2, DISC_CAP_SOCKS = 4 };

void discovery_set_log(struct discovery *d, discovery_log_fn fn, void *ctx) {
  d->log = fn;
  d->log_ctx = ctx;
}

/* Says once per scanner that the cap `which` was reached. */
static void disc_cap_log(struct discovery *d, unsigned which, const char *fmt,
                         ...) __attribute__((format(printf, 3, 4)));
static void disc_cap_log(struct discovery *d, unsigned which, const char *fmt,
                         ...) {
  unsigned said = d->logged & which;
  d->logged |= which;
  if (said || d->log == NULL)
    return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (n > 0) {
    ipc_sanitize(msg); /* a directory name is the process's TMPDIR */
    d->log(d->log_ctx, msg);
  }
}

void discovery_set_connected(struct discovery *d, discovery_connected_fn fn,
                             void *ctx) {
  d->connected = fn;
  d->connected_ctx = ctx;
}

struct discovery *discovery_new(void) {
  struct discovery *d = calloc(1, sizeof(*d));
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

static void disc_dir_watch(struct discovery *d, struct disc_dir *dd) {
  if (d->notify_fd < 0 || dd->wd > 0)
    return;
  int wd = inotify_add_watch(d->notify_fd, dd->path, DISC_WATCH_MASK);
  dd->wd = wd > 0 ? wd : 0;
  /* A directory that is not there holds no socket: a runtime could not
   * make one in it. If it comes, a full pass watches it. Any other failure
   * (the watch limit, permissions): the caller passes by time. */
  dd->unwatchable = wd <= 0 && errno != ENOENT && errno != ENOTDIR;
}

int discovery_enable_notify(struct discovery *d) {
  if (d->notify_fd >= 0)
    return 0;
  d->notify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (d->notify_fd < 0)
    return -errno;
  for (size_t i = 0; i < d->ndirs; i++)
    disc_dir_watch(d, &d->dirs[i]);
  return 0;
}

int discovery_notify_fd(const struct discovery *d) {
  if (d->notify_fd < 0 || d->nfull == 0)
    return -1;
  for (size_t i = 0; i < d->ndirs; i++)
    if (d->dirs[i].unwatchable)
      return -1;
  return d->notify_fd;
}

int discovery_notified(struct discovery *d) {
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
      if (ev->mask &
          (IN_Q_OVERFLOW | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT))
        changed = 1; /* events lost, or the directory itself changed */
      if (ev->mask & IN_IGNORED) { /* the directory went (or its mount):
                                      the next full pass watches it again */
        for (size_t i = 0; i < d->ndirs; i++)
          if (d->dirs[i].wd == ev->wd)
            d->dirs[i].wd = 0;
        changed = 1;
      }
      if (ev->len > 0 && strncmp(ev->name, prefix, sizeof(prefix) - 1) == 0)
        changed = 1;
    }
  }
  return changed;
}

void discovery_want_full(struct discovery *d) { d->full_pass = 0; }

void discovery_free(struct discovery *d) {
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

/* The first of the n elements (size bytes each) at base, sorted by the
 * pid_t at offset off, whose pid is not below pid; n if none. The
 * processes (by pid) and a listing's sockets (by ns_pid) are looked up
 * with it. */
static size_t disc_lower_bound(const void *base, size_t n, size_t size,
                               size_t off, pid_t pid) {
  const unsigned char *b = base;
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    pid_t v;
    memcpy(&v, b + mid * size + off, sizeof(v));
    if (v < pid)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* The entry for pid (inserted, unknown, when missing), or NULL on ENOMEM. */
static struct disc_proc *disc_proc_get(struct discovery *d, pid_t pid) {
  size_t lo = disc_lower_bound(d->procs, d->nprocs, sizeof(d->procs[0]),
                               offsetof(struct disc_proc, pid), pid);
  if (lo < d->nprocs && d->procs[lo].pid == pid)
    return &d->procs[lo];
  if (d->nprocs >= DISCOVERY_PROCS_MAX) {
    disc_cap_log(d, DISC_CAP_PROCS,
                 "more than %d processes: the ones beyond are not looked at "
                 "(logged once)",
                 DISCOVERY_PROCS_MAX);
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
 * ENOMEM, -2 when DISCOVERY_DIRS_MAX directories are held. */
static long disc_dir_index(struct discovery *d, const char *path) {
  for (size_t i = 0; i < d->ndirs; i++)
    if (strcmp(d->dirs[i].path, path) == 0)
      return (long)i;
  if (d->ndirs >= DISCOVERY_DIRS_MAX) {
    disc_cap_log(d, DISC_CAP_DIRS,
                 "processes use more than %d distinct TMPDIRs: those beyond "
                 "(the first: %s) are not listed nor watched; their "
                 "processes' sockets are looked up by name at every full "
                 "pass (logged once)",
                 DISCOVERY_DIRS_MAX, path);
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

static int disc_same_mnt_ns(struct discovery *d, pid_t pid) {
  char a[64], path[64];
  snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)pid);
  ssize_t na = readlink(path, a, sizeof(a) - 1);
  if (na < 0 || d->self_mnt_len < 0)
    return 1; /* cannot tell: assume ours */
  return na == d->self_mnt_len && memcmp(a, d->self_mnt, (size_t)na) == 0;
}

/* Fills what does not change while the process lives. -ENOSPC when its
 * directory found no room (dir[cap] holds it then; p stays unknown). */
static int disc_proc_fill(struct discovery *d, struct disc_proc *p, char *dir,
                          size_t dcap) {
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
static void disc_dir_refresh(struct discovery *d, struct disc_dir *dd) {
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
    if (errno != 0 || end == p || *end != '-' || ns_pid <= 0 ||
        ns_pid > INT_MAX)
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
    if (dd->nsocks >= DISCOVERY_SOCKS_MAX) {
      if (!dd->overflow)
        disc_cap_log(d, DISC_CAP_SOCKS,
                     "more than %d diagnostic socket names in %s: beyond "
                     "them each process's socket is looked up by its own "
                     "name (logged once)",
                     DISCOVERY_SOCKS_MAX, dd->path);
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
  return disc_lower_bound(dd->socks, dd->nsocks, sizeof(dd->socks[0]),
                          offsetof(struct disc_sock, ns_pid), ns_pid);
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
static int disc_has_socket(struct discovery *d, const struct disc_proc *p) {
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

/* The endpoint of p with its socket dir/name. */
static int disc_proc_endpoint(const struct disc_proc *p, const char *dir,
                              const char *name, struct ipc_endpoint *ep) {
  *ep = (struct ipc_endpoint){.pid = p->pid,
                              .ns_pid = p->ns_pid,
                              .start_time = p->start_time,
                              .uid = p->uid,
                              .foreign_mnt_ns = p->foreign_mnt_ns};
  if ((size_t)snprintf(ep->path, sizeof(ep->path), "%s/%s", dir, name) >=
      sizeof(ep->path))
    return -ENAMETOOLONG;
  return 0;
}

/* The endpoint of a known process, from its directory's listing. */
static int disc_endpoint(struct discovery *d, const struct disc_proc *p,
                         struct ipc_endpoint *ep) {
  struct disc_dir *dd = &d->dirs[p->dir];
  disc_dir_refresh(d, dd);
  if (dd->err < 0)
    return dd->err;
  struct disc_sock *best = NULL;
  for (size_t i = disc_first_sock(dd, p->ns_pid);
       i < dd->nsocks && dd->socks[i].ns_pid == p->ns_pid; i++) {
    struct disc_sock *s = &dd->socks[i];
    /* as discovery_find: the exact key wins, then the newest */
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
  return disc_proc_endpoint(p, dd->path, best->name, ep);
}

/* A quiet pass (see above): 1 when it found a reason for a full one
 * (nothing handed on then), else 0 or cb's non-zero result. */
static int disc_quiet_pass(struct discovery *d, discovery_cb cb, void *ctx) {
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

/* Whether a full pass may skip pid's stat this time: a process looked at
 * before that has no socket is, nearly always, just not .NET; its stat is
 * read again only every DISC_RECHECK full passes (staggered by pid), for
 * an exec into .NET with a TMPDIR no known process uses. Its socket
 * appearing in its directory brings it back at once. */
static int disc_skip(struct discovery *d, const struct disc_proc *p) {
  return p->known && (d->nfull + (unsigned)p->pid) % DISC_RECHECK != 0 &&
         !disc_has_socket(d, p);
}

/* The start time and comm hash of p now: what the scanner holds while the
 * caller streams from it (alive, the same process), else from its stat.
 * -ESRCH (or another error) when it is gone or a zombie. */
static int disc_identity(struct discovery *d, const struct disc_proc *p,
                         uint64_t *start, uint32_t *comm) {
  *start = p->start_time;
  *comm = p->comm_hash;
  if (p->known && d->connected != NULL &&
      d->connected(d->connected_ctx, p->pid, p->start_time))
    return 0;
  return proc_stat_read(p->pid, start, comm);
}

/* Looks p up afresh for the start time and comm it now has (new, or an
 * exec: same pid and start time, maybe another TMPDIR or mount namespace,
 * a new comm). 0 with *ep when its socket is found; -ENOENT when none;
 * another negative errno when it cannot be looked at. A process whose
 * directory finds no room is looked up by its own socket name, again at
 * every full pass. */
static int disc_refill(struct discovery *d, struct disc_proc *p, uint64_t start,
                       uint32_t comm, struct ipc_endpoint *ep) {
  p->known = 0;
  p->start_time = start;
  p->comm_hash = comm;
  char pdir[3072];
  int r = disc_proc_fill(d, p, pdir, sizeof(pdir));
  if (r == -ENOSPC) {
    p->known = 0;
    char name[DISC_NAME_MAX];
    if (!disc_exact_sock(pdir, p->ns_pid, start, name, sizeof(name)))
      return -ENOENT;
    return disc_proc_endpoint(p, pdir, name, ep);
  }
  if (r != 0) {
    p->known = 0;
    return r;
  }
  return disc_endpoint(d, p, ep);
}

/* One /proc entry of a full pass: cb's result for its endpoint, or 0. */
static int disc_visit(struct discovery *d, pid_t pid, discovery_cb cb,
                      void *ctx) {
  struct disc_proc *p = disc_proc_get(d, pid);
  if (p == NULL)
    return 0;
  p->seen = d->pass;
  if (disc_skip(d, p))
    return 0;
  uint64_t start;
  uint32_t comm;
  if (disc_identity(d, p, &start, &comm) != 0)
    return 0; /* gone, or a zombie */
  struct ipc_endpoint ep;
  int r = !p->known || p->start_time != start || p->comm_hash != comm
              ? disc_refill(d, p, start, comm, &ep)
              : disc_endpoint(d, p, &ep);
  return r == 0 ? cb(ctx, &ep) : 0;
}

/* Lists /proc and visits every process: 0 when all were, cb's non-zero
 * result when it stopped the pass, or a negative errno. */
static int disc_list_proc(struct discovery *d, discovery_cb cb, void *ctx) {
  DIR *dir = opendir("/proc");
  if (dir == NULL)
    return -errno;
  d->nfull++;
  d->self_mnt_len =
      readlink("/proc/self/ns/mnt", d->self_mnt, sizeof(d->self_mnt) - 1);
  int ret = 0;
  struct dirent *de;
  while (ret == 0 && (de = readdir(dir)) != NULL) {
    char *end;
    long pid = strtol(de->d_name, &end, 10);
    if (*end == 0 && pid > 0 && pid <= INT_MAX)
      ret = disc_visit(d, (pid_t)pid, cb, ctx);
  }
  closedir(dir);
  return ret;
}

/* Forgets the processes a complete full pass did not see. */
static void disc_forget_procs(struct discovery *d) {
  size_t o = 0;
  for (size_t i = 0; i < d->nprocs; i++)
    if (d->procs[i].seen == d->pass)
      d->procs[o++] = d->procs[i];
  d->nprocs = o;
}

/* Drops directory i, which no process needs any more, and its watch
 * unless a directory kept shares it (one inode seen through two paths). */
static void disc_dir_drop(struct discovery *d, size_t i) {
  int shared = 0;
  for (size_t k = 0; k < d->ndirs && d->dirs[i].wd > 0; k++)
    shared |=
        k != i && d->dirs[k].used == d->pass && d->dirs[k].wd == d->dirs[i].wd;
  if (d->dirs[i].wd > 0 && !shared)
    inotify_rm_watch(d->notify_fd, d->dirs[i].wd);
  free(d->dirs[i].path);
  free(d->dirs[i].socks);
}

/* Forgets the directories no process needs (every known process seen in
 * a complete full pass marked its directory used), and moves the
 * processes' indexes with the array. */
static void disc_forget_dirs(struct discovery *d) {
  size_t *map = d->ndirs > 0 ? malloc(d->ndirs * sizeof(*map)) : NULL;
  if (map == NULL)
    return; /* keep them all until a later pass */
  size_t o = 0;
  for (size_t i = 0; i < d->ndirs; i++) {
    map[i] = d->dirs[i].used == d->pass ? o : SIZE_MAX;
    if (map[i] == SIZE_MAX)
      disc_dir_drop(d, i);
    else
      d->dirs[o++] = d->dirs[i];
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
}

/* After a complete full pass: its listings are the reference of the quiet
 * passes, every directory is watched (one missing before, not there yet),
 * and what is gone is forgotten. */
static void disc_full_done(struct discovery *d) {
  d->full_pass = d->pass;
  for (size_t i = 0; i < d->ndirs; i++) {
    d->dirs[i].full_sig = d->dirs[i].sig;
    disc_dir_watch(d, &d->dirs[i]);
  }
  disc_forget_procs(d);
  disc_forget_dirs(d);
}

int discovery_scan(struct discovery *d, discovery_cb cb, void *ctx) {
  d->pass++;
  if (d->full_pass != 0 && d->pass - d->full_pass < DISC_FULL) {
    int r = disc_quiet_pass(d, cb, ctx);
    if (r != 1)
      return r;
  }
  int r = disc_list_proc(d, cb, ctx);
  if (r == 0)
    disc_full_done(d);
  return r; /* a partial pass forgets nothing: full again next time */
}

unsigned discovery_full_passes(const struct discovery *d) { return d->nfull; }

int discovery_list(discovery_cb cb, void *ctx) {
  struct discovery *d = discovery_new();
  if (d == NULL)
    return -ENOMEM;
  int ret = discovery_scan(d, cb, ctx);
  discovery_free(d);
  return ret;
}
