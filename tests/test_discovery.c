/**
 * collectd-dotnet - tests/test_discovery.c
 *
 * The discovery scanner (plugin/discovery.c) with memory across passes,
 * against real processes: this binary re-executed with "--serve DIR" and
 * TMPDIR=DIR binds a socket named as a runtime names its diagnostic socket
 * (dotnet-diagnostic-<pid>-<start time>-socket) in DIR and waits. The
 * scanner must find each such process: at once when its TMPDIR is one a
 * known process uses, within 10 passes when it is a directory of its own
 * (only every 10th pass lists /proc), and stop reporting one that died.
 * With notification on, a socket coming or going in a watched directory
 * makes the fd readable, other files' events do not count, and a full
 * pass can be asked for.
 */
#include "clock.h"
#include "discovery.h"
#include "ipc.h"
#include "testing.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static unsigned long long self_start_time(void) {
  char buf[1024];
  int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
  if (fd >= 0)
    close(fd);
  if (n <= 0)
    return 0;
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  /* after ") ": field 3 (state) ... field 22 (starttime) */
  for (int field = 2; p != NULL && field < 22; field++)
    p = strchr(p + 1, ' ');
  return p ? strtoull(p + 1, NULL, 10) : 0;
}

/* The child: a socket where a runtime puts its own, then wait to be killed.
 * Writes one byte to fd 3 when the socket exists. */
static int serve(const char *dir) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path),
           "%s/dotnet-diagnostic-%d-%llu-socket", dir, (int)getpid(),
           self_start_time());
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
      listen(fd, 1) != 0)
    return 1;
  char c = 1;
  if (write(3, &c, 1) != 1)
    return 1;
  for (;;)
    pause();
}

/* Starts "--serve dir" with the environment envp (NULL: TMPDIR=dir);
 * returns its pid once its socket exists, or -1. */
static pid_t spawn_env(const char *dir, char *const *envp_) {
  int p[2];
  if (pipe(p) != 0)
    return -1;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    /* dies with the test, even one that aborts (a sanitizer's report) */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
      _exit(1);
    close(p[0]);
    if (dup2(p[1], 3) < 0)
      _exit(1);
    char env[4200];
    snprintf(env, sizeof(env), "TMPDIR=%s", dir);
    char *argv[] = {"test_discovery", "--serve", (char *)dir, NULL};
    char *envp[] = {env, NULL};
    execve("/proc/self/exe", argv, envp_ ? envp_ : envp);
    _exit(127);
  }
  close(p[1]);
  char c;
  ssize_t n = pid > 0 ? read(p[0], &c, 1) : -1;
  close(p[0]);
  if (n != 1) {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
    }
    return -1;
  }
  return pid;
}

static pid_t spawn(const char *dir) { return spawn_env(dir, NULL); }

