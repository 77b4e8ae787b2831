/**
 * collectd-dotnet - plugin/dump_exec.c
 *
 * See dump_exec.h.
 */
#include "clock.h"
#include "dump_exec.h"
#include "discovery.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* What createdump gets as its environment: nothing of collectd's (no LD_*,
 * no DOTNET_*), a fixed PATH. */
static char *const clean_env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                                  "HOME=/", NULL};


int dump_exec_stat_start(const char *line, uint64_t *start) {
  /* "pid (comm) S ppid ..."; comm may hold ")" and spaces: the last ")"
   * ends it. Field 3 (state) follows it, field 22 is the start time. */
  const char *p = NULL;
  for (const char *c = line; *c; c++)
    if (*c == ')')
      p = c;
  if (p == NULL)
    return -EINVAL;
  p++;
  for (int field = 3; field <= 22; field++) {
    if (*p != ' ')
      return -EINVAL;
    p++;
    if (field == 22)
      break;
    while (*p && *p != ' ')
      p++;
  }
  uint64_t v = 0;
  int digits = 0;
  for (; *p >= '0' && *p <= '9'; p++, digits++) {
    if (v > (UINT64_MAX - 9) / 10)
      return -EINVAL;
    v = v * 10 + (uint64_t)(*p - '0');
  }
  if (digits == 0 || (*p != ' ' && *p != '\n' && *p != 0))
    return -EINVAL;
  *start = v;
  return 0;
}


/* 0 while the process behind proc_fd (/proc/<pid>) has the start time
 * `start`; -ESRCH when it has gone or its pid now names another process. */
static int proc_same(int proc_fd, uint64_t start) {
  char buf[1024];
  uint64_t now;
  if (discovery_read_at(proc_fd, "stat", buf, sizeof(buf)) <= 0 ||
      dump_exec_stat_start(buf, &now) != 0 || now != start)
    return -ESRCH;
  return 0;
}

/* One line of /proc/<pid>/maps, without its newline:
 *   "start-end perms offset dev inode      path"
 * The path is what follows the fifth field and the spaces after it. */
static const char *maps_line_path(const char *line) {
  const char *p = line;
  for (int field = 0; field < 5; field++) {
    while (*p && *p != ' ')
      p++;
    if (*p == 0)
      return NULL;
    p++;
  }
  while (*p == ' ')
    p++;
  return *p == '/' ? p : NULL;
}

#define MAPS_LINE_CAP (PATH_MAX + 128)
#define DELETED_MARK " (deleted)"
#define CORECLR_NAME "/libcoreclr.so"

int dump_exec_maps_find(int fd, char *lib, size_t cap) {
  char *line = malloc(MAPS_LINE_CAP + 1);
  if (line == NULL)
    return -ENOMEM;
  char chunk[4096];
  size_t len = 0;
  int skipping = 0, skipped = 0, r = -ENOENT;
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      r = -errno;
      break;
    }
    /* at EOF a last line without its newline still counts */
    const char *c = chunk, *end = chunk + n;
    int eof = n == 0;
    while (c < end || (eof && (len > 0 || skipping))) {
      const char *nl = eof ? NULL : memchr(c, '\n', (size_t)(end - c));
      size_t take = nl ? (size_t)(nl - c) : (size_t)(end - c);
      if (!skipping) {
        if (len + take > MAPS_LINE_CAP) {
          skipping = 1; /* too long for any path we could use */
          skipped = 1;
        } else {
          memcpy(line + len, c, take);
          len += take;
        }
      }
      c += take;
      if (nl == NULL && !eof)
        break; /* the line goes on in the next chunk */
      if (nl)
        c++;
      if (!skipping) {
        line[len] = 0;
        const char *path = maps_line_path(line);
        size_t pl = path ? strlen(path) : 0;
        int deleted = 0;
        size_t dl = sizeof(DELETED_MARK) - 1, cl = sizeof(CORECLR_NAME) - 1;
        if (pl > dl && strcmp(path + pl - dl, DELETED_MARK) == 0) {
          deleted = 1;
          pl -= dl;
        }
        if (path && pl >= cl && memcmp(path + pl - cl, CORECLR_NAME, cl) == 0) {
          if (pl >= cap) {
            r = -ENAMETOOLONG;
            goto out;
          }
          memcpy(lib, path, pl);
          lib[pl] = 0;
          r = deleted ? -ESTALE : 0;
          goto out;
        }
      }
      len = 0;
      skipping = 0;
      if (eof)
        break;
    }
    if (eof) {
      if (skipped)
        r = -ENAMETOOLONG;
      break;
    }
  }
out:
  free(line);
  return r;
}

