/**
 * collectd-dotnet - tests/test_trace.c
 *
 * plugin/trace.c: the provider list parser (dotnet-trace's form, its
 * errors, its bounds), and trace_run against a runtime played by a thread
 * on a unix socket of this process (the real IPC client, as test_ipc):
 * CollectTracing2 with the rundown asked for and the default providers;
 * the file holds exactly the stream's bytes, part of which the runtime
 * sends only after StopTracing and before answering it (through a small
 * socket buffer: read while the stop is in flight, or it never ends);
 * the size cap stops the session early, or cuts a file whose end does not
 * fit; the cancel fd ends a run within a second; a runtime that exits
 * mid-trace leaves what it sent; a refused start, a file that cannot be
 * written, an end that never comes, and the stop flag.
 *
 * Usage: test_trace [DIR]; DIR (else $TEST_FIXTURES, else tests/fixtures)
 * holds counters-net10.nettrace (without it, the runs are skipped).
 */
#include "clock.h"
#include "ipc.h"
#include "nettrace.h"
#include "testing.h"
#include "trace.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- the provider list ---- */

struct parse_case {
  const char *spec;
  size_t n; /* 0: refused */
  const char *name0;
  uint64_t keywords0;
  uint32_t level0;
  const char *err; /* refused: a part of the message */
};

static const struct parse_case parse_cases[] = {
    {"Microsoft-Windows-DotNETRuntime", 1, "Microsoft-Windows-DotNETRuntime", 0,
     4, NULL},
    {"A:0x1", 1, "A", 1, 4, NULL},
    {"A:0X1f:5", 1, "A", 0x1f, 5, NULL},
    {"A:ffffffffffffffff:0", 1, "A", UINT64_MAX, 0, NULL},
    {"A::5", 1, "A", 0, 5, NULL},
    {"A:", 1, "A", 0, 4, NULL},
    {"A:0x19:Verbose", 1, "A", 0x19, 5, NULL},
    {"A:1:logalways", 1, "A", 1, 0, NULL},
    {"A:1:warning,B:2:error,C", 3, "A", 1, 3, NULL},
    /* named twice: keywords joined, the more verbose level */
    {"A:1:2,A:4:5", 1, "A", 5, 5, NULL},
    {"A:1:0,A:4:5", 1, "A", 5, 0, NULL},
    {"A,B,C,D,E,F,G,H", 8, "A", 0, 4, NULL},
    {"A,B,C,D,E,F,G,H,A", 8, "A", 0, 4, NULL},
    {"", 0, NULL, 0, 0, "no provider given"},
    {"A,B,C,D,E,F,G,H,I", 0, NULL, 0, 0, "more than 8 providers"},
    {"A,", 0, NULL, 0, 0, "provider 2 is empty"},
    {",A", 0, NULL, 0, 0, "provider 1 is empty"},
    {"A,,B", 0, NULL, 0, 0, "provider 2 is empty"},
    {":0x1", 0, NULL, 0, 0, "no provider name"},
    {"A:0xZZ", 0, NULL, 0, 0, "keywords '0xZZ' are not hexadecimal"},
    {"A:0x", 0, NULL, 0, 0, "are not hexadecimal"},
    {"A:0x11111111111111111", 0, NULL, 0, 0, "are not hexadecimal"},
    {"A:-1", 0, NULL, 0, 0, "are not hexadecimal"},
    {"A:1:6", 0, NULL, 0, 0, "level '6' is not 0-5"},
    {"A:1:loud", 0, NULL, 0, 0, "level 'loud'"},
    {"A:1:44", 0, NULL, 0, 0, "level '44'"},
    {"A:1:4:Key=Value", 0, NULL, 0, 0, "filter arguments"},
    {"A:1:4:", 0, NULL, 0, 0, "filter arguments"},
    {"My Provider", 0, NULL, 0, 0, "printable ASCII without spaces"},
    {"A\tB", 0, NULL, 0, 0, "printable ASCII"},
    {"\xc3\xa9t\xc3\xa9", 0, NULL, 0, 0, "printable ASCII"},
};

