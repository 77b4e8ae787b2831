/**
 * collectd-dotnet - plugin/clock.h
 *
 * The project's clocks: CLOCK_MONOTONIC for every deadline, timeout and
 * rate (it never jumps), CLOCK_REALTIME only for what a person or another
 * host reads (timestamps, file names).
 */
#ifndef CLOCK_H
#define CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in milliseconds. */
static inline int64_t clock_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The same clock in seconds, for policies written in seconds. */
static inline double clock_mono_s(void) {
  return (double)clock_mono_ms() / 1000.0;
}

/* CLOCK_REALTIME in milliseconds (unix time). */
static inline int64_t clock_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif /* CLOCK_H */
