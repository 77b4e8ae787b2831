/**
 * collectd-dotnet - tests/test_ipc.c
 *
 * The Diagnostic IPC client (plugin/ipc.c) against a runtime played in
 * this process, no .NET needed: a unix socket in a new directory served
 * by this process (so the peer check passes). The calls stepped by their
 * caller are driven against a server in the same thread, step by step;
 * the blocking commands against a thread that answers each connection as
 * scripted (struct fake). Covered: replies in pieces, the command forms
 * (UnknownCommand -> the next older form on a new connection), error
 * HRESULTs, cut replies, replies over the cap, the deadline, the cancel
 * fd, several calls polled together, and what reaches a message from the
 * peer.
 */
#include "clock.h"
#include "ipc.h"
#include "testing.h"
#include "wire.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- calls stepped by their caller, against a server in this thread ---- */

/* One connection of the fake runtime: after reading the request it sends
 * reply[len] (less than the whole message: a cut reply), then closes, or
 * with hold first waits for the client to close. */
struct turn {
  uint8_t reply[256];
  size_t len;
  int hold;
};

struct fake {
  char dir[32];
  struct ipc_endpoint ep;
  int srv;
  uint8_t set; /* of the requests */
  struct turn turns[4];
  size_t nturns;
  int ids[4];          /* the command ids asked, in order */
  size_t asked;        /* connections accepted */
  uint8_t payload[16]; /* the start of the last request's payload */
  pthread_t thread;
};

/* A listening socket in a new directory (dir, a mkdtemp template), served
 * by this process (SO_PEERCRED says getpid()), and the endpoint naming
 * it; -1 on failure. */
static int probe_server(char *dir, struct ipc_endpoint *ep) {
  if (mkdtemp(dir) == NULL)
    return -1;
  memset(ep, 0, sizeof(*ep));
  ep->pid = getpid();
  ep->uid = getuid();
  snprintf(ep->path, sizeof(ep->path), "%s/s", dir);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", ep->path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
      listen(fd, 4) != 0)
    return -1;
  return fd;
}

/* A runtime's socket in a new directory, served by this process: f->srv
 * and f->ep. 0, or -1. */
static int server_open(struct fake *f) {
  snprintf(f->dir, sizeof(f->dir), "/tmp/test-ipc-XXXXXX");
  f->srv = probe_server(f->dir, &f->ep);
  CHECK(f->srv >= 0);
  return f->srv >= 0 ? 0 : -1;
}

static void server_close(struct fake *f) {
  if (f->srv >= 0)
    close(f->srv);
  unlink(f->ep.path);
  rmdir(f->dir);
}

/* A connection to srv within 2 s, or -1: a client that does not come
 * (a form not asked) fails the test instead of hanging it. */
static int accept_within(int srv) {
  struct pollfd p = {.fd = srv, .events = POLLIN};
  if (poll(&p, 1, 2000) != 1)
    return -1;
  return accept4(srv, NULL, NULL, SOCK_CLOEXEC);
}

/* Accepts a connection and reads one whole request: its command id (set
 * must be `set`), or -1; the first bytes of its payload into pl[cap]. */
static int accept_request(int srv, int *conn, uint8_t want_set, uint8_t *pl,
                          size_t cap) {
  *conn = accept_within(srv);
  uint8_t req[IPC_MAX_MESSAGE];
  if (*conn < 0 ||
      recv(*conn, req, IPC_HEADER_SIZE, MSG_WAITALL) != IPC_HEADER_SIZE)
    return -1;
  uint8_t set, id;
  long plen = ipc_header_decode(req, &set, &id);
  if (plen < 0 || set != want_set)
    return -1;
  if (plen > 0 && recv(*conn, req, (size_t)plen, MSG_WAITALL) != plen)
    return -1;
  if (pl != NULL)
    memcpy(pl, req, (size_t)plen < cap ? (size_t)plen : cap);
  return id;
}

/* A ProcessInfo(2) payload with the command line "app --x": its length. */
static size_t info_payload(uint8_t *pl, size_t cap, int v2) {
  memset(pl, 0, 24); /* pid, cookie */
  pl[0] = 42;
  size_t off = 24;
  const char *s[] = {"app --x", "Linux", "x64", "App", "10.0.1"};
  for (int i = 0; i < (v2 ? 5 : 3); i++)
    off = (size_t)ipc_put_string(pl, cap, off, s[i]);
  return off;
}

