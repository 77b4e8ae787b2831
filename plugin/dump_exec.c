/**
 * collectd-dotnet - plugin/dump_exec.c
 *
 * See dump_exec.h.
 */
#include "dump_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void say(struct dump_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void say(struct dump_result *res, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
  va_end(ap);
}

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int find_createdump(const struct ipc_endpoint *ep, char *path,
                           size_t cap, char *why, size_t why_cap) {
  char maps[64];
  snprintf(maps, sizeof(maps), "/proc/%d/maps", (int)ep->pid);
  FILE *f = fopen(maps, "re");
  if (f == NULL) {
    int e = errno;
    snprintf(why, why_cap, "cannot read %s: %s", maps, strerror(e));
    return -e;
  }
  char line[4096];
  char lib[PATH_MAX] = "";
  while (fgets(line, sizeof(line), f)) {
    char *p = strchr(line, '/');
    if (p == NULL)
      continue;
    p[strcspn(p, "\n")] = 0;
    size_t l = strlen(p);
    if (l >= 14 && strcmp(p + l - 14, "/libcoreclr.so") == 0) {
      snprintf(lib, sizeof(lib), "%s", p);
      break;
    }
  }
  fclose(f);
  if (lib[0] == 0) {
    snprintf(why, why_cap, "pid %d has no libcoreclr.so mapped: not a .NET "
                           "(CoreCLR) process",
             (int)ep->pid);
    return -ENOENT;
  }
  *strrchr(lib, '/') = 0;
  int n = ep->foreign_mnt_ns
              ? snprintf(path, cap, "/proc/%d/root%s/createdump", (int)ep->pid, lib)
              : snprintf(path, cap, "%s/createdump", lib);
  if (n < 0 || (size_t)n >= cap) {
    snprintf(why, why_cap, "createdump path too long");
    return -ENAMETOOLONG;
  }
  struct stat st;
  if (lstat(path, &st) != 0) {
    int e = errno;
    snprintf(why, why_cap, "no createdump at %s: %s", path, strerror(e));
    return -e;
  }
  if (!S_ISREG(st.st_mode)) {
    snprintf(why, why_cap, "%s is not a regular file: refusing to run it", path);
    return -EPERM;
  }
  if (st.st_uid != 0 && st.st_uid != ep->uid) {
    snprintf(why, why_cap,
             "%s is owned by uid %u, neither root nor the target's uid %u: "
             "refusing to run it",
             path, (unsigned)st.st_uid, (unsigned)ep->uid);
    return -EPERM;
  }
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    snprintf(why, why_cap,
             "%s is writable by group or others (mode %04o): refusing to run "
             "it",
             path, (unsigned)(st.st_mode & 07777));
    return -EPERM;
  }
  return 0;
}

/* The helper process of run_wait(): restores SIGCHLD, runs argv with stdin
 * /dev/null and stdout+stderr into `out`, waits for it and reports on `st`
 *   pid_t pid     at once (negative errno if fork failed)
 *   int waited    1 if waitpid succeeded
 *   int status    its wait status
 * (native layout, each write well under PIPE_BUF). Only async-signal-safe
 * calls: it runs between fork and exit in a threaded process. */
static void __attribute__((noreturn))
run_helper(char *const argv[], int in, int out, int st) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = SIG_DFL;
  sigaction(SIGCHLD, &sa, NULL);
  sigaction(SIGPIPE, &sa, NULL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  pid_t child = fork();
  if (child == 0) {
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
      _exit(127);
    execve(argv[0], argv, environ);
    _exit(127);
  }
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
}

/* Runs argv without a shell; waits up to timeout_ms, then kills it. On
 * failure the reason ends with the telling line of its output.
 *
 * Through a helper process (run_helper): collectd 5 sets SIGCHLD to SIG_IGN,
 * so the kernel reaps its children at once and their exit status is lost
 * (waitpid fails with ECHILD). The helper's own child is not ours. */
