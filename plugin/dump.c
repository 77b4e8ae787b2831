/**
 * collectd-dotnet - plugin/dump.c
 *
 * See dump.h. The steps of one dump:
 *   1. the dump directory is opened level by level (dump_dir_open: created
 *      0711 if missing, refused unless only root can change it); free space;
 *   2. the writer (the target's uid for IPC, where the runtime's createdump
 *      runs as the target; the plan's user for exec) gets a private staging
 *      directory in the root-owned .staging area of that directory; for a
 *      target in another mount namespace (a container) the IPC dump is
 *      written in the target's own TMPDIR instead, reached inside its root;
 *   3. the dump is written;
 *   4. what is at the staged name is checked through an fd (one regular
 *      file of the writer), and exactly its size is cloned or copied into a
 *      fresh 0600 inode of ours, bounded by free space, Timeout and the
 *      thread's cancel fd, then linked under its final name (never over an
 *      existing one);
 *   5. the staging directory is emptied relative to its fd and removed.
 */
#include "clock.h"
#include "dump.h"
#include "dump_exec.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void dump_say(struct dump_result *res, const char *fmt, ...) {
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

const struct dump_name dump_types[] = {
    {"mini", IPC_DUMP_MINI},     {"heap", IPC_DUMP_HEAP},
    {"triage", IPC_DUMP_TRIAGE}, {"full", IPC_DUMP_FULL},
    {"normal", IPC_DUMP_MINI},   {"withheap", IPC_DUMP_HEAP},
    {NULL, 0}};

const struct dump_name dump_methods[] = {
    {"ipc", DUMP_METHOD_IPC}, {"exec", DUMP_METHOD_EXEC}, {NULL, 0}};

int dump_name_parse(const struct dump_name *table, const char *s, int *value) {
  for (const struct dump_name *n = table; n->name != NULL; n++)
    if (strcasecmp(s, n->name) == 0) {
      *value = n->value;
      return 0;
    }
  return -EINVAL;
}

const char *dump_name_of(const struct dump_name *table, int value) {
  for (const struct dump_name *n = table; n->name != NULL; n++)
    if (n->value == value)
      return n->name;
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
  case 'k':
  case 'K':
    mul = 1024.0;
    break;
  case 'm':
  case 'M':
    mul = 1024.0 * 1024;
    break;
  case 'g':
  case 'G':
    mul = 1024.0 * 1024 * 1024;
    break;
  case 't':
  case 'T':
    mul = 1024.0 * 1024 * 1024 * 1024;
    break;
  default:
    return -EINVAL;
  }
  if (*end && end[1] != 0 &&
      !((end[1] == 'B' || end[1] == 'b') && end[2] == 0) &&
      !((end[1] == 'i') && (end[2] == 'B') && end[3] == 0))
    return -EINVAL;
  double b = v * mul;
  if (b > 1.8e19)
    return -ERANGE;
  *out = (uint64_t)b;
  return 0;
}

/* ---- the dump directory ----
 *
 * Nothing a watched process's user can write may sit on the way to the dump
 * directory, or they could swap what root then writes or removes there. The
 * rule, for every directory from / down: owned by root (or by the user we
 * run as), not writable by group or others; a directory above may be
 * writable by others only with the sticky bit (as /tmp), which stops them
 * from renaming what root made in it. Each level is opened without following
 * a symlink, so the directory fd we end with is the one the rule checked. */

/* 0 when st (the directory sofar; last: the dump directory itself) follows
 * the rule, else -EPERM with why[] saying what to do. */
static int dir_trusted(const struct stat *st, const char *sofar, int last,
                       char *why, size_t cap) {
  uid_t me = geteuid();
  if (st->st_uid != 0 && st->st_uid != me) {
    char also[48] = "";
    if (me != 0)
      snprintf(also, sizeof(also), " (or to uid %u, ours)", (unsigned)me);
    snprintf(why, cap,
             "dump directory: %s belongs to uid %u; the dump directory and "
             "every directory above it must belong to root%s: choose a "
             "directory such as /var/lib/collectd/dotnet-dumps",
             sofar, (unsigned)st->st_uid, also);
    return -EPERM;
  }
  if ((st->st_mode & (S_IWGRP | S_IWOTH)) &&
      (last || !(st->st_mode & S_ISVTX))) {
    snprintf(why, cap,
             "dump directory: %s is writable by %s (mode %04o), so a "
             "target's user could swap what is in it: chmod go-w it, or "
             "choose a directory only root can write",
             sofar, (st->st_mode & S_IWOTH) ? "others" : "its group",
             (unsigned)(st->st_mode & 07777));
    return -EPERM;
  }
  return 0;
}

#define DIR_DEPTH_MAX 64

/* The components of dir (absolute, or relative to the current directory)
 * in comp[DIR_DEPTH_MAX], pointing into path[PATH_MAX]: their number, or
 * negative errno with why[]. "." is dropped, ".." refused (what it names
 * depends on symlinks we do not follow). */