static int trusted_node(int fd, const char *shown, int want_dir,
                        int *sticky_writable, char *why, size_t why_cap) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    snprintf(why, why_cap, "cannot stat %s: %s", shown, strerror(e));
    return -e;
  }
  if (S_ISLNK(st.st_mode)) {
    snprintf(why, why_cap, "%s is a symbolic link", shown);
    return -EPERM;
  }
  if (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
    snprintf(why, why_cap, "%s is not a %s", shown,
             want_dir ? "directory" : "regular file");
    return -EPERM;
  }
  if (st.st_uid != 0) {
    snprintf(why, why_cap, "%s is owned by uid %u, not root", shown,
             (unsigned)st.st_uid);
    return -EPERM;
  }
  /* A sticky directory of root's (/tmp) lets others add names, never
   * rename or remove root's: fine above the runtime's directory, which
   * the caller checks (an absent DAC could be added beside createdump). */
  *sticky_writable = 0;
  if (want_dir && (st.st_mode & S_ISVTX) && (st.st_mode & (S_IWGRP | S_IWOTH))) {
    *sticky_writable = 1;
  } else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    snprintf(why, why_cap, "%s is writable by group or others (mode %04o)",
             shown, (unsigned)(st.st_mode & 07777));
    return -EPERM;
  }
  if (!want_dir && !(st.st_mode & S_IXUSR)) {
    snprintf(why, why_cap, "%s is not executable (mode %04o)", shown,
             (unsigned)(st.st_mode & 07777));
    return -EPERM;
  }
  return 0;
}

int dump_exec_open_trusted(int root_fd, const char *path, int *fd_out,
                           char *why, size_t why_cap) {
  *fd_out = -1;
  if (path[0] != '/') {
    snprintf(why, why_cap, "%s is not an absolute path", path);
    return -EINVAL;
  }
  size_t plen = strlen(path);
  if (plen >= PATH_MAX) {
    snprintf(why, why_cap, "path too long");
    return -ENAMETOOLONG;
  }
  char shown[PATH_MAX] = "/"; /* the path walked so far, for messages */
  int dir = root_fd == AT_FDCWD
                ? open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)
                : openat(root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) {
    int e = errno;
    snprintf(why, why_cap, "cannot open /: %s", strerror(e));
    return -e;
  }
  int sticky = 0; /* the directory walked last is sticky and writable */
  char parent[PATH_MAX] = "/";
  int r = trusted_node(dir, "/", 1, &sticky, why, why_cap);
  const char *p = path;
  while (r == 0) {
    while (*p == '/')
      p++;
    size_t n = strcspn(p, "/");
    if (n == 0) {
      snprintf(why, why_cap, "%s names a directory", path);
      r = -EISDIR;
      break;
    }
    char comp[NAME_MAX + 1];
    if (n > NAME_MAX) {
      snprintf(why, why_cap, "a name in %s is too long", path);
      r = -ENAMETOOLONG;
      break;
    }
    memcpy(comp, p, n);
    comp[n] = 0;
    p += n;
    int last = strspn(p, "/") == strlen(p);
    size_t sl = strlen(shown);
    snprintf(shown + sl, sizeof(shown) - sl, "%s%s", sl > 1 ? "/" : "", comp);
    if (strcmp(comp, ".") == 0 || strcmp(comp, "..") == 0) {
      snprintf(why, why_cap, "%s holds \"%s\"", path, comp);
      r = -EPERM;
      break;
    }
    if (last && sticky) {
      snprintf(why, why_cap,
               "%s is writable by group or others (a sticky directory): "
               "others may add files beside %s",
               parent, comp);
      r = -EPERM;
      break;
    }
    int next = openat(dir, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) {
      r = -errno;
      snprintf(why, why_cap, "cannot open %s: %s", shown, strerror(-r));
      break;
    }
    close(dir);
    dir = next;
    r = trusted_node(dir, shown, !last, &sticky, why, why_cap);
    if (r == 0 && last) {
      *fd_out = dir;
      return 0;
    }
    snprintf(parent, sizeof(parent), "%s", shown);
  }
  close(dir);
  return r;
}

/* The ids, capabilities and seccomp mode of a process, from
 * /proc/<pid>/status. */
struct proc_ids {
  uid_t uid[3]; /* real, effective, saved */
  gid_t gid[3];
  uint64_t cap_eff;
  int seccomp; /* 0 none, 1 strict, 2 filter; 0 when the kernel omits it */
};

static int parse_ids(const char *status, struct proc_ids *ids) {
  int got = 0;
  for (const char *l = status; *l; l += strcspn(l, "\n"), l += *l == '\n') {
    unsigned long a, b, c;
    unsigned long long cap;
    if (sscanf(l, "Uid: %lu %lu %lu", &a, &b, &c) == 3) {
      ids->uid[0] = (uid_t)a, ids->uid[1] = (uid_t)b, ids->uid[2] = (uid_t)c;
      got |= 1;
    } else if (sscanf(l, "Gid: %lu %lu %lu", &a, &b, &c) == 3) {
      ids->gid[0] = (gid_t)a, ids->gid[1] = (gid_t)b, ids->gid[2] = (gid_t)c;
      got |= 2;
    } else if (sscanf(l, "CapEff: %llx", &cap) == 1) {
      ids->cap_eff = cap;
      got |= 4;
    } else if (sscanf(l, "Seccomp: %lu", &a) == 1) {
      ids->seccomp = (int)a;
    }
  }
  return got == 7 ? 0 : -EINVAL;
}

