/**
 * collectd-dotnet - tests/test_gctypes.c
 *
 * The per-type aggregation of plugin/gctypes.c:
 *  - on real streams (tests/fixtures, made by capture-gc.sh with dotnet-trace
 *    from real .NET 8, 9, 10 and 11 runtimes): heap-netV.nettrace, a GC heap
 *    snapshot of SpikeApp during a spike (ten live 1,000,000-element
 *    System.Byte[]), checked against heap-netV.report, what
 *    `dotnet-gcdump report` read from the same stream: the heap's bytes
 *    exactly, and the object count of every type; alloc-netV.nettrace, 3 s
 *    of CounterTarget allocating 8 KiB System.Byte[] at 16 MB/s;
 *  - every fixture fed whole, byte by byte and split at a sample of offsets:
 *    the same result (its JSON) each way; every sampled prefix: no crash,
 *    and a snapshot cut before its GC ended says it is incomplete;
 *  - on made-up events: lost events (sequence gaps, node Index gaps, the
 *    reader's drops), a second heap walk, a snapshot that never ends, the
 *    type cap and "(other)", payloads whose counts and lengths lie, names
 *    with control characters, the output formats and the compact line's
 *    size, the memory bound.
 *
 * Usage: test_gctypes [DIR]; else $TEST_FIXTURES; else tests/fixtures
 * beside this source. The fixture tests are skipped when files are missing.
 */
#include "gctypes.h"
#include "nettrace.h"
#include "testing.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#define FIXTURE_CAP ((size_t)1 << 20)
#define OUT_CAP 65536

static char fixtures_dir[4096];

/* ---- real streams ---- */

struct blob {
  uint8_t *p;
  size_t len;
};

/* The whole file (at most FIXTURE_CAP bytes), or len 0. */
static struct blob slurp(const char *name) {
  struct blob b = {0};
  char path[4200];
  snprintf(path, sizeof(path), "%s/%s", fixtures_dir, name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return b;
  b.p = malloc(FIXTURE_CAP + 1);
  while (b.p != NULL && b.len <= FIXTURE_CAP) {
    ssize_t n = read(fd, b.p + b.len, FIXTURE_CAP + 1 - b.len);
    if (n <= 0)
      break;
    b.len += (size_t)n;
  }
  close(fd);
  if (b.p != NULL)
    b.p[b.len < FIXTURE_CAP ? b.len : FIXTURE_CAP] = 0;
  return b;
}

struct run {
  struct nettrace_reader *r;
  struct gctypes *g;
};

static void on_event(void *ctx, const struct nettrace_event *ev) {
  struct run *run = ctx;
  gctypes_event(run->g, ev, nettrace_reader_trace_info(run->r));
}

/* Feeds data[len] in chunks of `chunk` bytes (0: whole), or split in two at
 * `split` when chunk is SIZE_MAX, and finishes. The caller frees it. */
static struct gctypes *feed(enum gctypes_mode mode,
                            const struct gctypes_limits *lim,
                            const uint8_t *data, size_t len, size_t chunk,
                            size_t split) {
  struct run run = {.g = gctypes_new(mode, lim)};
  run.r = nettrace_reader_new(NULL, on_event, &run);
  if (run.g == NULL || run.r == NULL)
    abort();
  if (chunk == SIZE_MAX) {
    nettrace_reader_feed(run.r, data, split);
    nettrace_reader_feed(run.r, data + split, len - split);
  } else {
    for (size_t off = 0; off < len;) {
      size_t n = chunk == 0 || len - off < chunk ? len - off : chunk;
      nettrace_reader_feed(run.r, data + off, n);
      off += n;
    }
  }
  int rc = nettrace_reader_finish(run.r);
  gctypes_finish(run.g, rc, nettrace_reader_stats(run.r)->dropped);
  nettrace_reader_free(run.r);
  return run.g;
}

static char *json_of(const struct gctypes *g) {
  char *out = malloc(OUT_CAP);
  if (out == NULL)
    abort();
  gctypes_format(g, GCTYPES_JSON, GCTYPES_FORMAT_MAX_ROWS, out, OUT_CAP);
  return out;
}

/* Parses a `dotnet-gcdump report` line ("  1,000,024  10  System.Byte[]
 * (Bytes > 1M)  [Module(0x...)]") into its count and its type name, the
 * size-range suffix dotnet-gcdump adds dropped. 0 when it is not one. */
static int report_line(const char *line, uint64_t *count, char *name,
                       size_t cap) {
  uint64_t v[2] = {0, 0};
  const char *p = line;
  for (int k = 0; k < 2; k++) {
    while (*p == ' ')
      p++;
    if (*p < '0' || *p > '9')
      return 0;
    for (; (*p >= '0' && *p <= '9') || *p == ','; p++)
      if (*p != ',')
        v[k] = v[k] * 10 + (uint64_t)(*p - '0');
  }
  while (*p == ' ')
    p++;
  const char *end = strstr(p, "  [");
  if (end == NULL)
    return 0;
  const char *suffix = strstr(p, " (Bytes > ");
  if (suffix != NULL && suffix < end)
    end = suffix;
  snprintf(name, cap, "%.*s", (int)(end - p), p);
  *count = v[1];
  return 1;
}

/* The objects dotnet-gcdump's report counts for that type (its size
 * ranges added up), and the heap's bytes ("GC Heap bytes"). */
static uint64_t report_count(const char *report, const char *type,
                             uint64_t *heap_bytes) {
  uint64_t total = 0;
  char line[1024], name[600];
  for (const char *p = report; *p != 0;) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    snprintf(line, sizeof(line), "%.*s", (int)n, p);
    p += n + (nl != NULL);
    uint64_t c = 0;
    if (strstr(line, "GC Heap bytes") != NULL) {
      uint64_t b = 0;
      for (const char *q = line; *q != 0 && *q != 'G'; q++)
        if (*q >= '0' && *q <= '9')
          b = b * 10 + (uint64_t)(*q - '0');
      *heap_bytes = b;
    } else if (report_line(line, &c, name, sizeof(name)) &&
               strcmp(name, type) == 0) {
      total += c;
    }
  }
  return total;
}

