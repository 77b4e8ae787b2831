/**
 * collectd-dotnet - tests/test_dump_exec.c
 *
 * Method exec without root's rights for what the target's user controls:
 * the directory chain check, the maps reader (lines of any length,
 * " (deleted)"), the start-time check against a reused pid, the child
 * that createdump becomes (uid, gid, groups, no_new_privs, environment,
 * descriptors, working directory, the dump file made for it) and what of
 * its output reaches the log.
 * The ownership cases need root (chown); run as another user they skip.
 */
#include "dump_exec.h"
#include "testing.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char base[64]; /* a scratch directory, root-owned 0755 */

static void put(const char *rel, const char *text, mode_t mode, uid_t uid) {
  char p[256];
  snprintf(p, sizeof(p), "%s/%s", base, rel);
  FILE *f = fopen(p, "w");
  if (f == NULL) {
    perror(p);
    exit(1);
  }
  fputs(text, f);
  fclose(f);
  if (chmod(p, mode) != 0 || chown(p, uid, (gid_t)-1) != 0)
    perror(p);
}

static void dir(const char *rel, mode_t mode, uid_t uid) {
  char p[256];
  snprintf(p, sizeof(p), "%s/%s", base, rel);
  if (mkdir(p, mode) != 0 || chmod(p, mode) != 0 ||
      chown(p, uid, (gid_t)-1) != 0)
    perror(p);
}

/* dump_exec_open_trusted under base as the root; 0 or negative errno, and
 * why[] */
static int trusted(const char *path, char *why, size_t cap) {
  int root = open(base, O_PATH | O_DIRECTORY | O_CLOEXEC);
  int fd = -1;
  why[0] = 0;
  int r = dump_exec_open_trusted(root, path, &fd, why, cap);
  if (r == 0) {
    struct stat st;
    CHECK(fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode));
    close(fd);
  } else {
    CHECK(fd == -1);
  }
  close(root);
  return r;
}

DEF_TEST(chain_root_system) {
  /* a real root chain: /usr/bin/env */
  int fd = -1;
  char why[256] = "";
  int r =
      dump_exec_open_trusted(AT_FDCWD, "/usr/bin/env", &fd, why, sizeof(why));
  printf("# /usr/bin/env: %d %s\n", r, why);
  EXPECT_EQ_INT(0, r);
  if (fd >= 0)
    close(fd);
  /* under /tmp (sticky, root's): others cannot rename or remove root's
   * names there, so a root chain below it holds */
  char p[128];
  snprintf(p, sizeof(p), "%s/ok/createdump", base);
  r = dump_exec_open_trusted(AT_FDCWD, p, &fd, why, sizeof(why));
  printf("# %s: %d %s\n", p, r, why);
  EXPECT_EQ_INT(0, r);
  if (fd >= 0)
    close(fd);
  /* but createdump's own directory sticky and writable: others could add
   * the DAC it loads beside it */
  snprintf(p, sizeof(p), "%s/st/createdump", base);
  r = dump_exec_open_trusted(AT_FDCWD, p, &fd, why, sizeof(why));
  printf("# %s: %d %s\n", p, r, why);
  EXPECT_EQ_INT(-EPERM, r);
  CHECK(strstr(why, "/st is writable by group or others (a sticky directory)") !=
        NULL);
  return 0;
}

