/**
 * collectd-dotnet - tests/test_listen.c
 *
 * The reverse diagnostic port (listen.c) against runtimes played in
 * threads of this process: the advertise decoded and refused, the socket
 * made safely, commands through the IPC engine on the connection a runtime
 * opened (and the next one it opens), and the hostile cases: a malformed
 * or silent advertise, a false pid claim, a borrowed cookie, data sent
 * unasked, more connections than the cap.
 */
#include "clock.h"
#include "ipc.h"
#include "listen.h"
#include "wire.h"

#include "testing.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];
static char sock_path[128];

static void advertise(uint8_t out[LISTEN_ADVERTISE_SIZE], uint8_t cookie_byte,
                      uint64_t pid) {
  memset(out, 0, LISTEN_ADVERTISE_SIZE);
  memcpy(out, "ADVR_V1", 8);
  memset(out + 8, cookie_byte, 16);
  wire_set_le64(out + 24, pid);
}

static int dial(void) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Connects and advertises (cookie all `cb`, pid claimed): the fd. */
static int dial_advertise(uint8_t cb, uint64_t pid) {
  int fd = dial();
  uint8_t adv[LISTEN_ADVERTISE_SIZE];
  advertise(adv, cb, pid);
  if (fd >= 0 && send(fd, adv, sizeof(adv), MSG_NOSIGNAL) != sizeof(adv)) {
    close(fd);
    return -1;
  }
  return fd;
}

static int wait_for(struct listen *l, int (*cond)(const struct listen_stats *),
                    int ms) {
  int64_t end = clock_mono_ms() + ms;
  struct listen_stats st;
  do {
    listen_get_stats(l, &st);
    if (cond(&st))
      return 1;
    usleep(5000);
  } while (clock_mono_ms() < end);
  return 0;
}

static _Atomic int logged;
static void count_log(void *ctx, int level, const char *msg) {
  (void)ctx, (void)level, (void)msg;
  logged++;
}

static struct listen *open_listener(int advertise_ms, int gone_ms,
                                    size_t max_pending) {
  struct listen_config lc = {.path = sock_path,
                             .gid = (gid_t)-1,
                             .advertise_ms = advertise_ms,
                             .gone_ms = gone_ms,
                             .max_pending = max_pending,
                             .log = count_log};
  char err[256] = "";
  struct listen *l = listen_open(&lc, err, sizeof(err));
  if (l == NULL)
    printf("# listen_open: %s\n", err);
  return l;
}

DEF_TEST(advertise_decode) {
  uint8_t a[LISTEN_ADVERTISE_SIZE], cookie[16];
  uint64_t pid = 0;
  advertise(a, 0xab, 4242);
  EXPECT_EQ_INT(0, listen_advertise_decode(a, sizeof(a), cookie, &pid));
  EXPECT_EQ_U64(4242, pid);
  CHECK(cookie[0] == 0xab && cookie[15] == 0xab);
  EXPECT_EQ_INT(-EBADMSG,
                listen_advertise_decode(a, sizeof(a) - 1, cookie, &pid));
  a[32] = 1; /* reserved */
  EXPECT_EQ_INT(-EBADMSG, listen_advertise_decode(a, sizeof(a), cookie, &pid));
  advertise(a, 0xab, 1);
  a[7] = 'x'; /* the magic's terminator */
  EXPECT_EQ_INT(-EBADMSG, listen_advertise_decode(a, sizeof(a), cookie, &pid));
  return 0;
}