DEF_TEST(parse) {
  for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
    const struct parse_case *c = &parse_cases[i];
    struct trace_config cfg = {.nproviders = 3};
    char err[256] = "untouched";
    int r = trace_providers_parse(c->spec, &cfg, err, sizeof(err));
    printf("# '%s': %d %s\n", c->spec, r, err);
    EXPECT_EQ_INT(c->n ? 0 : -EINVAL, r);
    EXPECT_EQ_INT(c->n, cfg.nproviders);
    if (c->n) {
      EXPECT_EQ_STR(c->name0, cfg.providers[0].name);
      EXPECT_EQ_U64(c->keywords0, cfg.providers[0].keywords);
      EXPECT_EQ_INT(c->level0, cfg.providers[0].level);
      EXPECT_EQ_STR("", err);
    } else {
      CHECK(strstr(err, c->err) != NULL);
    }
  }
  struct trace_config cfg;
  CHECK(trace_providers_parse("A:1:warning,B:2:error,C", &cfg, NULL, 0) == 0);
  EXPECT_EQ_STR("B", cfg.providers[1].name);
  EXPECT_EQ_U64(2, cfg.providers[1].keywords);
  EXPECT_EQ_INT(2, cfg.providers[1].level);
  EXPECT_EQ_STR("C", cfg.providers[2].name);
  return 0;
}

/* Names at the bound and past it; the message of a long item is cut. */
DEF_TEST(parse_bounds) {
  char spec[400], err[256];
  struct trace_config cfg;
  memset(spec, 'N', TRACE_NAME_MAX - 1);
  spec[TRACE_NAME_MAX - 1] = 0;
  EXPECT_EQ_INT(0, trace_providers_parse(spec, &cfg, err, sizeof(err)));
  EXPECT_EQ_INT(TRACE_NAME_MAX - 1, (int)strlen(cfg.providers[0].name));
  memset(spec, 'N', 300);
  spec[300] = 0;
  EXPECT_EQ_INT(-EINVAL, trace_providers_parse(spec, &cfg, err, sizeof(err)));
  CHECK(strstr(err, "longer than 127 bytes") != NULL);
  CHECK(strstr(err, "...") != NULL);
  /* a message that does not fit its buffer is cut, not overrun */
  char small[8];
  EXPECT_EQ_INT(-EINVAL,
                trace_providers_parse("A:zz", &cfg, small, sizeof(small)));
  EXPECT_EQ_INT(7, (int)strlen(small));
  return 0;
}

/* Where the size cap stops a trace. */
DEF_TEST(stop_at) {
  EXPECT_EQ_U64(192ull << 20, trace_stop_at(256ull << 20));
  EXPECT_EQ_U64(12ull << 20, trace_stop_at(16ull << 20));
  EXPECT_EQ_U64(8ull << 20, trace_stop_at(12ull << 20));
  EXPECT_EQ_U64(4ull << 20, trace_stop_at(8ull << 20));
  EXPECT_EQ_U64(512ull << 10, trace_stop_at(1ull << 20));
  EXPECT_EQ_U64(1, trace_stop_at(1));
  EXPECT_EQ_U64(1, trace_stop_at(2));
  return 0;
}

/* ---- runs against a played runtime ---- */

static uint8_t *fixture;
static size_t fixture_len;
static uint64_t fixture_events;

#define SESSION_ID 0x1122334455667788ull

struct player {
  char dir[32];
  struct ipc_endpoint ep;
  int srv;
  pthread_t thread;
  /* the script */
  uint32_t refuse;  /* CollectTracing answered with this HRESULT */
  size_t body;      /* bytes of the fixture sent before StopTracing */
  int exit_early;   /* then the stream closed: the process "exited" */
  int never_end;    /* StopTracing answered, the rest never sent */
  int small_buffer; /* the stream's socket buffer a few KiB */
  /* what the client did */
  uint8_t collect_id;
  uint8_t request[512]; /* the start of CollectTracing's payload */
  size_t request_len;
  int stopped;
  uint64_t stop_id;
};

