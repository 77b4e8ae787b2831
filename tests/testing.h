/**
 * collectd-dotnet - tests/testing.h
 *
 * A minimal TAP-style harness in the manner of collectd's src/testing.h:
 * DEF_TEST(name) defines a test, RUN_TEST(name) runs it, CHECK/EXPECT_*
 * record failures, END_TEST prints the plan and returns the exit code.
 * A test binary exits 77 (automake's "skipped") via SKIP_ALL(); SKIP_TEST()
 * reports one test as skipped ("ok N - name # SKIP reason") and runs none
 * of it.
 */
#ifndef TESTING_H
#define TESTING_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int fail_count__;
static int check_count__;
static int test_count__;

#define DEF_TEST(func) static int test_##func(void)

#define RUN_TEST(func)                                                         \
  do {                                                                         \
    int before__ = fail_count__;                                               \
    int status__ = test_##func();                                              \
    test_count__++;                                                            \
    printf("%s %d - %s\n",                                                     \
           (status__ == 0 && fail_count__ == before__) ? "ok" : "not ok",      \
           test_count__, #func);                                               \
    if (status__ != 0 && fail_count__ == before__)                             \
      fail_count__++;                                                          \
  } while (0)

#define SKIP_TEST(func, reason)                                                \
  do {                                                                         \
    (void)test_##func;                                                         \
    test_count__++;                                                            \
    printf("ok %d - %s # SKIP %s\n", test_count__, #func, reason);            \
  } while (0)

#define END_TEST                                                               \
  do {                                                                         \
    printf("1..%d\n", test_count__);                                           \
    printf("# %d checks, %d failed\n", check_count__, fail_count__);          \
    return fail_count__ ? 1 : 0;                                               \
  } while (0)

#define SKIP_ALL(reason)                                                       \
  do {                                                                         \
    printf("1..0 # SKIP %s\n", reason);                                        \
    exit(77);                                                                  \
  } while (0)

#define CHECK(cond)                                                            \
  do {                                                                         \
    check_count__++;                                                           \
    if (!(cond)) {                                                             \
      printf("# FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                 \
      fail_count__++;                                                          \
    }                                                                          \
  } while (0)

#define EXPECT_EQ_INT(expect, actual)                                          \
  do {                                                                         \
    long long e__ = (long long)(expect), a__ = (long long)(actual);            \
    check_count__++;                                                           \
    if (e__ != a__) {                                                          \
      printf("# FAIL %s:%d: %s: expected %lld, got %lld\n", __FILE__,          \
             __LINE__, #actual, e__, a__);                                     \
      fail_count__++;                                                          \
    }                                                                          \
  } while (0)

#define EXPECT_EQ_U64(expect, actual)                                          \
  do {                                                                         \
    uint64_t e__ = (uint64_t)(expect), a__ = (uint64_t)(actual);               \
    check_count__++;                                                           \
    if (e__ != a__) {                                                          \
      printf("# FAIL %s:%d: %s: expected %" PRIu64 ", got %" PRIu64 "\n",      \
             __FILE__, __LINE__, #actual, e__, a__);                           \
      fail_count__++;                                                          \
    }                                                                          \
  } while (0)

#define EXPECT_EQ_STR(expect, actual)                                          \
  do {                                                                         \
    const char *e__ = (expect), *a__ = (actual);                               \
    check_count__++;                                                           \
    if (a__ == NULL || strcmp(e__, a__) != 0) {                                \
      printf("# FAIL %s:%d: %s: expected \"%s\", got \"%s\"\n", __FILE__,      \
             __LINE__, #actual, e__, a__ ? a__ : "(null)");                    \
      fail_count__++;                                                          \
    }                                                                          \
  } while (0)

#define EXPECT_EQ_DOUBLE(expect, actual, tol)                                  \
  do {                                                                         \
    double e__ = (expect), a__ = (actual);                                     \
    check_count__++;                                                           \
    if (!(fabs(e__ - a__) <= (tol))) {                                         \
      printf("# FAIL %s:%d: %s: expected %g, got %g\n", __FILE__, __LINE__,    \
             #actual, e__, a__);                                               \
      fail_count__++;                                                          \
    }                                                                          \
  } while (0)

/* Finds a fixtures directory for a test binary: argv[1] if given, else
 * $env_name if set (each must exist), else the first of rel[] that exists,
 * tried relative to this tests/ directory (from __FILE__) and then to the
 * working directory. Writes it into out[cap]; returns 1 if found. */
static inline int testing_find_dir(int argc, char **argv, const char *env_name,
                                   const char *const *rel, size_t nrel,
                                   char *out, size_t cap) {
  struct stat st;
  const char *env = getenv(env_name);
  if (argc > 1 || (env != NULL && env[0] != 0)) {
    snprintf(out, cap, "%s", argc > 1 ? argv[1] : env);
    return stat(out, &st) == 0 && S_ISDIR(st.st_mode);
  }
  char here[2048];
  snprintf(here, sizeof(here), "%s", __FILE__);
  char *slash = strrchr(here, '/');
  if (slash != NULL)
    *slash = 0; /* .../tests */
  for (int base = slash != NULL ? 0 : 1; base < 2; base++) {
    for (size_t i = 0; i < nrel; i++) {
      if (base == 0)
        snprintf(out, cap, "%s/%s", here, rel[i]);
      else
        snprintf(out, cap, "%s", rel[i]);
      if (stat(out, &st) == 0 && S_ISDIR(st.st_mode))
        return 1;
    }
  }
  return 0;
}

#endif /* TESTING_H */