DEF_TEST(chain_each_rule) {
  char why[256];
  EXPECT_EQ_INT(0, trusted("/ok/createdump", why, sizeof(why)));
  /* a directory owned by a user */
  EXPECT_EQ_INT(-EPERM, trusted("/user/createdump", why, sizeof(why)));
  CHECK(strstr(why, "/user is owned by uid 4242") != NULL);
  /* a group-writable directory, an other-writable one */
  EXPECT_EQ_INT(-EPERM, trusted("/gw/createdump", why, sizeof(why)));
  CHECK(strstr(why, "/gw is writable by group or others (mode 0775)") != NULL);
  EXPECT_EQ_INT(-EPERM, trusted("/ow/createdump", why, sizeof(why)));
  CHECK(strstr(why, "/ow is writable") != NULL);
  /* the file itself: a user's, group-writable, not executable */
  EXPECT_EQ_INT(-EPERM, trusted("/ok/userfile", why, sizeof(why)));
  CHECK(strstr(why, "/ok/userfile is owned by uid 4242") != NULL);
  EXPECT_EQ_INT(-EPERM, trusted("/ok/gwfile", why, sizeof(why)));
  EXPECT_EQ_INT(-EPERM, trusted("/ok/noexec", why, sizeof(why)));
  /* a symlink as a directory, as the file; "..", a directory */
  EXPECT_EQ_INT(-EPERM, trusted("/link/createdump", why, sizeof(why)));
  CHECK(strstr(why, "/link is a symbolic link") != NULL);
  EXPECT_EQ_INT(-EPERM, trusted("/ok/filelink", why, sizeof(why)));
  CHECK(strstr(why, "/ok/filelink is a symbolic link") != NULL);
  EXPECT_EQ_INT(-EPERM, trusted("/ok/../ok/createdump", why, sizeof(why)));
  CHECK(trusted("/ok", why, sizeof(why)) < 0);
  EXPECT_EQ_INT(-ENOENT, trusted("/ok/none", why, sizeof(why)));
  CHECK(trusted("ok/createdump", why, sizeof(why)) < 0);
  return 0;
}

static int maps_of(const char *text, char *lib, size_t cap) {
  char p[128];
  snprintf(p, sizeof(p), "%s/maps", base);
  FILE *f = fopen(p, "w");
  fputs(text, f);
  fclose(f);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  lib[0] = 0;
  int r = dump_exec_maps_find(fd, lib, cap);
  close(fd);
  return r;
}

#define MAP_PFX "7f0000000000-7f0000001000 r-xp 00000000 08:01 1234       "
#define REAL                                                                   \
  "/usr/share/dotnet/shared/Microsoft.NETCore.App/8.0.1/libcoreclr.so"

DEF_TEST(maps_long_line) {
  char lib[PATH_MAX];
  /* A mapping of a file whose path is longer than 4096 bytes and ends in
   * /usr/evil/libcoreclr.so: read in 4096-byte pieces, its second piece
   * would look like a line of its own naming /usr/evil/... */
  size_t cap = 16384;
  char *text = malloc(cap);
  size_t n = (size_t)snprintf(text, cap, MAP_PFX "/");
  memset(text + n, 'a', 5000);
  n += 5000;
  n += (size_t)snprintf(text + n, cap - n,
                        "/usr/evil/libcoreclr.so\n" MAP_PFX REAL "\n");
  EXPECT_EQ_INT(0, maps_of(text, lib, sizeof(lib)));
  EXPECT_EQ_STR(REAL, lib);
  /* only the long one: nothing usable, and it says so */
  n = (size_t)snprintf(text, cap, MAP_PFX "/");
  memset(text + n, 'a', 5000);
  n += 5000;
  snprintf(text + n, cap - n, "/usr/evil/libcoreclr.so\n");
  EXPECT_EQ_INT(-ENAMETOOLONG, maps_of(text, lib, sizeof(lib)));
  /* the wanted line across the 4096-byte boundary of the reads */
  n = 0;
  while (n < 4096 - 40)
    n += (size_t)snprintf(text + n, cap - n, "%s[heap]\n", MAP_PFX);
  snprintf(text + n, cap - n, MAP_PFX REAL "\n");
  EXPECT_EQ_INT(0, maps_of(text, lib, sizeof(lib)));
  EXPECT_EQ_STR(REAL, lib);
  free(text);
  return 0;
}

