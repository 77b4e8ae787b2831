/**
 * collectd-dotnet - tests/test_session.c
 *
 * A session's rules against a scripted runtime (tests/fake_ipc.c): what
 * it asks CollectTracing for, begin and step until the answer, the stream
 * read to its samples, a clean end, an early end and a malformed stream
 * (each closes the stream and says why), and StopTracing on stop with its
 * session id, draining the stream to its end; a session of given
 * providers whose events go to another consumer.
 *
 * Usage: test_session [DIR]; DIR (else $TEST_FIXTURES, else
 * tests/fixtures) holds counters-net10.nettrace (without it, the tests of
 * the stream are skipped).
 */
#include "fake_ipc.h"
#include "session.h"
#include "testing.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

static uint8_t *fixture;
static size_t fixture_len;

struct seen_samples {
  int n;
  int requests; /* CollectdDotnet-Test "requests" samples */
  double requests_value;
};

static void on_sample(void *ctx, const struct counters_sample *s,
                      int64_t time_ms) {
  struct seen_samples *c = ctx;
  (void)time_ms;
  c->n++;
  if (strcmp(s->name, "requests") == 0) {
    c->requests++;
    c->requests_value = s->value;
  }
}

static const struct ipc_endpoint ep = {.pid = 4242, .start_time = 7};

/* A session begun and stepped until its stream runs (NULL: it did not). */
static struct session *running(const struct session_config *cfg,
                               struct seen_samples *c) {
  struct session *s = session_new(&ep, cfg, on_sample, c);
  if (s == NULL)
    return NULL;
  struct ipc_error err = {0};
  int r = session_begin(s, &err);
  while (r == -EINPROGRESS)
    r = session_begin_step(s, &err);
  if (r != 0) {
    session_free(s);
    return NULL;
  }
  return s;
}

/* A fresh script and a session whose stream runs (NULL: failed). */
static struct session *started(struct seen_samples *c) {
  fake_ipc_reset();
  struct session_config cfg = {.interval_sec = 1};
  struct session *s = running(&cfg, c);
  CHECK(s != NULL);
  return s;
}

/* Reads until session_read says more than "go on" or nothing comes. */
static int read_all(struct session *s) {
  for (;;) {
    struct pollfd p = {.fd = session_fd(s), .events = POLLIN};
    if (p.fd < 0 || poll(&p, 1, 1000) <= 0)
      return -ETIMEDOUT;
    int r = session_read(s);
    if (r != 0)
      return r;
  }
}

static void feed(const uint8_t *b, size_t n) {
  ssize_t w = send(fake_ipc.stream_peer, b, n, MSG_NOSIGNAL);
  CHECK(w == (ssize_t)n);
}

static void end_stream(void) {
  close(fake_ipc.stream_peer);
  fake_ipc.stream_peer = -1;
}

/* CollectTracing: System.Runtime at the interval by default; meters on
 * the shared Metrics session with a client id of their own. */
DEF_TEST(providers) {
  fake_ipc_reset();
  struct session_config cfg = {.interval_sec = 2.5};
  struct session *s = session_new(&ep, &cfg, on_sample, NULL);
  struct ipc_error err = {0};
  EXPECT_EQ_INT(-EINPROGRESS, session_begin(s, &err));
  EXPECT_EQ_INT(1, fake_ipc.nproviders);
  EXPECT_EQ_STR("System.Runtime", fake_ipc.providers[0]);
  EXPECT_EQ_INT(0, fake_ipc.rundown); /* counters: no rundown at the stop */
  EXPECT_EQ_STR("EventCounterIntervalSec=2.5", fake_ipc.filters[0]);
  session_free(s);

  fake_ipc_reset();
  struct session_config mc = {.interval_sec = 1,
                              .providers = {"A", "B"},
                              .nproviders = 2,
                              .meters = {"m1", "m2"},
                              .nmeters = 2};
  s = session_new(&ep, &mc, on_sample, NULL);
  EXPECT_EQ_INT(-EINPROGRESS, session_begin(s, &err));
  EXPECT_EQ_INT(3, fake_ipc.nproviders);
  EXPECT_EQ_STR("A", fake_ipc.providers[0]);
  EXPECT_EQ_STR("B", fake_ipc.providers[1]);
  EXPECT_EQ_STR("System.Diagnostics.Metrics", fake_ipc.providers[2]);
  EXPECT_EQ_U64(2, fake_ipc.keywords[2]);
  const char *f = fake_ipc.filters[2];
  CHECK(strncmp(f, "SessionId=SHARED;ClientId=", 26) == 0);
  CHECK(strstr(f, ";Metrics=m1,m2;RefreshInterval=1;MaxTimeSeries=1000;"
                  "MaxHistograms=20") != NULL);
  session_free(s);
  return 0;
}

/* begin, then step while the answer is incomplete: the call's fd and
 * deadline to poll meanwhile, then the stream and the session id. */