struct heap_expect {
  int ver;
  uint64_t objects; /* what gctypes reads: dotnet-gcdump adds root nodes */
  uint64_t byte_arrays, byte_array_bytes;
};

/* Figures of the committed fixtures (heap bytes: from the reports). */
static const struct heap_expect heap_expect[] = {
    {8, 482, 13, 10000912},
    {9, 505, 13, 10000912},
    {10, 461, 11, 10000264},
    {11, 464, 15, 10000500},
};

static int heap_fixture(const struct heap_expect *e) {
  char name[64];
  snprintf(name, sizeof(name), "heap-net%d.nettrace", e->ver);
  struct blob b = slurp(name);
  snprintf(name, sizeof(name), "heap-net%d.report", e->ver);
  struct blob rep = slurp(name);
  if (b.len == 0 || rep.len == 0) {
    printf("# %s: fixture missing\n", name);
    free(b.p);
    free(rep.p);
    return -1;
  }
  struct gctypes *g = feed(GCTYPES_HEAP, NULL, b.p, b.len, 0, 0);
  struct gctypes_summary s;
  gctypes_summary(g, &s);
  EXPECT_EQ_INT(1, s.complete);
  EXPECT_EQ_STR("", s.reason);
  EXPECT_EQ_INT(1, s.gc_ended);
  EXPECT_EQ_U64(e->objects, s.count);
  EXPECT_EQ_U64(0, s.lost_events);
  EXPECT_EQ_U64(0, s.lost_node_events);
  EXPECT_EQ_U64(0, s.bad_events);
  CHECK(s.gc_pause_ms > 0 && s.gc_pause_ms < 10000);
  /* GCHeapStats after the GC: the generations' sizes, within 1 % */
  CHECK(s.gc_heap_bytes > s.bytes / 100 * 99 &&
        s.gc_heap_bytes < s.bytes / 100 * 101);

  uint64_t heap_bytes = 0;
  struct gctypes_row rows[GCTYPES_FORMAT_MAX_ROWS];
  size_t n = gctypes_top(g, rows, GCTYPES_FORMAT_MAX_ROWS);
  CHECK(n == GCTYPES_FORMAT_MAX_ROWS);
  EXPECT_EQ_STR("System.Byte[]", rows[0].name);
  EXPECT_EQ_U64(e->byte_arrays, rows[0].count);
  EXPECT_EQ_U64(e->byte_array_bytes, rows[0].bytes);
  CHECK(rows[0].share > 0.99);
  EXPECT_EQ_STR("System.String", rows[1].name);
  for (size_t i = 0; i < n; i++) {
    uint64_t ref = report_count((const char *)rep.p, rows[i].name, &heap_bytes);
    if (ref != rows[i].count)
      printf("# %s: %" PRIu64 " objects, dotnet-gcdump %" PRIu64 "\n",
             rows[i].name, rows[i].count, ref);
    EXPECT_EQ_U64(ref, rows[i].count);
  }
  EXPECT_EQ_U64(heap_bytes, s.bytes); /* the same heap, to the byte */

  char text[512];
  gctypes_format(g, GCTYPES_COMPACT, 3, text, sizeof(text));
  printf("# net%d: %s\n", e->ver, text);
  gctypes_free(g);
  free(b.p);
  free(rep.p);
  return 0;
}

struct alloc_expect {
  int ver;
  const char *method;
  uint64_t samples, byte_array_samples;
};

static const struct alloc_expect alloc_expect[] = {
    {8, "GCAllocationTick", 496, 489},
    {9, "GCAllocationTick", 526, 521},
    {10, "AllocationSampled", 493, 488},
    {11, "AllocationSampled", 517, 514},
};

static int alloc_fixture(const struct alloc_expect *e) {
  char name[64];
  snprintf(name, sizeof(name), "alloc-net%d.nettrace", e->ver);
  struct blob b = slurp(name);
  if (b.len == 0) {
    printf("# %s: fixture missing\n", name);
    return -1;
  }
  struct gctypes *g = feed(GCTYPES_ALLOC, NULL, b.p, b.len, 0, 0);
  struct gctypes_summary s;
  gctypes_summary(g, &s);
  EXPECT_EQ_INT(1, s.complete);
  EXPECT_EQ_STR(e->method, s.method);
  EXPECT_EQ_U64(e->samples, s.count);
  /* 3 s at 16 MB/s, give or take the session's start and stop */
  CHECK(s.bytes > 40000000 && s.bytes < 70000000);
  struct gctypes_row rows[4];
  size_t n = gctypes_top(g, rows, 4);
  CHECK(n >= 2);
  EXPECT_EQ_STR("System.Byte[]", rows[0].name);
  EXPECT_EQ_U64(e->byte_array_samples, rows[0].count);
  CHECK(rows[0].share >= 0.8);
  gctypes_free(g);
  free(b.p);
  return 0;
}