/* The status is ~1.5 KiB, more with many supplementary groups (their line
 * comes before CapEff): read up to 64 KiB; beyond, the ids are not known
 * and the plan is refused. */
#define STATUS_CAP 65536

static int read_ids(int dirfd, const char *name, struct proc_ids *ids) {
  char *buf = malloc(STATUS_CAP);
  if (buf == NULL)
    return -ENOMEM;
  memset(ids, 0, sizeof(*ids));
  ssize_t n = discovery_read_at(dirfd, name, buf, STATUS_CAP);
  int r = n < 0 ? (int)n : parse_ids(buf, ids);
  free(buf);
  return r;
}

/* 1 when the LSM label (AppArmor profile, SELinux context) of the process
 * behind dirfd is ours, or when there is no LSM to label them. */
static int same_lsm_label(int dirfd) {
  char a[256], b[256];
  ssize_t na = discovery_read_at(dirfd, "attr/current", a, sizeof(a));
  ssize_t nb = discovery_read_at(AT_FDCWD, "/proc/self/attr/current", b, sizeof(b));
  if (na < 0 && nb < 0 && (na == -EINVAL || na == -ENOENT) &&
      (nb == -EINVAL || nb == -ENOENT))
    return 1;
  return na >= 0 && nb >= 0 && strcmp(a, b) == 0;
}