static int dir_components(const char *dir, char *path, char **comp, char *why,
                          size_t why_cap) {
  int n = 0;
  if (dir == NULL || dir[0] == 0) {
    snprintf(why, why_cap, "dump directory: no path given");
    return -EINVAL;
  }
  if (dir[0] == '/') {
    if (strlen(dir) >= PATH_MAX)
      goto too_long;
    snprintf(path, PATH_MAX, "%s", dir);
  } else {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == NULL) {
      int e = errno;
      snprintf(why, why_cap,
               "dump directory %s: cannot tell the current "
               "directory: %s",
               dir, strerror(e));
      return -e;
    }
    if ((size_t)snprintf(path, PATH_MAX, "%s/%s", cwd, dir) >= PATH_MAX)
      goto too_long;
  }
  for (char *p = path; *p;) {
    while (*p == '/')
      *p++ = 0;
    if (*p == 0)
      break;
    char *c = p;
    while (*p && *p != '/')
      p++;
    if (*p)
      *p++ = 0;
    if (strcmp(c, ".") == 0)
      continue;
    if (strcmp(c, "..") == 0) {
      snprintf(why, why_cap, "dump directory %s: give a path without \"..\"",
               dir);
      return -EINVAL;
    }
    if (n == DIR_DEPTH_MAX)
      goto too_long;
    comp[n++] = c;
  }
  return n;

too_long:
  snprintf(why, why_cap, "dump directory %s: path too long", dir);
  return -ENAMETOOLONG;
}

/* Opens the level name in fd (shown as sofar), never through a symlink,
 * creating it 0711 when missing and create is set (others may pass through
 * it, as a target writing its own dump must to reach its staging
 * directory, but not list it): an O_PATH fd, or negative errno with why[]. */
static int dir_level(int fd, const char *name, const char *sofar, int create,
                     char *why, size_t why_cap) {
  int flags = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  int nfd = openat(fd, name, flags);
  if (nfd < 0 && errno == ENOENT && create) {
    if (mkdirat(fd, name, 0711) == 0) {
      int w = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (w >= 0) {
        if (fchmod(w, 0711) != 0) { /* umask: best effort, checked after */
        }
        close(w);
      }
    } else if (errno != EEXIST) {
      int r = -errno;
      snprintf(why, why_cap, "dump directory: cannot create %s: %s", sofar,
               strerror(-r));
      return r;
    }
    nfd = openat(fd, name, flags);
  }
  if (nfd >= 0)
    return nfd;
  int r = -errno;
  struct stat lst;
  if ((r == -ELOOP || r == -ENOTDIR) &&
      fstatat(fd, name, &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISLNK(lst.st_mode)) {
    snprintf(why, why_cap,
             "dump directory: %s is a symbolic link: refusing it (give "
             "the path it points to; no link is followed on the way)",
             sofar);
    return -ELOOP;
  }
  snprintf(why, why_cap, "dump directory: %s: %s", sofar,
           r == -ENOTDIR ? "not a directory" : strerror(-r));
  return r;
}

int dump_dir_open(const char *dir, int create, int *others_reach, char *canon,
                  size_t canon_cap, char *why, size_t why_cap) {
  char path[PATH_MAX], sofar[PATH_MAX] = "";
  char *comp[DIR_DEPTH_MAX];
  int n = dir_components(dir, path, comp, why, why_cap);
  if (n < 0)
    return n;
  int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    snprintf(why, why_cap, "dump directory: cannot open /: %s", strerror(e));
    return -e;
  }
  int r = dir_trusted(&st, "/", n == 0, why, why_cap);
  int reach = (st.st_mode & S_IXOTH) != 0;
  for (int i = 0; r == 0 && i < n; i++) {
    size_t sl = strlen(sofar);
    snprintf(sofar + sl, sizeof(sofar) - sl, "/%s", comp[i]);
    int nfd = dir_level(fd, comp[i], sofar, create, why, why_cap);
    if (nfd < 0) {
      r = nfd;
      break;
    }
    close(fd);
    fd = nfd;
    if (fstat(fd, &st) != 0) {
      r = -errno;
      snprintf(why, why_cap, "dump directory: %s: %s", sofar, strerror(-r));
      break;
    }
    r = dir_trusted(&st, sofar, i + 1 == n, why, why_cap);
    if (!(st.st_mode & S_IXOTH))
      reach = 0;
  }
  if (r == 0 && canon &&
      (size_t)snprintf(canon, canon_cap, "%s", n ? sofar : "/") >= canon_cap) {
    snprintf(why, why_cap, "dump directory %s: path too long", dir);
    r = -ENAMETOOLONG;
  }
  if (r < 0) {
    close(fd);
    return r;
  }
  if (others_reach)
    *others_reach = reach;
  return fd;
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
  static const char keep[] = "abcdefghijklmnopqrstuvwxyz"
                             "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
  snprintf(out, cap, "%s", in);
  for (char *p = out; *(p += strspn(p, keep)) != 0;)
    *p = '_';
  if (out[0] == 0 || out[0] == '.')
    snprintf(out, cap, "dotnet");
}

/* ---- the staging area ----
 *
 *   <Directory>/                 root, 0711 when we create it
 *     .staging/                  root, 0711: others pass, nobody lists
 *       <32 random hex digits>/  the writer's, 0700: one per dump
 *         dump                   what the writer wrote
 *     <instance>-<pid>-<stamp>.dmp   root, 0600: a fresh inode of ours
 *
 * The writer owns its own staging directory and nothing else: it cannot
 * rename or replace that directory (it cannot write .staging), other users
 * cannot enter it or learn its name. Everything in it is the writer's and is
 * only ever named relative to the directory's fd, never followed, never
 * recursed into. */