static int run_wait(char *const argv[], int timeout_ms, struct dump_result *res) {
  int st[2] = {-1, -1}, out[2] = {-1, -1}, devnull = -1;
  int r = 0;
  pid_t helper = -1;
  if (pipe2(st, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 ||
      (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
    r = -errno;
    say(res, "cannot run %s: %s", argv[0], strerror(-r));
    goto out;
  }
  helper = fork();
  if (helper < 0) {
    r = -errno;
    say(res, "cannot run %s: fork: %s", argv[0], strerror(-r));
    goto out;
  }
  if (helper == 0)
    run_helper(argv, devnull, out[1], st[1]);
  close(st[1]);
  close(out[1]);
  st[1] = out[1] = -1;

  unsigned char msg[sizeof(pid_t) + 2 * sizeof(int)] = {0};
  size_t msglen = 0;
  char text[2049] = ""; /* the tail of its output */
  size_t textlen = 0;
  struct pollfd pfd[2] = {{.fd = st[0], .events = POLLIN},
                          {.fd = out[0], .events = POLLIN}};
  double deadline = mono_s() + timeout_ms / 1000.0;
  int timed_out = 0;
  while (pfd[0].fd >= 0 || pfd[1].fd >= 0) {
    double left = deadline - mono_s();
    if (left <= 0) {
      timed_out = 1;
      break;
    }
    int n = poll(pfd, 2, (int)(left * 1000) + 1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      r = -errno;
      say(res, "poll: %s", strerror(-r));
      timed_out = 1; /* kill it: we cannot watch it any more */
      break;
    }
    for (int i = 0; i < 2; i++) {
      if (pfd[i].fd < 0 || pfd[i].revents == 0)
        continue;
      char buf[512];
      ssize_t k = i == 0 ? read(pfd[i].fd, msg + msglen, sizeof(msg) - msglen)
                         : read(pfd[i].fd, buf, sizeof(buf));
      if (k < 0 && (errno == EINTR || errno == EAGAIN))
        continue;
      if (k <= 0 || (i == 0 && (msglen += (size_t)k) == sizeof(msg))) {
        pfd[i].fd = -1; /* EOF, error, or all we wait for */
        continue;
      }
      if (i == 1)
        keep_tail(text, sizeof(text) - 1, &textlen, buf, (size_t)k);
    }
  }
  pid_t child;
  memcpy(&child, msg, sizeof(child));
  if (timed_out) {
    /* the helper has not reaped it (no status came): the pid is still its */
    if (msglen >= sizeof(child) && child > 0 && msglen < sizeof(msg))
      kill(child, SIGKILL);
    kill(helper, SIGKILL);
    if (r == 0) {
      r = -ETIMEDOUT;
      say(res, "%s took longer than %d ms: killed", argv[0], timeout_ms);
    }
    goto out;
  }
  int waited, status;
  memcpy(&waited, msg + sizeof(pid_t), sizeof(int));
  memcpy(&status, msg + sizeof(pid_t) + sizeof(int), sizeof(int));
  if (msglen >= sizeof(child) && child < 0) {
    r = child;
    say(res, "cannot run %s: fork: %s", argv[0], strerror(-r));
  } else if (msglen < sizeof(msg) || !waited) {
    r = -ECHILD;
    say(res, "lost track of %s (its helper process ended early)", argv[0]);
  } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    r = 0;
  } else if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && textlen == 0) {
    r = -ENOEXEC;
    say(res, "cannot run %s", argv[0]);
  } else {
    r = -EIO;
    char line[256];
    telling_line(text, line, sizeof(line));
    if (WIFEXITED(status))
      say(res, "%s exited with status %d%s%s", argv[0], WEXITSTATUS(status),
          line[0] ? ": " : "", line);
    else
      say(res, "%s was killed by signal %d%s%s", argv[0],
          WIFSIGNALED(status) ? WTERMSIG(status) : 0, line[0] ? ": " : "",
          line);
  }

out:
  if (helper > 0) /* ECHILD when collectd's SIGCHLD = SIG_IGN reaped it */
    while (waitpid(helper, NULL, 0) < 0 && errno == EINTR)
      ;
  int fds[] = {st[0], st[1], out[0], out[1], devnull};
  for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
    if (fds[i] >= 0)
      close(fds[i]);
  return r;
}

int dump_exec_plan(const struct ipc_endpoint *ep, struct dump_exec_plan *plan,
                   char *why, size_t why_cap) {
  memset(plan, 0, sizeof(*plan));
  plan->fd = -1;
  plan->uid = geteuid();
  plan->gid = getegid();
  return find_createdump(ep, plan->path, sizeof(plan->path), why, why_cap);
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
  char *argv[] = {(char *)plan->path, "-f", (char *)out_path,
                  (char *)type_flag, pidbuf, NULL};
  return run_wait(argv, timeout_ms, res);
}

void dump_exec_release(struct dump_exec_plan *plan) {
  if (plan->fd >= 0)
    close(plan->fd);
  plan->fd = -1;
}
