/**
 * collectd-dotnet - plugin/dump.c
 *
 * See dump.h. The steps of one dump:
 *   1. checks: the directory exists or is created 0700; free space;
 *   2. a private staging directory beside the final file (same filesystem,
 *      so the final step is an atomic rename), owned by whoever writes the
 *      dump: the target's uid for IPC (the runtime's createdump runs as the
 *      target), ourselves for exec;
 *      for a target in another mount namespace (a container) the IPC dump
 *      is written in the target's own TMPDIR and copied out through
 *      /proc/<pid>/root;
 *   3. the dump is written;
 *   4. the file is checked (regular, not a symlink, not empty), chmod 0600,
 *      and renamed to its final name with RENAME_NOREPLACE.
 */
#include "dump.h"
#include "dump_exec.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void say(struct dump_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void say(struct dump_result *res, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
  va_end(ap);
}

/* One line of text: the runtime's answer to GenerateCoreDump carries
 * createdump's output, several lines, and the reason goes into a log line and
 * a notification. Line breaks become "; ", other control characters spaces;
 * trailing blanks go. Truncates to cap. */
static void one_line(char *s, size_t cap) {
  char out[sizeof(((struct dump_result *)0)->reason)];
  size_t o = 0;
  int brk = 0;
  if (cap > sizeof(out))
    cap = sizeof(out);
  for (size_t i = 0; s[i] && o + 1 < cap; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\n' || c == '\r') {
      brk = 1;
      continue;
    }
    if (brk && o > 0 && o + 3 < cap) {
      while (o > 0 && out[o - 1] == ' ')
        o--;
      out[o++] = ';';
      out[o++] = ' ';
    }
    brk = 0;
    out[o++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
  }
  while (o > 0 && out[o - 1] == ' ')
    o--;
  out[o] = 0;
  memcpy(s, out, o + 1);
}

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int dump_type_parse(const char *s, enum ipc_dump_type *out) {
  static const struct {
    const char *name;
    enum ipc_dump_type t;
  } names[] = {{"mini", IPC_DUMP_MINI},
               {"normal", IPC_DUMP_MINI},
               {"heap", IPC_DUMP_HEAP},
               {"withheap", IPC_DUMP_HEAP},
               {"triage", IPC_DUMP_TRIAGE},
               {"full", IPC_DUMP_FULL}};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (strcasecmp(s, names[i].name) == 0) {
      *out = names[i].t;
      return 0;
    }
  return -EINVAL;
}

const char *dump_type_name(enum ipc_dump_type t) {
  switch (t) {
  case IPC_DUMP_MINI:
    return "mini";
  case IPC_DUMP_HEAP:
    return "heap";
  case IPC_DUMP_TRIAGE:
    return "triage";
  case IPC_DUMP_FULL:
    return "full";
  }
  return "?";
}

int dump_size_parse(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno != 0 || end == s || v < 0)
    return -EINVAL;
  double mul = 1;
  switch (*end) {
  case 0:
    break;
  case 'k': case 'K':
    mul = 1024.0;
    break;
  case 'm': case 'M':
    mul = 1024.0 * 1024;
    break;
  case 'g': case 'G':
    mul = 1024.0 * 1024 * 1024;
    break;
  case 't': case 'T':
    mul = 1024.0 * 1024 * 1024 * 1024;
    break;
  default:
    return -EINVAL;
  }
  if (*end && end[1] != 0 && !((end[1] == 'B' || end[1] == 'b') && end[2] == 0) &&
      !((end[1] == 'i') && (end[2] == 'B') && end[3] == 0))
    return -EINVAL;
  double b = v * mul;
  if (b > 1.8e19)
    return -ERANGE;
  *out = (uint64_t)b;
  return 0;
}

int dump_mkdir(const char *dir) {
  char buf[PATH_MAX];
  if (dir[0] == 0 || strlen(dir) >= sizeof(buf))
    return -EINVAL;
  snprintf(buf, sizeof(buf), "%s", dir);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = 0;
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
      return -errno;
    *p = '/';
  }
  if (mkdir(buf, 0700) != 0 && errno != EEXIST)
    return -errno;
  struct stat st;
  if (lstat(buf, &st) != 0)
    return -errno;
  if (S_ISLNK(st.st_mode))
    return -ELOOP;
  if (!S_ISDIR(st.st_mode))
    return -ENOTDIR;
  return 0;
}

static void utc_stamp(char *out, size_t cap) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char base[32];
  strftime(base, sizeof(base), "%Y%m%dT%H%M%S", &tm);
  snprintf(out, cap, "%s.%03ldZ", base, ts.tv_nsec / 1000000);
}

/* A name safe in a file name: letters, digits, '.', '_', '-'. */
static void safe_name(const char *in, char *out, size_t cap) {
  size_t o = 0;
  for (const char *p = in; *p && o + 1 < cap; p++) {
    char c = *p;
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    out[o++] = ok ? c : '_';
  }
  out[o] = 0;
  if (o == 0 || out[0] == '.')
    snprintf(out, cap, "dotnet");
}