/* Each snapshot and allocation fixture: .NET 8, 9, 10 and 11. */
DEF_TEST(fixtures) {
  int rc = 0;
  for (size_t i = 0; i < sizeof(heap_expect) / sizeof(heap_expect[0]); i++)
    rc |= heap_fixture(&heap_expect[i]);
  for (size_t i = 0; i < sizeof(alloc_expect) / sizeof(alloc_expect[0]); i++)
    rc |= alloc_fixture(&alloc_expect[i]);
  return rc;
}

/* Every fixture gives the same JSON fed whole, byte by byte, in 7- and
 * 4096-byte chunks and split in two at every 61st offset; every prefix at
 * those offsets ends incomplete, or complete only when its GC had ended. */
static int splits_of(const char *name, enum gctypes_mode mode) {
  struct blob b = slurp(name);
  if (b.len == 0)
    return -1;
  struct gctypes *whole = feed(mode, NULL, b.p, b.len, 0, 0);
  char *want = json_of(whole);
  gctypes_free(whole);
  size_t chunks[] = {1, 7, 4096};
  for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
    struct gctypes *g = feed(mode, NULL, b.p, b.len, chunks[i], 0);
    char *got = json_of(g);
    CHECK(strcmp(want, got) == 0);
    free(got);
    gctypes_free(g);
  }
  int bad_splits = 0, bad_prefixes = 0;
  for (size_t at = 0; at < b.len; at += 61) {
    struct gctypes *g = feed(mode, NULL, b.p, b.len, SIZE_MAX, at);
    char *got = json_of(g);
    bad_splits += strcmp(want, got) != 0;
    free(got);
    gctypes_free(g);

    g = feed(mode, NULL, b.p, at, 0, 0);
    struct gctypes_summary s;
    gctypes_summary(g, &s);
    if (s.complete && !(mode == GCTYPES_HEAP && s.gc_ended))
      bad_prefixes++;
    if (!s.complete && s.reason[0] == 0)
      bad_prefixes++;
    gctypes_free(g);
  }
  EXPECT_EQ_INT(0, bad_splits);
  EXPECT_EQ_INT(0, bad_prefixes);
  free(want);
  free(b.p);
  return 0;
}

DEF_TEST(splits_heap) {
  return splits_of("heap-net10.nettrace", GCTYPES_HEAP) |
         splits_of("heap-net11.nettrace", GCTYPES_HEAP);
}
DEF_TEST(splits_alloc) {
  return splits_of("alloc-net8.nettrace", GCTYPES_ALLOC) |
         splits_of("alloc-net10.nettrace", GCTYPES_ALLOC);
}

/* ---- made-up events ---- */

struct payload {
  uint8_t b[4096];
  size_t len;
};

/* n bytes of v, little endian (zeroes past its eighth byte). */
static void put(struct payload *p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; i++)
    p->b[p->len++] = i < 8 ? (uint8_t)(v >> (8 * i)) : 0;
}

/* NUL-terminated UTF-16LE of an ASCII string. */
static void put_str(struct payload *p, const char *s) {
  for (; *s != 0; s++)
    put(p, (uint8_t)*s, 2);
  put(p, 0, 2);
}

static const struct nettrace_trace_info trace64 = {.pointer_size = 8,
                                                   .qpc_frequency = 1000000};

struct feeder {
  struct gctypes *g;
  uint32_t seq;    /* the next sequence number of the thread */
  uint64_t thread; /* the capture thread; 0: 7 */
  uint64_t time;   /* QPC ticks */
};

static void send(struct feeder *f, uint32_t id, uint32_t version,
                 const struct payload *p) {
  struct nettrace_meta meta = {.provider = GCTYPES_PROVIDER,
                               .event_id = id,
                               .version = version,
                               .event_name = "",
                               .fields_ok = 1};
  struct nettrace_event ev = {.meta = &meta,
                              .timestamp = f->time += 1000,
                              .thread_id = f->thread ? f->thread : 7,
                              .capture_thread_id = f->thread ? f->thread : 7,
                              .sequence = f->seq++,
                              .payload = p->b,
                              .payload_len = (uint32_t)p->len};
  gctypes_event(f->g, &ev, &trace64);
}

static void gc_start(struct feeder *f, uint32_t number, uint32_t depth,
                     uint32_t reason, uint32_t type) {
  /* Count, Depth; Reason, Type; ClrInstanceID, ClientSequenceNumber */
  struct payload p = {.len = 0};
  put(&p, number | (uint64_t)depth << 32, 8);
  put(&p, reason | (uint64_t)type << 32, 8);
  put(&p, 0, 2 + 8);
  send(f, 1, 2, &p);
}

static void gc_end(struct feeder *f, uint32_t number) {
  struct payload p = {.len = 0};
  put(&p, number | (uint64_t)2 << 32, 8); /* Count, Depth 2 */
  put(&p, 0, 2);                          /* ClrInstanceID */
  send(f, 2, 1, &p);
}

/* GCHeapStats_V2: generations 0-4 (4: the pinned object heap) of
 * gen0, 2 x gen0, ... 5 x gen0 bytes. */