DEF_TEST(begin_step) {
  fake_ipc_reset();
  fake_ipc.step_pending = 2;
  struct session_config cfg = {.interval_sec = 1, .timeout_ms = 1500};
  struct session *s = session_new(&ep, &cfg, on_sample, NULL);
  struct ipc_error err = {0};
  EXPECT_EQ_INT(-1, session_fd(s));
  EXPECT_EQ_INT(-EINPROGRESS, session_begin(s, &err));
  CHECK(session_begin_fd(s) >= 0);
  CHECK(session_begin_deadline(s) > 0);
  EXPECT_EQ_INT(-EINPROGRESS, session_begin_step(s, &err));
  EXPECT_EQ_INT(-EINPROGRESS, session_begin_step(s, &err));
  EXPECT_EQ_INT(0, session_begin_step(s, &err));
  EXPECT_EQ_INT(-1, session_begin_fd(s)); /* the call is closed */
  CHECK(session_fd(s) >= 0);
  EXPECT_EQ_U64(42, session_id(s));
  EXPECT_EQ_STR("", session_error(s));
  session_free(s);
  return 0;
}

/* A refusal at begin or in the answer: the error says the runtime's why,
 * no stream. */
DEF_TEST(begin_fails) {
  fake_ipc_reset();
  fake_ipc.begin_result = -ECONNREFUSED;
  fake_ipc.message = "cannot connect: refused";
  struct session_config cfg = {.interval_sec = 1};
  struct session *s = session_new(&ep, &cfg, on_sample, NULL);
  struct ipc_error err = {0};
  EXPECT_EQ_INT(-ECONNREFUSED, session_begin(s, &err));
  EXPECT_EQ_STR("cannot connect: refused", session_error(s));
  EXPECT_EQ_INT(-1, session_fd(s));
  session_free(s);

  fake_ipc_reset();
  fake_ipc.step_result = -EPROTO;
  fake_ipc.message = "the runtime answered E_ACCESSDENIED";
  s = session_new(&ep, &cfg, on_sample, NULL);
  EXPECT_EQ_INT(-EINPROGRESS, session_begin(s, &err));
  EXPECT_EQ_INT(-EPROTO, session_begin_step(s, &err));
  EXPECT_EQ_STR("the runtime answered E_ACCESSDENIED", session_error(s));
  EXPECT_EQ_INT(-1, session_fd(s));
  session_free(s);
  return 0;
}

/* A whole stream, in one piece and byte by byte: its samples, then a
 * clean end (-EPIPE, "the stream ended") that closes the stream. */
DEF_TEST(stream_end) {
  for (int bytewise = 0; bytewise < 2; bytewise++) {
    struct seen_samples c = {0};
    struct session *s = started(&c);
    if (s == NULL)
      return -1;
    for (size_t off = 0; off < fixture_len;) {
      size_t n = bytewise ? 1 : fixture_len;
      feed(fixture + off, n);
      off += n;
      EXPECT_EQ_INT(0, session_read(s));
    }
    end_stream();
    EXPECT_EQ_INT(-EPIPE, read_all(s));
    EXPECT_EQ_STR("the stream ended", session_error(s));
    EXPECT_EQ_INT(-1, session_fd(s));
    EXPECT_EQ_INT(3, c.requests); /* as the fixture's summary says */
    CHECK(c.requests_value == 50);
    CHECK(c.n > 30);
    EXPECT_EQ_U64(fixture_len, session_stats(s)->bytes);
    EXPECT_EQ_INT(-EPIPE, session_read(s)); /* and stays ended */
    session_free(s);
  }
  return 0;
}

/* A stream cut short (the process exited): -EPIPE, with the byte; bytes
 * that are no nettrace: another failure, the reader's reason and offset.
 * Either way the stream is closed at once and says why. */