/* Copies src (opened O_NOFOLLOW) to a new file dst (O_EXCL, 0600). */
static int copy_out(const char *src, const char *dst, struct dump_result *res) {
  /* O_NONBLOCK: a FIFO the target swapped in must not block us */
  int in = open(src, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  struct stat ist;
  if (in < 0 || fstat(in, &ist) != 0 || !S_ISREG(ist.st_mode)) {
    int e = in < 0 ? errno : EPERM;
    if (in >= 0)
      close(in);
    say(res, "cannot open the dump %s: %s", src,
        e == EPERM ? "not a regular file" : strerror(e));
    return -e;
  }
  int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (out < 0) {
    int e = errno;
    close(in);
    say(res, "cannot create %s: %s", dst, strerror(e));
    return -e;
  }
  char buf[1 << 16];
  int r = 0;
  for (;;) {
    ssize_t n = read(in, buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      r = -errno;
      break;
    }
    if (n == 0)
      break;
    for (ssize_t o = 0; o < n;) {
      ssize_t w = write(out, buf + o, (size_t)(n - o));
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0) {
        r = -errno;
        break;
      }
      o += w;
    }
    if (r < 0)
      break;
  }
  if (close(out) != 0 && r == 0)
    r = -errno;
  close(in);
  if (r < 0) {
    unlink(dst);
    say(res, "copying the dump to %s failed: %s", dst, strerror(-r));
  }
  return r;
}

/* Checks the staged file and moves it to its final name. */
static int finish(const char *staged, const char *final_path, int copy,
                  struct dump_result *res) {
  struct stat st;
  if (lstat(staged, &st) != 0) {
    say(res, "the runtime reported success but wrote no dump at %s", staged);
    return -ENOENT;
  }
  if (!S_ISREG(st.st_mode)) {
    say(res, "%s is not a regular file: refusing it", staged);
    unlink(staged);
    return -EPERM;
  }
  if (st.st_size == 0) {
    say(res, "the dump %s is empty", staged);
    unlink(staged);
    return -EIO;
  }
  int r;
  if (copy) {
    r = copy_out(staged, final_path, res);
    unlink(staged);
    if (r < 0)
      return r;
  } else {
    /* The writer of an IPC dump (the target) owns the staging directory
     * and may swap the file for a symlink or a hard link at any moment:
     * secure it through a descriptor (never chmod/chown a path), and check
     * that what the rename moved is that file. */
    int fd = open(staged, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_nlink != 1) {
      say(res,
          "%s is not a plain file (changed, linked or not a regular "
          "file): refusing it",
          staged);
      if (fd >= 0)
        close(fd);
      unlink(staged);
      return -EPERM;
    }
    if (fchmod(fd, 0600) != 0 || (geteuid() == 0 && fchown(fd, 0, 0) != 0)) {
      r = -errno;
      say(res, "cannot secure %s: %s", staged, strerror(-r));
      close(fd);
      unlink(staged);
      return r;
    }
    if (renameat2(AT_FDCWD, staged, AT_FDCWD, final_path, RENAME_NOREPLACE) != 0) {
      r = -errno;
      say(res, "cannot move the dump to %s: %s", final_path, strerror(-r));
      close(fd);
      unlink(staged);
      return r;
    }
    struct stat moved;
    if (lstat(final_path, &moved) != 0 || moved.st_dev != st.st_dev ||
        moved.st_ino != st.st_ino) {
      say(res, "%s was replaced while it was being secured: refusing it",
          staged);
      close(fd);
      unlink(final_path); /* whatever was moved there: the name is ours */
      return -EPERM;
    }
    close(fd);
  }
  res->size = (uint64_t)st.st_size;
  snprintf(res->path, sizeof(res->path), "%s", final_path);
  return 0;
}