DEF_TEST(socket_made_safely) {
  /* someone else's file, a symlink: refused and left alone */
  int fd = open(sock_path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  CHECK(fd >= 0);
  close(fd);
  CHECK(open_listener(0, 0, 0) == NULL);
  struct stat st;
  CHECK(lstat(sock_path, &st) == 0 && S_ISREG(st.st_mode));
  unlink(sock_path);
  CHECK(symlink("/etc/passwd", sock_path) == 0);
  CHECK(open_listener(0, 0, 0) == NULL);
  CHECK(lstat(sock_path, &st) == 0 && S_ISLNK(st.st_mode));
  unlink(sock_path);
  /* made with the mode asked, and an old one of ours replaced */
  struct listen *l = open_listener(0, 0, 0);
  CHECK(l != NULL);
  CHECK(lstat(sock_path, &st) == 0 && S_ISSOCK(st.st_mode) &&
        (st.st_mode & 07777) == 0660);
  ino_t first = st.st_ino;
  /* a second listener on the same path replaces the first's socket; the
   * first, closing, leaves the second's alone */
  struct listen *l2 = open_listener(0, 0, 0);
  CHECK(l2 != NULL);
  CHECK(lstat(sock_path, &st) == 0 && st.st_ino != first);
  listen_close(l);
  CHECK(lstat(sock_path, &st) == 0);
  listen_close(l2);
  CHECK(lstat(sock_path, &st) != 0 && errno == ENOENT);
  /* nothing left behind in the directory but what was there */
  return 0;
}

/* A runtime played by a thread: advertises, answers each command with a
 * ProcessInfo2 reply (or OK for ResumeRuntime), closes and connects again,
 * `turns` times. */
struct runtime {
  uint8_t cookie_byte;
  int turns;
  int delay_ms; /* before connecting again */
  _Atomic int commands;
  _Atomic int resumed;
};

static void *runtime_main(void *arg) {
  struct runtime *rt = arg;
  for (int t = 0; t < rt->turns; t++) {
    int fd = dial_advertise(rt->cookie_byte, (uint64_t)getpid());
    if (fd < 0)
      return NULL;
    uint8_t hdr[IPC_HEADER_SIZE];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 5000) != 1 ||
        recv(fd, hdr, sizeof(hdr), MSG_WAITALL) != (ssize_t)sizeof(hdr)) {
      close(fd);
      return NULL;
    }
    uint8_t set, id;
    long plen = ipc_header_decode(hdr, &set, &id);
    uint8_t junk[512];
    if (plen > 0)
      (void)recv(fd, junk, (size_t)plen, MSG_WAITALL);
    rt->commands++;
    uint8_t pl[512], msg[600];
    size_t n = 4;
    memset(pl, 0, sizeof(pl));
    if (set == IPC_SET_PROCESS && id == IPC_PROCESS_RESUME) {
      rt->resumed++;
    } else {
      memset(pl + 8, rt->cookie_byte, 16);
      n = 24;
      const char *s[] = {"app --listen", "Linux", "x64", "ListenApp", "10.0.1"};
      for (int i = 0; i < 5; i++)
        n = (size_t)ipc_put_string(pl, sizeof(pl), n, s[i]);
    }
    long m = ipc_message_encode(msg, sizeof(msg), IPC_SET_SERVER, IPC_SERVER_OK,
                                pl, n);
    (void)send(fd, msg, (size_t)m, MSG_NOSIGNAL);
    close(fd);
    if (rt->delay_ms)
      usleep((useconds_t)rt->delay_ms * 1000);
  }
  return NULL;
}

static int one_runtime(const struct listen_stats *st) {
  return st->runtimes == 1 && st->advertised >= 1;
}

/* The endpoint of the only runtime l knows, once a connection of it
 * waits. */
static int the_endpoint(struct listen *l, struct ipc_endpoint *ep) {
  struct listen_runtime rt[4];
  for (int i = 0; i < 400; i++) {
    size_t n = listen_list(l, rt, 4);
    if (n == 1 && rt[0].waiting) {
      listen_endpoint(l, &rt[0], ep);
      return 0;
    }
    usleep(5000);
  }
  return -1;
}