/* A ProcessInfo(2) OK reply message into buf[cap]: its length. */
static size_t info_reply(uint8_t *buf, size_t cap, int v2) {
  uint8_t pl[512];
  size_t n = info_payload(pl, sizeof(pl), v2);
  return (size_t)ipc_message_encode(buf, cap, IPC_SET_SERVER, IPC_SERVER_OK, pl,
                                    n);
}

/* Sends a server message (id, payload pl[n]) on conn, less its last cut
 * bytes. */
static void send_reply(int conn, uint8_t id, const void *pl, size_t n,
                       size_t cut) {
  uint8_t msg[512];
  long m = ipc_message_encode(msg, sizeof(msg), IPC_SET_SERVER, id, pl, n);
  CHECK(m > 0 && send(conn, msg, (size_t)m - cut, MSG_NOSIGNAL) ==
                     (ssize_t)((size_t)m - cut));
}

static void send_unknown_command(int conn) {
  uint8_t hr[4];
  wire_set_le32(hr, (uint32_t)IPC_E_UNKNOWN_COMMAND);
  send_reply(conn, IPC_SERVER_ERROR, hr, sizeof(hr), 0);
}

/* Steps a call (ProcessInfo with info, else CollectTracing) until it ends
 * or `ms` pass: its result. */
static int call_run(struct ipc_call *c, int ms, struct ipc_process_info *info,
                    int *fd, uint64_t *sid, struct ipc_error *err) {
  int64_t end = clock_mono_ms() + ms;
  int r = -EINPROGRESS;
  while (r == -EINPROGRESS && clock_mono_ms() < end) {
    struct pollfd pfd = {.fd = ipc_call_fd(c), .events = POLLIN};
    poll(&pfd, 1, 20);
    r = info ? ipc_probe_step(c, info, err) : ipc_collect_step(c, fd, sid, err);
  }
  return r;
}
#define probe_run(c, ms, info, err) call_run(c, ms, info, NULL, NULL, err)
#define collect_run(c, ms, fd, sid, err) call_run(c, ms, NULL, fd, sid, err)

/* A new probe of ep (the last one closed), its request accepted: the
 * server's end of the connection. */
static int probe_asked(struct ipc_call **p, const struct ipc_endpoint *ep,
                       int ms, int srv, struct ipc_error *err) {
  int conn;
  ipc_call_close(p);
  EXPECT_EQ_INT(-EINPROGRESS, ipc_probe_start(p, ep, ms, err));
  EXPECT_EQ_INT(IPC_PROCESS_INFO2,
                accept_request(srv, &conn, IPC_SET_PROCESS, NULL, 0));
  return conn;
}

/* A runtime without ProcessInfo2: ProcessInfo on a second connection. */
static void probe_older(struct ipc_call *p, int srv, int conn,
                        struct ipc_error *err) {
  struct ipc_process_info info;
  uint8_t pl[512];
  send_unknown_command(conn);
  EXPECT_EQ_INT(-EINPROGRESS, probe_run(p, 100, &info, err));
  close(conn);
  EXPECT_EQ_INT(IPC_PROCESS_INFO,
                accept_request(srv, &conn, IPC_SET_PROCESS, NULL, 0));
  send_reply(conn, IPC_SERVER_OK, pl, info_payload(pl, sizeof(pl), 0), 0);
  EXPECT_EQ_INT(0, probe_run(p, 2000, &info, err));
  CHECK(strcmp(info.command_line, "app --x") == 0);
  CHECK(info.entry_assembly[0] == 0);
  close(conn);
}

/* The answer comes in three pieces, each step taking what has come; a
 * runtime without ProcessInfo2 is asked ProcessInfo on a new connection;
 * silence ends at the deadline, a cut payload as truncated, a bad header
 * at once; nothing is read before the probe asks. */