int dump_take(const struct dump_request *req, struct dump_result *res) {
  memset(res, 0, sizeof(*res));
  double t0 = mono_s();
  int timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : 120000;
  char stage_dir[PATH_MAX] = "", staged[PATH_MAX] = "", final_path[PATH_MAX];
  char name[160], stamp[40];
  int r;

  r = dump_mkdir(req->directory);
  if (r < 0) {
    say(res, "dump directory %s: %s", req->directory,
        r == -ELOOP ? "is a symbolic link: refusing it" : strerror(-r));
    return r;
  }
  if (req->min_free_bytes > 0) {
    struct statvfs sv;
    if (statvfs(req->directory, &sv) != 0) {
      r = -errno;
      say(res, "statvfs %s: %s", req->directory, strerror(-r));
      return r;
    }
    uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
    if (avail < req->min_free_bytes) {
      say(res,
          "only %llu MiB free in %s, below MinFreeSpace (%llu MiB): no dump",
          (unsigned long long)(avail >> 20), req->directory,
          (unsigned long long)(req->min_free_bytes >> 20));
      return -ENOSPC;
    }
  }
  if (access(req->directory, W_OK) != 0) {
    r = -errno;
    say(res, "dump directory %s is not writable: %s", req->directory,
        strerror(-r));
    return r;
  }

  safe_name(req->instance[0] ? req->instance : "dotnet", name, sizeof(name));
  utc_stamp(stamp, sizeof(stamp));
  if ((size_t)snprintf(final_path, sizeof(final_path), "%s/%s-%d-%s.dmp",
                       req->directory, name, (int)req->ep.pid,
                       stamp) >= sizeof(final_path)) {
    say(res, "dump path too long");
    return -ENAMETOOLONG;
  }
  struct stat st;
  if (lstat(final_path, &st) == 0) {
    say(res, "%s exists already: refusing to overwrite it", final_path);
    return -EEXIST;
  }

  /* who writes into the staging directory: the target for IPC, the user
   * the plan runs createdump as for exec */
  struct dump_exec_plan plan = {.fd = -1};
  uid_t writer = req->ep.uid;
  if (req->method == DUMP_METHOD_EXEC) {
    char why[512];
    r = dump_exec_plan(&req->ep, &plan, why, sizeof(why));
    if (r < 0) {
      say(res, "%s", why);
      return r;
    }
    writer = plan.uid;
    snprintf(res->note, sizeof(res->note), "%s", plan.note);
  }

  int copy = 0;
  int foreign_ipc = req->method == DUMP_METHOD_IPC && req->ep.foreign_mnt_ns;
  char target_path[PATH_MAX]; /* the path as the writer sees it */
  if (foreign_ipc) {
    /* The target resolves paths in its own mount namespace: let it write in
     * the directory of its diagnostic socket (its TMPDIR), then copy out. */
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", req->ep.path);
    char *slash = strrchr(dir, '/');
    if (slash)
      *slash = 0;
    char prefix[64];
    int pl = snprintf(prefix, sizeof(prefix), "/proc/%d/root", (int)req->ep.pid);
    if (strncmp(dir, prefix, (size_t)pl) != 0) {
      say(res, "cannot tell the target's TMPDIR");
      dump_exec_release(&plan);
      return -EINVAL;
    }
    if ((size_t)snprintf(target_path, sizeof(target_path),
                         "%s/collectd-dotnet-%s.dmp", dir + pl,
                         stamp) >= sizeof(target_path) ||
        (size_t)snprintf(staged, sizeof(staged), "%s/collectd-dotnet-%s.dmp",
                         dir, stamp) >= sizeof(staged)) {
      say(res, "dump path too long");
      dump_exec_release(&plan);
      return -ENAMETOOLONG;
    }
    copy = 1;
  } else {
    if ((size_t)snprintf(stage_dir, sizeof(stage_dir), "%s/.staging-%d-%s",
                         req->directory, (int)req->ep.pid, stamp) >=
        sizeof(stage_dir)) {
      say(res, "dump path too long");
      dump_exec_release(&plan);
      return -ENAMETOOLONG;
    }
    if (mkdir(stage_dir, 0700) != 0) {
      r = -errno;
      say(res, "cannot create %s: %s", stage_dir, strerror(-r));
      dump_exec_release(&plan);
      return r;
    }
    if (writer != geteuid()) {
      if (chown(stage_dir, writer, (gid_t)-1) != 0) {
        r = -errno;
        say(res,
            "the target runs as uid %u and cannot write into a directory of "
            "uid %u (%s): run collectd as root or as the target's user, or "
            "use Method exec",
            (unsigned)writer, (unsigned)geteuid(), strerror(-r));
        rmdir(stage_dir);
        dump_exec_release(&plan);
        return r;
      }
    }
    if ((size_t)snprintf(staged, sizeof(staged), "%s/dump", stage_dir) >=
        sizeof(staged)) {
      say(res, "dump path too long");
      rmdir(stage_dir);
      dump_exec_release(&plan);
      return -ENAMETOOLONG;
    }
    memcpy(target_path, staged, sizeof(target_path));
  }

  if (req->method == DUMP_METHOD_IPC) {
    struct ipc_error err = {0};
    r = ipc_dump(&req->ep, target_path, req->type, timeout_ms, &err);
    if (r < 0)
      say(res, "GenerateCoreDump failed: %s", err.message);
  } else {
    r = dump_exec_run(&plan, &req->ep, target_path, req->type, timeout_ms,
                      res);
  }
  dump_exec_release(&plan);
  if (r == 0)
    r = finish(staged, final_path, copy, res);
  else
    unlink(staged);
  if (stage_dir[0]) {
    /* createdump may leave nothing else; remove what is left, best effort. */
    DIR *d = opendir(stage_dir);
    if (d) {
      struct dirent *de;
      while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
          unlinkat(dirfd(d), de->d_name, 0);
      closedir(d);
    }
    rmdir(stage_dir);
  }
  res->seconds = mono_s() - t0;
  one_line(res->reason, sizeof(res->reason));
  return r;
}