static void heap_stats(struct feeder *f, uint64_t gen0) {
  struct payload p = {.len = 0};
  for (uint64_t i = 0; i < 4; i++) {
    put(&p, gen0 * (i + 1), 8); /* GenerationSize */
    put(&p, 7, 8);              /* TotalPromotedSize */
  }
  put(&p, 0, 8 + 8 + 4 + 4 + 4 + 2); /* finalization .. ClrInstanceID */
  put(&p, gen0 * 5, 8);
  put(&p, 7, 8);
  send(f, 4, 2, &p);
}

/* One BulkType value per (id, name). */
static void bulk_type(struct feeder *f, const uint64_t *ids,
                      const char *const *names, uint32_t n) {
  struct payload p = {.len = 0};
  put(&p, n, 4);
  put(&p, 0, 2);
  for (uint32_t i = 0; i < n; i++) {
    put(&p, ids[i], 8);
    put(&p, 0x1000, 8); /* ModuleID */
    put(&p, 0, 4);      /* TypeNameID */
    put(&p, 0, 4);      /* Flags */
    put(&p, 0, 1);      /* CorElementType */
    put_str(&p, names[i]);
    put(&p, 1, 4); /* one type parameter */
    put(&p, 0x2000, 8);
  }
  send(f, 15, 0, &p);
}

/* A GCBulkNode event of n nodes, node k of type ids[k], size sizes[k]. */
static void bulk_node(struct feeder *f, uint32_t index, const uint64_t *ids,
                      const uint64_t *sizes, uint32_t n) {
  struct payload p = {.len = 0};
  put(&p, index, 4);
  put(&p, n, 4);
  put(&p, 0, 2);
  for (uint32_t i = 0; i < n; i++) {
    put(&p, 0x10000 + 64 * i, 8); /* Address */
    put(&p, sizes[i], 8);
    put(&p, ids[i], 8);
    put(&p, 0, 8); /* EdgeCount */
  }
  send(f, 18, 0, &p);
}

static struct feeder feeder(enum gctypes_mode mode, uint32_t max_types) {
  struct gctypes_limits lim = {.max_types = max_types};
  struct feeder f = {.g = gctypes_new(mode, &lim), .seq = 1};
  if (f.g == NULL)
    abort();
  return f;
}

static struct gctypes_summary finish(struct feeder *f, uint64_t dropped) {
  struct gctypes_summary s;
  gctypes_finish(f->g, 0, dropped);
  gctypes_summary(f->g, &s);
  return s;
}

static const uint64_t ids3[] = {0xA0, 0xB0, 0xC0};
static const uint64_t sizes3[] = {24, 24, 24};

/* A snapshot in GC `number`: one node event of the three types per entry
 * of index[] (-1 ends the list), its GC's end if `ended`, then the end of
 * the stream as nettrace_reader_finish says it (stream_rc). */
static struct gctypes_summary walk(struct feeder *f, uint32_t number,
                                   const int *index, int ended, int stream_rc) {
  struct gctypes_summary s;
  gc_start(f, number, 2, 1, 0);
  for (; *index >= 0; index++)
    bulk_node(f, (uint32_t)*index, ids3, sizes3, 3);
  if (ended)
    gc_end(f, number);
  gctypes_finish(f->g, stream_rc, 0);
  gctypes_summary(f->g, &s);
  return s;
}
static const char *const names3[] = {"Shop.SpikeMarker", "System.String",
                                     "System.Collections.Generic.List`1"
                                     "[System.String]"};

DEF_TEST(snapshot) {
  struct feeder f = feeder(GCTYPES_HEAP, 0);
  const uint64_t sizes[] = {1000, 30, 40};
  gc_start(&f, 4, 1, 1, 0); /* gen1: not the snapshot */
  gc_end(&f, 4);
  gc_start(&f, 5, 2, 0, 0); /* gen2 the runtime chose: not one either */
  gc_end(&f, 5);
  bulk_type(&f, ids3, names3, 2);
  gc_start(&f, 6, 2, 1, 0);
  bulk_node(&f, 0, ids3, sizes, 3);
  bulk_node(&f, 1, ids3, sizes, 2);
  CHECK(!gctypes_snapshot_done(f.g));
  gc_end(&f, 6);
  CHECK(gctypes_snapshot_done(f.g));
  bulk_type(&f, ids3 + 2, names3 + 2, 1); /* names may come late */
  struct gctypes_summary s = finish(&f, 0);
  EXPECT_EQ_INT(1, s.complete);
  EXPECT_EQ_U64(5, s.count);
  EXPECT_EQ_U64(2100, s.bytes);
  EXPECT_EQ_INT(3, s.types);
  EXPECT_EQ_INT(6, s.gc_number);
  EXPECT_EQ_DOUBLE(3.0, s.gc_pause_ms, 1e-9); /* 3000 ticks at 1 MHz */
  struct gctypes_row rows[4];
  EXPECT_EQ_INT(3, gctypes_top(f.g, rows, 4));
  EXPECT_EQ_STR("Shop.SpikeMarker", rows[0].name);
  EXPECT_EQ_U64(2, rows[0].count);
  EXPECT_EQ_U64(2000, rows[0].bytes);
  EXPECT_EQ_DOUBLE(2000.0 / 2100, rows[0].share, 1e-12);
  EXPECT_EQ_STR("System.String", rows[1].name);
  EXPECT_EQ_STR("System.Collections.Generic.List<System.String>", rows[2].name);
  gctypes_free(f.g);
  return 0;
}