/* 1 when the process behind proc_fd is in our user namespace. */
static int same_user_ns(int proc_fd) {
  struct stat a, b;
  if (fstatat(proc_fd, "ns/user", &a, 0) != 0 ||
      stat("/proc/self/ns/user", &b) != 0)
    return 0;
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* kernel.yama.ptrace_scope, 0 when Yama is not there. */
static int yama_scope(void) {
  char buf[16];
  if (discovery_read_at(AT_FDCWD, "/proc/sys/kernel/yama/ptrace_scope", buf,
              sizeof(buf)) <= 0)
    return 0;
  return atoi(buf);
}

/* Where createdump is and who runs it; see dump_exec.h. */
/* The createdump beside the libcoreclr.so the target has mapped: its path
 * in plan->path, the directory in lib[PATH_MAX]. */
static int plan_locate(int proc_fd, const struct ipc_endpoint *ep,
                       struct dump_exec_plan *plan, char *lib, char *why,
                       size_t why_cap) {
  int pid = (int)ep->pid;
  int maps = openat(proc_fd, "maps", O_RDONLY | O_CLOEXEC);
  if (maps < 0) {
    int e = errno;
    snprintf(why, why_cap, "cannot read /proc/%d/maps: %s", pid, strerror(e));
    return -e;
  }
  int r = dump_exec_maps_find(maps, lib, PATH_MAX);
  close(maps);
  /* the maps read were those of the process planned for */
  if (proc_same(proc_fd, ep->start_time) != 0) {
    snprintf(why, why_cap, "pid %d ended while its maps were read: no dump",
             pid);
    return -ESRCH;
  }
  if (r == -ESTALE) {
    snprintf(why, why_cap,
             "the libcoreclr.so pid %d runs (%s) has been deleted or "
             "replaced since it was loaded: the createdump beside it may "
             "not match; use Method ipc",
             pid, lib);
    return -ESTALE;
  }
  if (r == -ENOENT || r == -ENAMETOOLONG) {
    snprintf(why, why_cap,
             "pid %d has no libcoreclr.so mapped%s: not a .NET (CoreCLR) "
             "process, or a single-file one; use Method ipc",
             pid, r == -ENAMETOOLONG ? " at a path of usable length" : "");
    return -ENOENT;
  }
  if (r < 0) {
    snprintf(why, why_cap, "cannot read /proc/%d/maps: %s", pid, strerror(-r));
    return r;
  }
  *strrchr(lib, '/') = 0;
  if ((size_t)snprintf(plan->path, sizeof(plan->path), "%s/createdump",
                       lib) >= sizeof(plan->path)) {
    snprintf(why, why_cap, "createdump path too long");
    return -ENAMETOOLONG;
  }
  return 0;
}

/* For a target as privileged as we are: createdump run as root, from an fd
 * opened along a path only root can change (and its DAC beside it checked
 * the same way). */
static int plan_as_root(int pid, const char *lib, struct dump_exec_plan *plan,
                        char *why, size_t why_cap) {
  char bad[384];
  int fd;
  int r = dump_exec_open_trusted(AT_FDCWD, plan->path, &fd, bad, sizeof(bad));
  if (r == 0) {
    /* createdump loads the DAC from the same directory */
    char dac[PATH_MAX];
    int dfd;
    snprintf(dac, sizeof(dac), "%s/libmscordaccore.so", lib);
    int d = dump_exec_open_trusted(AT_FDCWD, dac, &dfd, bad, sizeof(bad));
    if (d == 0)
      close(dfd);
    else if (d != -ENOENT) {
      close(fd);
      r = d;
    }
  }
  if (r < 0) {
    snprintf(why, why_cap,
             "%s: refusing to run it as root (the createdump of pid %d, "
             "which runs as root: someone else could have changed it); keep "
             "the runtime in directories only root can write, or use "
             "Method ipc",
             bad, pid);
    return -EPERM;
  }
  plan->fd = fd;
  plan->uid = 0;
  plan->gid = 0;
  plan->drop = 0;
  return 0;
}

/* Otherwise createdump runs as the target's user: 0 when that user can
 * attach to it (one uid and gid, dumpable, no Yama restriction, and we are
 * root or that user), else -EPERM with why[]. pst: /proc/<pid>'s stat. */
static int plan_user_refusal(int pid, const struct proc_ids *ids,
                             const struct stat *pst, char *why,
                             size_t why_cap) {
  int uid_same = ids->uid[0] == ids->uid[1] && ids->uid[1] == ids->uid[2];
  int gid_same = ids->gid[0] == ids->gid[1] && ids->gid[1] == ids->gid[2];
  if (geteuid() != 0 && ids->uid[0] != geteuid()) {
    snprintf(why, why_cap,
             "pid %d runs as uid %u, this process as uid %u: createdump "
             "cannot attach to it; run as root, or use Method ipc",
             pid, (unsigned)ids->uid[0], (unsigned)geteuid());
    return -EPERM;
  }
  if (uid_same && ids->uid[0] == 0) {
    snprintf(why, why_cap,
             "pid %d runs as root but confined (fewer capabilities than "
             "collectd, another user namespace, a seccomp filter or another "
             "LSM label): its createdump would run with more; use Method ipc",
             pid);
    return -EPERM;
  }
  if (!uid_same || !gid_same) {
    snprintf(why, why_cap,
             "pid %d has differing real, effective and saved ids (uid %u/%u/"
             "%u, gid %u/%u/%u): createdump run as its user cannot attach to "
             "it; use Method ipc",
             pid, (unsigned)ids->uid[0], (unsigned)ids->uid[1],
             (unsigned)ids->uid[2], (unsigned)ids->gid[0],
             (unsigned)ids->gid[1], (unsigned)ids->gid[2]);
    return -EPERM;
  }
  if (pst->st_uid != ids->uid[0]) {
    /* the kernel gives /proc/<pid> to root when the process is not
     * dumpable (PR_SET_DUMPABLE 0, or it changed its ids) */
    snprintf(why, why_cap,
             "pid %d is not dumpable (its /proc entry belongs to uid %u, "
             "not to its uid %u): createdump run as its user cannot attach "
             "to it; use Method ipc",
             pid, (unsigned)pst->st_uid, (unsigned)ids->uid[0]);
    return -EPERM;
  }
  int scope = yama_scope();
  if (scope >= 1) {
    snprintf(why, why_cap,
             "kernel.yama.ptrace_scope is %d: createdump run as pid %d's uid "
             "%u (not its parent) may not attach to it, and run as root it "
             "would load a library the target names; use Method ipc",
             scope, pid, (unsigned)ids->uid[0]);
    return -EPERM;
  }
  return 0;
}

static int plan_at(int proc_fd, const struct ipc_endpoint *ep,
                   struct dump_exec_plan *plan, char *why, size_t why_cap) {
  int pid = (int)ep->pid;
  if (proc_same(proc_fd, ep->start_time) != 0) {
    snprintf(why, why_cap,
             "pid %d has ended, or is another process now (its start time "
             "changed): no dump",
             pid);
    return -ESRCH;
  }
  struct proc_ids ids, self;
  if (read_ids(proc_fd, "status", &ids) != 0 ||
      read_ids(AT_FDCWD, "/proc/self/status", &self) != 0) {
    snprintf(why, why_cap, "cannot read the ids of pid %d or of this process",
             pid);
    return -EIO;
  }
  struct stat pst;
  if (fstat(proc_fd, &pst) != 0) {
    int e = errno;
    snprintf(why, why_cap, "cannot stat /proc/%d: %s", pid, strerror(e));
    return -e;
  }
  char lib[PATH_MAX];
  int r = plan_locate(proc_fd, ep, plan, lib, why, why_cap);
  if (r < 0)
    return r;

  /* A container's files are its own: nothing resolved through its root
   * runs here, as root or as its user (that would be its program outside
   * its namespaces). The runtime inside can write the dump itself. */
  if (ep->foreign_mnt_ns) {
    snprintf(why, why_cap,
             "pid %d runs in another mount namespace (a container): Method "
             "exec would run a program from inside it outside the "
             "container; use Method ipc",
             pid);
    return -EPERM;
  }

  /* A target as privileged as we are (root, every capability we have, in
   * our user namespace, no seccomp filter we do not have, our LSM label):
   * running its runtime's createdump as root gives it nothing it does not
   * have. */
  int uid_same = ids.uid[0] == ids.uid[1] && ids.uid[1] == ids.uid[2];
  if (geteuid() == 0 && uid_same && ids.uid[0] == 0 &&
      (ids.cap_eff & self.cap_eff) == self.cap_eff && same_user_ns(proc_fd) &&
      ids.seccomp <= self.seccomp && same_lsm_label(proc_fd))
    return plan_as_root(pid, lib, plan, why, why_cap);

  r = plan_user_refusal(pid, &ids, &pst, why, why_cap);
  if (r < 0)
    return r;
  plan->fd = -1;
  plan->uid = ids.uid[0];
  plan->gid = ids.gid[0];
  plan->drop = geteuid() == 0;
  snprintf(plan->note, sizeof(plan->note),
           "createdump (%.*s) runs as uid %u gid %u, the target's user, with "
           "no new privileges: not as root",
           120, plan->path, (unsigned)plan->uid, (unsigned)plan->gid);
  return 0;
}

/* What the helper process starts, and as whom. */
struct spawn {
  char *const *argv; /* argv[0] names it in messages */
  const char *path;  /* executed by path when exec_fd < 0 */
  int exec_fd;       /* an O_PATH descriptor to execute, or -1 */
  int out_fd;        /* the dump file, given to the child, or -1 */
  int drop;          /* switch to uid/gid, no groups, before exec */
  uid_t uid;
  gid_t gid;
  int proc_fd;    /* /proc/<pid> of the target */
  uint64_t start; /* its start time */
};

/* Writes "error: <what>: errno N\n" to fd and ends the process: between
 * fork and exec, with async-signal-safe calls only. */
static void __attribute__((noreturn))
child_fail(int fd, const char *what, int e) {
  char num[16];
  int i = (int)sizeof(num);
  unsigned v = (unsigned)(e < 0 ? -e : e);
  do
    num[--i] = (char)('0' + v % 10);
  while ((v /= 10) != 0 && i > 0);
  if (write(fd, "error: ", 7) < 0 || write(fd, what, strlen(what)) < 0 ||
      (e != 0 && (write(fd, ": errno ", 8) < 0 ||
                  write(fd, num + i, sizeof(num) - (size_t)i) < 0)) ||
      write(fd, "\n", 1) < 0)
    _exit(126);
  _exit(126);
}

/* Closes every descriptor from `from` up. */
static void close_from(int from) {
#ifdef SYS_close_range
  if (syscall(SYS_close_range, (unsigned)from, ~0U, 0) == 0)
    return;
#endif
  struct rlimit rl;
  long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY
                 ? (long)rl.rlim_max
                 : 65536;
  for (long fd = from; fd < max; fd++)
    close((int)fd);
}

/* The child that becomes createdump: checks that the target is still the
 * process planned for, takes stdin, stdout and stderr, keeps no other
 * descriptor (but the file it executes and the dump file, as 3 and 4 or
 * either as 3) and works in /, gives up root when the plan says so, and
 * executes with the clean environment. */
static void __attribute__((noreturn))
run_child(const struct spawn *sp, int in, int out) {
  char buf[1024];
  uint64_t now;
  if (discovery_read_at(sp->proc_fd, "stat", buf, sizeof(buf)) <= 0 ||
      dump_exec_stat_start(buf, &now) != 0 || now != sp->start)
    child_fail(out,
               "the target has ended or its pid is another process "
               "now: not run",
               0);
  /* out of the way of 0-4 first, then into place, without close-on-exec:
   * the file to execute as 3 (a script's interpreter opens /dev/fd/3), the
   * dump file next (createdump opens /proc/self/fd/N) */
  int xfd = sp->exec_fd >= 0 ? fcntl(sp->exec_fd, F_DUPFD, 10) : -1;
  int ofd = sp->out_fd >= 0 ? fcntl(sp->out_fd, F_DUPFD, 10) : -1;
  if ((sp->exec_fd >= 0 && xfd < 0) || (sp->out_fd >= 0 && ofd < 0))
    child_fail(out, "F_DUPFD", errno);
  if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
    _exit(127);
  int keep = 2;
  if (xfd >= 0 && dup2(xfd, ++keep) < 0)
    child_fail(2, "dup2", errno);
  if (ofd >= 0 && dup2(ofd, ++keep) < 0)
    child_fail(2, "dup2", errno);
  close_from(keep + 1);
  /* the working directory is a handle too: collectd's may be root's only */
  if (chdir("/") != 0)
    child_fail(2, "chdir /", errno);
  if (sp->drop) {
    uid_t r, e, s;
    gid_t gr, ge, gs;
    if (setgroups(0, NULL) != 0)
      child_fail(2, "setgroups", errno);
    if (setresgid(sp->gid, sp->gid, sp->gid) != 0)
      child_fail(2, "setresgid", errno);
    if (setresuid(sp->uid, sp->uid, sp->uid) != 0)
      child_fail(2, "setresuid", errno);
    if (getresuid(&r, &e, &s) != 0 || getresgid(&gr, &ge, &gs) != 0 ||
        r != sp->uid || e != sp->uid || s != sp->uid || gr != sp->gid ||
        ge != sp->gid || gs != sp->gid)
      child_fail(2, "the ids did not change", 0);
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    child_fail(2, "PR_SET_NO_NEW_PRIVS", errno);
  if (sp->exec_fd >= 0)
    syscall(SYS_execveat, 3, "", sp->argv, clean_env, AT_EMPTY_PATH);
  else
    execve(sp->path, sp->argv, clean_env);
  child_fail(2, "cannot execute createdump", errno);
}

/* The helper process of run_wait(): restores SIGCHLD, runs the child
 * (run_child) with stdin /dev/null and stdout+stderr into `out`, waits for
 * it and reports on `st`
 *   pid_t pid     at once (negative errno if fork failed)
 *   int waited    1 if waitpid succeeded
 *   int status    its wait status
 * (native layout, each write well under PIPE_BUF). Only async-signal-safe
 * calls: it runs between fork and exit in a threaded process. */
static void __attribute__((noreturn))
run_helper(const struct spawn *sp, int in, int out, int st) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = SIG_DFL;
  sigaction(SIGCHLD, &sa, NULL);
  sigaction(SIGPIPE, &sa, NULL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  pid_t child = fork();
  if (child == 0)
    run_child(sp, in, out);
  pid_t msg = child < 0 ? -errno : child;
  if (write(st, &msg, sizeof(msg)) != (ssize_t)sizeof(msg) || child < 0)
    _exit(1);
  close(out); /* the child's end only now: we see EOF when it ends */
  int result[2] = {0, 0};
  while (waitpid(child, &result[1], 0) < 0)
    if (errno != EINTR)
      _exit(1);
  result[0] = 1;
  if (write(st, result, sizeof(result)) != (ssize_t)sizeof(result))
    _exit(1);
  _exit(0);
}

/* Appends n bytes to the last `cap` bytes kept in buf (NUL-terminated, buf
 * has cap + 1 bytes). */
static void keep_tail(char *buf, size_t cap, size_t *len, const char *in,
                      size_t n) {
  if (n >= cap) {
    in += n - cap;
    n = cap;
    *len = 0;
  } else if (*len + n > cap) {
    size_t drop = *len + n - cap;
    memmove(buf, buf + drop, *len - drop);
    *len -= drop;
  }
  memcpy(buf + *len, in, n);
  *len += n;
  buf[*len] = 0;
}

/* The line of a program's output that says what went wrong: the first one
 * with "error" in it, else the last; without createdump's "[createdump] ". */
static void telling_line(const char *text, char *out, size_t cap) {
  const char *pick = NULL, *last = NULL;
  size_t picklen = 0, lastlen = 0;
  for (const char *p = text; *p;) {
    size_t n = strcspn(p, "\n");
    if (n > 0) {
      last = p;
      lastlen = n;
      char line[512];
      snprintf(line, sizeof(line), "%.*s", (int)n, p);
      if (pick == NULL && (strstr(line, "rror") || strstr(line, "RROR"))) {
        pick = p;
        picklen = n;
      }
    }
    p += n;
    if (*p == '\n')
      p++;
  }
  if (pick == NULL) {
    pick = last;
    picklen = lastlen;
  }
  if (pick != NULL && picklen >= 13 &&
      strncmp(pick, "[createdump] ", 13) == 0) {
    pick += 13;
    picklen -= 13;
  }
  snprintf(out, cap, "%.*s", pick ? (int)picklen : 0, pick ? pick : "");
  /* the output is the target user's to choose: no terminal escapes or
   * other control characters into the log */
  for (char *c = out; *c; c++)
    if ((unsigned char)*c < 0x20 || *c == 0x7f)
      *c = '?';
}

/* One run of run_wait: the helper process, its pipes, and what came
 * through them. */
struct run {
  pid_t helper;
  int st[2];   /* the helper's report: pid_t child, int waited, int status */
  int out[2];  /* the child's stdout and stderr */
  int devnull; /* the child's stdin */
  unsigned char msg[sizeof(pid_t) + 2 * sizeof(int)];
  size_t msglen;
  char text[2049]; /* the tail of the child's output */
  size_t textlen;
};

/* Opens the pipes and starts the helper (run_helper): 0, or negative errno
 * with res->reason. */
static int run_start(struct run *run, const struct spawn *sp,
                     struct dump_result *res) {
  const char *what = sp->argv[0];
  if (pipe2(run->st, O_CLOEXEC) != 0 || pipe2(run->out, O_CLOEXEC) != 0 ||
      (run->devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
    int r = -errno;
    dump_say(res, "cannot run %s: %s", what, strerror(-r));
    return r;
  }
  run->helper = fork();
  if (run->helper < 0) {
    int r = -errno;
    dump_say(res, "cannot run %s: fork: %s", what, strerror(-r));
    return r;
  }
  if (run->helper == 0)
    run_helper(sp, run->devnull, run->out[1], run->st[1]);
  close(run->st[1]);
  close(run->out[1]);
  run->st[1] = run->out[1] = -1;
  return 0;
}

/* Reads the helper's report and the output of the child (what) until both
 * end:
 * 0; or, when timeout_ms passes, the thread's cancel fd (the dump
 * worker's, written at shutdown; never read here, so that it stays
 * readable for the rest) is readable or poll fails, negative errno (res
 * says why, but for -ETIMEDOUT). */
static int run_watch(struct run *run, const char *what, int timeout_ms,
                     struct dump_result *res) {
  struct pollfd pfd[3] = {{.fd = run->st[0], .events = POLLIN},
                          {.fd = run->out[0], .events = POLLIN},
                          {.fd = ipc_get_cancel_fd(), .events = POLLIN}};
  double deadline = clock_mono_s() + timeout_ms / 1000.0;
  while (pfd[0].fd >= 0 || pfd[1].fd >= 0) {
    double left = deadline - clock_mono_s();
    if (left <= 0)
      return -ETIMEDOUT;
    int n = poll(pfd, 3, (int)(left * 1000) + 1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int r = -errno;
      dump_say(res, "poll: %s", strerror(-r));
      return r;
    }
    if (pfd[2].fd >= 0 && pfd[2].revents != 0) {
      dump_say(res, "cancelled (shutting down): %s killed", what);
      return -ECANCELED;
    }
    for (int i = 0; i < 2; i++) {
      if (pfd[i].fd < 0 || pfd[i].revents == 0)
        continue;
      char buf[512];
      ssize_t k = i == 0 ? read(pfd[i].fd, run->msg + run->msglen,
                                sizeof(run->msg) - run->msglen)
                         : read(pfd[i].fd, buf, sizeof(buf));
      if (k < 0 && (errno == EINTR || errno == EAGAIN))
        continue;
      if (k <= 0 ||
          (i == 0 && (run->msglen += (size_t)k) == sizeof(run->msg))) {
        pfd[i].fd = -1; /* EOF, error, or all we wait for */
        continue;
      }
      if (i == 1)
        keep_tail(run->text, sizeof(run->text) - 1, &run->textlen, buf,
                  (size_t)k);
    }
  }
  return 0;
}

/* What the helper reported of the child (argv[0]): 0 when it exited 0, else
 * negative errno with res->reason ending with the telling line of its
 * output. */
static int run_verdict(const struct run *run, const char *what,
                       struct dump_result *res) {
  pid_t child;
  int waited, status;
  memcpy(&child, run->msg, sizeof(child));
  memcpy(&waited, run->msg + sizeof(pid_t), sizeof(int));
  memcpy(&status, run->msg + sizeof(pid_t) + sizeof(int), sizeof(int));
  if (run->msglen >= sizeof(child) && child < 0) {
    dump_say(res, "cannot run %s: fork: %s", what, strerror(-child));
    return child;
  }
  if (run->msglen < sizeof(run->msg) || !waited) {
    dump_say(res, "lost track of %s (its helper process ended early)", what);
    return -ECHILD;
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return 0;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && run->textlen == 0) {
    dump_say(res, "cannot run %s", what);
    return -ENOEXEC;
  }
  char line[256];
  telling_line(run->text, line, sizeof(line));
  if (WIFEXITED(status))
    dump_say(res, "%s exited with status %d%s%s", what, WEXITSTATUS(status),
             line[0] ? ": " : "", line);
  else
    dump_say(res, "%s was killed by signal %d%s%s", what,
             WIFSIGNALED(status) ? WTERMSIG(status) : 0, line[0] ? ": " : "",
             line);
  return -EIO;
}

/* Kills the child (when the helper has not reaped it: no status came, so
 * the pid is still its) and the helper. */
static void run_kill(const struct run *run) {
  pid_t child;
  memcpy(&child, run->msg, sizeof(child));
  if (run->msglen >= sizeof(child) && child > 0 &&
      run->msglen < sizeof(run->msg))
    kill(child, SIGKILL);
  kill(run->helper, SIGKILL);
}

/* Reaps the helper and closes the pipes. */
static void run_end(struct run *run) {
  if (run->helper > 0) /* ECHILD when collectd's SIGCHLD = SIG_IGN reaped it */
    while (waitpid(run->helper, NULL, 0) < 0 && errno == EINTR)
      ;
  int fds[] = {run->st[0], run->st[1], run->out[0], run->out[1], run->devnull};
  for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
    if (fds[i] >= 0)
      close(fds[i]);
}

/* Runs argv without a shell; waits up to timeout_ms, then kills it. On
 * failure the reason ends with the telling line of its output.
 *
 * Through a helper process (run_helper): collectd 5 sets SIGCHLD to SIG_IGN,
 * so the kernel reaps its children at once and their exit status is lost
 * (waitpid fails with ECHILD). The helper's own child is not ours. */
static int run_wait(const struct spawn *sp, int timeout_ms,
                    struct dump_result *res) {
  struct run run = {.helper = -1,
                    .st = {-1, -1},
                    .out = {-1, -1},
                    .devnull = -1};
  int r = run_start(&run, sp, res);
  if (r == 0) {
    r = run_watch(&run, sp->argv[0], timeout_ms, res);
    if (r == 0) {
      r = run_verdict(&run, sp->argv[0], res);
    } else {
      run_kill(&run); /* timed out, cancelled, or we cannot watch it */
      if (r == -ETIMEDOUT)
        dump_say(res, "%s took longer than %d ms: killed", sp->argv[0],
                 timeout_ms);
    }
  }
  run_end(&run);
  return r;
}

int dump_exec_plan(const struct ipc_endpoint *ep, struct dump_exec_plan *plan,
                   char *why, size_t why_cap) {
  memset(plan, 0, sizeof(*plan));
  plan->fd = -1;
  plan->uid = geteuid();
  plan->gid = getegid();
  char dir[32];
  snprintf(dir, sizeof(dir), "/proc/%d", (int)ep->pid);
  int proc_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (proc_fd < 0) {
    int e = errno;
    snprintf(why, why_cap, "cannot open %s: %s", dir, strerror(e));
    return e == ENOENT ? -ESRCH : -e;
  }
  int r = plan_at(proc_fd, ep, plan, why, why_cap);
  close(proc_fd);
  if (r < 0 && plan->fd >= 0) {
    close(plan->fd);
    plan->fd = -1;
  }
  return r;
}

/* For a child that runs as the plan's user: creates out_path (a new file
 * in a directory that user owns, the staging directory) and gives it to
 * that user, so that createdump can write it through the descriptor
 * without reaching the directory by path (the dump directory above it
 * may be root's only). An O_WRONLY descriptor, or negative errno with
 * res->reason filled. */
static int open_out_for(const struct dump_exec_plan *plan, const char *out_path,
                        struct dump_result *res) {
  char dir[PATH_MAX];
  if ((size_t)snprintf(dir, sizeof(dir), "%s", out_path) >= sizeof(dir)) {
    dump_say(res, "dump path too long");
    return -ENAMETOOLONG;
  }
  char *slash = strrchr(dir, '/');
  if (slash == NULL || slash[1] == 0) {
    dump_say(res, "%s is no file path", out_path);
    return -EINVAL;
  }
  *slash = 0;
  const char *base = slash + 1;
  int dfd =
      open(dir[0] ? dir : "/", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (dfd < 0 || fstat(dfd, &st) != 0) {
    int e = errno;
    dump_say(res, "cannot open %s: %s", dir, strerror(e));
    if (dfd >= 0)
      close(dfd);
    return -e;
  }
  if (st.st_uid != plan->uid) {
    dump_say(res, "%s belongs to uid %u, not to uid %u who runs createdump", dir,
        (unsigned)st.st_uid, (unsigned)plan->uid);
    close(dfd);
    return -EPERM;
  }
  /* a new file, never one the user put there (nor a link) */
  int fd = openat(dfd, base,
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  int e = errno;
  if (fd >= 0 && fchown(fd, plan->uid, plan->gid) != 0) {
    e = errno;
    close(fd);
    unlinkat(dfd, base, 0);
    dump_say(res, "cannot give %s to uid %u: %s", out_path, (unsigned)plan->uid,
        strerror(e));
    close(dfd);
    return -e;
  }
  close(dfd);
  if (fd < 0) {
    dump_say(res, "cannot create %s: %s", out_path, strerror(e));
    return -e;
  }
  return fd;
}

int dump_exec_run(const struct dump_exec_plan *plan,
                  const struct ipc_endpoint *ep, const char *out_path,
                  enum ipc_dump_type type, int timeout_ms,
                  struct dump_result *res) {
  char pidbuf[16];
  snprintf(pidbuf, sizeof(pidbuf), "%d", (int)ep->pid);
  const char *type_flag = type == IPC_DUMP_MINI     ? "--normal"
                          : type == IPC_DUMP_TRIAGE ? "--triage"
                          : type == IPC_DUMP_FULL   ? "--full"
                                                    : "--withheap";
  char dir[32];
  snprintf(dir, sizeof(dir), "/proc/%d", (int)ep->pid);
  int proc_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (proc_fd < 0 || proc_same(proc_fd, ep->start_time) != 0) {
    dump_say(res, "pid %d has ended, or is another process now: no dump",
        (int)ep->pid);
    if (proc_fd >= 0)
      close(proc_fd);
    return -ESRCH;
  }
  int out_fd = -1;
  char out_arg[32];
  const char *out = out_path;
  if (plan->drop) {
    out_fd = open_out_for(plan, out_path, res);
    if (out_fd < 0) {
      close(proc_fd);
      return out_fd;
    }
    /* the child's descriptor: 3, or 4 after the file it executes */
    snprintf(out_arg, sizeof(out_arg), "/proc/self/fd/%d",
             plan->fd >= 0 ? 4 : 3);
    out = out_arg;
  }
  char *argv[] = {(char *)plan->path, "-f",   (char *)out,
                  (char *)type_flag,  pidbuf, NULL};
  struct spawn sp = {.argv = argv,
                     .path = plan->path,
                     .exec_fd = plan->fd,
                     .out_fd = out_fd,
                     .drop = plan->drop,
                     .uid = plan->uid,
                     .gid = plan->gid,
                     .proc_fd = proc_fd,
                     .start = ep->start_time};
  int r = run_wait(&sp, timeout_ms, res);
  if (out_fd >= 0)
    close(out_fd);
  close(proc_fd);
  return r;
}

void dump_exec_release(struct dump_exec_plan *plan) {
  if (plan->fd >= 0)
    close(plan->fd);
  plan->fd = -1;
}