DEF_TEST(commands_on_reverse_connections) {
  struct listen *l = open_listener(0, 0, 0);
  CHECK(l != NULL);
  if (l == NULL)
    return 1;
  struct runtime rt = {.cookie_byte = 0x11, .turns = 3, .delay_ms = 100};
  pthread_t th;
  pthread_create(&th, NULL, runtime_main, &rt);
  struct ipc_endpoint ep;
  CHECK(the_endpoint(l, &ep) == 0);
  CHECK(ep.take != NULL && ep.cookie[0] == 0x11);
  EXPECT_EQ_INT(getpid(), ep.pid); /* SO_PEERCRED: our pid namespace */
  struct pollfd pe = {.fd = listen_event_fd(l), .events = POLLIN};
  CHECK(poll(&pe, 1, 0) == 1); /* a runtime came */
  listen_drain(l);
  CHECK(poll(&pe, 1, 0) == 0);
  /* three commands in a row: the second and third wait for the runtime
   * to connect again (100 ms later) */
  struct ipc_process_info info;
  struct ipc_error err = {0};
  EXPECT_EQ_INT(0, ipc_process_info(&ep, 2000, &info, &err));
  EXPECT_EQ_STR("ListenApp", info.entry_assembly);
  int64_t t0 = clock_mono_ms();
  EXPECT_EQ_INT(0, ipc_process_info(&ep, 2000, &info, &err));
  CHECK(clock_mono_ms() - t0 >= 80);
  EXPECT_EQ_INT(0, ipc_resume_runtime(&ep, 2000, &err));
  EXPECT_EQ_INT(1, rt.resumed);
  pthread_join(th, NULL);
  EXPECT_EQ_INT(3, rt.commands);
  /* the runtime connects no more: a command waits until its deadline */
  t0 = clock_mono_ms();
  EXPECT_EQ_INT(-ETIMEDOUT, ipc_process_info(&ep, 300, &info, &err));
  int64_t took = clock_mono_ms() - t0;
  CHECK(took >= IPC_TAKE_MIN_MS - 50 && took < IPC_TAKE_MIN_MS + 1000);
  CHECK(strstr(err.message, "did not connect again") != NULL);
  /* one cookie, one runtime, whatever the reconnects */
  struct listen_stats st;
  listen_get_stats(l, &st);
  EXPECT_EQ_INT(1, st.runtimes);
  EXPECT_EQ_INT(3, st.advertised);
  listen_close(l);
  return 0;
}

static int gone(const struct listen_stats *st) { return st->runtimes == 0; }

DEF_TEST(runtime_gone_and_advertise_split) {
  struct listen *l = open_listener(0, 60000, 0);
  CHECK(l != NULL);
  if (l == NULL)
    return 1;
  /* an advertise byte by byte */
  int fd = dial();
  uint8_t adv[LISTEN_ADVERTISE_SIZE];
  advertise(adv, 0x22, (uint64_t)getpid());
  for (size_t i = 0; i < sizeof(adv); i++) {
    CHECK(send(fd, adv + i, 1, MSG_NOSIGNAL) == 1);
    usleep(1000);
  }
  CHECK(wait_for(l, one_runtime, 2000));
  struct listen_runtime rt;
  CHECK(listen_list(l, &rt, 1) == 1 && rt.cookie[0] == 0x22 && rt.waiting);
  struct ipc_endpoint ep;
  CHECK(the_endpoint(l, &ep) == 0);
  /* it exits: its waiting connection ends, it is forgotten at once, and a
   * command for it fails at once instead of waiting for its next
   * connection */
  close(fd);
  CHECK(wait_for(l, gone, 150));
  struct ipc_process_info info;
  struct ipc_error err = {0};
  int64_t t0 = clock_mono_ms();
  EXPECT_EQ_INT(-ENOENT, ipc_process_info(&ep, 2000, &info, &err));
  CHECK(clock_mono_ms() - t0 < 100);
  CHECK(strstr(err.message, "has gone") != NULL);
  listen_close(l);
  return 0;
}

static int malformed_one(const struct listen_stats *st) {
  return st->malformed >= 2;
}
static int silent_one(const struct listen_stats *st) {
  return st->timed_out >= 1;
}
static int refused_two(const struct listen_stats *st) {
  return st->refused >= 2;
}