DEF_TEST(maps_names) {
  char lib[PATH_MAX];
  /* spaces in the path; no newline at the end */
  EXPECT_EQ_INT(0,
                maps_of(MAP_PFX "/opt/my app/libcoreclr.so", lib, sizeof(lib)));
  EXPECT_EQ_STR("/opt/my app/libcoreclr.so", lib);
  /* deleted since loaded: the path without the mark, and -ESTALE */
  EXPECT_EQ_INT(-ESTALE, maps_of(MAP_PFX "/opt/app/libcoreclr.so (deleted)\n",
                                 lib, sizeof(lib)));
  EXPECT_EQ_STR("/opt/app/libcoreclr.so", lib);
  /* other names are not it */
  EXPECT_EQ_INT(-ENOENT,
                maps_of(MAP_PFX
                        "/x/notlibcoreclr.so\n" MAP_PFX
                        "/x/libcoreclr.so.bak\n" MAP_PFX "[stack]\n"
                        "7f0000000000-7f0000001000 r-xp 00000000 08:01 0\n",
                        lib, sizeof(lib)));
  /* the first one wins */
  EXPECT_EQ_INT(0, maps_of(MAP_PFX "/a/libcoreclr.so\n" MAP_PFX
                                   "/b/libcoreclr.so\n",
                           lib, sizeof(lib)));
  EXPECT_EQ_STR("/a/libcoreclr.so", lib);
  return 0;
}

DEF_TEST(stat_start) {
  uint64_t s = 0;
  const char *line = "42 (a b) c) d) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 "
                     "20 0 1 0 987654321 1000 100 18446744073709551615\n";
  EXPECT_EQ_INT(0, dump_exec_stat_start(line, &s));
  EXPECT_EQ_U64(987654321, s);
  EXPECT_EQ_INT(-EINVAL, dump_exec_stat_start("42 (x) S 1 2 3", &s));
  EXPECT_EQ_INT(-EINVAL, dump_exec_stat_start("42 x S", &s));
  return 0;
}

static uint64_t start_of(pid_t pid) {
  char p[64], buf[1024];
  snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
  FILE *f = fopen(p, "r");
  uint64_t s = 0;
  if (f && fgets(buf, sizeof(buf), f))
    dump_exec_stat_start(buf, &s);
  if (f)
    fclose(f);
  return s;
}

/* A reused pid: the endpoint's start time is not the process's. */
DEF_TEST(pid_reuse) {
  pid_t child = fork();
  if (child == 0) {
    pause();
    _exit(0);
  }
  struct ipc_endpoint ep = {.pid = child, .start_time = start_of(child) + 1};
  struct dump_exec_plan plan;
  char why[512] = "";
  int r = dump_exec_plan(&ep, &plan, why, sizeof(why));
  printf("# other start time: %d %s\n", r, why);
  EXPECT_EQ_INT(-ESRCH, r);
  CHECK(strstr(why, "start time") != NULL);
  dump_exec_release(&plan);
  /* the right start time gets past that check (this is no .NET process) */
  ep.start_time = start_of(child);
  r = dump_exec_plan(&ep, &plan, why, sizeof(why));
  printf("# its start time: %d %s\n", r, why);
  EXPECT_EQ_INT(-ENOENT, r);
  CHECK(strstr(why, "no libcoreclr.so mapped") != NULL);
  dump_exec_release(&plan);

  /* dump_exec_run checks again: a plan for a process that is another one
   * by now runs nothing */
  char flag[128];
  snprintf(flag, sizeof(flag), "%s/out/ran", base);
  char script[256];
  snprintf(script, sizeof(script), "#!/bin/sh\ntouch %s\n", flag);
  put("ok/touch", script, 0755, 0);
  struct dump_exec_plan p2 = {.fd = -1, .uid = getuid(), .gid = getgid()};
  snprintf(p2.path, sizeof(p2.path), "%s/ok/touch", base);
  struct dump_result res = {0};
  ep.start_time = start_of(child) + 1;
  r = dump_exec_run(&p2, &ep, "/dev/null", IPC_DUMP_MINI, 5000, &res);
  printf("# run, other start time: %d %s\n", r, res.reason);
  EXPECT_EQ_INT(-ESRCH, r);
  CHECK(access(flag, F_OK) != 0);
  ep.start_time = start_of(child);
  res = (struct dump_result){0};
  r = dump_exec_run(&p2, &ep, "/dev/null", IPC_DUMP_MINI, 5000, &res);
  printf("# run, its start time: %d %s\n", r, res.reason);
  EXPECT_EQ_INT(0, r);
  CHECK(access(flag, F_OK) == 0);
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  return 0;
}

/* What createdump runs with when the plan drops to a user: that uid and
 * gid, no groups, no_new_privs, a clean environment, fds 0-2 only. */
