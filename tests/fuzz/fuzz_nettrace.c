/**
 * collectd-dotnet - tests/fuzz/fuzz_nettrace.c
 *
 * libFuzzer target: the nettrace reader, fed in chunks, with every event it
 * delivers decoded by counters_decode (so the payload decoder runs on
 * metadata the reader really built) and merged into a counters table.
 *
 * Input layout:
 *   uint8 ctl        bits 0-3: number of chunk-size bytes that follow (k);
 *                    bits 4, 5, 6: small limits, to reach the -E2BIG paths
 *                    (max_metas 4, max_metadata 4 KiB, max_object 4 KiB)
 *   uint8 size[k]    chunk sizes, used in turn (0 means 4096)
 *   stream           the nettrace bytes
 * k = 0 feeds the stream in one call.
 *
 * Checked beyond the sanitizers: the same stream fed whole must give the
 * same result (events, dropped, error code, error offset) as fed in chunks.
 */
#include "../../plugin/counters.h"
#include "../../plugin/counters_table.h"
#include "../../plugin/nettrace.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct run {
  struct nettrace_reader *r;
  struct counters_table table;
  uint64_t samples;
};

static void on_event(void *ctx, const struct nettrace_event *ev) {
  struct run *run = ctx;
  struct counters_sample s;
  char scratch[4096];
  /* the reader promises a non-NULL meta whose strings are terminated */
  if (ev->meta == NULL || strlen(ev->meta->provider) > 1 << 20)
    __builtin_trap();
  int rc = counters_decode(ev, &s, scratch, sizeof(scratch));
  if (rc == 1) {
    run->samples++;
    const struct nettrace_trace_info *ti = nettrace_reader_trace_info(run->r);
    counters_table_update(&run->table, &s, counters_unix_ms(ti, s.timestamp));
  }
  /* the generic walk with a tiny output array and scratch */
  struct counters_field f[3];
  char small[16];
  (void)counters_fields(ev->meta, ev->payload, ev->payload_len, f, 3, small,
                        sizeof(small));
}

struct outcome {
  int feed_rc, finish_rc;
  uint64_t events, dropped, err_off;
};

static struct outcome run_once(const uint8_t *sizes, size_t k, int small,
                               const uint8_t *p, size_t n) {
  struct nettrace_limits lim = {
      .max_metas = small & 1 ? 4 : 0,
      .max_metadata = small & 2 ? 4096 : 0,
      .max_object = small & 4 ? 4096 : 0,
  };
  struct run run = {0};
  struct outcome o = {0};
  counters_table_init(&run.table, 64);
  run.r = nettrace_reader_new(&lim, on_event, &run);
  if (run.r == NULL)
    abort();
  size_t i = 0, off = 0;
  while (off < n) {
    size_t c = n - off;
    if (k > 0) {
      size_t want = sizes[i++ % k];
      if (want == 0)
        want = 4096;
      if (want < c)
        c = want;
    }
    int rc = nettrace_reader_feed(run.r, p + off, c);
    off += c;
    if (rc != 0) {
      o.feed_rc = rc;
      /* sticky: later calls say the same */
      if (nettrace_reader_feed(run.r, p, n) != rc)
        __builtin_trap();
      break;
    }
  }
  o.finish_rc = nettrace_reader_finish(run.r);
  if (o.feed_rc != 0 && o.finish_rc != o.feed_rc)
    __builtin_trap();
  const struct nettrace_stats *st = nettrace_reader_stats(run.r);
  o.events = st->events;
  o.dropped = st->dropped;
  o.err_off = nettrace_reader_error_offset(run.r);
  if (o.finish_rc != 0 && nettrace_reader_error(run.r)[0] == 0)
    __builtin_trap(); /* an error always has a reason */
  nettrace_reader_free(run.r);
  counters_table_fini(&run.table);
  return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  size_t k = data[0] & 0x0f;
  int small = (data[0] >> 4) & 7;
  if (size < 1 + k)
    return 0;
  const uint8_t *sizes = data + 1;
  const uint8_t *p = data + 1 + k;
  size_t n = size - 1 - k;

  struct outcome split = run_once(sizes, k, small, p, n);
  if (k == 0)
    return 0;
  struct outcome whole = run_once(NULL, 0, small, p, n);
  if (split.feed_rc != whole.feed_rc || split.finish_rc != whole.finish_rc ||
      split.events != whole.events || split.dropped != whole.dropped ||
      split.err_off != whole.err_off)
    __builtin_trap(); /* the result depends on how the bytes were split */
  return 0;
}
