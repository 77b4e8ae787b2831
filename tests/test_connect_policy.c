/**
 * collectd-dotnet - tests/test_connect_policy.c
 *
 * The connector's retry and start rules (plugin/connect_policy.c) at any
 * time the test likes: the backoff of a process that does not answer, the
 * failures a session end counts and when a long life clears them, the
 * grace for refused connects, and the start grid.
 */
#include "connect_policy.h"
#include "testing.h"

#include <errno.h>

#define T0 1000000 /* a monotonic "now", ms */

/* A process no rule wants that never answers: asked again after 10 s,
 * then 20, 40, 60 and 60 s; a rule's process every 10 s. */
DEF_TEST(probe_backoff) {
  struct policy_retry p = {0};
  static const int64_t pause[] = {10, 20, 40, 60, 60, 60};
  int64_t now = T0;
  for (size_t i = 0; i < sizeof(pause) / sizeof(pause[0]); i++) {
    EXPECT_EQ_INT(POLICY_PROBE_FAILED,
                  policy_probe_failed(&p, -ETIMEDOUT, 1, 0, now));
    EXPECT_EQ_INT(now + pause[i] * 1000, p.retry_at);
    EXPECT_EQ_INT(i + 1, p.probe_failures);
    now = p.retry_at;
  }
  struct policy_retry q = {0};
  for (int i = 0; i < 5; i++) {
    policy_probe_failed(&q, -ETIMEDOUT, 1, 1, T0);
    EXPECT_EQ_INT(T0 + RETRY_SEC * 1000, q.retry_at);
  }
  /* an answer starts the count afresh */
  policy_probe_answered(&p);
  EXPECT_EQ_INT(0, p.probe_failures);
  policy_probe_failed(&p, -ETIMEDOUT, 1, 0, T0);
  EXPECT_EQ_INT(T0 + RETRY_SEC * 1000, p.retry_at);
  return 0;
}

/* A process gone before it answered: no fault, nothing counted. */
DEF_TEST(probe_gone) {
  struct policy_retry p = {0};
  EXPECT_EQ_INT(POLICY_PROBE_GONE,
                policy_probe_failed(&p, -ECONNREFUSED, 0, 1, T0));
  EXPECT_EQ_INT(T0 + RETRY_SEC * 1000, p.retry_at);
  EXPECT_EQ_INT(0, p.probe_failures);
  EXPECT_EQ_INT(0, p.refused_since);
  return 0;
}

/* Refused connects: retried every 250 ms for 5 s from the first one,
 * then failures like any other; an answer ends the run. */
DEF_TEST(refused_grace) {
  struct policy_retry p = {0};
  int64_t now = T0;
  for (; now < T0 + REFUSED_GRACE_SEC * 1000; now += REFUSED_RETRY_MS) {
    EXPECT_EQ_INT(POLICY_PROBE_REFUSED,
                  policy_probe_failed(&p, -ECONNREFUSED, 1, 1, now));
    EXPECT_EQ_INT(now + REFUSED_RETRY_MS, p.retry_at);
    EXPECT_EQ_INT(T0, p.refused_since);
  }
  EXPECT_EQ_INT(0, p.probe_failures);
  EXPECT_EQ_INT(POLICY_PROBE_FAILED,
                policy_probe_failed(&p, -ECONNREFUSED, 1, 1, now));
  EXPECT_EQ_INT(now + RETRY_SEC * 1000, p.retry_at);
  EXPECT_EQ_INT(1, p.probe_failures);
  policy_probe_answered(&p);
  EXPECT_EQ_INT(0, p.refused_since);
  EXPECT_EQ_INT(POLICY_PROBE_REFUSED,
                policy_probe_failed(&p, -ECONNREFUSED, 1, 1, now));
  /* another error is no refusal: a fault at once */
  struct policy_retry q = {0};
  EXPECT_EQ_INT(POLICY_PROBE_FAILED,
                policy_probe_failed(&q, -ETIMEDOUT, 1, 1, T0));
  return 0;
}

/* A session end: a failure when it is not a clean end or it streamed
 * under RETRY_SEC; a failure waits RETRY_SEC; a session that lived
 * RETRY_SEC clears the count (even when it then failed). */
DEF_TEST(session_ends) {
  EXPECT_EQ_INT(0, policy_session_failed(-EPIPE, RETRY_SEC));
  EXPECT_EQ_INT(1, policy_session_failed(-EPIPE, RETRY_SEC - 1));
  EXPECT_EQ_INT(1, policy_session_failed(-EBADMSG, 3600));
  struct policy_retry p = {0};
  policy_session_ended(&p, 1, 0, T0);
  policy_session_ended(&p, 1, 2, T0 + 1);
  EXPECT_EQ_INT(2, p.stream_failures);
  EXPECT_EQ_INT(T0 + 1 + RETRY_SEC * 1000, p.retry_at);
  policy_session_ended(&p, 0, RETRY_SEC, T0 + 2);
  EXPECT_EQ_INT(0, p.stream_failures);
  EXPECT_EQ_INT(T0 + 1 + RETRY_SEC * 1000, p.retry_at); /* unchanged */
  policy_session_ended(&p, 1, 1, T0 + 3);
  policy_session_ended(&p, 1, RETRY_SEC, T0 + 4);
  EXPECT_EQ_INT(1, p.stream_failures);
  return 0;
}

/* Starts wait for the next point of a grid of the interval (at most 1 s)
 * on the wall clock; within START_SLACK_MS after the last point handed
 * out, at once; at once when asked, or with an interval under 10 ms. */
DEF_TEST(start_grid) {
  int64_t last = 0;
  /* wall 12.345 s, interval 1 s: at 13.000, 655 ms from now */
  EXPECT_EQ_INT(T0 + 655, policy_start_at(&last, 1.0, 0, T0, 12345));
  EXPECT_EQ_INT(13000, last);
  /* interval 0.25 s: the next quarter second */
  int64_t l2 = 0;
  EXPECT_EQ_INT(T0 + 155, policy_start_at(&l2, 0.25, 0, T0, 12345));
  /* interval 10 s: the grid is 1 s */
  int64_t l3 = 0;
  EXPECT_EQ_INT(T0 + 655, policy_start_at(&l3, 10.0, 0, T0, 12345));
  /* right on a grid point: the next one */
  int64_t l4 = 0;
  EXPECT_EQ_INT(T0 + 1000, policy_start_at(&l4, 1.0, 0, T0, 13000));
  /* the point just handed out: at once for START_SLACK_MS */
  EXPECT_EQ_INT(T0 + 700, policy_start_at(&last, 1.0, 0, T0 + 700, 13045));
  EXPECT_EQ_INT(13000, last);
  EXPECT_EQ_INT(T0 + 900 + 900,
                policy_start_at(&last, 1.0, 0, T0 + 900, 13100));
  EXPECT_EQ_INT(14000, last);
  int64_t l5 = 0;
  EXPECT_EQ_INT(T0, policy_start_at(&l5, 1.0, 1, T0, 12345));
  EXPECT_EQ_INT(T0, policy_start_at(&l5, 0.005, 0, T0, 12345));
  EXPECT_EQ_INT(0, l5);
  return 0;
}

int main(void) {
  RUN_TEST(probe_backoff);
  RUN_TEST(probe_gone);
  RUN_TEST(refused_grace);
  RUN_TEST(session_ends);
  RUN_TEST(start_grid);
  END_TEST;
}
