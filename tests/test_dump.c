/**
 * collectd-dotnet - tests/test_dump.c
 *
 * The dump directory rule (dump_dir_open), the staging directory helpers
 * (dump_stage_new, dump_stage_remove) and the publication of the final file
 * (dump_publish), each against what a hostile writer can leave: symlinks to
 * files and directories outside, subdirectories, hard links, a directory
 * instead of the dump, a file it keeps writing to; and the result files of
 * the other actions (dump_file_*). Runs as root (chown to
 * another uid); skips otherwise.
 */
#include "dump.h"
#include "testing.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define OTHER_UID 65534

static char base[PATH_MAX];

static void path_of(char *out, const char *rel) {
  snprintf(out, PATH_MAX, "%s/%s", base, rel);
}

static void mk(const char *rel, mode_t mode) {
  char p[PATH_MAX];
  path_of(p, rel);
  mkdir(p, mode);
  chmod(p, mode);
}

static void write_file(const char *p, const char *text) {
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    ssize_t n = write(fd, text, strlen(text));
    (void)n;
    close(fd);
  }
}

static int open_dir(const char *rel, int create, char *why) {
  char p[PATH_MAX];
  path_of(p, rel);
  return dump_dir_open(p, create, NULL, NULL, 0, why, 512);
}

DEF_TEST(dir_rule) {
  char why[512], p[PATH_MAX], canon[PATH_MAX];
  int fd, reach = -1;

  mk("ok", 0755);
  path_of(p, "ok");
  fd = dump_dir_open(p, 0, &reach, canon, sizeof(canon), why, sizeof(why));
  CHECK(fd >= 0);
  EXPECT_EQ_STR(p, canon);
  if (fd >= 0)
    close(fd);

  mk("open", 0777);
  EXPECT_EQ_INT(-EPERM, open_dir("open", 0, why));
  CHECK(strstr(why, "writable by others (mode 0777)") != NULL);
  CHECK(strstr(why, "chmod go-w") != NULL);
  mk("grp", 0775);
  EXPECT_EQ_INT(-EPERM, open_dir("grp", 0, why));
  CHECK(strstr(why, "writable by its group") != NULL);
  /* sticky is no excuse for the dump directory itself */
  mk("sticky", 01777);
  EXPECT_EQ_INT(-EPERM, open_dir("sticky", 0, why));
  /* but a sticky level above is fine, a plain writable one is not */
  mk("sticky/d", 0700);
  fd = open_dir("sticky/d", 0, why);
  CHECK(fd >= 0);
  if (fd >= 0)
    close(fd);
  mk("open/d", 0700);
  EXPECT_EQ_INT(-EPERM, open_dir("open/d", 0, why));

  mk("theirs", 0700);
  path_of(p, "theirs");
  CHECK(chown(p, OTHER_UID, OTHER_UID) == 0);
  EXPECT_EQ_INT(-EPERM, open_dir("theirs", 0, why));
  CHECK(strstr(why, "belongs to uid 65534") != NULL);
  /* a root-owned directory below a user's is refused too */
  mk("theirs/sub", 0700);
  EXPECT_EQ_INT(-EPERM, open_dir("theirs/sub", 0, why));

  /* a symlink: last level or above, never followed */
  char l[PATH_MAX];
  path_of(l, "link");
  path_of(p, "ok");
  CHECK(symlink(p, l) == 0);
  EXPECT_EQ_INT(-ELOOP, open_dir("link", 0, why));
  CHECK(strstr(why, "is a symbolic link") != NULL);
  mk("ok/in", 0700);
  EXPECT_EQ_INT(-ELOOP, open_dir("link/in", 0, why));
  EXPECT_EQ_INT(-ELOOP, open_dir("link/new", 1, why));
  path_of(p, "ok/new");
  struct stat st;
  CHECK(lstat(p, &st) != 0); /* nothing made through the link */

  EXPECT_EQ_INT(-EINVAL, open_dir("ok/../ok", 0, why));
  EXPECT_EQ_INT(-ENOENT, open_dir("missing", 0, why));

  /* created: 0711 at each level, reachable by others */
  path_of(p, "ok/./a/b");
  reach = -1;
  fd = dump_dir_open(p, 1, &reach, canon, sizeof(canon), why, sizeof(why));
  CHECK(fd >= 0);
  if (fd >= 0)
    close(fd);
  path_of(p, "ok/a");
  CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0711);
  path_of(p, "ok/a/b");
  CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0711);
  EXPECT_EQ_STR(p, canon);
  /* base is 0700 (mkdtemp): others cannot pass */
  EXPECT_EQ_INT(0, reach);
  /* what exists is opened as it is */
  fd = dump_dir_open(p, 1, NULL, NULL, 0, why, sizeof(why));
  CHECK(fd >= 0);
  if (fd >= 0)
    close(fd);
  return 0;
}