DEF_TEST(hostile_peers) {
  logged = 0;
  struct listen *l = open_listener(200, 0, 8);
  CHECK(l != NULL);
  if (l == NULL)
    return 1;
  /* a wrong magic, and an end before the advertise is whole */
  int fd = dial();
  uint8_t adv[LISTEN_ADVERTISE_SIZE];
  advertise(adv, 0x33, (uint64_t)getpid());
  adv[0] = 'X';
  CHECK(send(fd, adv, sizeof(adv), MSG_NOSIGNAL) == sizeof(adv));
  int fd2 = dial();
  CHECK(send(fd2, adv, 10, MSG_NOSIGNAL) == 10);
  close(fd2);
  CHECK(wait_for(l, malformed_one, 2000));
  close(fd);
  /* silent: closed at the deadline */
  int64_t t0 = clock_mono_ms();
  fd = dial();
  CHECK(wait_for(l, silent_one, 2000));
  int64_t took = clock_mono_ms() - t0;
  CHECK(took >= 150 && took < 1500);
  char b;
  CHECK(recv(fd, &b, 1, 0) == 0); /* closed by the listener */
  close(fd);
  /* a pid it is not (pid 1 of our namespace is not us) and a cookie
   * borrowed from another peer: refused */
  fd = dial_advertise(0x44, 1);
  CHECK(recv(fd, &b, 1, 0) == 0);
  close(fd);
  int owner = dial_advertise(0x55, (uint64_t)getpid());
  CHECK(wait_for(l, one_runtime, 2000));
  pid_t child = fork();
  if (child == 0) { /* another pid with the cookie of 0x55 */
    int c = dial_advertise(0x55, (uint64_t)getpid());
    char x;
    _exit(c >= 0 && recv(c, &x, 1, 0) == 0 ? 0 : 1);
  }
  int status = 0;
  waitpid(child, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(wait_for(l, refused_two, 2000));
  /* data unasked on a waiting connection: it is closed */
  CHECK(send(owner, "x", 1, MSG_NOSIGNAL) == 1);
  CHECK(recv(owner, &b, 1, 0) <= 0); /* unread data: a reset, or an end */
  close(owner);
  /* more silent connections than the cap: the rest closed at once */
  int many[40];
  for (int i = 0; i < 40; i++)
    many[i] = dial();
  usleep(100000);
  struct listen_stats st;
  listen_get_stats(l, &st);
  CHECK(st.pending <= 8);
  CHECK(st.over_cap >= 32);
  for (int i = 0; i < 40; i++)
    if (many[i] >= 0)
      close(many[i]);
  /* each kind said once: malformed, early end, silent, pid claim, cookie,
   * unasked data, the cap */
  CHECK(logged >= 7 && logged <= 8);
  int before = logged;
  fd = dial();
  CHECK(send(fd, adv, sizeof(adv), MSG_NOSIGNAL) == sizeof(adv));
  usleep(100000);
  close(fd);
  EXPECT_EQ_INT(before, logged);
  listen_close(l);
  return 0;
}

DEF_TEST(close_while_waiting) {
  struct listen *l = open_listener(0, 0, 0);
  CHECK(l != NULL);
  if (l == NULL)
    return 1;
  int fd = dial_advertise(0x66, (uint64_t)getpid());
  struct ipc_endpoint ep;
  CHECK(the_endpoint(l, &ep) == 0);
  struct ipc_process_info info;
  struct ipc_error err = {0};
  /* the command takes the connection; nobody answers: the read times out
   * at the call's deadline */
  EXPECT_EQ_INT(-ETIMEDOUT, ipc_process_info(&ep, 200, &info, &err));
  close(fd);
  /* the cancel fd ends a wait for a runtime that does not connect again */
  int pfd[2];
  CHECK(pipe(pfd) == 0);
  CHECK(write(pfd[1], "x", 1) == 1);
  ipc_set_cancel_fd(pfd[0]);
  int64_t t0 = clock_mono_ms();
  EXPECT_EQ_INT(-ECANCELED, ipc_process_info(&ep, 5000, &info, &err));
  CHECK(clock_mono_ms() - t0 < 500);
  ipc_set_cancel_fd(-1);
  close(pfd[0]);
  close(pfd[1]);
  int64_t c0 = clock_mono_ms();
  listen_close(l);
  CHECK(clock_mono_ms() - c0 < 500);
  return 0;
}

int main(void) {
  snprintf(dir, sizeof(dir), "/tmp/test_listen.XXXXXX");
  if (mkdtemp(dir) == NULL)
    SKIP_ALL("no temporary directory");
  snprintf(sock_path, sizeof(sock_path), "%s/diag.sock", dir);
  RUN_TEST(advertise_decode);
  RUN_TEST(socket_made_safely);
  RUN_TEST(commands_on_reverse_connections);
  RUN_TEST(runtime_gone_and_advertise_split);
  RUN_TEST(hostile_peers);
  RUN_TEST(close_while_waiting);
  unlink(sock_path);
  rmdir(dir);
  END_TEST;
}