DEF_TEST(probe) {
  struct fake s = {0};
  if (server_open(&s) != 0)
    return 1;
  struct ipc_call *p = NULL;
  struct ipc_process_info info;
  struct ipc_error err = {0};
  uint8_t msg[1024];

  /* in pieces: header half, the rest of the header, the payload */
  int conn = probe_asked(&p, &s.ep, 2000, s.srv, &err);
  EXPECT_EQ_INT(-EINPROGRESS, ipc_probe_step(p, &info, &err));
  size_t n = info_reply(msg, sizeof(msg), 1);
  size_t cuts[] = {0, 10, IPC_HEADER_SIZE, n};
  for (int i = 0; i < 3; i++) {
    CHECK(send(conn, msg + cuts[i], cuts[i + 1] - cuts[i], 0) ==
          (ssize_t)(cuts[i + 1] - cuts[i]));
    int r = probe_run(p, i < 2 ? 50 : 2000, &info, &err);
    EXPECT_EQ_INT(i < 2 ? -EINPROGRESS : 0, r);
  }
  CHECK(strcmp(info.command_line, "app --x") == 0);
  CHECK(strcmp(info.entry_assembly, "App") == 0);
  CHECK(strcmp(info.runtime_version, "10.0.1") == 0);
  EXPECT_EQ_INT(42, info.pid);
  EXPECT_EQ_INT(-1, ipc_call_fd(p));
  close(conn);

  /* UnknownCommand to ProcessInfo2, with and without an error struct */
  probe_older(p, s.srv, probe_asked(&p, &s.ep, 2000, s.srv, &err), &err);
  probe_older(p, s.srv, probe_asked(&p, &s.ep, 2000, s.srv, NULL), NULL);

  /* silence: -EINPROGRESS until the deadline, then "no answer" */
  conn = probe_asked(&p, &s.ep, 300, s.srv, &err);
  int64_t t0 = clock_mono_ms();
  EXPECT_EQ_INT(-ETIMEDOUT, probe_run(p, 3000, &info, &err));
  int64_t took = clock_mono_ms() - t0;
  CHECK(took >= 250 && took < 1500);
  CHECK(strcmp(err.message, "no answer from the runtime in time") == 0);
  close(conn);

  /* a payload cut short by the end of the connection */
  conn = probe_asked(&p, &s.ep, 2000, s.srv, &err);
  n = info_reply(msg, sizeof(msg), 1);
  CHECK(send(conn, msg, n - 5, 0) == (ssize_t)(n - 5));
  close(conn);
  EXPECT_EQ_INT(-EBADMSG, probe_run(p, 2000, &info, &err));
  CHECK(strcmp(err.message, "reading the reply failed: truncated") == 0);

  /* a header that is not the protocol's */
  conn = probe_asked(&p, &s.ep, 2000, s.srv, &err);
  memset(msg, 'x', IPC_HEADER_SIZE);
  CHECK(send(conn, msg, IPC_HEADER_SIZE, 0) == IPC_HEADER_SIZE);
  EXPECT_EQ_INT(-EBADMSG, probe_run(p, 2000, &info, &err));
  CHECK(strstr(err.message, "not a Diagnostic IPC message") != NULL);
  close(conn);

  /* served by somebody else: refused before anything is sent */
  struct ipc_endpoint other = s.ep;
  other.pid = getppid();
  ipc_call_close(&p);
  EXPECT_EQ_INT(-EPERM, ipc_probe_start(&p, &other, 2000, &err));
  CHECK(strstr(err.message, "not by pid") != NULL);
  CHECK(p == NULL);
  conn = accept4(s.srv, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (conn >= 0) { /* the refused connection: closed, nothing sent */
    EXPECT_EQ_INT(0, recv(conn, msg, sizeof(msg), 0));
    close(conn);
  }

  /* nobody listening: refused at once */
  close(s.srv);
  s.srv = -1;
  EXPECT_EQ_INT(-ECONNREFUSED, ipc_probe_start(&p, &s.ep, 2000, &err));
  server_close(&s);
  return 0;
}

/* A new CollectTracing of ep (the last call closed), its request
 * accepted: the server's end of the connection. */
static int collect_asked(struct ipc_call **c, const struct ipc_endpoint *ep,
                         int srv, struct ipc_error *err) {
  static const struct ipc_provider prov = {.name = "System.Runtime",
                                           .level = 4,
                                           .filter =
                                               "EventCounterIntervalSec=1"};
  int conn;
  ipc_call_close(c);
  EXPECT_EQ_INT(-EINPROGRESS,
                ipc_collect_begin(c, ep, &prov, 1, 16, 0, 2000, err));
  EXPECT_EQ_INT(IPC_EP_COLLECT2,
                accept_request(srv, &conn, IPC_SET_EVENTPIPE, NULL, 0));
  return conn;
}

/* CollectTracing without waiting: the reply taken and not a byte of the
 * stream behind it; CollectTracing for a runtime without CollectTracing2;
 * an OK without the session id; a reply larger than a CollectTracing
 * reply can be. */
DEF_TEST(collect_begin) {
  struct fake s = {0};
  if (server_open(&s) != 0)
    return 1;
  struct ipc_call *c = NULL;
  struct ipc_error err = {0};
  uint8_t id8[8] = {7, 0, 0, 0, 0, 0, 0, 0};
  int fd = -1;
  uint64_t sid = 0;

  int conn = collect_asked(&c, &s.ep, s.srv, &err);
  EXPECT_EQ_INT(-EINPROGRESS, ipc_collect_step(c, &fd, &sid, &err));
  send_reply(conn, IPC_SERVER_OK, id8, 8, 0);
  CHECK(send(conn, "Nettrace", 8, 0) == 8); /* the stream follows at once */
  EXPECT_EQ_INT(0, collect_run(c, 2000, &fd, &sid, &err));
  EXPECT_EQ_U64(7, sid);
  CHECK(fd >= 0);
  char head[9] = "";
  CHECK(recv(fd, head, 8, MSG_WAITALL) == 8);
  CHECK(memcmp(head, "Nettrace", 8) == 0);
  EXPECT_EQ_INT(-1, ipc_call_fd(c));
  close(fd);
  close(conn);

  /* UnknownCommand to CollectTracing2: CollectTracing, a new connection */
  conn = collect_asked(&c, &s.ep, s.srv, &err);
  send_unknown_command(conn);
  EXPECT_EQ_INT(-EINPROGRESS, collect_run(c, 100, &fd, &sid, &err));
  close(conn);
  EXPECT_EQ_INT(IPC_EP_COLLECT,
                accept_request(s.srv, &conn, IPC_SET_EVENTPIPE, NULL, 0));
  send_reply(conn, IPC_SERVER_OK, id8, 8, 0);
  EXPECT_EQ_INT(0, collect_run(c, 2000, &fd, &sid, &err));
  close(fd);
  close(conn);

  /* OK without the session id */
  conn = collect_asked(&c, &s.ep, s.srv, &err);
  send_reply(conn, IPC_SERVER_OK, NULL, 0, 0);
  EXPECT_EQ_INT(-EBADMSG, collect_run(c, 2000, &fd, &sid, &err));
  CHECK(strcmp(err.message, "CollectTracing reply without a session id") == 0);
  EXPECT_EQ_INT(-1, ipc_call_fd(c));
  close(conn);

  /* 100 bytes announced: more than any CollectTracing reply */
  conn = collect_asked(&c, &s.ep, s.srv, &err);
  uint8_t big[100] = {0};
  send_reply(conn, IPC_SERVER_OK, big, sizeof(big), 0);
  EXPECT_EQ_INT(-EMSGSIZE, collect_run(c, 2000, &fd, &sid, &err));
  CHECK(strcmp(err.message, "the reply is too large (100 bytes)") == 0);
  close(conn);
  ipc_call_close(&c);
  server_close(&s);
  return 0;
}

/* Block buffering: CollectTracing6 first, its payload byte for byte (the
 * V5 streaming payload, the event filter off, the buffering mode last);
 * a runtime without it (UnknownCommand) gets CollectTracing2 with the
 * same settings on a new connection. */
DEF_TEST(collect_block) {
  struct fake s = {0};
  if (server_open(&s) != 0)
    return 1;
  static const struct ipc_provider prov = {
      .name = "P", .keywords = 0x1980001, .level = 5, .filter = ""};
  struct ipc_call *c = NULL;
  struct ipc_error err = {0};
  uint8_t pl[256] = {0};
  int conn;
  EXPECT_EQ_INT(-EINPROGRESS,
                ipc_collect_begin(&c, &s.ep, &prov, 1, 1024,
                                  IPC_COLLECT_BLOCK | IPC_COLLECT_RUNDOWN, 2000,
                                  &err));
  EXPECT_EQ_INT(IPC_EP_COLLECT6,
                accept_request(s.srv, &conn, IPC_SET_EVENTPIPE, pl, sizeof(pl)));
  static const uint8_t want6[] = {
      0, 0, 0, 0,             /* session type: IPC stream */
      0, 4, 0, 0,             /* 1024 MB */
      1, 0, 0, 0,             /* nettrace */
      0x39, 0x01, 0x02, 0x80, 0, 0, 0, 0, /* rundown keywords */
      1,                      /* stacks */
      1, 0, 0, 0,             /* one provider */
      0x01, 0, 0x98, 0x01, 0, 0, 0, 0, /* keywords */
      5, 0, 0, 0,             /* level */
      2, 0, 0, 0, 'P', 0, 0, 0, /* name */
      0, 0, 0, 0,             /* filter "": no characters */
      0, 0, 0, 0, 0,          /* event filter off, no ids */
      1, 0, 0, 0};            /* buffering: Block */
  CHECK(memcmp(pl, want6, sizeof(want6)) == 0);
  send_unknown_command(conn);
  int fd = -1;
  uint64_t sid = 0;
  EXPECT_EQ_INT(-EINPROGRESS, collect_run(c, 100, &fd, &sid, &err));
  close(conn);
  memset(pl, 0, sizeof(pl));
  EXPECT_EQ_INT(IPC_EP_COLLECT2,
                accept_request(s.srv, &conn, IPC_SET_EVENTPIPE, pl, sizeof(pl)));
  static const uint8_t want2[] = {0, 4, 0, 0, 1, 0, 0, 0, 1 /* rundown */,
                                  1, 0, 0, 0};
  CHECK(memcmp(pl, want2, sizeof(want2)) == 0);
  close(conn);
  ipc_call_close(&c);

  /* without the flag: CollectTracing2 first */
  EXPECT_EQ_INT(-EINPROGRESS,
                ipc_collect_begin(&c, &s.ep, &prov, 1, 16, 0, 2000, &err));
  EXPECT_EQ_INT(IPC_EP_COLLECT2,
                accept_request(s.srv, &conn, IPC_SET_EVENTPIPE, pl, sizeof(pl)));
  close(conn);
  ipc_call_close(&c);
  server_close(&s);
  return 0;
}

/* The peer check refuses what it cannot verify: an fd on which
 * SO_PEERCRED fails (a pipe) is no target; a socketpair's peer is this
 * process: accepted for our pid, refused for another. */
DEF_TEST(peer_verify) {
  struct ipc_endpoint ep = {.pid = getpid(), .uid = getuid()};
  snprintf(ep.path, sizeof(ep.path), "/tmp/x");
  struct ipc_error err = {0};
  int p[2];
  CHECK(pipe(p) == 0);
  EXPECT_EQ_INT(-EPERM, ipc_peer_verify(p[0], &ep, &err));
  CHECK(strstr(err.message, "SO_PEERCRED") != NULL);
  close(p[0]);
  close(p[1]);
  int sp[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
  memset(&err, 0, sizeof(err));
  EXPECT_EQ_INT(0, ipc_peer_verify(sp[0], &ep, &err));
  ep.pid = getpid() + 1;
  EXPECT_EQ_INT(-EPERM, ipc_peer_verify(sp[0], &ep, &err));
  close(sp[0]);
  close(sp[1]);
  return 0;
}

/* Control characters, C1 controls and broken UTF-8 become '?', valid
 * UTF-8 stays; ProcessInfo strings and the runtime's error text come out
 * clean. */
DEF_TEST(sanitize) {
  char s1[] = "a\x1b[31mb\nc\rd\x7f"
              "e\xc2\x9b"
              "f\xc3\xa9g\xe2\x82\xac\xff\xc3";
  ipc_sanitize(s1);
  CHECK(strcmp(s1, "a?[31mb?c?d?e??f\xc3\xa9g\xe2\x82\xac??") == 0);
  char s2[] =
      "\xe0\x80\xaf\xed\xa0\x80\xf4\x90\x80\x80"; /* overlong, surrogate, >
                                                     U+10FFFF */
  ipc_sanitize(s2);
  for (char *c = s2; *c; c++)
    CHECK(*c == '?');

  uint8_t pl[512];
  memset(pl, 0, 24);
  size_t off = 24;
  off = (size_t)ipc_put_string(pl, sizeof(pl), off, "app \x1b[31mX\nY");
  off = (size_t)ipc_put_string(pl, sizeof(pl), off, "Linux\x07");
  off = (size_t)ipc_put_string(pl, sizeof(pl), off, "x64");
  off = (size_t)ipc_put_string(pl, sizeof(pl), off, "App\x1b]0;t\x07");
  off = (size_t)ipc_put_string(pl, sizeof(pl), off, "10.0.1\r");
  struct ipc_process_info info;
  EXPECT_EQ_INT(0, ipc_process_info_decode(pl, off, 1, &info));
  CHECK(strcmp(info.command_line, "app ?[31mX?Y") == 0);
  CHECK(strcmp(info.os, "Linux?") == 0);
  CHECK(strcmp(info.entry_assembly, "App?]0;t?") == 0);
  CHECK(strcmp(info.runtime_version, "10.0.1?") == 0);

  /* an error reply whose text carries escapes: the message is clean */
  struct fake s = {0};
  if (server_open(&s) != 0)
    return 1;
  struct ipc_call *p = NULL;
  struct ipc_error err = {0};
  int conn = probe_asked(&p, &s.ep, 2000, s.srv, &err);
  uint8_t epl[256] = {0x05, 0x40, 0x00, 0x80}; /* E_FAIL */
  long eoff = ipc_put_string(epl, sizeof(epl), 4, "bad\x1b[2J\nnews");
  send_reply(conn, IPC_SERVER_ERROR, epl, (size_t)eoff, 0);
  EXPECT_EQ_INT(-EPROTO, probe_run(p, 2000, &info, &err));
  CHECK(strstr(err.message, "bad?[2J?news") != NULL);
  for (const char *c = err.message; *c; c++)
    CHECK((unsigned char)*c >= 0x20 && *c != 0x7f);
  close(conn);
  ipc_call_close(&p);
  server_close(&s);
  return 0;
}

/* ---- blocking commands, against a runtime played by a thread ---- */

static void *fake_main(void *arg) {
  struct fake *f = arg;
  for (size_t i = 0; i < f->nturns; i++) {
    int conn;
    int id =
        accept_request(f->srv, &conn, f->set, f->payload, sizeof(f->payload));
    if (conn < 0)
      break; /* shut down: the client asked less than was scripted */
    f->ids[f->asked++] = id;
    const struct turn *t = &f->turns[i];
    if (t->len > 0 && send(conn, t->reply, t->len, MSG_NOSIGNAL) < 0)
      t = NULL;
    char b;
    while (t != NULL && t->hold && recv(conn, &b, 1, 0) > 0)
      ;
    close(conn);
  }
  return NULL;
}

/* (Script the turns before fake_start: the thread reads them.) A reply
 * message for the next turn: command id (IPC_SERVER_OK or
 * IPC_SERVER_ERROR) and payload; cut: bytes of it not sent. */
static struct turn *turn_add(struct fake *f, uint8_t id, const void *pl,
                             size_t n, size_t cut) {
  struct turn *t = &f->turns[f->nturns++];
  long m =
      ipc_message_encode(t->reply, sizeof(t->reply), IPC_SET_SERVER, id, pl, n);
  t->len = m > 0 ? (size_t)m - cut : 0;
  return t;
}

static void turn_hresult(struct fake *f, uint8_t id, uint32_t hr) {
  uint8_t pl[4];
  wire_set_le32(pl, hr);
  turn_add(f, id, pl, sizeof(pl), 0);
}

static int fake_start(struct fake *f, uint8_t set) {
  f->set = set;
  return server_open(f) == 0 &&
                 pthread_create(&f->thread, NULL, fake_main, f) == 0
             ? 0
             : -1;
}

static void fake_end(struct fake *f) {
  shutdown(f->srv, SHUT_RDWR); /* ends an accept still waiting */
  pthread_join(f->thread, NULL);
  server_close(f);
}

#define E_FAIL 0x80004005u
#define E_ACCESSDENIED 0x80070005u
#define UNKNOWN_COMMAND ((uint32_t)IPC_E_UNKNOWN_COMMAND)

/* The forms of a command, newest first: each UnknownCommand asks the next
 * older form on a new connection; any other error ends the call; the
 * dump's own HRESULT in an OK reply is its result. */
DEF_TEST(dump_forms) {
  struct ipc_error err = {0};
  struct fake f = {0};
  turn_hresult(&f, IPC_SERVER_ERROR, UNKNOWN_COMMAND);
  turn_hresult(&f, IPC_SERVER_ERROR, UNKNOWN_COMMAND);
  turn_hresult(&f, IPC_SERVER_OK, 0);
  CHECK(fake_start(&f, IPC_SET_DUMP) == 0);
  EXPECT_EQ_INT(0, ipc_dump(&f.ep, "/tmp/d", IPC_DUMP_FULL, 2000, &err));
  fake_end(&f);
  EXPECT_EQ_INT(3, f.asked);
  EXPECT_EQ_INT(IPC_DUMP_GENERATE3, f.ids[0]);
  EXPECT_EQ_INT(IPC_DUMP_GENERATE2, f.ids[1]);
  EXPECT_EQ_INT(IPC_DUMP_GENERATE, f.ids[2]);

  /* no form known: the last answer stands */
  f = (struct fake){0};
  for (int i = 0; i < 3; i++)
    turn_hresult(&f, IPC_SERVER_ERROR, UNKNOWN_COMMAND);
  CHECK(fake_start(&f, IPC_SET_DUMP) == 0);
  EXPECT_EQ_INT(-EPROTO, ipc_dump(&f.ep, "/tmp/d", IPC_DUMP_FULL, 2000, &err));
  fake_end(&f);
  EXPECT_EQ_INT(3, f.asked);
  EXPECT_EQ_INT(IPC_E_UNKNOWN_COMMAND, err.hresult);

  /* another error: no older form asked */
  f = (struct fake){0};
  turn_hresult(&f, IPC_SERVER_ERROR, E_ACCESSDENIED);
  turn_hresult(&f, IPC_SERVER_OK, 0);
  CHECK(fake_start(&f, IPC_SET_DUMP) == 0);
  EXPECT_EQ_INT(-EPROTO, ipc_dump(&f.ep, "/tmp/d", IPC_DUMP_FULL, 2000, &err));
  fake_end(&f);
  EXPECT_EQ_INT(1, f.asked);
  EXPECT_EQ_INT((int32_t)E_ACCESSDENIED, err.hresult);
  CHECK(strcmp(err.message,
               "the runtime answered E_ACCESSDENIED (0x80070005)") == 0);

  /* OK, but the dump failed: its HRESULT */
  f = (struct fake){0};
  turn_hresult(&f, IPC_SERVER_OK, E_FAIL);
  CHECK(fake_start(&f, IPC_SET_DUMP) == 0);
  EXPECT_EQ_INT(-EPROTO, ipc_dump(&f.ep, "/tmp/d", IPC_DUMP_FULL, 2000, &err));
  fake_end(&f);
  EXPECT_EQ_INT((int32_t)E_FAIL, err.hresult);
  CHECK(strcmp(err.message, "the runtime answered E_FAIL (0x80004005)") == 0);
  return 0;
}

/* ProcessInfo2 unknown: ProcessInfo, decoded as such. */
DEF_TEST(process_info_forms) {
  struct fake f = {0};
  turn_hresult(&f, IPC_SERVER_ERROR, UNKNOWN_COMMAND);
  struct turn *t = &f.turns[f.nturns++];
  t->len = info_reply(t->reply, sizeof(t->reply), 0);
  CHECK(fake_start(&f, IPC_SET_PROCESS) == 0);
  struct ipc_process_info info;
  EXPECT_EQ_INT(0, ipc_process_info(&f.ep, 2000, &info, NULL));
  fake_end(&f);
  EXPECT_EQ_INT(2, f.asked);
  EXPECT_EQ_INT(IPC_PROCESS_INFO2, f.ids[0]);
  EXPECT_EQ_INT(IPC_PROCESS_INFO, f.ids[1]);
  CHECK(strcmp(info.command_line, "app --x") == 0);
  CHECK(info.entry_assembly[0] == 0);
  return 0;
}

/* StopTracing: the session id sent; a reply cut short, one larger than
 * the cap, none before the deadline, the connection closed unanswered. */
DEF_TEST(stop_tracing) {
  struct ipc_error err = {0};
  struct fake f = {0};
  turn_add(&f, IPC_SERVER_OK, NULL, 0, 0);
  CHECK(fake_start(&f, IPC_SET_EVENTPIPE) == 0);
  EXPECT_EQ_INT(0, ipc_stop_tracing(&f.ep, 0x0102030405060708ULL, 2000, &err));
  fake_end(&f);
  EXPECT_EQ_INT(IPC_EP_STOP, f.ids[0]);
  EXPECT_EQ_U64(0x0102030405060708ULL, wire_le64(f.payload));

  f = (struct fake){0};
  turn_add(&f, IPC_SERVER_OK, "12345678", 8, 4);
  CHECK(fake_start(&f, IPC_SET_EVENTPIPE) == 0);
  EXPECT_EQ_INT(-EBADMSG, ipc_stop_tracing(&f.ep, 1, 2000, &err));
  fake_end(&f);
  CHECK(strcmp(err.message, "reading the reply failed: truncated") == 0);

  f = (struct fake){0};
  uint8_t big[100] = {0};
  turn_add(&f, IPC_SERVER_OK, big, sizeof(big), 0);
  CHECK(fake_start(&f, IPC_SET_EVENTPIPE) == 0);
  EXPECT_EQ_INT(-EMSGSIZE, ipc_stop_tracing(&f.ep, 1, 2000, &err));
  fake_end(&f);
  CHECK(strcmp(err.message, "the reply is too large (100 bytes)") == 0);

  f = (struct fake){0};
  turn_add(&f, IPC_SERVER_OK, NULL, 0, IPC_HEADER_SIZE)->hold = 1;
  CHECK(fake_start(&f, IPC_SET_EVENTPIPE) == 0);
  int64_t t0 = clock_mono_ms();
  EXPECT_EQ_INT(-ETIMEDOUT, ipc_stop_tracing(&f.ep, 1, 300, &err));
  int64_t took = clock_mono_ms() - t0;
  fake_end(&f);
  CHECK(took >= 250 && took < 1500);
  CHECK(strcmp(err.message, "no answer from the runtime in time") == 0);

  f = (struct fake){0};
  turn_add(&f, IPC_SERVER_OK, NULL, 0, IPC_HEADER_SIZE);
  CHECK(fake_start(&f, IPC_SET_EVENTPIPE) == 0);
  EXPECT_EQ_INT(-EPIPE, ipc_stop_tracing(&f.ep, 1, 2000, &err));
  fake_end(&f);
  CHECK(strcmp(err.message,
               "the runtime closed the connection without an answer") == 0);
  return 0;
}

/* Calls in flight together, polled together (the plugin's StopTracing at
 * shutdown): the one answered ends, the silent one waits on; the thread's
 * cancel fd ends a blocking wait at once. */
DEF_TEST(calls_together) {
  struct fake a = {0}, b = {0};
  turn_add(&a, IPC_SERVER_OK, NULL, 0, 0);
  turn_add(&b, IPC_SERVER_OK, NULL, 0, IPC_HEADER_SIZE)->hold = 1;
  CHECK(fake_start(&a, IPC_SET_EVENTPIPE) == 0);
  CHECK(fake_start(&b, IPC_SET_EVENTPIPE) == 0);
  struct ipc_call *c[2] = {NULL, NULL};
  EXPECT_EQ_INT(-EINPROGRESS, ipc_stop_begin(&c[0], &a.ep, 1, 2000, 0, NULL));
  EXPECT_EQ_INT(-EINPROGRESS, ipc_stop_begin(&c[1], &b.ep, 2, 2000, 0, NULL));
  int r[2] = {-EINPROGRESS, -EINPROGRESS};
  int64_t end = clock_mono_ms() + 300;
  while (clock_mono_ms() < end) {
    struct pollfd pfd[2] = {{.fd = ipc_call_fd(c[0]), .events = POLLIN},
                            {.fd = ipc_call_fd(c[1]), .events = POLLIN}};
    poll(pfd, 2, 50);
    for (int i = 0; i < 2; i++)
      if (pfd[i].revents)
        r[i] = ipc_call_step(c[i], NULL);
  }
  EXPECT_EQ_INT(0, r[0]);
  EXPECT_EQ_INT(-EINPROGRESS, r[1]);
  CHECK(ipc_call_fd(c[1]) >= 0);
  CHECK(ipc_call_endpoint(c[1])->pid == getpid());
  ipc_call_close(&c[0]);
  ipc_call_close(&c[1]);
  CHECK(c[0] == NULL && c[1] == NULL);
  fake_end(&a);

  int efd = eventfd(0, EFD_CLOEXEC);
  uint64_t one = 1;
  CHECK(efd >= 0 && write(efd, &one, sizeof(one)) == sizeof(one));
  b = (struct fake){0};
  turn_add(&b, IPC_SERVER_OK, NULL, 0, IPC_HEADER_SIZE)->hold = 1;
  CHECK(fake_start(&b, IPC_SET_DUMP) == 0);
  struct ipc_error err = {0};
  ipc_set_cancel_fd(efd);
  int64_t t0 = clock_mono_ms();
  EXPECT_EQ_INT(-ECANCELED,
                ipc_dump(&b.ep, "/tmp/d", IPC_DUMP_FULL, 5000, &err));
  ipc_set_cancel_fd(-1);
  CHECK(clock_mono_ms() - t0 < 2000);
  CHECK(strcmp(err.message, "cancelled (shutting down)") == 0);
  fake_end(&b);
  close(efd);
  return 0;
}

int main(void) {
  RUN_TEST(probe);
  RUN_TEST(collect_begin);
  RUN_TEST(collect_block);
  RUN_TEST(peer_verify);
  RUN_TEST(sanitize);
  RUN_TEST(dump_forms);
  RUN_TEST(process_info_forms);
  RUN_TEST(stop_tracing);
  RUN_TEST(calls_together);
  END_TEST;
}