static void reap(pid_t pid) {
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

/* Removes dir and the sockets the children left in it. */
static void remove_dir(const char *dir) {
  DIR *dd = opendir(dir);
  if (dd == NULL)
    return;
  struct dirent *de;
  while ((de = readdir(dd)) != NULL)
    if (de->d_name[0] != '.')
      unlinkat(dirfd(dd), de->d_name, 0);
  closedir(dd);
  rmdir(dir);
}

struct found {
  pid_t want[4];
  int hit[4];
};

static int on_endpoint(void *ctx, const struct ipc_endpoint *ep) {
  struct found *f = ctx;
  for (int i = 0; i < 4; i++)
    if (f->want[i] != 0 && f->want[i] == ep->pid)
      f->hit[i] = 1;
  return 0;
}

/* One pass: which of the pids it reported. */
static void pass(struct discovery *d, struct found *f) {
  memset(f->hit, 0, sizeof(f->hit));
  CHECK(discovery_scan(d, on_endpoint, f) == 0);
}

/* A new scanner, and a process serving in dir that its first pass finds
 * (f->want[0]). */
static struct discovery *first_found(const char *dir, struct found *f) {
  struct discovery *d = discovery_new();
  CHECK(d != NULL);
  memset(f, 0, sizeof(*f));
  f->want[0] = spawn(dir);
  CHECK(f->want[0] > 0);
  pass(d, f);
  CHECK(f->hit[0]);
  return d;
}

DEF_TEST(discovery_passes) {
  char a[] = "/tmp/cdn-disc-a.XXXXXX", b[] = "/tmp/cdn-disc-b.XXXXXX";
  if (mkdtemp(a) == NULL || mkdtemp(b) == NULL)
    return -1;
  /* 1. found by the first (full) pass, and by the quiet ones after it */
  struct found f;
  struct discovery *d = first_found(a, &f);
  pass(d, &f);
  CHECK(f.hit[0]);

  /* 2. a new process with a TMPDIR of its own: not seen by a quiet pass
   * (/proc is not listed), but within 10 passes. (A pass is full, not
   * quiet, when a diagnostic socket came or went in /tmp meanwhile: another
   * .NET process on this machine starting or ending.) */
  f.want[1] = spawn(b);
  CHECK(f.want[1] > 0);
  unsigned full0 = discovery_full_passes(d);
  pass(d, &f);
  if (discovery_full_passes(d) == full0)
    CHECK(!f.hit[1]);
  else
    printf("# pass 3 was full (a socket came or went in /tmp)\n");
  CHECK(f.hit[0]);
  int passes = 1;
  while (!f.hit[1] && passes < 12) {
    pass(d, &f);
    passes++;
  }
  unsigned nfull = discovery_full_passes(d) - full0;
  printf("# a process in a new directory was found after %d passes, %u of "
         "them full\n",
         passes, nfull);
  CHECK(f.hit[1]);
  CHECK(passes <= 10);
  CHECK(nfull < (unsigned)passes); /* some were quiet */

  /* 3. a new process in a directory a known process uses: its socket
   * changes that directory, so the very next pass finds it */
  f.want[2] = spawn(a);
  CHECK(f.want[2] > 0);
  pass(d, &f);
  CHECK(f.hit[2]);
  CHECK(f.hit[0] && f.hit[1]);

  /* 4. killed: its socket stays (as SIGKILL leaves it), it is not reported */
  reap(f.want[0]);
  pass(d, &f);
  CHECK(!f.hit[0]);
  CHECK(f.hit[1] && f.hit[2]);
  for (int i = 0; i < 10; i++) {
    pass(d, &f);
    CHECK(!f.hit[0]);
  }
  CHECK(f.hit[1] && f.hit[2]);

  reap(f.want[1]);
  reap(f.want[2]);
  discovery_free(d);
  remove_dir(a);
  remove_dir(b);
  return 0;
}

/* A process known in a directory of its own becomes a zombie (listed in
 * /proc, its stat unreadable): on its recheck turn its directory is not
 * used by anyone and is dropped, and the process must not keep an index
 * into the shrunk list of directories (every later pass would read through
 * it). Full passes, so that one of them is its recheck turn. */
DEF_TEST(discovery_zombie) {
  char a[] = "/tmp/cdn-disc-z.XXXXXX";
  if (mkdtemp(a) == NULL)
    return -1;
  struct found f;
  struct discovery *d = first_found(a, &f);
  kill(f.want[0], SIGKILL); /* not reaped: a zombie */
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)f.want[0]);
  int zombie = 0;
  for (int i = 0; i < 500 && !zombie; i++) {
    char buf[512];
    FILE *fp = fopen(path, "r");
    size_t n = fp ? fread(buf, 1, sizeof(buf) - 1, fp) : 0;
    if (fp)
      fclose(fp);
    buf[n] = 0;
    char *r = strrchr(buf, ')');
    zombie = r != NULL && r[1] == ' ' && r[2] == 'Z';
    if (!zombie)
      usleep(10000);
  }
  CHECK(zombie);
  for (int i = 0; i < 3 * 10; i++) {
    discovery_want_full(d);
    pass(d, &f);
    CHECK(!f.hit[0]);
  }
  waitpid(f.want[0], NULL, 0);
  pass(d, &f);
  CHECK(!f.hit[0]);
  discovery_free(d);
  remove_dir(a);
  return 0;
}

/* Among sockets of one pid none of which carries its start time, the
 * newest is taken (times are read only for such a choice). */
struct pick {
  pid_t pid;
  char path[256];
};

static int on_pick(void *ctx, const struct ipc_endpoint *ep) {
  struct pick *k = ctx;
  if (ep->pid == k->pid)
    snprintf(k->path, sizeof(k->path), "%s", ep->path);
  return 0;
}

static int set_age(const char *path, time_t age) {
  struct timespec ts[2] = {{.tv_sec = time(NULL) - age},
                           {.tv_sec = time(NULL) - age}};
  return utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
}