static int accept_within(int srv, int ms) {
  struct pollfd p = {.fd = srv, .events = POLLIN};
  if (poll(&p, 1, ms) != 1)
    return -1;
  return accept4(srv, NULL, NULL, SOCK_CLOEXEC);
}

/* One request on a new connection: its command id, the first bytes of its
 * payload into pl[cap] (*len). -1 when none came. */
static int read_request(int conn, uint8_t *pl, size_t cap, size_t *len) {
  uint8_t req[IPC_MAX_MESSAGE];
  if (recv(conn, req, IPC_HEADER_SIZE, MSG_WAITALL) != IPC_HEADER_SIZE)
    return -1;
  uint8_t set, id;
  long plen = ipc_header_decode(req, &set, &id);
  if (plen < 0 || set != IPC_SET_EVENTPIPE)
    return -1;
  if (plen > 0 && recv(conn, req, (size_t)plen, MSG_WAITALL) != plen)
    return -1;
  size_t n = (size_t)plen < cap ? (size_t)plen : cap;
  memcpy(pl, req, n);
  if (len)
    *len = n;
  return id;
}

static void send_message(int conn, uint8_t id, const void *pl, size_t n) {
  uint8_t m[64];
  long len = ipc_message_encode(m, sizeof(m), IPC_SET_SERVER, id, pl, n);
  if (len > 0 && send(conn, m, (size_t)len, MSG_NOSIGNAL) < 0)
    return;
}

static void send_all(int conn, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t k = send(conn, p, n, MSG_NOSIGNAL);
    if (k <= 0)
      return; /* the client went away */
    p += k;
    n -= (size_t)k;
  }
}

/* Waits until the client closes conn (or 5 s). */
static void until_closed(int conn) {
  char b[4096];
  int64_t end = clock_mono_ms() + 5000;
  while (clock_mono_ms() < end) {
    struct pollfd p = {.fd = conn, .events = POLLIN};
    if (poll(&p, 1, 100) > 0 && recv(conn, b, sizeof(b), 0) <= 0)
      return;
  }
}

/* The runtime: CollectTracing, the stream's first `body` bytes; then
 * StopTracing, whose answer comes after the rest of the stream, as a
 * runtime writes the session's last events and its rundown before it
 * answers. */
