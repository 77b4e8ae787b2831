/**
 * collectd-dotnet - plugin/connect_policy.h
 *
 * The connector's rules of when to try a process again and when to start
 * a session, as pure functions of what is known and the time: no I/O, no
 * clock read, no lock (the connector calls them with its own state; the
 * unit tests call them with any time they like).
 *
 *   - a session whose stream fails or ends within RETRY_SEC counts as a
 *     failure and its process is tried again RETRY_SEC later; one that
 *     lived RETRY_SEC clears the count;
 *   - a ProcessInfo refused (ECONNREFUSED: a runtime starting up binds
 *     its socket a moment before it listens) is retried quietly every
 *     REFUSED_RETRY_MS for REFUSED_GRACE_SEC from the first refusal;
 *   - any other ProcessInfo failure: again after RETRY_SEC for a rule's
 *     process; for a process no rule wants, after RETRY_SEC, then twice
 *     as long each time up to PROBE_BACKOFF_MAX_SEC;
 *   - sessions start on a common grid (see policy_start_at).
 */
#ifndef CONNECT_POLICY_H
#define CONNECT_POLICY_H

#include <stdint.h>

#define RETRY_SEC 10
#define REFUSED_GRACE_SEC 5
#define REFUSED_RETRY_MS 250
#define PROBE_BACKOFF_MAX_SEC 60
/* A start waits for the next grid point unless the last one is less than
 * this ago (a pass starting many targets does not wait for each). */
#define START_SLACK_MS 100

/* What the connector keeps of one process (pid + start time) for retries. */
struct policy_retry {
  int64_t retry_at;         /* no attempt before (monotonic ms); 0: any time */
  int64_t refused_since;    /* first refused connect of a run of them, or 0 */
  unsigned stream_failures; /* sessions that failed or ended at once */
  unsigned probe_failures;  /* ProcessInfo asks in a row without answer */
};

/* Whether a session end counts as a failure: r is session_read's result
 * (-EPIPE: the stream ended), lived_sec how long it streamed. */
int policy_session_failed(int r, int64_t lived_sec);

/* A session of the process ended (failed: policy_session_failed). */
void policy_session_ended(struct policy_retry *p, int failed, int64_t lived_sec,
                          int64_t now_ms);

/* A start that could not be made (session not started, a cap reached, the
 * process gone): no attempt for RETRY_SEC. */
void policy_retry_later(struct policy_retry *p, int64_t now_ms);

/* The runtime answered its ProcessInfo. */
void policy_probe_answered(struct policy_retry *p);

enum policy_probe {
  POLICY_PROBE_GONE,    /* the process went away: nothing to say */
  POLICY_PROBE_REFUSED, /* not listening yet: a quiet retry */
  POLICY_PROBE_FAILED,  /* it does not answer: a fault */
};
/* A ProcessInfo failed with r (a negative errno); alive: the process is
 * still there; wanted: a rule matches it. Sets when to ask again and says
 * what kind of failure it was. */
enum policy_probe policy_probe_failed(struct policy_retry *p, int r, int alive,
                                      int wanted, int64_t now_ms);

/* When to send a new session's CollectTracing (monotonic ms): at the next
 * point of a grid on the wall clock (a multiple of the interval, at most
 * 1 s), so that the runtimes, which send one interval after another from
 * the moment a session was enabled, send together and the reader takes
 * them in a wakeup or two an interval; at once when the last grid point
 * handed out is less than START_SLACK_MS ago, with at_once, or with an
 * interval under 10 ms. *last_grid_wall: the grid point handed out last
 * (wall ms, 0: none), updated. */
int64_t policy_start_at(int64_t *last_grid_wall, double interval_sec,
                        int at_once, int64_t now_mono_ms, int64_t now_wall_ms);

#endif /* CONNECT_POLICY_H */