DEF_TEST(child_as_user) {
  char script[512];
  snprintf(
      script, sizeof(script),
      "#!/bin/sh\nd=%s/out\nid -u >$d/uid\nid -g >$d/gid\nid -G >$d/groups\n"
      "env >$d/env\nls /proc/self/fd >$d/fds\n"
      "grep NoNewPrivs /proc/$$/status >$d/nnp\npwd >$d/cwd\n"
      "echo \"$@\" >$d/args\necho written >\"$2\"\n",
      base);
  put("ok/who", script, 0755, 0);
  pid_t child = fork();
  if (child == 0) {
    pause();
    _exit(0);
  }
  struct ipc_endpoint ep = {.pid = child, .start_time = start_of(child)};
  struct dump_exec_plan plan = {.fd = -1, .uid = 4242, .gid = 4343, .drop = 1};
  snprintf(plan.path, sizeof(plan.path), "%s/ok/who", base);
  struct dump_result res = {0};
  setenv("LD_PRELOAD_TEST_MARK", "1", 1);
  int leak = open("/dev/null", O_RDONLY); /* no close-on-exec */
  /* the staging directory is the user's; the one above it root's only */
  dir("private", 0700, 0);
  dir("private/stage", 0700, 4242);
  char staged[128];
  snprintf(staged, sizeof(staged), "%s/private/stage/dump", base);
  int r = dump_exec_run(&plan, &ep, staged, IPC_DUMP_MINI, 5000, &res);
  close(leak);
  printf("# run as 4242: %d %s\n", r, res.reason);
  EXPECT_EQ_INT(0, r);
  char p[128], buf[512];
#define READ(name)                                                             \
  do {                                                                         \
    snprintf(p, sizeof(p), "%s/out/%s", base, name);                           \
    FILE *f = fopen(p, "r");                                                   \
    size_t k = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;                      \
    buf[k] = 0;                                                                \
    if (f)                                                                     \
      fclose(f);                                                               \
  } while (0)
  READ("uid");
  EXPECT_EQ_STR("4242\n", buf);
  READ("gid");
  EXPECT_EQ_STR("4343\n", buf);
  READ("groups");
  EXPECT_EQ_STR("4343\n", buf);
  READ("nnp");
  CHECK(strstr(buf, "NoNewPrivs:\t1") != NULL);
  READ("cwd");
  EXPECT_EQ_STR("/\n", buf);
  READ("env");
  printf("# env: %s", buf);
  CHECK(strstr(buf, "LD_PRELOAD_TEST_MARK") == NULL);
  CHECK(strstr(buf, "PATH=/usr/sbin:/usr/bin:/sbin:/bin") != NULL);
  READ("fds"); /* 0 1 2, the dump file, and the directory ls reads */
  printf("# fds: %s", buf);
  CHECK(strcmp(buf, "0\n1\n2\n3\n4\n") == 0);
  READ("args");
  printf("# args: %s", buf);
  CHECK(strncmp(buf, "-f /proc/self/fd/3 --normal ", 28) == 0);
  /* it wrote the staged file, which is the user's */
  struct stat st;
  CHECK(stat(staged, &st) == 0 && st.st_uid == 4242 && st.st_gid == 4343 &&
        (st.st_mode & 07777) == 0600 && st.st_size == 8);
  /* a file already there (the user's, or a link) is never opened */
  res = (struct dump_result){0};
  r = dump_exec_run(&plan, &ep, staged, IPC_DUMP_MINI, 5000, &res);
  printf("# again: %d %s\n", r, res.reason);
  EXPECT_EQ_INT(-EEXIST, r);
  /* nor a directory that is not the user's */
  snprintf(staged, sizeof(staged), "%s/private/dump", base);
  res = (struct dump_result){0};
  r = dump_exec_run(&plan, &ep, staged, IPC_DUMP_MINI, 5000, &res);
  printf("# root's directory: %d %s\n", r, res.reason);
  EXPECT_EQ_INT(-EPERM, r);
#undef READ
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  return 0;
}

/* What createdump prints is the target user's to choose when it runs as
 * that user: a failure's reason carries no control characters. */