static int count_entries(const char *p) {
  DIR *d = opendir(p);
  int n = 0;
  struct dirent *de;
  if (d == NULL)
    return -1;
  while ((de = readdir(d)) != NULL)
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
      n++;
  closedir(d);
  return n;
}

DEF_TEST(staging) {
  char why[512], p[PATH_MAX], name[40], left[256];
  struct stat st;
  mk("st", 0755);
  int dfd = open_dir("st", 0, why);
  CHECK(dfd >= 0);
  if (dfd < 0)
    return 1;
  int afd = -1;
  int sfd = dump_stage_new(dfd, OTHER_UID, &afd, name, sizeof(name), why,
                           sizeof(why));
  CHECK(sfd >= 0 && afd >= 0);
  if (sfd < 0)
    return 1;
  EXPECT_EQ_INT(32, (int)strlen(name));
  path_of(p, "st/.staging");
  CHECK(lstat(p, &st) == 0 && S_ISDIR(st.st_mode) &&
        (st.st_mode & 07777) == 0711 && st.st_uid == geteuid());
  char sp[PATH_MAX];
  snprintf(sp, sizeof(sp), "%s/%s", p, name);
  CHECK(lstat(sp, &st) == 0 && S_ISDIR(st.st_mode) &&
        (st.st_mode & 07777) == 0700 && st.st_uid == OTHER_UID);

  /* what a hostile writer leaves: links to a canary outside, a fifo, a
   * directory with a file, an empty one */
  mk("canary", 0755);
  char canary[PATH_MAX], cf[PATH_MAX], q[PATH_MAX];
  path_of(canary, "canary");
  snprintf(cf, sizeof(cf), "%s/precious", canary);
  write_file(cf, "precious\n");
  snprintf(q, sizeof(q), "%s/dump", sp);
  CHECK(symlink(cf, q) == 0);
  snprintf(q, sizeof(q), "%s/dirlink", sp);
  CHECK(symlink(canary, q) == 0);
  snprintf(q, sizeof(q), "%s/fifo", sp);
  CHECK(mkfifo(q, 0600) == 0);
  snprintf(q, sizeof(q), "%s/full", sp);
  CHECK(mkdir(q, 0700) == 0);
  snprintf(q, sizeof(q), "%s/full/inside", sp);
  write_file(q, "theirs\n");
  snprintf(q, sizeof(q), "%s/empty", sp);
  CHECK(mkdir(q, 0700) == 0);

  int r = dump_stage_remove(afd, name, sfd, left, sizeof(left));
  CHECK(r == -ENOTEMPTY || r == -EEXIST);
  CHECK(strstr(left, "full") != NULL);
  EXPECT_EQ_INT(1, count_entries(sp)); /* only "full" stays */
  snprintf(q, sizeof(q), "%s/full/inside", sp);
  CHECK(lstat(q, &st) == 0); /* not entered */
  CHECK(lstat(cf, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 9);
  EXPECT_EQ_INT(1, count_entries(canary));
  close(sfd);
  close(afd);

  /* nothing left: the staging directory goes */
  sfd = dump_stage_new(dfd, OTHER_UID, &afd, name, sizeof(name), why,
                       sizeof(why));
  CHECK(sfd >= 0);
  snprintf(sp, sizeof(sp), "%s/%s", p, name);
  snprintf(q, sizeof(q), "%s/dump", sp);
  write_file(q, "x");
  EXPECT_EQ_INT(0, dump_stage_remove(afd, name, sfd, left, sizeof(left)));
  CHECK(lstat(sp, &st) != 0);
  close(sfd);
  close(afd);

  /* a staging area that is a symlink or open to others is refused */
  mk("st2", 0755);
  char l[PATH_MAX];
  path_of(l, "st2/.staging");
  CHECK(symlink(canary, l) == 0);
  int d2 = open_dir("st2", 0, why);
  CHECK(d2 >= 0);
  sfd =
      dump_stage_new(d2, OTHER_UID, &afd, name, sizeof(name), why, sizeof(why));
  CHECK(sfd < 0 && afd == -1);
  EXPECT_EQ_INT(1, count_entries(canary));
  unlink(l);
  mk("st2/.staging", 0777);
  sfd =
      dump_stage_new(d2, OTHER_UID, &afd, name, sizeof(name), why, sizeof(why));
  EXPECT_EQ_INT(-EPERM, sfd);
  close(d2);
  close(dfd);
  return 0;
}

/* A staged dump of n bytes owned by uid in dir rel; returns a writable fd
 * kept open on it (the writer's hold). */
static int staged(const char *rel, const char *file, size_t n, uid_t uid) {
  char p[PATH_MAX], q[PATH_MAX];
  path_of(p, rel);
  snprintf(q, sizeof(q), "%s/%s", p, file);
  int fd = open(q, O_RDWR | O_CREAT | O_TRUNC, 0644);
  char buf[4096];
  memset(buf, 'd', sizeof(buf));
  for (size_t o = 0; fd >= 0 && o < n; o += sizeof(buf)) {
    ssize_t w = write(fd, buf, n - o < sizeof(buf) ? n - o : sizeof(buf));
    (void)w;
  }
  if (fd >= 0 && fchown(fd, uid, uid) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

DEF_TEST(publish) {
  char why[512], src[PATH_MAX], out[PATH_MAX], p[PATH_MAX];
  struct dump_result res;
  struct stat st;
  mk("pub", 0755);
  mk("src", 0755);
  path_of(out, "pub");
  int dfd = open_dir("pub", 0, why);
  path_of(src, "src");
  int sdir = open(src, O_RDONLY | O_DIRECTORY);
  CHECK(dfd >= 0 && sdir >= 0);

  /* the writer keeps an fd and writes on after the dump is published */
  int keep = staged("src", "dump", 100000, OTHER_UID);
  CHECK(keep >= 0);
  memset(&res, 0, sizeof(res));
  int r = dump_publish(sdir, "dump", "src/dump", OTHER_UID, dfd, out, "a.dmp",
                       0, 0, -1, &res);
  EXPECT_EQ_INT(0, r);
  EXPECT_EQ_U64(100000, res.size);
  path_of(p, "pub/a.dmp");
  EXPECT_EQ_STR(p, res.path);
  CHECK(lstat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 100000 &&
        (st.st_mode & 07777) == 0600 && st.st_uid == 0 && st.st_nlink == 1);
  struct stat sst;
  path_of(src, "src/dump");
  CHECK(stat(src, &sst) == 0 && sst.st_ino != st.st_ino);
  char more[8192];
  memset(more, 'X', sizeof(more));
  CHECK(pwrite(keep, more, sizeof(more), 0) == (ssize_t)sizeof(more));
  CHECK(write(keep, more, sizeof(more)) == (ssize_t)sizeof(more));
  CHECK(lstat(p, &st) == 0 && st.st_size == 100000);
  int fd = open(p, O_RDONLY);
  char head[16] = "";
  CHECK(fd >= 0 && read(fd, head, sizeof(head)) == (ssize_t)sizeof(head));
  CHECK(head[0] == 'd' && head[15] == 'd');
  if (fd >= 0)
    close(fd);
  close(keep);

  /* never over an existing name: a directory at the final path */
  mk("pub/b.dmp", 0700);
  keep = staged("src", "dump", 1000, OTHER_UID);
  r = dump_publish(sdir, "dump", "src/dump", OTHER_UID, dfd, out, "b.dmp", 0, 0,
                   -1, &res);
  EXPECT_EQ_INT(-EEXIST, r);
  path_of(p, "pub/b.dmp");
  CHECK(lstat(p, &st) == 0 && S_ISDIR(st.st_mode));
  EXPECT_EQ_INT(0, count_entries(p));
  close(keep);

  /* what is at the staged name: a directory, a symlink, a hard link, another
   * owner, nothing, an empty file */
  path_of(src, "src/dump");
  unlink(src);
  mk("src/dump", 0700);
  r = dump_publish(sdir, "dump", "src/dump", OTHER_UID, dfd, out, "c.dmp", 0, 0,
                   -1, &res);
  EXPECT_EQ_INT(-EPERM, r);
  CHECK(strstr(res.reason,
               "src/dump is not a plain file of its writer (a directory)") !=
        NULL);
  rmdir(src);
  path_of(p, "pub/a.dmp");
  CHECK(symlink(p, src) == 0);
  r = dump_publish(sdir, "dump", "src/dump", OTHER_UID, dfd, out, "c.dmp", 0, 0,
                   -1, &res);
  EXPECT_EQ_INT(-ELOOP, r);
  unlink(src);
  keep = staged("src", "dump", 1000, OTHER_UID);
  char hl[PATH_MAX];
  path_of(hl, "src/other-link");
  CHECK(link(src, hl) == 0);
  r = dump_publish(sdir, "dump", "src/dump", OTHER_UID, dfd, out, "c.dmp", 0, 0,
                   -1, &res);
  EXPECT_EQ_INT(-EPERM, r);
  CHECK(strstr(res.reason, "other links") != NULL);
  unlink(hl);
  r = dump_publish(sdir, "dump", "src/dump", 12345, dfd, out, "c.dmp", 0, 0, -1,
                   &res);
  EXPECT_EQ_INT(-EPERM, r);
  CHECK(strstr(res.reason, "another owner") != NULL);
  close(keep);
  unlink(src);
  r = dump_publish(sdir, "dump", "src/dump", OTHER_UID, dfd, out, "c.dmp", 0, 0,
                   -1, &res);
  EXPECT_EQ_INT(-ENOENT, r);
  keep = staged("src", "dump", 0, OTHER_UID);
  r = dump_publish(sdir, "dump", "src/dump", OTHER_UID, dfd, out, "c.dmp", 0, 0,
                   -1, &res);
  EXPECT_EQ_INT(-EIO, r);
  close(keep);

  /* bounds: free space, MinFreeSpace, deadline, cancel */
  keep = staged("src", "dump", 1000, OTHER_UID);
  r = dump_publish(sdir, "dump", "src/dump", OTHER_UID, dfd, out, "c.dmp",
                   UINT64_MAX / 2, 0, -1, &res);
  EXPECT_EQ_INT(-ENOSPC, r);
  CHECK(strstr(res.reason, "refusing to copy it") != NULL);
  r = dump_publish(sdir, "dump", "src/dump", OTHER_UID, dfd, out, "c.dmp", 0, 1,
                   -1, &res);
  EXPECT_EQ_INT(-ETIMEDOUT, r);
  int ev = eventfd(1, EFD_CLOEXEC);
  r = dump_publish(sdir, "dump", "src/dump", OTHER_UID, dfd, out, "c.dmp", 0, 0,
                   ev, &res);
  EXPECT_EQ_INT(-ECANCELED, r);
  close(ev);
  /* a sparse 1 TiB dump: refused for the space it would take */
  struct statvfs sv;
  CHECK(ftruncate(keep, (off_t)1 << 40) == 0);
  if (fstatvfs(dfd, &sv) == 0 &&
      (uint64_t)sv.f_bavail * sv.f_frsize < ((uint64_t)1 << 40)) {
    r = dump_publish(sdir, "dump", "src/dump", OTHER_UID, dfd, out, "c.dmp", 0,
                     0, -1, &res);
    EXPECT_EQ_INT(-ENOSPC, r);
    CHECK(strstr(res.reason, "the dump is 1048576 MiB") != NULL);
  }
  close(keep);
  /* the refusals left nothing in the directory: a.dmp, b.dmp only */
  EXPECT_EQ_INT(2, count_entries(out));
  path_of(p, "pub/c.dmp");
  CHECK(lstat(p, &st) != 0);
  close(sdir);
  close(dfd);
  return 0;
}

/* A result file: named after instance and pid, 0600 root, linked only at
 * commit, never over a name; the dump directory's rules; nothing left by an
 * abandoned one or a refusal. */
DEF_TEST(result_file) {
  char dir[PATH_MAX], p[PATH_MAX];
  struct dump_result res = {0};
  struct dump_file f;
  struct stat st;
  path_of(dir, "results");
  EXPECT_EQ_INT(0, dump_file_open(&f, dir, "sh/op", 42, ".heap-types.json", 0,
                                  &res));
  CHECK(f.fd >= 0);
  EXPECT_EQ_INT(0, count_entries(dir)); /* not named before commit */
  CHECK(write(f.fd, "{}\n", 3) == 3);
  CHECK(strncmp(f.final_name, "sh_op-42-", 9) == 0);
  CHECK(strstr(f.final_name, "Z.heap-types.json") != NULL);
  EXPECT_EQ_INT(0, dump_file_commit(&f, &res));
  EXPECT_EQ_INT(-1, f.fd);
  EXPECT_EQ_U64(3, res.size);
  CHECK(lstat(res.path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 3 &&
        (st.st_mode & 07777) == 0600 && st.st_uid == 0);
  EXPECT_EQ_INT(1, count_entries(dir));

  /* abandoned: nothing stays */
  EXPECT_EQ_INT(0, dump_file_open(&f, dir, "shop", 42, ".nettrace", 0, &res));
  CHECK(write(f.fd, "x", 1) == 1);
  dump_file_abort(&f);
  dump_file_abort(&f); /* twice is harmless */
  EXPECT_EQ_INT(1, count_entries(dir));

  /* MinFreeSpace above what there is: refused, nothing made */
  memset(&res, 0, sizeof(res));
  EXPECT_EQ_INT(-ENOSPC, dump_file_open(&f, dir, "shop", 42, ".nettrace",
                                        UINT64_MAX, &res));
  CHECK(strstr(res.reason, "below MinFreeSpace") != NULL);
  EXPECT_EQ_INT(1, count_entries(dir));

  /* the dump directory's rules: group-writable, or a symlink, refused */
  mk("results-gw", 0775);
  path_of(p, "results-gw");
  memset(&res, 0, sizeof(res));
  CHECK(dump_file_open(&f, p, "shop", 42, ".nettrace", 0, &res) < 0);
  CHECK(res.reason[0] != 0);
  EXPECT_EQ_INT(0, count_entries(p));
  path_of(p, "results-link");
  CHECK(symlink(dir, p) == 0);
  memset(&res, 0, sizeof(res));
  CHECK(dump_file_open(&f, p, "shop", 42, ".nettrace", 0, &res) < 0);
  CHECK(res.reason[0] != 0);
  EXPECT_EQ_INT(1, count_entries(dir));
  return 0;
}

int main(void) {
  if (geteuid() != 0)
    SKIP_ALL("needs root (chown to another uid)");
  snprintf(base, sizeof(base), "/tmp/test_dump.XXXXXX");
  if (mkdtemp(base) == NULL)
    SKIP_ALL("mkdtemp failed");
  RUN_TEST(dir_rule);
  RUN_TEST(staging);
  RUN_TEST(publish);
  RUN_TEST(result_file);
  char cmd[PATH_MAX + 16];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
  if (system(cmd) != 0)
    printf("# could not remove %s\n", base);
  END_TEST;
}