DEF_TEST(discovery_newest_socket) {
  char a[] = "/tmp/cdn-disc-n.XXXXXX";
  if (mkdtemp(a) == NULL)
    return -1;
  pid_t pid = spawn(a);
  CHECK(pid > 0);
  /* its own socket renamed to another key, and a second one bound */
  char own[300], k1[300], k2[300];
  unsigned long long key = 0;
  DIR *dd = opendir(a);
  CHECK(dd != NULL);
  struct dirent *de;
  while (dd != NULL && (de = readdir(dd)) != NULL)
    if (sscanf(de->d_name, "dotnet-diagnostic-%*d-%llu-socket", &key) == 1)
      snprintf(own, sizeof(own), "%s/%s", a, de->d_name);
  if (dd != NULL)
    closedir(dd);
  CHECK(key != 0);
  snprintf(k1, sizeof(k1), "%s/dotnet-diagnostic-%d-%llu-socket", a, (int)pid,
           key + 1);
  snprintf(k2, sizeof(k2), "%s/dotnet-diagnostic-%d-%llu-socket", a, (int)pid,
           key + 2);
  CHECK(rename(own, k1) == 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", k2);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
  for (int round = 0; round < 2; round++) {
    /* round 0: k2 the newer; round 1: k1 */
    CHECK(set_age(k1, round == 0 ? 100 : 10) == 0);
    CHECK(set_age(k2, round == 0 ? 10 : 100) == 0);
    struct pick k = {.pid = pid};
    CHECK(discovery_list(on_pick, &k) == 0);
    printf("# round %d: %s\n", round, k.path);
    EXPECT_EQ_STR(round == 0 ? k2 : k1, k.path);
  }
  close(fd);
  reap(pid);
  remove_dir(a);
  return 0;
}

/* Waits up to 2 s for fd to be readable. */
static int readable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, 2000) == 1;
}

DEF_TEST(discovery_notify) {
  char a[] = "/tmp/cdn-disc-n.XXXXXX";
  if (mkdtemp(a) == NULL)
    return -1;
  struct discovery *d = discovery_new();
  CHECK(d != NULL);
  CHECK(discovery_enable_notify(d) == 0);
  CHECK(discovery_notify_fd(d) < 0); /* no full pass yet */
  struct found f;
  memset(&f, 0, sizeof(f));
  f.want[0] = spawn(a);
  CHECK(f.want[0] > 0);
  pass(d, &f);
  CHECK(f.hit[0]);
  int fd = discovery_notify_fd(d);
  CHECK(fd >= 0);
  discovery_notified(d); /* what came before */

  /* another file in a watched directory: the fd wakes, but it is no
   * reason to pass (three tries: a .NET process starting elsewhere in
   * /tmp at that moment would be one) */
  int quiet = 0;
  for (int i = 0; i < 3 && !quiet; i++) {
    char other[sizeof(a) + 16];
    snprintf(other, sizeof(other), "%s/other-%d", a, i);
    int ofd = open(other, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    CHECK(ofd >= 0);
    close(ofd);
    CHECK(readable(fd));
    quiet = discovery_notified(d) == 0;
  }
  CHECK(quiet);

  /* a new process in that directory: its socket is a reason */
  f.want[1] = spawn(a);
  CHECK(f.want[1] > 0);
  CHECK(readable(fd));
  CHECK(discovery_notified(d) == 1);
  pass(d, &f);
  CHECK(f.hit[0] && f.hit[1]);

  /* its socket removed: a reason too */
  char sock[sizeof(a) + 64];
  snprintf(sock, sizeof(sock), "%s/dotnet-diagnostic-%d-", a, (int)f.want[1]);
  DIR *dd = opendir(a);
  CHECK(dd != NULL);
  struct dirent *de;
  int removed = 0;
  while ((de = readdir(dd)) != NULL)
    if (strncmp(de->d_name, sock + sizeof(a), strlen(sock + sizeof(a))) == 0)
      removed = unlinkat(dirfd(dd), de->d_name, 0) == 0;
  closedir(dd);
  CHECK(removed);
  CHECK(readable(fd));
  CHECK(discovery_notified(d) == 1);

  /* a full pass when asked for */
  unsigned full0 = discovery_full_passes(d);
  pass(d, &f);
  discovery_want_full(d);
  pass(d, &f);
  CHECK(discovery_full_passes(d) >= full0 + 1);
  CHECK(f.hit[0] && !f.hit[1]);

  reap(f.want[0]);
  reap(f.want[1]);
  discovery_free(d);
  remove_dir(a);
  return 0;
}

/* /proc/<pid>/stat lines: the start time after a comm with spaces and
 * parentheses; zombies and exiting processes (PF_EXITING, 0x4, in field 9)
 * are gone; lines that cannot be read are refused. */
static const char *stat_line(char *buf, size_t cap, const char *head,
                             const char *flags) {
  snprintf(buf, cap,
           "%s 1 1234 1234 0 -1 %s 100 0 0 0 5 3 0 0 20 0 7 0 987654 "
           "12345678 100 18446744073709551615\n",
           head, flags);
  return buf;
}

DEF_TEST(proc_stat_lines) {
  uint64_t st = 0;
  uint32_t h1 = 0, h2 = 0;
  char line[512];
#define LINE(head, flags) stat_line(line, sizeof(line), head, flags)
  EXPECT_EQ_INT(0, discovery_proc_stat_parse(
                       LINE("1234 (my (odd) app) S", "4194560"), &st, &h1));
  CHECK(st == 987654);
  EXPECT_EQ_INT(0, discovery_proc_stat_parse(
                       LINE("1234 (my (odd) apq) R", "4194560"), &st, &h2));
  CHECK(h1 != h2); /* another comm: another hash */
  /* exiting: PF_EXITING with other flags, whatever the state says */
  EXPECT_EQ_INT(-ESRCH, discovery_proc_stat_parse(
                            LINE("1234 (app) R", "4194564"), &st, NULL));
  EXPECT_EQ_INT(
      -ESRCH, discovery_proc_stat_parse(LINE("1234 (app) D", "4"), &st, NULL));
  /* zombie, dead */
  EXPECT_EQ_INT(-ESRCH, discovery_proc_stat_parse(
                            LINE("1234 (app) Z", "4194560"), &st, NULL));
  EXPECT_EQ_INT(-ESRCH, discovery_proc_stat_parse(
                            LINE("1234 (app) X", "4194560"), &st, NULL));
  /* unreadable: no ")", flags not a number, cut before field 22 */
  EXPECT_EQ_INT(-EINVAL,
                discovery_proc_stat_parse("1234 (app S 1 2 3", &st, NULL));
  EXPECT_EQ_INT(
      -EINVAL, discovery_proc_stat_parse(LINE("1234 (app) S", "x"), &st, NULL));
  EXPECT_EQ_INT(-EINVAL,
                discovery_proc_stat_parse("1234 (app) S 1 1234 1234 0 -1 "
                                          "4194560 100 0",
                                          &st, NULL));
  EXPECT_EQ_INT(-EINVAL, discovery_proc_stat_parse("1234 (app)S", &st, NULL));
  /* this process's own line */
  char own[1024];
  int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, own, sizeof(own) - 1) : -1;
  if (fd >= 0)
    close(fd);
  CHECK(n > 0);
  own[n > 0 ? n : 0] = 0;
  EXPECT_EQ_INT(0, discovery_proc_stat_parse(own, &st, NULL));
  CHECK(st == self_start_time());
#undef LINE
  return 0;
}

