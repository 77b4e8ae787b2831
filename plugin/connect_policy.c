/**
 * collectd-dotnet - plugin/connect_policy.c
 *
 * The connector's retry and start rules: see connect_policy.h.
 */
#include "connect_policy.h"

#include <errno.h>

int policy_session_failed(int r, int64_t lived_sec) {
  return r != -EPIPE || lived_sec < RETRY_SEC;
}

void policy_session_ended(struct policy_retry *p, int failed, int64_t lived_sec,
                          int64_t now_ms) {
  if (lived_sec >= RETRY_SEC)
    p->stream_failures = 0;
  if (failed) {
    p->stream_failures++;
    p->retry_at = now_ms + RETRY_SEC * 1000;
  }
}

void policy_retry_later(struct policy_retry *p, int64_t now_ms) {
  p->retry_at = now_ms + RETRY_SEC * 1000;
}

void policy_probe_answered(struct policy_retry *p) {
  p->refused_since = 0;
  p->probe_failures = 0;
}

enum policy_probe policy_probe_failed(struct policy_retry *p, int r, int alive,
                                      int wanted, int64_t now_ms) {
  if (!alive) {
    /* killed, exiting, its pid reused between the listing and the
     * connect: not a fault, and nothing to retry soon */
    policy_retry_later(p, now_ms);
    return POLICY_PROBE_GONE;
  }
  if (r == -ECONNREFUSED &&
      (p->refused_since == 0 ||
       now_ms - p->refused_since < REFUSED_GRACE_SEC * 1000)) {
    if (p->refused_since == 0)
      p->refused_since = now_ms;
    p->retry_at = now_ms + REFUSED_RETRY_MS;
    return POLICY_PROBE_REFUSED;
  }
  if (p->probe_failures < 1000)
    p->probe_failures++;
  int64_t pause = RETRY_SEC;
  /* a socket nobody asked for that does not answer: asked again less and
   * less often (a rule's process keeps RETRY_SEC) */
  for (unsigned i = 1;
       !wanted && i < p->probe_failures && pause < PROBE_BACKOFF_MAX_SEC; i++)
    pause *= 2;
  if (pause > PROBE_BACKOFF_MAX_SEC)
    pause = PROBE_BACKOFF_MAX_SEC;
  p->retry_at = now_ms + pause * 1000;
  return POLICY_PROBE_FAILED;
}

int64_t policy_start_at(int64_t *last_grid_wall, double interval_sec,
                        int at_once, int64_t now_mono_ms, int64_t now_wall_ms) {
  if (at_once)
    return now_mono_ms;
  int64_t grid = (int64_t)(interval_sec * 1000.0 + 0.5);
  if (grid > 1000)
    grid = 1000;
  if (grid < 10)
    return now_mono_ms;
  if (*last_grid_wall != 0 && now_wall_ms >= *last_grid_wall &&
      now_wall_ms - *last_grid_wall < START_SLACK_MS)
    return now_mono_ms;
  int64_t at = (now_wall_ms / grid + 1) * grid;
  *last_grid_wall = at;
  return now_mono_ms + (at - now_wall_ms);
}