DEF_TEST(output_escaped) {
  put("ok/noisy",
      "#!/bin/sh\nprintf 'error: \\033[31mred\\033[0m\\rgone\\n'\nexit 3\n",
      0755, 0);
  pid_t child = fork();
  if (child == 0) {
    pause();
    _exit(0);
  }
  struct ipc_endpoint ep = {.pid = child, .start_time = start_of(child)};
  struct dump_exec_plan plan = {.fd = -1, .uid = getuid(), .gid = getgid()};
  snprintf(plan.path, sizeof(plan.path), "%s/ok/noisy", base);
  struct dump_result res = {0};
  int r = dump_exec_run(&plan, &ep, "/dev/null", IPC_DUMP_MINI, 5000, &res);
  printf("# %d %s\n", r, res.reason);
  EXPECT_EQ_INT(-EIO, r);
  CHECK(strstr(res.reason, "exited with status 3: error: ?[31mred?[0m?gone") !=
        NULL);
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  return 0;
}

/* Shutdown cancels a createdump that runs: the worker's cancel fd (here
 * readable before the run) ends the wait at once, the program killed,
 * instead of after Timeout. */
DEF_TEST(cancelled) {
  put("ok/slow", "#!/bin/sh\nsleep 30\n", 0755, 0);
  pid_t child = fork();
  if (child == 0) {
    pause();
    _exit(0);
  }
  int efd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
  CHECK(efd >= 0);
  ipc_set_cancel_fd(efd);
  struct ipc_endpoint ep = {.pid = child, .start_time = start_of(child)};
  struct dump_exec_plan plan = {.fd = -1, .uid = getuid(), .gid = getgid()};
  snprintf(plan.path, sizeof(plan.path), "%s/ok/slow", base);
  struct dump_result res = {0};
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int r = dump_exec_run(&plan, &ep, "/dev/null", IPC_DUMP_MINI, 20000, &res);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double took = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("# %d %s (%.2f s)\n", r, res.reason, took);
  EXPECT_EQ_INT(-ECANCELED, r);
  CHECK(strstr(res.reason, "cancelled (shutting down)") != NULL);
  CHECK(took < 2.0);
  ipc_set_cancel_fd(-1);
  close(efd);
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  return 0;
}

int main(void) {
  if (geteuid() != 0)
    SKIP_ALL("needs root (it chowns files to other users)");
  snprintf(base, sizeof(base), "/tmp/test_dump_exec.XXXXXX");
  if (mkdtemp(base) == NULL || chmod(base, 0755) != 0)
    return 1;
  dir("ok", 0755, 0);
  dir("out", 0777, 0);
  dir("user", 0755, 4242);
  dir("gw", 0775, 0);
  dir("ow", 0757, 0);
  dir("st", 01777, 0);
  put("ok/createdump", "#!/bin/sh\n", 0755, 0);
  put("user/createdump", "#!/bin/sh\n", 0755, 0);
  put("gw/createdump", "#!/bin/sh\n", 0755, 0);
  put("ow/createdump", "#!/bin/sh\n", 0755, 0);
  put("st/createdump", "#!/bin/sh\n", 0755, 0);
  put("ok/userfile", "#!/bin/sh\n", 0755, 4242);
  put("ok/gwfile", "#!/bin/sh\n", 0775, 0);
  put("ok/noexec", "#!/bin/sh\n", 0644, 0);
  char a[128], b[128];
  snprintf(a, sizeof(a), "%s/link", base);
  snprintf(b, sizeof(b), "%s/ok", base);
  if (symlink(b, a) != 0)
    perror(a);
  snprintf(a, sizeof(a), "%s/ok/filelink", base);
  snprintf(b, sizeof(b), "%s/ok/createdump", base);
  if (symlink(b, a) != 0)
    perror(a);

  RUN_TEST(chain_root_system);
  RUN_TEST(chain_each_rule);
  RUN_TEST(maps_long_line);
  RUN_TEST(maps_names);
  RUN_TEST(stat_start);
  RUN_TEST(pid_reuse);
  RUN_TEST(child_as_user);
  RUN_TEST(output_escaped);
  RUN_TEST(cancelled);

  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
  if (system(cmd) != 0)
    return 1;
  END_TEST;
}