/* The staging area of the dump directory dirfd, made 0711 when missing and
 * checked as the dump directory is: an O_RDONLY directory fd, or negative
 * errno with why[]. */
static int stage_area_open(int dirfd, char *why, size_t why_cap) {
  if (mkdirat(dirfd, DUMP_STAGING_AREA, 0711) != 0 && errno != EEXIST) {
    int r = -errno;
    snprintf(why, why_cap,
             "cannot create the staging area " DUMP_STAGING_AREA ": %s",
             strerror(-r));
    return r;
  }
  struct stat st;
  int afd = openat(dirfd, DUMP_STAGING_AREA,
                   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  int r = 0;
  if (afd < 0 || fstat(afd, &st) != 0) {
    r = -errno;
    snprintf(why, why_cap,
             "cannot open the staging area " DUMP_STAGING_AREA ": %s",
             r == -ELOOP || r == -ENOTDIR ? "not a directory" : strerror(-r));
  } else {
    r = dir_trusted(&st, DUMP_STAGING_AREA, 1, why, why_cap);
  }
  if (r == 0 && (st.st_mode & 07777) != 0711 && fchmod(afd, 0711) != 0) {
    r = -errno;
    snprintf(why, why_cap, "cannot chmod the staging area: %s", strerror(-r));
  }
  if (r < 0 && afd >= 0)
    close(afd);
  return r < 0 ? r : afd;
}

int dump_stage_new(int dirfd, uid_t writer, int *area_fd, char *name,
                   size_t name_cap, char *why, size_t why_cap) {
  uint8_t rnd[16];
  int afd = -1, sfd = -1, r, tries = 0;
  *area_fd = -1;
  if (name_cap < 2 * sizeof(rnd) + 1) {
    snprintf(why, why_cap, "staging: name buffer too small");
    return -EINVAL;
  }
  name[0] = 0;
again:
  afd = stage_area_open(dirfd, why, why_cap);
  if (afd < 0)
    return afd;
  if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
    r = -EAGAIN;
    snprintf(why, why_cap, "staging: no random bytes for a name");
    goto fail;
  }
  for (size_t i = 0; i < sizeof(rnd); i++)
    snprintf(name + 2 * i, 3, "%02x", rnd[i]);
  if (mkdirat(afd, name, 0700) != 0) {
    r = -errno;
    if (r == -ENOENT && tries++ == 0) {
      /* another dump that just ended removed the (then empty) area */
      close(afd);
      afd = -1;
      goto again;
    }
    snprintf(why, why_cap, "cannot create a staging directory: %s",
             strerror(-r));
    goto fail;
  }
  sfd = openat(afd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (sfd < 0 || fchmod(sfd, 0700) != 0) {
    r = -errno;
    snprintf(why, why_cap, "cannot open the staging directory: %s",
             strerror(-r));
    goto fail_rm;
  }
  if (writer != geteuid() && fchown(sfd, writer, (gid_t)-1) != 0) {
    r = -errno;
    snprintf(why, why_cap,
             "the dump's writer runs as uid %u and cannot write into a "
             "directory of uid %u (%s): run collectd as root or as the "
             "target's user",
             (unsigned)writer, (unsigned)geteuid(), strerror(-r));
    goto fail_rm;
  }
  *area_fd = afd;
  return sfd;

fail_rm:
  if (sfd >= 0)
    close(sfd);
  sfd = -1;
  unlinkat(afd, name, AT_REMOVEDIR);
fail:
  if (afd >= 0)
    close(afd);
  name[0] = 0;
  return r;
}

/* Entries of one staging directory looked at, at most: a writer that keeps
 * adding entries cannot keep us here. */
#define STAGE_ENTRIES_MAX 4096

int dump_stage_remove(int area_fd, const char *name, int stage_fd, char *left,
                      size_t left_cap) {
  size_t kept = 0;
  char first[64] = "";
  /* a fresh open of the directory: stage_fd's offset is left alone */
  int lfd = openat(stage_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
  if (d == NULL && lfd >= 0)
    close(lfd);
  if (d) {
    struct dirent *de;
    unsigned seen = 0;
    while (seen < STAGE_ENTRIES_MAX && (de = readdir(d)) != NULL) {
      if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
        continue;
      seen++;
      /* unlinkat removes a symlink itself, never what it points to; a
       * directory goes only when empty: its contents are the writer's
       * business, and entering it would follow what the writer built */
      if (unlinkat(stage_fd, de->d_name, 0) == 0)
        continue;
      if ((errno == EISDIR || errno == EPERM) &&
          unlinkat(stage_fd, de->d_name, AT_REMOVEDIR) == 0)
        continue;
      if (kept++ == 0)
        safe_name(de->d_name, first, sizeof(first));
    }
    closedir(d);
  }
  if (unlinkat(area_fd, name, AT_REMOVEDIR) == 0)
    return 0;
  int e = errno;
  if (left && left_cap)
    snprintf(
        left, left_cap,
        "the dump's writer left %s in its staging directory " DUMP_STAGING_AREA
        "/%s: left there, not entered",
        kept ? first : "entries", name);
  return -e;
}

/* ---- the final file ---- */

/* Bytes copied per call: between two, the deadline and the cancel fd are
 * looked at. */
#define COPY_CHUNK (8u << 20)
#define COPY_BUF (1u << 20)

static int cancelled(int cancel_fd) {
  if (cancel_fd < 0)
    return 0;
  struct pollfd p = {.fd = cancel_fd, .events = POLLIN};
  return poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

/* The bytes free for us in the filesystem of fd (shown as shown): 0, or
 * negative errno with res->reason. */
static int free_bytes(int fd, const char *shown, uint64_t *avail,
                      struct dump_result *res) {
  struct statvfs sv;
  if (fstatvfs(fd, &sv) != 0) {
    int r = -errno;
    dump_say(res, "statvfs %s: %s", shown, strerror(-r));
    return r;
  }
  *avail = (uint64_t)sv.f_bavail * sv.f_frsize;
  return 0;
}

/* Copies exactly size bytes of in to out (both at offset 0). */
static int copy_exact(int in, int out, uint64_t size, int64_t deadline_ms,
                      int cancel_fd, struct dump_result *res) {
  off_t ioff = 0, ooff = 0;
  int in_kernel = 1;
  char *buf = NULL;
  uint64_t done = 0;
  int r = 0;
  while (done < size) {
    if (deadline_ms > 0 && clock_mono_ms() >= deadline_ms) {
      dump_say(res, "Timeout reached while copying the dump (%llu of %llu MiB)",
          (unsigned long long)(done >> 20), (unsigned long long)(size >> 20));
      r = -ETIMEDOUT;
      break;
    }
    if (cancelled(cancel_fd)) {
      dump_say(res, "cancelled (shutting down) while copying the dump");
      r = -ECANCELED;
      break;
    }
    size_t chunk =
        size - done < COPY_CHUNK ? (size_t)(size - done) : COPY_CHUNK;
    ssize_t n;
    if (in_kernel) {
      n = copy_file_range(in, &ioff, out, &ooff, chunk, 0);
      if (n < 0 && done == 0 &&
          (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
           errno == EOPNOTSUPP)) {
        in_kernel = 0; /* another filesystem: read and write */
        continue;
      }
    } else {
      if (buf == NULL && (buf = malloc(COPY_BUF)) == NULL) {
        dump_say(res, "copying the dump: out of memory");
        r = -ENOMEM;
        break;
      }
      if (chunk > COPY_BUF)
        chunk = COPY_BUF;
      n = pread(in, buf, chunk, ioff);
      for (ssize_t o = 0; n > 0 && o < n;) {
        ssize_t w = pwrite(out, buf + o, (size_t)(n - o), ooff + o);
        if (w < 0 && errno == EINTR)
          continue;
        if (w <= 0) {
          n = -1;
          break;
        }
        o += w;
      }
      if (n > 0) {
        ioff += n;
        ooff += n;
      }
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      r = -errno;
      dump_say(res, "copying the dump failed: %s", strerror(-r));
      break;
    }
    if (n == 0) {
      dump_say(res, "the dump shrank while it was copied: refusing it");
      r = -EIO;
      break;
    }
    done += (uint64_t)n;
  }
  free(buf);
  return r;
}

/* Opens the staged dump src_name of src_dirfd (shown as src_shown) without
 * following a link or blocking on a FIFO, and checks it is one regular file
 * of writer, not empty: the fd with *size, or negative errno with
 * res->reason. */
static int publish_source(int src_dirfd, const char *src_name,
                          const char *src_shown, uid_t writer, uint64_t *size,
                          struct dump_result *res) {
  int in = openat(src_dirfd, src_name,
                  O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (in < 0) {
    int r = -errno;
    if (r == -ENOENT)
      dump_say(res, "the runtime reported success but wrote no dump at %s",
               src_shown);
    else if (r == -ELOOP)
      dump_say(res, "%s is not a regular file (a symbolic link): refusing it",
               src_shown);
    else
      dump_say(res, "cannot open the dump %s: %s", src_shown, strerror(-r));
    return r;
  }
  struct stat st;
  int r = 0;
  if (fstat(in, &st) != 0) {
    r = -errno;
    dump_say(res, "cannot stat the dump %s: %s", src_shown, strerror(-r));
  } else if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_uid != writer) {
    dump_say(res, "%s is not a plain file of its writer (%s): refusing it",
             src_shown,
             S_ISDIR(st.st_mode)    ? "a directory"
             : !S_ISREG(st.st_mode) ? "not a regular file"
             : st.st_nlink != 1     ? "it has other links"
                                    : "another owner");
    r = -EPERM;
  } else if (st.st_size <= 0) {
    dump_say(res, "the dump %s is empty", src_shown);
    r = -EIO;
  }
  if (r < 0) {
    close(in);
    return r;
  }
  *size = (uint64_t)st.st_size;
  return in;
}

/* A fresh 0600 inode of ours in dirfd (shown as dir_path) that only we
 * hold: whatever the writer still does to its file (it may keep an fd and
 * write on) no longer reaches the dump. O_TMPFILE, or where the filesystem
 * has none a random name in tmp_name[48]. The fd, or negative errno with
 * res->reason. */
static int publish_inode(int dirfd, const char *dir_path, char *tmp_name,
                         struct dump_result *res) {
  int out = openat(dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (out < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
    uint8_t rnd[8];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
      dump_say(res, "no random bytes for a temporary name");
      return -EAGAIN;
    }
    size_t o = (size_t)snprintf(tmp_name, 48, ".tmp-");
    for (size_t i = 0; i < sizeof(rnd); i++, o += 2)
      snprintf(tmp_name + o, 48 - o, "%02x", rnd[i]);
    out = openat(dirfd, tmp_name,
                 O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  }
  if (out < 0) {
    int r = -errno;
    dump_say(res, "cannot create a file in %s: %s", dir_path, strerror(-r));
    tmp_name[0] = 0;
    return r;
  }
  if (fchmod(out, 0600) != 0 || (geteuid() == 0 && fchown(out, 0, 0) != 0)) {
    int r = -errno;
    dump_say(res, "cannot secure the dump: %s", strerror(-r));
    close(out);
    return r;
  }
  return out;
}

/* Exactly size bytes of in into out: a clone, which shares blocks (btrfs,
 * xfs: no copy, no space), else a copy within free space and min_free. */
static int publish_fill(int in, int out, uint64_t size, int dirfd,
                        const char *dir_path, uint64_t min_free_bytes,
                        int64_t deadline_ms, int cancel_fd,
                        struct dump_result *res) {
  struct stat st;
  if (ioctl(out, FICLONE, in) == 0) {
    if (fstat(out, &st) != 0 || (uint64_t)st.st_size < size) {
      dump_say(res, "the dump shrank while it was cloned: refusing it");
      return -EIO;
    }
    if ((uint64_t)st.st_size > size && ftruncate(out, (off_t)size) != 0) {
      int r = -errno;
      dump_say(res, "cannot truncate the dump: %s", strerror(-r));
      return r;
    }
    return 0;
  }
  uint64_t avail = 0;
  int r = free_bytes(dirfd, dir_path, &avail, res);
  if (r < 0)
    return r;
  if (size > avail || avail - size < min_free_bytes) {
    dump_say(res,
             "the dump is %llu MiB, and %s has %llu MiB free with MinFreeSpace "
             "%llu MiB: refusing to copy it",
             (unsigned long long)(size >> 20), dir_path,
             (unsigned long long)(avail >> 20),
             (unsigned long long)(min_free_bytes >> 20));
    return -ENOSPC;
  }
  return copy_exact(in, out, size, deadline_ms, cancel_fd, res);
}

/* Links out (or its temporary name tmp_name, when not "") as final_name in
 * dirfd, never over an existing name (linkat fails with EEXIST). */
static int publish_link(int out, const char *tmp_name, int dirfd,
                        const char *final_name) {
  if (tmp_name[0])
    return linkat(dirfd, tmp_name, dirfd, final_name, 0) == 0 ? 0 : -errno;
  int r = linkat(out, "", dirfd, final_name, AT_EMPTY_PATH) == 0 ? 0 : -errno;
  if (r == -ENOENT || r == -EPERM) { /* no CAP_DAC_READ_SEARCH */
    char self[64];
    snprintf(self, sizeof(self), "/proc/self/fd/%d", out);
    r = linkat(AT_FDCWD, self, dirfd, final_name, AT_SYMLINK_FOLLOW) == 0
            ? 0
            : -errno;
  }
  return r;
}

int dump_publish(int src_dirfd, const char *src_name, const char *src_shown,
                 uid_t writer, int dirfd, const char *dir_path,
                 const char *final_name, uint64_t min_free_bytes,
                 int64_t deadline_ms, int cancel_fd, struct dump_result *res) {
  char final_path[PATH_MAX], tmp_name[48] = "";
  uint64_t size = 0;
  if ((size_t)snprintf(final_path, sizeof(final_path), "%s/%s", dir_path,
                       final_name) >= sizeof(final_path)) {
    dump_say(res, "dump path too long");
    return -ENAMETOOLONG;
  }
  int in = publish_source(src_dirfd, src_name, src_shown, writer, &size, res);
  if (in < 0)
    return in;
  int out = -1, r;
  struct stat st;
  if (fstatat(dirfd, final_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    dump_say(res, "%s exists already: refusing to overwrite it", final_path);
    r = -EEXIST;
  } else {
    out = publish_inode(dirfd, dir_path, tmp_name, res);
    r = out < 0 ? out
                : publish_fill(in, out, size, dirfd, dir_path, min_free_bytes,
                               deadline_ms, cancel_fd, res);
    if (r == 0 && (r = publish_link(out, tmp_name, dirfd, final_name)) < 0)
      dump_say(res, "cannot move the dump to %s: %s", final_path,
               strerror(-r));
  }
  if (r == 0) {
    res->size = size;
    snprintf(res->path, sizeof(res->path), "%s", final_path);
  }
  if (tmp_name[0])
    unlinkat(dirfd, tmp_name, 0);
  if (out >= 0)
    close(out);
  close(in);
  return r;
}

/* ---- result files ---- */

int dump_file_open(struct dump_file *f, const char *dir, const char *instance,
                   pid_t pid, const char *suffix, uint64_t min_free_bytes,
                   struct dump_result *res) {
  *f = (struct dump_file){.dfd = -1, .fd = -1};
  f->dfd = dump_dir_open(dir, 1, NULL, f->dir, sizeof(f->dir), res->reason,
                         sizeof(res->reason));
  if (f->dfd < 0)
    return f->dfd;
  int r = 0;
  uint64_t avail = 0;
  if (min_free_bytes > 0 && (r = free_bytes(f->dfd, f->dir, &avail, res)) == 0 &&
      avail < min_free_bytes) {
    dump_say(res, "only %llu MiB free in %s, below MinFreeSpace (%llu MiB)",
             (unsigned long long)(avail >> 20), f->dir,
             (unsigned long long)(min_free_bytes >> 20));
    r = -ENOSPC;
  }
  char name[160], stamp[40], path[PATH_MAX];
  safe_name(instance[0] ? instance : "dotnet", name, sizeof(name));
  utc_stamp(stamp, sizeof(stamp));
  if (r == 0 &&
      ((size_t)snprintf(f->final_name, sizeof(f->final_name), "%s-%d-%s%s",
                        name, (int)pid, stamp, suffix) >= sizeof(f->final_name) ||
       (size_t)snprintf(path, sizeof(path), "%s/%s", f->dir, f->final_name) >=
           sizeof(path))) {
    dump_say(res, "result file name too long");
    r = -ENAMETOOLONG;
  }
  if (r == 0 && (f->fd = publish_inode(f->dfd, f->dir, f->tmp_name, res)) < 0)
    r = f->fd;
  if (r < 0)
    dump_file_abort(f);
  return r;
}

int dump_file_commit(struct dump_file *f, struct dump_result *res) {
  struct stat st;
  int r = fstat(f->fd, &st) == 0 ? 0 : -errno;
  if (r == 0 && (r = publish_link(f->fd, f->tmp_name, f->dfd, f->final_name)) == 0) {
    snprintf(res->path, sizeof(res->path), "%s/%s", f->dir, f->final_name);
    res->size = (uint64_t)st.st_size;
  } else {
    dump_say(res, "cannot name the result %s/%s: %s", f->dir, f->final_name,
             r == -EEXIST ? "a file of that name exists" : strerror(-r));
  }
  dump_file_abort(f); /* the link holds it now */
  return r;
}

void dump_file_abort(struct dump_file *f) {
  if (f->tmp_name[0] && f->dfd >= 0)
    unlinkat(f->dfd, f->tmp_name, 0);
  f->tmp_name[0] = 0;
  if (f->fd >= 0)
    close(f->fd);
  if (f->dfd >= 0)
    close(f->dfd);
  f->fd = f->dfd = -1;
}

/* ---- one dump ----
 *
 * dump_take's steps share what they open in one struct dump_job: each step
 * fills its part, and job_end closes and removes whatever was made. */

struct dump_job {
  const struct dump_request *req;
  int timeout_ms;
  int64_t deadline_ms;
  int dfd;                           /* the dump directory */
  int reach;                         /* others may search every level */
  char dir[PATH_MAX];                /* its absolute path */
  char stamp[40];                    /* UTC, in file names */
  char final_name[NAME_MAX + 1];     /* the dump's name in dfd */
  uid_t writer;                      /* who writes the staged dump */
  struct dump_exec_plan plan;        /* Method exec: how createdump runs */
  int afd, sfd;                      /* staging area, staging directory */
  char stage_name[40];               /* sfd's name in afd */
  int tfd;                           /* or: the target's TMPDIR */
  int src_dirfd;                     /* sfd or tfd */
  char src_name[96];                 /* the staged dump's name there */
  char target_path[PATH_MAX];        /* where the writer writes it */
};

/* Opens the dump directory and checks MinFreeSpace. */
static int job_open_dir(struct dump_job *j, struct dump_result *res) {
  j->dfd = dump_dir_open(j->req->directory, 1, &j->reach, j->dir,
                         sizeof(j->dir), res->reason, sizeof(res->reason));
  if (j->dfd < 0 || j->req->min_free_bytes == 0)
    return j->dfd < 0 ? j->dfd : 0;
  uint64_t avail = 0;
  int r = free_bytes(j->dfd, j->dir, &avail, res);
  if (r == 0 && avail < j->req->min_free_bytes) {
    dump_say(res,
             "only %llu MiB free in %s, below MinFreeSpace (%llu MiB): no dump",
             (unsigned long long)(avail >> 20), j->dir,
             (unsigned long long)(j->req->min_free_bytes >> 20));
    r = -ENOSPC;
  }
  return r;
}

/* The final name: the caller's, or <instance>-<pid>-<stamp>.dmp; one
 * component of the directory just opened (so its checks cover it), not
 * there yet. */
static int job_final_name(struct dump_job *j, struct dump_result *res) {
  const struct dump_request *req = j->req;
  if (req->file_name[0]) {
    const char *f = req->file_name;
    if (strchr(f, '/') || !strcmp(f, ".") || !strcmp(f, "..") ||
        !strcmp(f, DUMP_STAGING_AREA) || strlen(f) >= sizeof(j->final_name)) {
      dump_say(res, "'%s' cannot be a dump's file name", f);
      return -EINVAL;
    }
    memcpy(j->final_name, f, strlen(f) + 1);
  } else {
    char name[160];
    safe_name(req->instance[0] ? req->instance : "dotnet", name, sizeof(name));
    snprintf(j->final_name, sizeof(j->final_name), "%s-%d-%s.dmp", name,
             (int)ipc_endpoint_pid(&req->ep), j->stamp);
  }
  char final_path[PATH_MAX];
  if ((size_t)snprintf(final_path, sizeof(final_path), "%s/%s", j->dir,
                       j->final_name) >= sizeof(final_path)) {
    dump_say(res, "dump path too long");
    return -ENAMETOOLONG;
  }
  struct stat st;
  if (fstatat(j->dfd, j->final_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    dump_say(res, "%s exists already: refusing to overwrite it", final_path);
    return -EEXIST;
  }
  return 0;
}

/* Who writes the dump: the target for IPC, the user the plan runs
 * createdump as for exec. */
static int job_writer(struct dump_job *j, struct dump_result *res) {
  j->writer = j->req->ep.uid;
  if (j->req->method != DUMP_METHOD_EXEC)
    return 0;
  char why[512];
  int r = dump_exec_plan(&j->req->ep, &j->plan, why, sizeof(why));
  if (r < 0) {
    dump_say(res, "%s", why);
    return r;
  }
  j->writer = j->plan.uid;
  snprintf(res->note, sizeof(res->note), "%s", j->plan.note);
  return 0;
}

/* target_path = dir/rel, where the writer writes the dump (dir "/" adds
 * no slash of its own). */
static int job_target_path(struct dump_job *j, const char *dir,
                           const char *rel, struct dump_result *res) {
  if ((size_t)snprintf(j->target_path, sizeof(j->target_path), "%s/%s",
                       strcmp(dir, "/") ? dir : "",
                       rel) >= sizeof(j->target_path)) {
    dump_say(res, "dump path too long");
    return -ENAMETOOLONG;
  }
  return 0;
}

/* The dump's name in the directory j->tfd, which the writer sees as
 * there: random, so that the writer cannot prepare it. */
static int job_stage_named(struct dump_job *j, const char *there,
                           struct dump_result *res) {
  uint8_t rnd[8];
  if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
    dump_say(res, "no random bytes for a name");
    return -EAGAIN;
  }
  snprintf(j->src_name, sizeof(j->src_name),
           "collectd-dotnet-%s-%02x%02x%02x%02x.dmp", j->stamp, rnd[0], rnd[1],
           rnd[2], rnd[3]);
  j->src_dirfd = j->tfd;
  return job_target_path(j, there, j->src_name, res);
}

/* An IPC target in another mount namespace resolves paths in its own: it
 * writes in the directory of its diagnostic socket (its TMPDIR), which we
 * reach inside its root only (an absolute symlink there means the
 * container's path, not the host's), and the dump is copied out. */
static int job_stage_in_target(struct dump_job *j, struct dump_result *res) {
  const struct ipc_endpoint *ep = &j->req->ep;
  char cdir[PATH_MAX], root[64];
  int pl = snprintf(root, sizeof(root), "/proc/%d/root", (int)ep->pid);
  snprintf(cdir, sizeof(cdir), "%s", ep->path);
  char *slash = strrchr(cdir, '/');
  if (strncmp(cdir, root, (size_t)pl) != 0 || slash == NULL ||
      slash < cdir + pl) {
    dump_say(res, "cannot tell the target's TMPDIR");
    return -EINVAL;
  }
  *slash = 0;
  const char *in_root = cdir[pl] ? cdir + pl : "/";
  int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) {
    int r = -errno;
    dump_say(res, "cannot open %s: %s", root, strerror(-r));
    return r;
  }
  struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                         .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  j->tfd = (int)syscall(SYS_openat2, rootfd, in_root, &how, sizeof(how));
  int r = j->tfd < 0 ? -errno : 0;
  close(rootfd);
  if (r < 0) {
    dump_say(res, "cannot open the target's TMPDIR %s inside its root: %s",
             in_root, strerror(-r));
    return r;
  }
  return job_stage_named(j, in_root, res);
}

/* A runtime that connected in from another pid namespace (a sidecar's
 * neighbour) writes in a directory both see (DumpStaging of its Listen):
 * ep.dump_there as it sees it, the directory of ep.path as we do; opened
 * without following a symlink (the runtime may write there), and the dump
 * copied out as from a target's TMPDIR. */
static int job_stage_shared(struct dump_job *j, struct dump_result *res) {
  const struct ipc_endpoint *ep = &j->req->ep;
  char here[PATH_MAX];
  snprintf(here, sizeof(here), "%s", ep->path);
  char *slash = strrchr(here, '/');
  if (slash == NULL || slash == here) {
    dump_say(res, "cannot tell the shared dump directory");
    return -EINVAL;
  }
  *slash = 0;
  struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                         .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
  j->tfd = (int)syscall(SYS_openat2, AT_FDCWD, here, &how, sizeof(how));
  if (j->tfd < 0) {
    int r = -errno;
    dump_say(res, "cannot open the shared dump directory %s: %s", here,
             strerror(-r));
    return r;
  }
  return job_stage_named(j, ep->dump_there, res);
}

/* Otherwise the writer gets a staging directory of its own in the dump
 * directory's staging area. */
static int job_stage_in_dir(struct dump_job *j, struct dump_result *res) {
  j->sfd = dump_stage_new(j->dfd, j->writer, &j->afd, j->stage_name,
                          sizeof(j->stage_name), res->reason,
                          sizeof(res->reason));
  if (j->sfd < 0)
    return j->sfd;
  j->src_dirfd = j->sfd;
  char rel[sizeof(DUMP_STAGING_AREA) + sizeof(j->stage_name) + 8];
  snprintf(rel, sizeof(rel), DUMP_STAGING_AREA "/%s/%s", j->stage_name,
           j->src_name);
  return job_target_path(j, j->dir, rel, res);
}

/* The writer writes the dump at target_path. */
static int job_write(struct dump_job *j, struct dump_result *res) {
  const struct dump_request *req = j->req;
  if (req->method == DUMP_METHOD_EXEC)
    return dump_exec_run(&j->plan, &req->ep, j->target_path, req->type,
                         j->timeout_ms, res);
  struct ipc_error err = {0};
  int r = ipc_dump(&req->ep, j->target_path, req->type, j->timeout_ms, &err);
  if (r < 0)
    dump_say(res, "GenerateCoreDump failed: %s", err.message);
  return r;
}

/* After a failed write into the staging directory: when others cannot
 * search the way to it, the likely reason, said after the writer's. */
static void job_unreachable_hint(const struct dump_job *j,
                                 struct dump_result *res) {
  if (j->reach || j->writer == geteuid() || j->sfd < 0)
    return;
  size_t l = strlen(res->reason);
  while (l > 0 && (res->reason[l - 1] == '\n' || res->reason[l - 1] == ' ' ||
                   res->reason[l - 1] == '\r'))
    l--;
  snprintf(res->reason + l, sizeof(res->reason) - l,
           " (uid %u may not reach %s: the dump directory and every "
           "directory above it need search permission for others, "
           "chmod o+x)",
           (unsigned)j->writer, j->dir);
}

/* Removes what the job staged and closes what it opened. */
static void job_end(struct dump_job *j, struct dump_result *res) {
  if (j->tfd >= 0) {
    /* in the target's TMPDIR: a file, or an empty directory, of that name */
    if (unlinkat(j->tfd, j->src_name, 0) != 0 && errno == EISDIR)
      unlinkat(j->tfd, j->src_name, AT_REMOVEDIR);
    close(j->tfd);
  }
  if (j->sfd >= 0) {
    char left[256];
    if (dump_stage_remove(j->afd, j->stage_name, j->sfd, left,
                          sizeof(left)) == 0) {
      /* the area too, when nothing else is in it (another dump's directory
       * or a leftover keeps it): the Directory holds only dumps */
      unlinkat(j->dfd, DUMP_STAGING_AREA, AT_REMOVEDIR);
    } else {
      size_t l = strlen(res->note);
      snprintf(res->note + l, sizeof(res->note) - l, "%s%s", l ? "; " : "",
               left);
    }
    close(j->sfd);
  }
  if (j->afd >= 0)
    close(j->afd);
  dump_exec_release(&j->plan);
  if (j->dfd >= 0)
    close(j->dfd);
}

int dump_take(const struct dump_request *req, struct dump_result *res) {
  memset(res, 0, sizeof(*res));
  double t0 = clock_mono_s();
  struct dump_job j = {.req = req,
                       .timeout_ms = req->timeout_ms > 0 ? req->timeout_ms
                                                         : 120000,
                       .dfd = -1,
                       .reach = 1,
                       .plan = {.fd = -1},
                       .afd = -1,
                       .sfd = -1,
                       .tfd = -1,
                       .src_dirfd = -1,
                       .src_name = "dump"};
  j.deadline_ms = clock_mono_ms() + j.timeout_ms;
  utc_stamp(j.stamp, sizeof(j.stamp));
  int r = job_open_dir(&j, res);
  if (r == 0)
    r = job_final_name(&j, res);
  if (r == 0)
    r = job_writer(&j, res);
  if (r == 0)
    r = req->method == DUMP_METHOD_IPC && req->ep.dump_there[0]
            ? job_stage_shared(&j, res)
        : req->method == DUMP_METHOD_IPC && req->ep.foreign_mnt_ns
            ? job_stage_in_target(&j, res)
            : job_stage_in_dir(&j, res);
  if (r == 0) {
    r = job_write(&j, res);
    if (r == 0)
      r = dump_publish(j.src_dirfd, j.src_name, j.target_path, j.writer, j.dfd,
                       j.dir, j.final_name, req->min_free_bytes, j.deadline_ms,
                       ipc_get_cancel_fd(), res);
    else
      job_unreachable_hint(&j, res);
  }
  job_end(&j, res);
  res->seconds = clock_mono_s() - t0;
  one_line(res->reason, sizeof(res->reason));
  one_line(res->note, sizeof(res->note));
  return r;
}