/* discovery_alive on a real process: alive; another start time (its pid
 * reused) is not; a zombie (killed, not reaped) is not; reaped is not. */
DEF_TEST(endpoint_alive) {
  char dir[] = "/tmp/test-alive-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  pid_t pid = spawn(dir);
  CHECK(pid > 0);
  if (pid <= 0)
    return 1;
  struct ipc_endpoint ep;
  EXPECT_EQ_INT(0, discovery_find(pid, &ep));
  EXPECT_EQ_INT(1, discovery_alive(&ep));
  struct ipc_endpoint other = ep;
  other.start_time++;
  EXPECT_EQ_INT(0, discovery_alive(&other));
  kill(pid, SIGKILL);
  siginfo_t si;
  CHECK(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) == 0); /* a zombie */
  EXPECT_EQ_INT(0, discovery_alive(&ep));
  waitpid(pid, NULL, 0);
  EXPECT_EQ_INT(0, discovery_alive(&ep));
  remove_dir(dir);
  return 0;
}

/* As glibc's getenv and the runtime: the first TMPDIR counts. Pure, then
 * a real process whose environment has two, its socket in the first. */
DEF_TEST(first_tmpdir) {
  char out[64];
  static const char env1[] = "A=1\0TMPDIR=/first/\0TMPDIR=/second\0";
  EXPECT_EQ_INT(
      1, discovery_environ_tmpdir(env1, sizeof(env1) - 1, out, sizeof(out)));
  CHECK(strcmp(out, "/first") == 0);
  static const char env2[] = "TMPDIR=\0TMPDIR=/second\0";
  EXPECT_EQ_INT(
      1, discovery_environ_tmpdir(env2, sizeof(env2) - 1, out, sizeof(out)));
  CHECK(strcmp(out, "/tmp") == 0); /* empty: /tmp, as the runtime */
  static const char env3[] = "TMPDIR=rel\0TMPDIR=/second\0";
  EXPECT_EQ_INT(
      1, discovery_environ_tmpdir(env3, sizeof(env3) - 1, out, sizeof(out)));
  CHECK(strcmp(out, "/tmp") == 0);
  static const char env4[] = "HOME=/h\0TMPDIR=/last"; /* no final NUL */
  EXPECT_EQ_INT(
      1, discovery_environ_tmpdir(env4, sizeof(env4) - 1, out, sizeof(out)));
  CHECK(strcmp(out, "/last") == 0);
  static const char env5[] =
      "TMPDIR=/a-directory-name-longer-than-the-output-buffer-"
      "of-sixty-four-bytes\0";
  EXPECT_EQ_INT(-ENAMETOOLONG, discovery_environ_tmpdir(env5, sizeof(env5) - 1,
                                                        out, sizeof(out)));
  CHECK(strcmp(out, "/tmp") == 0);
  static const char env6[] = "A=1\0B=2\0";
  EXPECT_EQ_INT(
      0, discovery_environ_tmpdir(env6, sizeof(env6) - 1, out, sizeof(out)));
  CHECK(strcmp(out, "/tmp") == 0);

  char first[] = "/tmp/test-tmpdir1-XXXXXX",
       second[] = "/tmp/test-tmpdir2-XXXXXX";
  CHECK(mkdtemp(first) != NULL && mkdtemp(second) != NULL);
  char e1[64], e2[64];
  snprintf(e1, sizeof(e1), "TMPDIR=%s", first);
  snprintf(e2, sizeof(e2), "TMPDIR=%s", second);
  char *envp[] = {e1, e2, NULL};
  pid_t pid = spawn_env(first, envp);
  CHECK(pid > 0);
  struct ipc_endpoint ep;
  int r = pid > 0 ? discovery_find(pid, &ep) : -1;
  EXPECT_EQ_INT(0, r);
  CHECK(r == 0 && strncmp(ep.path, first, strlen(first)) == 0);
  if (pid > 0)
    reap(pid);

  /* read in chunks: a variable longer than the reader's 8 KiB buffer, and
   * enough after it that the TMPDIR comes in a later read */
  static char big[20000], pad[5000];
  memset(big, 'x', sizeof(big) - 1);
  memcpy(big, "BIG=", 4);
  memset(pad, 'y', sizeof(pad) - 1);
  memcpy(pad, "PAD=", 4);
  char *envp2[] = {big, pad, pad, e1, e2, NULL};
  pid = spawn_env(first, envp2);
  CHECK(pid > 0);
  r = pid > 0 ? discovery_find(pid, &ep) : -1;
  EXPECT_EQ_INT(0, r);
  CHECK(r == 0 && strncmp(ep.path, first, strlen(first)) == 0);
  if (pid > 0)
    reap(pid);
  remove_dir(first);
  remove_dir(second);
  return 0;
}