DEF_TEST(lost_events) {
  /* a gap in the thread's sequence numbers, and the reader's drops */
  struct feeder f = feeder(GCTYPES_HEAP, 0);
  gc_start(&f, 2, 2, 1, 0);
  f.seq += 3; /* three events the runtime dropped */
  bulk_node(&f, 0, ids3, sizes3, 3);
  gc_end(&f, 2);
  heap_stats(&f, 1000);
  struct gctypes_summary s = finish(&f, 2);
  EXPECT_EQ_INT(0, s.complete);
  EXPECT_EQ_U64(5, s.lost_events);
  EXPECT_EQ_U64(1000 + 2000 + 3000 + 4000 + 5000, s.gc_heap_bytes);
  EXPECT_EQ_STR("5 events lost; objects of 72 bytes seen in a heap of "
                "15000 bytes",
                s.reason);
  gctypes_free(f.g);

  /* a thread first seen past 1 lost the ones before */
  f = feeder(GCTYPES_ALLOC, 0);
  f.seq = 4;
  gc_start(&f, 2, 2, 1, 0);
  s = finish(&f, 0);
  EXPECT_EQ_U64(3, s.lost_events);
  gctypes_free(f.g);

  /* threads past max_threads: their events are not checked, and said so */
  struct gctypes_limits lim = {.max_threads = 1};
  f = (struct feeder){.g = gctypes_new(GCTYPES_ALLOC, &lim), .seq = 1};
  gc_start(&f, 2, 2, 1, 0);
  f.thread = 8;
  f.seq = 9;
  gc_start(&f, 3, 2, 1, 0);
  gc_start(&f, 4, 2, 1, 0);
  s = finish(&f, 0);
  EXPECT_EQ_U64(0, s.lost_events);
  EXPECT_EQ_U64(2, s.unchecked_events);
  gctypes_free(f.g);
  return 0;
}