DEF_TEST(stream_fails) {
  static const uint8_t garbage[64] = "HTTP/1.1 200 OK\r\n";
  const struct {
    const uint8_t *bytes;
    size_t len;
    int close; /* the runtime closes the stream after them */
    int want;  /* session_read's end: -EPIPE, or 0 for any other failure */
    const char *error; /* the start of session_error */
  } cases[] = {
      {fixture, fixture_len / 2, 1, -EPIPE,
       "the stream ended early (process exited?) at byte "},
      {garbage, sizeof(garbage), 0, 0,
       "bad nettrace stream: not a nettrace stream (bad magic) at byte 0"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct seen_samples c = {0};
    struct session *s = started(&c);
    if (s == NULL)
      return -1;
    feed(cases[i].bytes, cases[i].len);
    if (cases[i].close)
      end_stream();
    int r = read_all(s);
    if (cases[i].want != 0)
      EXPECT_EQ_INT(cases[i].want, r);
    else
      CHECK(r < 0 && r != -EPIPE && r != -ETIMEDOUT);
    const char *e = session_error(s);
    CHECK(strncmp(e, cases[i].error, strlen(cases[i].error)) == 0);
    EXPECT_EQ_INT(-1, session_fd(s));
    session_free(s);
  }
  return 0;
}

/* Stop: StopTracing with the session's id, then the rest of the stream
 * is read to its end marker (0); without the marker -ENODATA; a refused
 * StopTracing closes the stream and says why. */
DEF_TEST(stop) {
  struct seen_samples c = {0};
  struct session *s = started(&c);
  if (s == NULL)
    return -1;
  feed(fixture, 100);
  EXPECT_EQ_INT(0, session_read(s));
  fake_ipc.stop_tail = fixture + 100;
  fake_ipc.stop_tail_len = fixture_len - 100;
  fake_ipc.close_on_stop = 1;
  EXPECT_EQ_INT(0, session_stop(s, 1000));
  EXPECT_EQ_INT(1, fake_ipc.stops);
  EXPECT_EQ_U64(42, fake_ipc.stopped_id);
  EXPECT_EQ_INT(3, c.requests); /* the last samples were read */
  EXPECT_EQ_INT(-1, session_fd(s));
  EXPECT_EQ_INT(0, session_stop(s, 1000)); /* nothing left to stop */
  EXPECT_EQ_INT(1, fake_ipc.stops);
  session_free(s);

  s = started(&c);
  if (s == NULL)
    return -1;
  fake_ipc.stop_tail = fixture;
  fake_ipc.stop_tail_len = fixture_len / 2;
  fake_ipc.close_on_stop = 1;
  EXPECT_EQ_INT(-ENODATA, session_stop(s, 1000));
  session_free(s);

  s = started(&c);
  if (s == NULL)
    return -1;
  fake_ipc.stop_result = -ETIMEDOUT;
  fake_ipc.message = "no answer from the runtime in time";
  EXPECT_EQ_INT(-ETIMEDOUT, session_stop(s, 1000));
  EXPECT_EQ_STR("StopTracing: no answer from the runtime in time",
                session_error(s));
  EXPECT_EQ_INT(-1, session_fd(s));
  session_free(s);
  return 0;
}

/* Event providers instead of counters: CollectTracing asks for exactly
 * them (names and filters copied at session_new) and for the rundown when
 * the configuration says so, every event goes to the
 * event consumer and none to the samples' callback; session_stream_end
 * says 1 while the stream runs, 0 at its end marker, -ENODATA when cut. */
struct seen_events {
  uint64_t n;
  int had_info; /* every event came with the stream's trace info */
};

static void on_any_event(void *ctx, const struct nettrace_event *ev,
                         const struct nettrace_trace_info *ti) {
  struct seen_events *e = ctx;
  (void)ev;
  e->n++;
  e->had_info = (e->n == 1 || e->had_info) && ti != NULL;
}

DEF_TEST(events) {
  for (int cut = 0; cut < 2; cut++) {
    fake_ipc_reset();
    char name[32] = "Microsoft-Windows-DotNETRuntime";
    char filter[16] = "k=v";
    struct session_config cfg = {.nevents = 1, .rundown = cut};
    cfg.events[0] = (struct ipc_provider){
        .name = name, .keywords = 0x1980001, .level = 5, .filter = filter};
    struct seen_samples c = {0};
    struct seen_events e = {0};
    struct session *s = session_new(&ep, &cfg, on_sample, &c);
    CHECK(s != NULL);
    session_set_events(s, on_any_event, &e);
    memset(name, 'x', sizeof(name) - 1);
    memset(filter, 'y', sizeof(filter) - 1);
    struct ipc_error err = {0};
    int r = session_begin(s, &err);
    while (r == -EINPROGRESS)
      r = session_begin_step(s, &err);
    EXPECT_EQ_INT(0, r);
    EXPECT_EQ_INT(1, fake_ipc.nproviders);
    EXPECT_EQ_STR("Microsoft-Windows-DotNETRuntime", fake_ipc.providers[0]);
    EXPECT_EQ_STR("k=v", fake_ipc.filters[0]);
    EXPECT_EQ_U64(0x1980001, fake_ipc.keywords[0]);
    EXPECT_EQ_INT(cut, fake_ipc.rundown);
    EXPECT_EQ_INT(1, session_stream_end(s));
    feed(fixture, cut ? fixture_len / 2 : fixture_len);
    end_stream();
    EXPECT_EQ_INT(-EPIPE, read_all(s));
    EXPECT_EQ_INT(cut ? -ENODATA : 0, session_stream_end(s));
    CHECK(e.n > 30);
    CHECK(e.had_info);
    EXPECT_EQ_U64(session_stats(s)->events, e.n);
    EXPECT_EQ_INT(0, c.n);
    session_free(s);
  }
  return 0;
}

int main(int argc, char **argv) {
  RUN_TEST(providers);
  RUN_TEST(begin_step);
  RUN_TEST(begin_fails);
  /* the rest sends a recorded stream */
  const char *none = "no counters-net10.nettrace (argv[1], $TEST_FIXTURES, "
                     "tests/fixtures)";
  int have = fake_stream_load(argc, argv, &fixture, &fixture_len) == 0;
  if (have) {
    RUN_TEST(stream_end);
    RUN_TEST(stream_fails);
    RUN_TEST(stop);
    RUN_TEST(events);
  } else {
    SKIP_TEST(stream_end, none);
    SKIP_TEST(stream_fails, none);
    SKIP_TEST(stop, none);
    SKIP_TEST(events, none);
  }
  fake_ipc_reset();
  free(fixture);
  END_TEST;
}