static void count_log(void *ctx, const char *msg) {
  (void)msg;
  ++*(int *)ctx;
}

/* A directory flooded with socket files (made with mknod, nothing
 * listening): the scanner keeps DISCOVERY_SOCKS_MAX names, says so
 * once, and still finds a real process there by its own socket name. */
DEF_TEST(discovery_socket_flood) {
  char dir[] = "/tmp/test-flood-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  /* names that sort before any real pid, more than the cap */
  for (int i = 0; i < 8 * DISCOVERY_SOCKS_MAX; i++) {
    char path[128];
    snprintf(path, sizeof(path), "%s/dotnet-diagnostic-1-%d-socket", dir, i);
    if (mknod(path, S_IFSOCK | 0600, 0) != 0) {
      CHECK(0);
      break;
    }
  }
  pid_t a = spawn(dir);
  CHECK(a > 0);
  struct discovery *d = discovery_new();
  int logs = 0;
  discovery_set_log(d, count_log, &logs);
  struct found f = {.want = {a}};
  pass(d, &f);
  CHECK(f.hit[0]);
  pass(d, &f); /* a quiet pass: from the listing held, and the name */
  CHECK(f.hit[0]);
  discovery_want_full(d);
  pass(d, &f);
  CHECK(f.hit[0]);
  EXPECT_EQ_INT(1, logs);
  discovery_free(d);
  if (a > 0)
    reap(a);
  remove_dir(dir);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--serve") == 0)
    return serve(argv[2]);
  RUN_TEST(discovery_passes);
  RUN_TEST(discovery_notify);
  RUN_TEST(discovery_newest_socket);
  RUN_TEST(discovery_zombie);
  RUN_TEST(proc_stat_lines);
  RUN_TEST(endpoint_alive);
  RUN_TEST(first_tmpdir);
  RUN_TEST(discovery_socket_flood);
  END_TEST;
}
