/**
 * collectd-dotnet - tests/test_bytes_equal.c
 *
 * White-box test of counters.c's bytes_equal (included here: it is static),
 * the compare a template hit rests on: against memcmp for every length
 * 0..260, a difference at every position (and none), at three alignments.
 * A compare that skipped bytes would let a payload with other strings
 * decode from the wrong template; one that read past n would be ASan's.
 */
#include "../plugin/counters.c"
#include "testing.h"

DEF_TEST(bytes_equal_vs_memcmp) {
  enum { MAX = 260, ALIGN = 3 };
  long wrong = 0, checks = 0;
  for (size_t n = 0; n <= MAX; n++) {
    for (size_t off = 0; off < ALIGN; off++) {
      /* exact allocations, so that ASan sees a read past n */
      uint8_t *a = malloc(off + n + 1), *b = malloc(off + n + 1);
      if (a == NULL || b == NULL) {
        free(a);
        free(b);
        return 1;
      }
      for (size_t k = 0; k < off + n + 1; k++)
        a[k] = b[k] = (uint8_t)(k * 7 + 3);
      for (size_t i = 0; i <= n; i++) { /* i == n: no difference */
        if (i < n)
          b[off + i] ^= 0x40;
        int want = memcmp(a + off, b + off, n) == 0;
        if (bytes_equal(a + off, b + off, n) != want)
          wrong++;
        checks++;
        if (i < n)
          b[off + i] ^= 0x40;
      }
      free(a);
      free(b);
    }
  }
  EXPECT_EQ_INT(0, (int)wrong);
  CHECK(checks > 100000);
  return 0;
}

int main(void) {
  RUN_TEST(bytes_equal_vs_memcmp);
  END_TEST;
}