/* Heap walks in GC 3, each node event holding three nodes. */
DEF_TEST(walks) {
  static const struct {
    const char *what;
    int index[6]; /* the node events' Index, -1 ends */
    int ended, stream_rc;
    int complete;
    uint64_t count, node_events, lost_node_events;
    const char *reason;
  } cases[] = {
      {"whole", {0, 1, -1}, 1, 0, 1, 6, 2, 0, ""},
      {"node events missing from the walk's numbering",
       {0, 3, -1},
       1,
       0,
       0,
       6,
       2,
       2,
       "2 of 4 node events lost"},
      {"the walk's first node events missing",
       {2, 3, -1},
       1,
       0,
       0,
       6,
       2,
       2,
       "2 of 4 node events lost"},
      {"cut in the middle: the GC never ends",
       {0, -1},
       0,
       -ENODATA,
       0,
       3,
       1,
       0,
       "the snapshot's GC 3 never ended in the stream; "
       "the stream ended early (cut)"},
      {"cut after the GC ended: what it walked is all there",
       {0, 1, -1},
       1,
       -ENODATA,
       1,
       6,
       2,
       0,
       ""},
      {"another session's walk after ours: Index 0 again, not counted",
       {0, 1, 0, 1, -1},
       1,
       0,
       1,
       6,
       2,
       0,
       ""},
      {"an Index repeated: not counted twice",
       {0, 1, 1, 2, -1},
       1,
       0,
       0,
       9,
       3,
       0,
       "1 events malformed"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    printf("# %s\n", cases[i].what);
    struct feeder f = feeder(GCTYPES_HEAP, 0);
    struct gctypes_summary s =
        walk(&f, 3, cases[i].index, cases[i].ended, cases[i].stream_rc);
    EXPECT_EQ_INT(cases[i].ended, gctypes_snapshot_done(f.g));
    EXPECT_EQ_INT(cases[i].complete, s.complete);
    EXPECT_EQ_U64(cases[i].count, s.count);
    EXPECT_EQ_U64(cases[i].node_events, s.node_events);
    EXPECT_EQ_U64(cases[i].lost_node_events, s.lost_node_events);
    EXPECT_EQ_STR(cases[i].reason, s.reason);
    gctypes_free(f.g);
  }
  return 0;
}

DEF_TEST(unfinished) {
  struct gctypes_summary s;
  /* no induced blocking gen2 GC at all: a background GC is not one */
  struct feeder f = feeder(GCTYPES_HEAP, 0);
  gc_start(&f, 4, 2, 1, 1);
  gc_end(&f, 4);
  s = finish(&f, 0);
  EXPECT_EQ_INT(0, s.complete);
  EXPECT_EQ_STR("no heap snapshot: no induced blocking gen2 GC started",
                s.reason);
  gctypes_free(f.g);

  /* not finished yet, then finished with no event */
  f = feeder(GCTYPES_ALLOC, 0);
  gctypes_summary(f.g, &s);
  EXPECT_EQ_STR("not finished", s.reason);
  s = finish(&f, 0);
  EXPECT_EQ_STR("no allocation events", s.reason);
  EXPECT_EQ_INT(0, s.complete);
  gctypes_free(f.g);
  return 0;
}

/* n nodes of n types 0x100, 0x101, ...: sizes size0, size0 + step, ... */
static void series(uint64_t *ids, uint64_t *sizes, int n, uint64_t size0,
                   uint64_t step) {
  for (int i = 0; i < n; i++) {
    ids[i] = 0x100 + (uint64_t)i;
    sizes[i] = size0 + step * (uint64_t)i;
  }
}

DEF_TEST(type_cap) {
  struct feeder f = feeder(GCTYPES_HEAP, 4);
  uint64_t ids[10], sizes[10];
  series(ids, sizes, 10, 100, 1);
  gc_start(&f, 1, 2, 1, 0);
  bulk_node(&f, 0, ids, sizes, 10);
  bulk_node(&f, 1, ids, sizes, 10);
  gc_end(&f, 1);
  struct gctypes_summary s = finish(&f, 0);
  EXPECT_EQ_INT(1, s.complete);
  EXPECT_EQ_INT(1, s.capped);
  EXPECT_EQ_INT(4, s.types);
  EXPECT_EQ_U64(20, s.count);
  EXPECT_EQ_U64(2 * 1045, s.bytes);
  EXPECT_EQ_U64(12, s.other_count);
  EXPECT_EQ_U64(2 * (104 + 105 + 106 + 107 + 108 + 109), s.other_bytes);
  char out[1024];
  gctypes_format(f.g, GCTYPES_CSV, 2, out, sizeof(out));
  EXPECT_EQ_STR("type,count,bytes\n"
                "(type 0x103),2,206\n"
                "(type 0x102),2,204\n"
                "(other),12,1278\n",
                out);
  gctypes_free(f.g);
  return 0;
}

/* A BulkType payload of one type, up to its name. */
static void bulk_type_head(struct payload *p, uint64_t id) {
  p->len = 0;
  put(p, 1, 4);             /* Count */
  put(p, 0, 2);             /* ClrInstanceID */
  put(p, id, 8);            /* TypeID */
  put(p, 0, 8 + 4 + 4 + 1); /* ModuleID, TypeNameID, Flags, CorElementType */
}

DEF_TEST(hostile_payloads) {
  struct feeder f = feeder(GCTYPES_HEAP, 0);
  struct payload p;
  gc_start(&f, 1, 2, 1, 0);

  /* a node count past the payload: nothing of it counted */
  p.len = 0;
  put(&p, 0, 4);
  put(&p, 1000, 4);
  put(&p, 0, 2);
  put(&p, 0x10, 8);
  put(&p, 24, 8);
  put(&p, 0xA0, 8);
  put(&p, 0, 8);
  send(&f, 18, 0, &p);
  /* a count near 2^32: no multiplication wraps */
  p.len = 0;
  put(&p, 0, 4);
  put(&p, 0xFFFFFFFF, 4);
  put(&p, 0, 2);
  send(&f, 18, 0, &p);
  /* headers cut short (six bytes are a whole BulkType header: of 0 types) */
  p.len = 6;
  send(&f, 18, 0, &p);
  send(&f, 1, 2, &p);
  send(&f, 15, 0, &p);
  /* a type name without its terminator */
  bulk_type_head(&p, 0xA0);
  for (int i = 0; i < 40; i++)
    put(&p, 'A', 2);
  send(&f, 15, 0, &p);
  /* a type parameter count past the payload */
  bulk_type_head(&p, 0xA0);
  put_str(&p, "X");
  put(&p, 0x40000000, 4);
  send(&f, 15, 0, &p);
  /* a value count the payload cannot hold */
  p.len = 0;
  put(&p, 0xFFFFFFF0, 4);
  put(&p, 0, 2);
  send(&f, 15, 0, &p);
  /* sizes that would wrap a sum: it saturates */
  const uint64_t big[] = {UINT64_MAX, UINT64_MAX};
  const uint64_t same[] = {0xA0, 0xA0};
  bulk_node(&f, 0, same, big, 2);
  /* a name made of control characters, quotes and commas */
  const uint64_t id[] = {0xA0};
  const char *const nasty[] = {"Evil\n\x1b[31m\"x\",\\y"};
  bulk_type(&f, id, nasty, 1);
  gc_end(&f, 1);
  struct gctypes_summary s = finish(&f, 0);
  EXPECT_EQ_INT(0, s.complete);
  EXPECT_EQ_U64(7, s.bad_events);
  EXPECT_EQ_STR("7 events malformed", s.reason);
  EXPECT_EQ_U64(2, s.count);
  EXPECT_EQ_U64(UINT64_MAX, s.bytes);
  struct gctypes_row row;
  EXPECT_EQ_INT(1, gctypes_top(f.g, &row, 1));
  EXPECT_EQ_STR("Evil__<31m\"x\",\\y", row.name);
  char out[1024];
  gctypes_format(f.g, GCTYPES_CSV, 1, out, sizeof(out));
  EXPECT_EQ_STR("type,count,bytes\n"
                "\"Evil__<31m\"\"x\"\",\\y\",2,18446744073709551615\n",
                out);
  gctypes_format(f.g, GCTYPES_JSON, 1, out, sizeof(out));
  CHECK(strstr(out, "\"type\":\"Evil__<31m\\\"x\\\",\\\\y\"") != NULL);
  gctypes_free(f.g);
  return 0;
}

DEF_TEST(pointer_size_4) {
  struct gctypes *g = gctypes_new(GCTYPES_HEAP, NULL);
  struct payload p = {.len = 0};
  put(&p, 0, 4);
  put(&p, 2, 4);
  put(&p, 0, 2);
  for (int i = 0; i < 2; i++) {
    put(&p, 0x1000, 4); /* a 4-byte Address */
    put(&p, 12, 8);
    put(&p, 0xA0, 8);
    put(&p, 0, 8);
  }
  struct nettrace_meta meta = {.provider = GCTYPES_PROVIDER, .event_id = 18};
  struct nettrace_event ev = {
      .meta = &meta, .payload = p.b, .payload_len = (uint32_t)p.len};
  struct nettrace_trace_info ti32 = {.pointer_size = 4};
  gctypes_event(g, &ev, &ti32);
  struct nettrace_trace_info bad = {.pointer_size = 6};
  gctypes_event(g, &ev, &bad);
  gctypes_finish(g, 0, 0);
  struct gctypes_summary s;
  gctypes_summary(g, &s);
  EXPECT_EQ_U64(2, s.count);
  EXPECT_EQ_U64(24, s.bytes);
  EXPECT_EQ_U64(1, s.bad_events);
  gctypes_free(g);
  return 0;
}

static void allocation_sampled(struct feeder *f, uint64_t id, const char *name,
                               uint64_t size, uint64_t offset) {
  struct payload p = {.len = 0};
  put(&p, 0, 4);
  put(&p, 0, 2);
  put(&p, id, 8);
  put_str(&p, name);
  put(&p, 0x5000, 8);
  put(&p, size, 8);
  put(&p, offset, 8);
  send(f, 303, 0, &p);
}

static void allocation_tick(struct feeder *f, uint64_t id, const char *name,
                            uint64_t amount) {
  struct payload p = {.len = 0};
  put(&p, (uint32_t)amount, 4);
  put(&p, 0, 4);
  put(&p, 0, 2);
  put(&p, amount, 8);
  put(&p, id, 8);
  put_str(&p, name);
  put(&p, 0, 4);
  put(&p, 0x5000, 8);
  put(&p, 24, 8);
  send(f, 10, 4, &p);
}

DEF_TEST(alloc_methods) {
  /* ticks alone: bytes are the ticks' AllocationAmount64 */
  struct feeder f = feeder(GCTYPES_ALLOC, 0);
  allocation_tick(&f, 0xA0, "Shop.SpikeMarker", 100000);
  allocation_tick(&f, 0xA0, "Shop.SpikeMarker", 102000);
  allocation_tick(&f, 0xB0, "System.String", 101000);
  struct gctypes_summary s = finish(&f, 0);
  EXPECT_EQ_INT(1, s.complete);
  EXPECT_EQ_STR("GCAllocationTick", s.method);
  EXPECT_EQ_U64(3, s.count);
  EXPECT_EQ_U64(303000, s.bytes);
  gctypes_free(f.g);

  /* with AllocationSampled in the same session, the samples count: each
   * stands for 102399 bytes plus its object past the sampling point */
  f = feeder(GCTYPES_ALLOC, 0);
  allocation_tick(&f, 0xA0, "Shop.SpikeMarker", 100000);
  allocation_sampled(&f, 0xA0, "Shop.SpikeMarker", 100, 40);
  allocation_sampled(&f, 0xA0, "Shop.SpikeMarker", 100, 100);
  allocation_sampled(&f, 0xB0, "System.String", 30, 0);
  s = finish(&f, 0);
  EXPECT_EQ_STR("AllocationSampled", s.method);
  EXPECT_EQ_U64(3, s.count);
  EXPECT_EQ_U64(3 * 102399 + 60 + 30, s.bytes);
  struct gctypes_row rows[2];
  EXPECT_EQ_INT(2, gctypes_top(f.g, rows, 2));
  EXPECT_EQ_STR("Shop.SpikeMarker", rows[0].name);
  EXPECT_EQ_U64(2, rows[0].count);
  EXPECT_EQ_U64(2 * 102399 + 60, rows[0].bytes);
  char out[512];
  gctypes_format(f.g, GCTYPES_CSV, 2, out, sizeof(out));
  EXPECT_EQ_STR("type,samples,bytes\nShop.SpikeMarker,2,204858\n"
                "System.String,1,102429\n",
                out);
  gctypes_free(f.g);
  return 0;
}

DEF_TEST(formats) {
  struct feeder f = feeder(GCTYPES_HEAP, 0);
  uint64_t ids[20], sizes[20];
  series(ids, sizes, 20, 1000000, 1000);
  const char *const names[] = {
      "Shop.Orders.SpikeMarker",
      "A.Very.Long.Namespace.With.Many.Parts.And.A.Generic.Type`2[System."
      "String,System.Collections.Generic.Dictionary`2[System.Int32,System."
      "Object]]"};
  const uint64_t named[] = {0x100 + 19, 0x100 + 18};
  gc_start(&f, 1, 2, 1, 0);
  bulk_type(&f, named, names, 2);
  bulk_node(&f, 0, ids, sizes, 20);
  gc_end(&f, 1);
  finish(&f, 0);

  /* compact: whole lines only, within a notification's 256 bytes less a
   * prefix such as "shop (pid 4242) at 631 MB: " */
  char msg[256 - 27];
  size_t len = gctypes_format(f.g, GCTYPES_COMPACT, 10, msg, sizeof(msg));
  printf("# compact: %s\n", msg);
  EXPECT_EQ_U64(strlen(msg), len);
  CHECK(len < sizeof(msg));
  CHECK(strncmp(msg, "Shop.Orders.SpikeMarker 1 objects 1.0 MB (5 %); ", 48) ==
        0);
  CHECK(strstr(msg, "A.Very.Long.Namespace.With.Many.Parts.And.A.Generic.Type<"
                    "... 1 objects") != NULL);
  CHECK(len >= 4 && strcmp(msg + len - 4, " %)") != 0 && msg[len - 1] == ')');
  char tiny[8];
  EXPECT_EQ_U64(0, gctypes_format(f.g, GCTYPES_COMPACT, 3, tiny, 8));
  EXPECT_EQ_STR("", tiny);

  /* text and json; a buffer too small: cut, with the length wanted */
  char out[4096];
  size_t want = gctypes_format(f.g, GCTYPES_TEXT, 3, out, sizeof(out));
  EXPECT_EQ_U64(strlen(out), want);
  CHECK(strncmp(out,
                "heap-types: 20190000 bytes in 20 objects of 20 types, "
                "complete\n",
                63) == 0);
  char small[40];
  EXPECT_EQ_U64(want, gctypes_format(f.g, GCTYPES_TEXT, 3, small, 40));
  EXPECT_EQ_U64(39, strlen(small));
  gctypes_format(f.g, GCTYPES_JSON, 1, out, sizeof(out));
  EXPECT_EQ_STR("{\"action\":\"heap-types\",\"complete\":true,\"reason\":\"\","
                "\"count\":20,\"bytes\":20190000,\"types\":20,"
                "\"lost_events\":0,\"malformed_events\":0,"
                "\"lost_node_events\":0,\"gc\":{\"number\":1,\"ended\":true,"
                "\"pause_ms\":3.000,\"heap_bytes\":0},\"other\":{\"count\":0,"
                "\"bytes\":0},\"top\":[{\"type\":\"Shop.Orders.SpikeMarker\","
                "\"id\":\"0x113\",\"count\":1,\"bytes\":1019000,"
                "\"share\":0.0505}]}\n",
                out);
  gctypes_free(f.g);
  return 0;
}

DEF_TEST(memory_bound) {
  size_t worst = gctypes_worst_bytes(NULL);
  printf("# worst case with the default limits: %zu bytes\n", worst);
  CHECK(worst > 0 && worst < (size_t)16 << 20);
  /* a table filled to its cap stays within its worst case */
  struct gctypes_limits lim = {.max_types = 1000, .max_names = 8192};
  struct feeder f = {.g = gctypes_new(GCTYPES_HEAP, &lim), .seq = 1};
  uint64_t ids[100], sizes[100];
  char name[64];
  const char *names[1] = {name};
  gc_start(&f, 1, 2, 1, 0);
  for (uint32_t k = 0; k < 30; k++) {
    for (int i = 0; i < 100; i++) {
      ids[i] = k * 100 + (uint64_t)i + 1;
      sizes[i] = 24;
    }
    bulk_node(&f, k, ids, sizes, 100);
    snprintf(name, sizeof(name), "Namespace.Type%" PRIu32 "WithAName", k);
    bulk_type(&f, ids, names, 1);
  }
  gc_end(&f, 1);
  struct gctypes_summary s = finish(&f, 0);
  EXPECT_EQ_INT(1000, s.types);
  EXPECT_EQ_U64(3000, s.count);
  EXPECT_EQ_U64(2000, s.other_count);
  CHECK(gctypes_memory(f.g) <= gctypes_worst_bytes(&lim));
  gctypes_free(f.g);

  /* the name arena: a name that would fill it to the last byte but for
   * its terminator is dropped, its type shown by id */
  lim = (struct gctypes_limits){.max_names = 64};
  f = (struct feeder){.g = gctypes_new(GCTYPES_HEAP, &lim), .seq = 1};
  const uint64_t two[] = {0xA0, 0xB0}, sz[] = {48, 24};
  const char *const fill[] = {"N.Thirty.Two.Bytes.Long.Name.Abc",
                              "N.Thirty.One.Bytes.Long.Name.Ab"};
  gc_start(&f, 1, 2, 1, 0);
  bulk_node(&f, 0, two, sz, 2);
  bulk_type(&f, two, fill, 2);
  gc_end(&f, 1);
  finish(&f, 0);
  struct gctypes_row rows[2];
  EXPECT_EQ_INT(2, gctypes_top(f.g, rows, 2));
  EXPECT_EQ_STR(fill[0], rows[0].name);
  EXPECT_EQ_STR("", rows[1].name);
  EXPECT_EQ_U64(1, finish(&f, 0).names_dropped);
  gctypes_free(f.g);
  gctypes_free(NULL);
  CHECK(gctypes_new((enum gctypes_mode)7, NULL) == NULL);
  return 0;
}

int main(int argc, char **argv) {
  static const char *const rel[] = {"fixtures", "tests/fixtures"};
  int have = testing_find_dir(argc, argv, "TEST_FIXTURES", rel, 2, fixtures_dir,
                              sizeof(fixtures_dir));
  struct blob probe = have ? slurp("heap-net10.nettrace") : (struct blob){0};
  have = probe.len > 0;
  free(probe.p);
  printf("# fixtures in %s\n", have ? fixtures_dir : "(none)");
  if (have) {
    RUN_TEST(fixtures);
    RUN_TEST(splits_heap);
    RUN_TEST(splits_alloc);
  } else {
    SKIP_TEST(fixtures, "fixtures missing (tests/fixtures/capture-gc.sh)");
  }
  RUN_TEST(snapshot);
  RUN_TEST(lost_events);
  RUN_TEST(unfinished);
  RUN_TEST(walks);
  RUN_TEST(type_cap);
  RUN_TEST(hostile_payloads);
  RUN_TEST(pointer_size_4);
  RUN_TEST(alloc_methods);
  RUN_TEST(formats);
  RUN_TEST(memory_bound);
  END_TEST;
}