static void *player_main(void *arg) {
  struct player *p = arg;
  int conn = accept_within(p->srv, 5000);
  if (conn < 0)
    return NULL;
  int id = read_request(conn, p->request, sizeof(p->request), &p->request_len);
  p->collect_id = (uint8_t)id;
  if (p->refuse) {
    uint8_t hr[4];
    wire_set_le32(hr, p->refuse);
    send_message(conn, IPC_SERVER_ERROR, hr, sizeof(hr));
    close(conn);
    return NULL;
  }
  uint8_t sid[8];
  wire_set_le64(sid, SESSION_ID);
  send_message(conn, IPC_SERVER_OK, sid, sizeof(sid));
  if (p->small_buffer) {
    int size = 4096;
    setsockopt(conn, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  }
  send_all(conn, fixture, p->body);
  if (p->exit_early) {
    close(conn);
    return NULL;
  }
  int stop = accept_within(p->srv, 5000);
  if (stop >= 0) {
    uint8_t pl[8];
    size_t n = 0;
    if (read_request(stop, pl, sizeof(pl), &n) == IPC_EP_STOP && n == 8) {
      p->stopped = 1;
      p->stop_id = wire_le64(pl);
    }
    if (!p->never_end)
      send_all(conn, fixture + p->body, fixture_len - p->body);
    uint8_t ok[4] = {0};
    send_message(stop, IPC_SERVER_OK, ok, sizeof(ok));
    close(stop);
    if (!p->never_end) {
      close(conn);
      return NULL;
    }
  }
  until_closed(conn);
  close(conn);
  return NULL;
}

static int player_start(struct player *p) {
  snprintf(p->dir, sizeof(p->dir), "/tmp/test-trace-XXXXXX");
  if (mkdtemp(p->dir) == NULL)
    return -1;
  p->ep = (struct ipc_endpoint){.pid = getpid(), .uid = getuid()};
  snprintf(p->ep.path, sizeof(p->ep.path), "%s/s", p->dir);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p->ep.path);
  p->srv = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (p->srv < 0 || bind(p->srv, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
      listen(p->srv, 4) != 0)
    return -1;
  return pthread_create(&p->thread, NULL, player_main, p) == 0 ? 0 : -1;
}

static void player_end(struct player *p) {
  shutdown(p->srv, SHUT_RDWR); /* ends an accept still waiting */
  pthread_join(p->thread, NULL);
  close(p->srv);
  unlink(p->ep.path);
  rmdir(p->dir);
}

/* A new empty file for a trace: its fd (the name already gone). */
static int out_file(void) {
  char path[] = "/tmp/test-trace-out-XXXXXX";
  int fd = mkstemp(path);
  if (fd >= 0)
    unlink(path);
  return fd;
}

/* Whether fd holds exactly the fixture's first n bytes. */
static int holds(int fd, size_t n) {
  struct stat st;
  if (fstat(fd, &st) != 0 || (size_t)st.st_size != n)
    return 0;
  uint8_t *b = malloc(n ? n : 1);
  int ok = b != NULL && pread(fd, b, n, 0) == (ssize_t)n &&
           memcmp(b, fixture, n) == 0;
  free(b);
  return ok;
}

/* The whole stream: the file is the stream, StopTracing named the session,
 * and CollectTracing2 asked for the rundown and the default providers. */
DEF_TEST(whole) {
  struct player p = {.body = fixture_len / 3, .small_buffer = 1};
  CHECK(player_start(&p) == 0);
  int fd = out_file();
  struct trace_config cfg = {.duration_s = 0.3};
  struct trace_result res;
  int r = trace_run(&p.ep, &cfg, fd, &res);
  player_end(&p);
  printf("# %d %s: %s\n", r, trace_end_name(res.end), res.reason);
  EXPECT_EQ_INT(0, r);
  EXPECT_EQ_INT(TRACE_STOPPED, res.end);
  EXPECT_EQ_STR("", res.reason);
  EXPECT_EQ_INT(0, res.cut);
  EXPECT_EQ_U64(fixture_len, res.bytes);
  EXPECT_EQ_U64(fixture_events, res.events);
  EXPECT_EQ_U64(0, res.samples);
  CHECK(res.seconds >= 0.3 && res.seconds < 2);
  CHECK(holds(fd, fixture_len));
  EXPECT_EQ_INT(1, p.stopped);
  EXPECT_EQ_U64(SESSION_ID, p.stop_id);
  /* uint32 buffer MB, uint32 format, uint8 rundown, uint32 providers, then
   * uint64 keywords, uint32 level, the name */
  EXPECT_EQ_INT(IPC_EP_COLLECT2, p.collect_id);
  CHECK(p.request_len > 30);
  EXPECT_EQ_INT(TRACE_DEFAULT_BUFFER_MB, wire_le32(p.request));
  EXPECT_EQ_INT(1, p.request[8]);
  EXPECT_EQ_INT(2, wire_le32(p.request + 9));
  EXPECT_EQ_U64(0, wire_le64(p.request + 13));
  EXPECT_EQ_INT(4, wire_le32(p.request + 21));
  EXPECT_EQ_INT(strlen(TRACE_SAMPLE_PROVIDER) + 1, wire_le32(p.request + 25));
  close(fd);
  return 0;
}

/* Providers of the caller's, as given. */
DEF_TEST(providers) {
  struct player p = {.body = fixture_len};
  CHECK(player_start(&p) == 0);
  int fd = out_file();
  struct trace_config cfg = {.duration_s = 0.1, .buffer_mb = 3};
  CHECK(trace_providers_parse("X:0xabc:5", &cfg, NULL, 0) == 0);
  struct trace_result res;
  EXPECT_EQ_INT(0, trace_run(&p.ep, &cfg, fd, &res));
  player_end(&p);
  EXPECT_EQ_INT(3, wire_le32(p.request));
  EXPECT_EQ_INT(1, wire_le32(p.request + 9));
  EXPECT_EQ_U64(0xabc, wire_le64(p.request + 13));
  EXPECT_EQ_INT(5, wire_le32(p.request + 21));
  EXPECT_EQ_INT(2, wire_le32(p.request + 25)); /* "X" and its NUL */
  close(fd);
  return 0;
}

/* The size cap: near it the session is stopped early and its end
 * still fits (a whole file, cut says so); an end that does not fit is
 * dropped past the cap (the file is not whole, and says so). */
DEF_TEST(cap) {
  struct player p = {.body = fixture_len - 100};
  CHECK(player_start(&p) == 0);
  int fd = out_file();
  struct trace_config cfg = {.duration_s = 30, .max_bytes = fixture_len + 10};
  struct trace_result res;
  int64_t t0 = clock_mono_ms();
  int r = trace_run(&p.ep, &cfg, fd, &res);
  player_end(&p);
  printf("# %d %s: %s\n", r, trace_end_name(res.end), res.reason);
  EXPECT_EQ_INT(0, r);
  EXPECT_EQ_INT(TRACE_STOPPED, res.end);
  EXPECT_EQ_INT(1, res.cut);
  CHECK(strstr(res.reason, "stopped early at ") != NULL);
  CHECK(clock_mono_ms() - t0 < 2000);
  CHECK(holds(fd, fixture_len));
  EXPECT_EQ_INT(1, p.stopped);
  close(fd);

  p = (struct player){.body = fixture_len / 10 * 6};
  CHECK(player_start(&p) == 0);
  fd = out_file();
  cfg.max_bytes = fixture_len / 10 * 7;
  r = trace_run(&p.ep, &cfg, fd, &res);
  player_end(&p);
  printf("# %d %s: %s\n", r, trace_end_name(res.end), res.reason);
  EXPECT_EQ_INT(-EFBIG, r);
  EXPECT_EQ_INT(TRACE_TOO_BIG, res.end);
  EXPECT_EQ_INT(1, res.cut);
  CHECK(strstr(res.reason, "the file is cut") != NULL);
  EXPECT_EQ_U64(cfg.max_bytes, res.bytes);
  CHECK(holds(fd, (size_t)cfg.max_bytes));
  close(fd);
  return 0;
}

/* Writes to the eventfd *a 300 ms from now. */
static void *poke(void *a) {
  int fd = *(int *)a;
  uint64_t one = 1;
  struct timespec ts = {0, 300 * 1000000L};
  nanosleep(&ts, NULL);
  if (write(fd, &one, sizeof(one)) != sizeof(one))
    return NULL;
  return NULL;
}

/* The cancel fd ends a long trace within a second; so it does a start
 * that is not answered. */
DEF_TEST(cancel) {
  int efd = eventfd(0, EFD_CLOEXEC);
  struct player p = {.body = fixture_len / 2};
  CHECK(player_start(&p) == 0);
  int fd = out_file();
  struct trace_config cfg = {.duration_s = 30};
  struct trace_result res;
  uint64_t one = 1;
  ipc_set_cancel_fd(efd);
  int64_t t0 = clock_mono_ms();
  pthread_t t;
  CHECK(pthread_create(&t, NULL, poke, &efd) == 0);
  int r = trace_run(&p.ep, &cfg, fd, &res);
  int64_t took = clock_mono_ms() - t0;
  pthread_join(t, NULL);
  ipc_set_cancel_fd(-1);
  player_end(&p);
  printf("# %d %s: %s, %lld ms\n", r, trace_end_name(res.end), res.reason,
         (long long)took);
  EXPECT_EQ_INT(-ECANCELED, r);
  EXPECT_EQ_INT(TRACE_CANCELED, res.end);
  CHECK(took >= 250 && took < 1300);
  CHECK(holds(fd, p.body));
  close(fd);

  /* already cancelled: the start gives up at once */
  CHECK(write(efd, &one, sizeof(one)) == sizeof(one));
  p = (struct player){.body = 10};
  CHECK(player_start(&p) == 0);
  fd = out_file();
  ipc_set_cancel_fd(efd);
  t0 = clock_mono_ms();
  r = trace_run(&p.ep, &cfg, fd, &res);
  took = clock_mono_ms() - t0;
  ipc_set_cancel_fd(-1);
  player_end(&p);
  EXPECT_EQ_INT(-ECANCELED, r);
  EXPECT_EQ_INT(TRACE_CANCELED, res.end);
  CHECK(took < 1000);
  close(fd);
  close(efd);
  return 0;
}

/* The target exits mid-trace: the file holds what came, the result says
 * the stream was cut short. */
DEF_TEST(exited) {
  struct player p = {.body = fixture_len - 1, .exit_early = 1};
  CHECK(player_start(&p) == 0);
  int fd = out_file();
  struct trace_config cfg = {.duration_s = 30};
  struct trace_result res;
  int r = trace_run(&p.ep, &cfg, fd, &res);
  player_end(&p);
  printf("# %d %s: %s\n", r, trace_end_name(res.end), res.reason);
  EXPECT_EQ_INT(-ENODATA, r);
  EXPECT_EQ_INT(TRACE_EXITED, res.end);
  CHECK(strstr(res.reason, "ended early") != NULL);
  CHECK(res.seconds < 2);
  CHECK(holds(fd, fixture_len - 1));
  EXPECT_EQ_INT(0, p.stopped);
  close(fd);

  /* the whole stream before the stop: the runtime ended it */
  p = (struct player){.body = fixture_len, .exit_early = 1};
  CHECK(player_start(&p) == 0);
  fd = out_file();
  r = trace_run(&p.ep, &cfg, fd, &res);
  player_end(&p);
  EXPECT_EQ_INT(0, r);
  EXPECT_EQ_INT(TRACE_ENDED, res.end);
  CHECK(holds(fd, fixture_len));
  close(fd);
  return 0;
}

/* Failures: a refused start, a file that cannot be written, an end that
 * never comes. */
DEF_TEST(failures) {
  struct player p = {.refuse = 0x80004005u};
  CHECK(player_start(&p) == 0);
  int fd = out_file();
  struct trace_config cfg = {.duration_s = 30, .timeout_ms = 500};
  struct trace_result res;
  int r = trace_run(&p.ep, &cfg, fd, &res);
  player_end(&p);
  printf("# %d %s: %s\n", r, trace_end_name(res.end), res.reason);
  EXPECT_EQ_INT(-EPROTO, r);
  EXPECT_EQ_INT(TRACE_FAILED, res.end);
  CHECK(strstr(res.reason, "cannot start the session: ") != NULL);
  CHECK(strstr(res.reason, "E_FAIL") != NULL);
  EXPECT_EQ_U64(0, res.bytes);
  close(fd);

  int full = open("/dev/full", O_WRONLY | O_CLOEXEC);
  if (full >= 0) {
    p = (struct player){.body = fixture_len / 2};
    CHECK(player_start(&p) == 0);
    r = trace_run(&p.ep, &cfg, full, &res);
    player_end(&p);
    printf("# %d %s: %s\n", r, trace_end_name(res.end), res.reason);
    EXPECT_EQ_INT(-ENOSPC, r);
    EXPECT_EQ_INT(TRACE_FAILED, res.end);
    CHECK(strstr(res.reason, "writing the trace: ") != NULL);
    CHECK(res.seconds < 2);
    close(full);
  }

  p = (struct player){.body = fixture_len / 2, .never_end = 1};
  CHECK(player_start(&p) == 0);
  fd = out_file();
  cfg.duration_s = 0.1;
  int64_t t0 = clock_mono_ms();
  r = trace_run(&p.ep, &cfg, fd, &res);
  int64_t took = clock_mono_ms() - t0;
  player_end(&p);
  printf("# %d %s: %s\n", r, trace_end_name(res.end), res.reason);
  EXPECT_EQ_INT(-ETIMEDOUT, r);
  EXPECT_EQ_INT(TRACE_TIMEDOUT, res.end);
  CHECK(strstr(res.reason, "did not come within 500 ms") != NULL);
  CHECK(took >= 600 && took < 1500);
  EXPECT_EQ_INT(1, p.stopped);
  close(fd);

  /* nobody listens */
  struct ipc_endpoint nobody = {.pid = getpid()};
  snprintf(nobody.path, sizeof(nobody.path), "/nonexistent/socket");
  fd = out_file();
  EXPECT_EQ_INT(TRACE_FAILED, (trace_run(&nobody, &cfg, fd, &res), res.end));
  CHECK(strstr(res.reason, "cannot start the session") != NULL);
  close(fd);
  return 0;
}

/* The stop flag stops the session before its duration: a whole file. */
DEF_TEST(stop_flag) {
  static volatile sig_atomic_t stop = 1;
  struct player p = {.body = fixture_len / 2};
  CHECK(player_start(&p) == 0);
  int fd = out_file();
  struct trace_config cfg = {.duration_s = 30, .stop_flag = &stop};
  struct trace_result res;
  int r = trace_run(&p.ep, &cfg, fd, &res);
  player_end(&p);
  EXPECT_EQ_INT(0, r);
  EXPECT_EQ_INT(TRACE_STOPPED, res.end);
  CHECK(res.seconds < 2);
  CHECK(holds(fd, fixture_len));
  close(fd);
  return 0;
}

static void count_event(void *ctx, const struct nettrace_event *ev) {
  (void)ev;
  (*(uint64_t *)ctx)++;
}

static int load_fixture(int argc, char **argv) {
  static const char *const rel[] = {"fixtures"};
  char dir[2048], path[2200];
  if (!testing_find_dir(argc, argv, "TEST_FIXTURES", rel, 1, dir, sizeof(dir)))
    return -1;
  snprintf(path, sizeof(path), "%s/counters-net10.nettrace", dir);
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return -1;
  fixture = malloc(1 << 20);
  fixture_len = fixture ? fread(fixture, 1, 1 << 20, f) : 0;
  fclose(f);
  struct nettrace_reader *r =
      nettrace_reader_new(NULL, count_event, &fixture_events);
  int ok = r != NULL && nettrace_reader_feed(r, fixture, fixture_len) == 0 &&
           nettrace_reader_finish(r) == 0;
  nettrace_reader_free(r);
  return ok && fixture_len > 1000 ? 0 : -1;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  RUN_TEST(parse);
  RUN_TEST(parse_bounds);
  RUN_TEST(stop_at);
  if (load_fixture(argc, argv) == 0) {
    RUN_TEST(whole);
    RUN_TEST(providers);
    RUN_TEST(cap);
    RUN_TEST(cancel);
    RUN_TEST(exited);
    RUN_TEST(failures);
    RUN_TEST(stop_flag);
  } else {
    SKIP_TEST(whole, "no counters-net10.nettrace");
  }
  free(fixture);
  END_TEST;
}
