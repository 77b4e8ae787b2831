/**
 * collectd-dotnet - tests/fuzz/fuzz_gctypes.c
 *
 * libFuzzer target: plugin/gctypes.c, the per-type aggregation of GC heap
 * snapshots and allocation samples, fed either through the nettrace reader
 * (real framing, as the plugin will feed it) or with made-up events straight
 * into gctypes_event (to reach every payload decoder fast).
 *
 * Input layout:
 *   uint8 ctl   bits 0-3: number of chunk-size bytes that follow (k);
 *               bit 4: alloc-types (else heap-types);
 *               bit 5: small limits (4 types, 64 name bytes, 2 threads);
 *               bit 6: made-up events instead of a nettrace stream;
 *               bit 7: 4-byte pointers (made-up events only)
 *   uint8 size[k]  chunk sizes, used in turn (0 means 4096)
 *   then either the nettrace bytes, or made-up events, each:
 *     uint8 selector (event id: 1, 2, 4, 10, 15, 18, 303 by selector % 7);
 *     uint8 version; uint8 thread (capture thread 1..4 by thread % 4);
 *     uint8 sequence step; uint16 payload length; payload
 *
 * Checked beyond the sanitizers: a nettrace stream fed in chunks gives the
 * same JSON as fed whole; a result is complete only with an empty reason;
 * the top rows never hold more than the totals; the compact line fits its
 * buffer; the memory held stays within gctypes_worst_bytes.
 */
#include "../../plugin/gctypes.h"
#include "../../plugin/nettrace.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define OUT_CAP 16384

/* The reader being fed: its trace info goes with every event. */
static struct nettrace_reader *reader;

static void on_event(void *agg, const struct nettrace_event *ev) {
  gctypes_event(agg, ev, nettrace_reader_trace_info(reader));
}

/* The next chunk's length: sizes[] in turn (0 means 4096), or all. */
static size_t chunk_len(const uint8_t *sizes, size_t k, size_t nth,
                        size_t left) {
  size_t want = k == 0 ? left : sizes[nth % k] ? sizes[nth % k] : 4096;
  return want < left ? want : left;
}

static struct gctypes_limits limits_of(int small) {
  struct gctypes_limits lim = {0};
  if (small) {
    lim.max_types = 4;
    lim.max_names = 64;
    lim.max_threads = 2;
  }
  return lim;
}

/* The invariants of a finished result; its JSON into json[OUT_CAP]. */
static void check(const struct gctypes *g, const struct gctypes_limits *lim,
                  char *json) {
  struct gctypes_summary s;
  struct gctypes_row rows[8];
  gctypes_summary(g, &s);
  if (s.complete != (s.reason[0] == 0))
    __builtin_trap();
  size_t n = gctypes_top(g, rows, 8);
  uint64_t count = 0;
  for (size_t i = 0; i < n; i++) {
    if (rows[i].count == 0 || rows[i].count > s.count ||
        rows[i].bytes > s.bytes || (i > 0 && rows[i].bytes > rows[i - 1].bytes))
      __builtin_trap();
    count += rows[i].count;
  }
  if (count > s.count)
    __builtin_trap();
  char compact[200];
  size_t len = gctypes_format(g, GCTYPES_COMPACT, 8, compact, sizeof(compact));
  if (len >= sizeof(compact) || strlen(compact) != len)
    __builtin_trap();
  char text[512];
  len = gctypes_format(g, GCTYPES_TEXT, 8, text, sizeof(text));
  if (strlen(text) != (len < sizeof(text) ? len : sizeof(text) - 1))
    __builtin_trap();
  gctypes_format(g, GCTYPES_CSV, 8, text, sizeof(text));
  gctypes_format(g, GCTYPES_JSON, GCTYPES_FORMAT_MAX_ROWS, json, OUT_CAP);
  if (gctypes_memory(g) > gctypes_worst_bytes(lim))
    __builtin_trap();
}

static void run_stream(int mode, int small, const uint8_t *sizes, size_t k,
                       const uint8_t *p, size_t n, char *json) {
  struct gctypes_limits lim = limits_of(small);
  struct gctypes *g = gctypes_new(mode, &lim);
  reader = nettrace_reader_new(NULL, on_event, g);
  if (g == NULL || reader == NULL)
    abort();
  size_t off = 0;
  for (size_t nth = 0; off < n; nth++) {
    size_t c = chunk_len(sizes, k, nth, n - off);
    if (nettrace_reader_feed(reader, p + off, c) != 0)
      break;
    off += c;
  }
  int rc = nettrace_reader_finish(reader);
  gctypes_finish(g, rc, nettrace_reader_stats(reader)->dropped);
  check(g, &lim, json);
  nettrace_reader_free(reader);
  reader = NULL;
  gctypes_free(g);
}

static const uint32_t event_ids[] = {1, 2, 4, 10, 15, 18, 303};

static void run_events(int mode, int small, uint32_t ptr_size, const uint8_t *p,
                       size_t n, char *json) {
  struct gctypes_limits lim = limits_of(small);
  struct gctypes *g = gctypes_new(mode, &lim);
  if (g == NULL)
    abort();
  struct nettrace_trace_info ti = {.pointer_size = ptr_size,
                                   .qpc_frequency = 1000000};
  uint32_t seq[4] = {0, 0, 0, 0};
  uint64_t time = 0;
  while (n >= 6) {
    size_t len = (size_t)p[4] | (size_t)p[5] << 8;
    if (len > n - 6)
      len = n - 6;
    struct nettrace_meta meta = {
        .provider = GCTYPES_PROVIDER,
        .event_id = event_ids[p[0] % 7],
        .version = p[1],
        .event_name = "",
    };
    uint32_t thread = p[2] % 4;
    seq[thread] += (uint32_t)p[3] + 1;
    struct nettrace_event ev = {.meta = &meta,
                                .timestamp = time += 100,
                                .thread_id = thread + 1,
                                .capture_thread_id = thread + 1,
                                .sequence = seq[thread],
                                .payload = p + 6,
                                .payload_len = (uint32_t)len};
    gctypes_event(g, &ev, &ti);
    (void)gctypes_snapshot_done(g);
    p += 6 + len;
    n -= 6 + len;
  }
  gctypes_finish(g, 0, 0);
  check(g, &lim, json);
  gctypes_free(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char json_split[OUT_CAP], json_whole[OUT_CAP];
  if (size < 1)
    return 0;
  size_t k = data[0] & 0x0f;
  int mode = data[0] & 0x10 ? GCTYPES_ALLOC : GCTYPES_HEAP;
  int small = (data[0] & 0x20) != 0;
  if (size < 1 + k)
    return 0;
  const uint8_t *sizes = data + 1;
  const uint8_t *p = data + 1 + k;
  size_t n = size - 1 - k;
  if (data[0] & 0x40) {
    run_events(mode, small, data[0] & 0x80 ? 4 : 8, p, n, json_whole);
    return 0;
  }
  run_stream(mode, small, sizes, k, p, n, json_split);
  if (k == 0)
    return 0;
  run_stream(mode, small, NULL, 0, p, n, json_whole);
  if (strcmp(json_split, json_whole) != 0)
    __builtin_trap(); /* the result depends on how the bytes were split */
  return 0;
}
