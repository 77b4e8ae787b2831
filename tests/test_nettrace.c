/**
 * collectd-dotnet - tests/test_nettrace.c
 *
 * Unit tests of the nettrace reader:
 *  - real traces from microsoft/perfview's test inputs (zip files, extracted
 *    with `unzip -p`), fed whole, byte by byte, in 7- and 4096-byte chunks and
 *    split in two at (a sample of) every offset: the same events each way, and
 *    the events per provider TraceEvent's baselines give (differences
 *    explained below);
 *  - synthetic streams for what the fixtures lack (uncompressed headers,
 *    V2Params arrays, nested objects, unknown objects, unknown metadata);
 *  - hostile input: truncation, corrupted sizes, random byte flips, caps,
 *    bytes after the end marker.
 *
 * Usage: test_nettrace [FIXTURES_DIR]; else $NETTRACE_FIXTURES; else
 * ../shared/fixtures/perfview beside the source tree. Without the fixtures (or
 * unzip) the tests that read them are reported as skipped; the rest run.
 */
#include "nettrace.h"
#include "nettrace_build.h"
#include "testing.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define MAX_FIXTURE_BYTES ((size_t)64 << 20)

/* ---- fixtures ---- */

struct fixture {
  const char *name; /* the .nettrace inside <name>.zip */
  uint8_t *data;
  size_t len;
};

static struct fixture fixtures[] = {
    {"eventpipe-dotnetcore3.0-win-x64-objver4.nettrace", NULL, 0},
    {"eventpipe-dotnetcore5.0-win-x64-arraytypes.nettrace", NULL, 0},
    {"eventpipe-dotnetcore6.0-win-x64-executioncheckpoints.nettrace", NULL, 0},
    {"only_managed_samples.nettrace", NULL, 0},
    {"mixed_managed_external_samples.nettrace", NULL, 0},
};
#define NFIXTURES (sizeof(fixtures) / sizeof(fixtures[0]))
enum { FX_30, FX_50, FX_60, FX_ONLY_MANAGED, FX_MIXED };

static char fixtures_dir[4096];

/* argv[1], $NETTRACE_FIXTURES, or ../shared/fixtures/perfview beside the
 * source tree (from this source file's directory, else the working
 * directory). */
static int find_fixtures_dir(int argc, char **argv) {
  static const char *const rel[] = {"../../shared/fixtures/perfview",
                                    "../shared/fixtures/perfview"};
  return testing_find_dir(argc, argv, "NETTRACE_FIXTURES", rel,
                          sizeof(rel) / sizeof(rel[0]), fixtures_dir,
                          sizeof(fixtures_dir));
}

/* Runs `unzip -p ZIP` (no shell) and reads its stdout. Returns 0, -ENOENT
 * when unzip cannot be run, or another negative errno. */
static int unzip_member(const char *zip, uint8_t **out, size_t *out_len) {
  int pipefd[2] = {-1, -1};
  posix_spawn_file_actions_t fa;
  pid_t pid = -1;
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0;
  int rc = 0;

  if (pipe(pipefd) != 0)
    return -errno;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&fa, pipefd[0]);
  posix_spawn_file_actions_addclose(&fa, pipefd[1]);
  char *const args[] = {"unzip", "-p", (char *)zip, NULL};
  rc = posix_spawnp(&pid, "unzip", &fa, NULL, args, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(pipefd[1]);
  if (rc != 0) {
    rc = -rc;
    pid = -1;
    goto cleanup;
  }
  for (;;) {
    if (len == cap) {
      if (cap >= MAX_FIXTURE_BYTES) {
        rc = -E2BIG;
        goto cleanup;
      }
      cap = cap ? cap * 2 : 1 << 20;
      uint8_t *n = realloc(buf, cap);
      if (n == NULL) {
        rc = -ENOMEM;
        goto cleanup;
      }
      buf = n;
    }
    ssize_t got = read(pipefd[0], buf + len, cap - len);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0) {
      rc = -errno;
      goto cleanup;
    }
    if (got == 0)
      break;
    len += (size_t)got;
  }

cleanup:
  close(pipefd[0]);
  if (pid > 0) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
      ;
    if (rc == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
      rc = WIFEXITED(status) && WEXITSTATUS(status) == 127 ? -ENOENT : -EIO;
  }
  if (rc != 0 || len == 0) {
    free(buf);
    return rc != 0 ? rc : -ENODATA;
  }
  *out = buf;
  *out_len = len;
  return 0;
}

/* 1 when every fixture is loaded; 0 (with the reason printed) when one is
 * missing or unzip is not there: the tests that need them are skipped. */
static int load_fixtures(void) {
  for (size_t i = 0; i < NFIXTURES; i++) {
    char zip[4200];
    snprintf(zip, sizeof(zip), "%s/%s.zip", fixtures_dir, fixtures[i].name);
    if (access(zip, R_OK) != 0) {
      printf("# missing %s\n", zip);
      return 0;
    }
    int rc = unzip_member(zip, &fixtures[i].data, &fixtures[i].len);
    if (rc == -ENOENT) {
      printf("# unzip not available\n");
      return 0;
    }
    if (rc != 0) {
      printf("# cannot extract %s: %s\n", zip, strerror(-rc));
      exit(1);
    }
  }
  return 1;
}

static void free_fixtures(void) {
  for (size_t i = 0; i < NFIXTURES; i++)
    free(fixtures[i].data);
}

/* ---- what a read produced ---- */

#define MAX_PROVIDERS 16

struct summary {
  uint64_t events;
  uint64_t checksum; /* FNV-1a over every event's header fields and payload */
  struct {
    char name[96];
    uint64_t count;
  } providers[MAX_PROVIDERS];
  int nproviders;
  const struct nettrace_meta *last_meta; /* and its provider's index: */
  int last_provider;
  int feed_rc;
  int finish_rc;
  struct nettrace_stats stats;
};

/* A 64-bit FNV-1a variant that takes 8 bytes a step. */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const uint8_t *b = p;
  for (; n >= 8; n -= 8, b += 8) {
    uint64_t v;
    memcpy(&v, b, 8);
    h = (h ^ v) * 0x100000001b3ULL;
    h ^= h >> 29;
  }
  for (; n > 0; n--, b++)
    h = (h ^ *b) * 0x100000001b3ULL;
  return h;
}

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}
static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static void summary_cb(void *ctx, const struct nettrace_event *ev) {
  struct summary *s = ctx;
  uint64_t h = s->checksum;
  h = fnv(h, &ev->meta->id, sizeof(ev->meta->id));
  h = fnv(h, &ev->timestamp, sizeof(ev->timestamp));
  h = fnv(h, &ev->thread_id, sizeof(ev->thread_id));
  h = fnv(h, &ev->capture_thread_id, sizeof(ev->capture_thread_id));
  h = fnv(h, &ev->sequence, sizeof(ev->sequence));
  h = fnv(h, &ev->processor, sizeof(ev->processor));
  h = fnv(h, &ev->stack_id, sizeof(ev->stack_id));
  h = fnv(h, ev->activity_id, 16);
  h = fnv(h, ev->related_activity_id, 16);
  h = fnv(h, &ev->payload_len, sizeof(ev->payload_len));
  h = fnv(h, ev->payload, ev->payload_len);
  s->checksum = h;
  s->events++;
  if (ev->meta == s->last_meta) {
    s->providers[s->last_provider].count++;
    return;
  }
  int i;
  for (i = 0; i < s->nproviders; i++)
    if (strcmp(s->providers[i].name, ev->meta->provider) == 0)
      break;
  if (i == s->nproviders) {
    if (i == MAX_PROVIDERS)
      return;
    snprintf(s->providers[i].name, sizeof(s->providers[i].name), "%s",
             ev->meta->provider);
    s->nproviders++;
  }
  s->providers[i].count++;
  s->last_meta = ev->meta;
  s->last_provider = i;
}

static uint64_t provider_count(const struct summary *s, const char *name) {
  for (int i = 0; i < s->nproviders; i++)
    if (strcmp(s->providers[i].name, name) == 0)
      return s->providers[i].count;
  return 0;
}

/* Feeds data in pieces: chunk bytes at a time (0: whole), or, if split is
 * nonzero, data[0..split) then the rest. */
static void read_stream(const uint8_t *data, size_t len, size_t chunk,
                        size_t split, const struct nettrace_limits *limits,
                        struct summary *s) {
  memset(s, 0, sizeof(*s));
  s->checksum = 0xcbf29ce484222325ULL;
  struct nettrace_reader *r = nettrace_reader_new(limits, summary_cb, s);
  if (r == NULL) {
    s->feed_rc = -ENOMEM;
    return;
  }
  s->feed_rc = feed_pieces(r, data, len, chunk, split);
  s->finish_rc = nettrace_reader_finish(r);
  s->stats = *nettrace_reader_stats(r);
  if (s->finish_rc != 0 && getenv("NETTRACE_VERBOSE") != NULL)
    printf("# reader: %s at %" PRIu64 "\n", nettrace_reader_error(r),
           nettrace_reader_error_offset(r));
  nettrace_reader_free(r);
}

static int same_summary(const struct summary *a, const struct summary *b) {
  return a->feed_rc == b->feed_rc && a->finish_rc == b->finish_rc &&
         a->events == b->events && a->checksum == b->checksum &&
         a->stats.dropped == b->stats.dropped &&
         a->stats.event_blocks == b->stats.event_blocks &&
         a->stats.metadata_blocks == b->stats.metadata_blocks &&
         a->stats.stack_blocks == b->stats.stack_blocks &&
         a->stats.sp_blocks == b->stats.sp_blocks;
}

/* ---- fixture tests ---- */

struct expect {
  const char *provider;
  uint64_t count;
};

/* Events per provider. TraceEvent's baselines come from TraceLog, whose ETLX
 * conversion consumes some method events into its symbol tables instead of
 * passing them on (TraceEvent's own Streaming test reproduces the baselines
 * only by unsubscribing Clr.MethodILToNativeMap and subscribing to just the
 * rundown Loader*DCStop and Method DCStopInit/Complete events). This reader
 * delivers every event, so it sees more:
 *  - 3.0: Microsoft-Windows-DotNETRuntime 70298 + 35 MethodILToNativeMap
 *    (event id 190) = 70333;
 *  - 5.0: Microsoft-Windows-DotNETRuntimeRundown 103 + 1499
 *    MethodDCStopVerbose (event id 144) + 363 MethodDCStopILToNativeMap
 *    (event id 150) = 1965.
 * The other providers match the baselines exactly. The two sample traces
 * have no baseline; their figures are what this reader counts (pinned so a
 * regression shows). */
static const struct expect expect_30[] = {
    {"Microsoft-DotNETCore-SampleProfiler", 35161},
    {"Microsoft-Windows-DotNETRuntime", 70298 + 35},
    {"Microsoft-Windows-DotNETRuntimePrivate", 46},
    {NULL, 0}};
static const struct expect expect_50[] = {
    {"Microsoft-DotNETCore-EventPipe", 2},
    {"Microsoft-Windows-DotNETRuntimeRundown", 103 + 1499 + 363},
    {"TestEventSource0", 3},
    {NULL, 0}};
static const struct expect expect_60[] = {
    {"Microsoft-Windows-DotNETRuntimeRundown", 3}, {NULL, 0}};
static const struct expect expect_only_managed[] = {
    {"Microsoft-DotNETCore-EventPipe", 1},
    {"Microsoft-DotNETCore-SampleProfiler", 7423},
    {"Microsoft-Windows-DotNETRuntime", 29697},
    {"Microsoft-Windows-DotNETRuntimeRundown", 482},
    {NULL, 0}};
static const struct expect expect_mixed[] = {
    {"Microsoft-DotNETCore-EventPipe", 1},
    {"Microsoft-DotNETCore-SampleProfiler", 6331},
    {"Microsoft-Windows-DotNETRuntime", 25355},
    {"Microsoft-Windows-DotNETRuntimeRundown", 560},
    {NULL, 0}};

static const struct expect *const expects[NFIXTURES] = {
    expect_30, expect_50, expect_60, expect_only_managed, expect_mixed};

static void check_counts(const struct summary *s, const struct expect *e) {
  uint64_t total = 0;
  int n = 0;
  for (; e->provider != NULL; e++, n++) {
    printf("#   %-40s %" PRIu64 "\n", e->provider,
           provider_count(s, e->provider));
    EXPECT_EQ_U64(e->count, provider_count(s, e->provider));
    total += e->count;
  }
  EXPECT_EQ_INT(n, s->nproviders);
  EXPECT_EQ_U64(total, s->events);
}

DEF_TEST(fixtures_whole) {
  for (size_t i = 0; i < NFIXTURES; i++) {
    struct summary s;
    read_stream(fixtures[i].data, fixtures[i].len, 0, 0, NULL, &s);
    printf("# %s: %zu bytes, %" PRIu64 " events\n", fixtures[i].name,
           fixtures[i].len, s.events);
    EXPECT_EQ_INT(0, s.feed_rc);
    EXPECT_EQ_INT(0, s.finish_rc);
    EXPECT_EQ_U64(0, s.stats.dropped);
    EXPECT_EQ_U64(0, s.stats.unknown_objects);
    EXPECT_EQ_U64(fixtures[i].len, s.stats.bytes);
    CHECK(s.stats.event_blocks > 0);
    CHECK(s.stats.metadata_blocks > 0);
    CHECK(s.stats.stack_blocks > 0);
    CHECK(s.stats.sp_blocks > 0);
    check_counts(&s, expects[i]);
  }
  return 0;
}

/* Byte by byte, and in 7- and 4096-byte chunks: the same as one feed. Byte by
 * byte covers the first 1 MiB of the big trace (a truncated stream is as good
 * a test input: chunked and whole reads must agree on it too). */
DEF_TEST(fixtures_chunked) {
  static const size_t chunks[] = {1, 7, 4096};
  for (size_t i = 0; i < NFIXTURES; i++) {
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
      size_t len = fixtures[i].len;
      if (chunks[c] == 1 && len > (1u << 20))
        len = 1u << 20;
      struct summary whole, s;
      read_stream(fixtures[i].data, len, 0, 0, NULL, &whole);
      read_stream(fixtures[i].data, len, chunks[c], 0, NULL, &s);
      CHECK(same_summary(&whole, &s));
      EXPECT_EQ_INT(len == fixtures[i].len ? 0 : -ENODATA, s.finish_rc);
    }
  }
  return 0;
}

/* Object starts in d[0..len), from the type objects' byte pattern
 * 05 05 01 <version> <min version> <len> <name> 06 (BeginPrivateObject, then
 * the type object). */
static size_t object_starts(const uint8_t *d, size_t len, size_t *out,
                            size_t max) {
  size_t n = 0;
  for (size_t i = 32; i + 16 < len && n < max; i++) {
    if (d[i] != 5 || d[i + 1] != 5 || d[i + 2] != 1)
      continue;
    uint32_t name_len = le32(d + i + 11);
    if (name_len == 0 || name_len > 64 || i + 16 + name_len > len ||
        d[i + 15 + name_len] != 6)
      continue;
    out[n++] = i;
  }
  return n;
}

static int split_differs(const uint8_t *d, size_t len, size_t k,
                         const struct summary *whole, const char *name) {
  struct summary s;
  read_stream(d, len, 0, k, NULL, &s);
  if (same_summary(whole, &s))
    return 0;
  printf("# %s (%zu bytes): split at %zu differs\n", name, len, k);
  return 1;
}

/* Two feeds split at an offset must read as one feed does. Every offset of
 * the small trace; for the others (too big to parse once per offset):
 *  - in the first 16 KiB (a truncated stream is as good a test input: split
 *    and whole reads must agree on it too): every offset of the first 400
 *    bytes, and for every object, every offset from just before its start
 *    through its type object, block size, padding and block header;
 *  - an evenly spread sample over the whole trace. */
DEF_TEST(fixtures_split) {
  static size_t starts[512];
  for (size_t i = 0; i < NFIXTURES; i++) {
    const uint8_t *d = fixtures[i].data;
    size_t len = fixtures[i].len;
    size_t plen = len < 16384 ? len : 16384;
    struct summary whole;
    int bad_splits = 0, nsplits = 0;

    read_stream(d, plen, 0, 0, NULL, &whole);
    size_t nstarts = object_starts(d, plen, starts, 512);
    size_t o = 0; /* the first object start whose framing k is not past */
    for (size_t k = 1; k < plen; k++) {
      while (o < nstarts && starts[o] + 40 < k)
        o++;
      if (!(k < 400 || len == plen || (o < nstarts && k + 1 >= starts[o])))
        continue;
      bad_splits += split_differs(d, plen, k, &whole, fixtures[i].name);
      nsplits++;
    }
    if (plen < len) {
      read_stream(d, len, 0, 0, NULL, &whole);
      size_t spread = len > (1u << 20) ? 10 : 30;
      for (size_t j = 1; j <= spread; j++, nsplits++)
        bad_splits += split_differs(d, len, len / (spread + 1) * j + j, &whole,
                                    fixtures[i].name);
    }
    printf("# %s: %d splits\n", fixtures[i].name, nsplits);
    EXPECT_EQ_INT(0, bad_splits);
  }
  return 0;
}

struct first_event {
  const struct nettrace_meta *meta[8];
  uint8_t payload[8][256];
  uint32_t payload_len[8];
  int n;
};

/* Keeps the first event of each of the first 8 metadata ids seen. */
static void first_event_cb(void *ctx, const struct nettrace_event *ev) {
  struct first_event *f = ctx;
  for (int i = 0; i < f->n; i++)
    if (f->meta[i] == ev->meta)
      return;
  if (f->n == 8)
    return;
  f->meta[f->n] = ev->meta;
  f->payload_len[f->n] = ev->payload_len;
  memcpy(f->payload[f->n], ev->payload,
         ev->payload_len < 256 ? ev->payload_len : 256);
  f->n++;
}

static int find_event(const struct first_event *f, const char *name) {
  for (int i = 0; i < f->n; i++)
    if (strcmp(f->meta[i]->event_name, name) == 0)
      return i;
  return -1;
}

/* The Trace object a reader read (NULL: none) is want. */
static void check_trace_info(const struct nettrace_trace_info *want,
                             const struct nettrace_trace_info *t) {
  CHECK(t != NULL);
  if (t == NULL)
    return;
  EXPECT_EQ_INT(want->pointer_size, t->pointer_size);
  EXPECT_EQ_INT(want->process_id, t->process_id);
  EXPECT_EQ_INT(want->num_processors, t->num_processors);
  EXPECT_EQ_INT(want->sampling_rate, t->sampling_rate);
  EXPECT_EQ_U64(want->sync_qpc, t->sync_qpc);
  EXPECT_EQ_U64(want->qpc_frequency, t->qpc_frequency);
  EXPECT_EQ_U64(want->sync_time_unix_ms, t->sync_time_unix_ms);
}

/* The Trace object of the 3.0 trace, as TraceEvent's
 * CanParseHeaderOfV4EventPipeFile test states it. */
DEF_TEST(trace_info) {
  struct nettrace_reader *r = nettrace_reader_new(NULL, NULL, NULL);
  CHECK(nettrace_reader_trace_info(r) == NULL);
  EXPECT_EQ_INT(0, nettrace_reader_feed(r, fixtures[FX_30].data, 200));
  /* sync time: .NET ticks 636962398197540000 (2019-06-15T23:56:59.754Z)
   * as ms since 1970; QPC then and its frequency; pointer size, pid,
   * processors, sampling rate */
  static const struct nettrace_trace_info want = {
      1560643019754, 100935252313, 3124099, 8, 10064, 4, 1000000};
  check_trace_info(&want, nettrace_reader_trace_info(r));
  EXPECT_EQ_INT(-ENODATA, nettrace_reader_finish(r));
  nettrace_reader_free(r);
  return 0;
}

/* Field values of first events, as the baselines show them. */
DEF_TEST(first_events) {
  struct first_event f = {0};
  struct nettrace_reader *r = nettrace_reader_new(NULL, first_event_cb, &f);
  EXPECT_EQ_INT(
      0, nettrace_reader_feed(r, fixtures[FX_60].data, fixtures[FX_60].len));
  EXPECT_EQ_INT(0, nettrace_reader_finish(r));
  EXPECT_EQ_INT(1, f.n);
  if (f.n == 1) {
    /* ExecutionCheckpointDCEnd (event 300): the runtime sends no field
     * metadata for it; its payload is ClrInstanceID uint16, Name UTF-16z,
     * Timestamp int64. Baseline: ClrInstanceID="9" Name="RuntimeInit"
     * Timestamp="11,111,925,598,665". */
    EXPECT_EQ_INT(300, f.meta[0]->event_id);
    EXPECT_EQ_INT(0, f.meta[0]->nfields);
    EXPECT_EQ_INT(1, f.meta[0]->fields_ok);
    const uint8_t *p = f.payload[0];
    EXPECT_EQ_INT(9, le16(p));
    char name[32] = {0};
    size_t i = 0;
    for (; i < 31 && le16(p + 2 + 2 * i) != 0; i++)
      name[i] = (char)p[2 + 2 * i];
    EXPECT_EQ_STR("RuntimeInit", name);
    EXPECT_EQ_U64(11111925598665ULL,
                  le32(p + 4 + 2 * i) | (uint64_t)le32(p + 8 + 2 * i) << 32);
  }
  nettrace_reader_free(r);

  memset(&f, 0, sizeof(f));
  r = nettrace_reader_new(NULL, first_event_cb, &f);
  EXPECT_EQ_INT(
      0, nettrace_reader_feed(r, fixtures[FX_50].data, fixtures[FX_50].len));
  EXPECT_EQ_INT(0, nettrace_reader_finish(r));
  /* TestEvent1: arg0 uint32[], arg1 int16[], arg2 int64 (V2Params tag).
   * Baseline: arg0="[2032854139,...]" (6 elements)
   * arg1="[26494,17115,-7229,18850,27931]" arg2="2,033,417,279". */
  int e = find_event(&f, "TestEvent1");
  CHECK(e >= 0);
  if (e >= 0) {
    const struct nettrace_meta *m = f.meta[e];
    EXPECT_EQ_STR("TestEventSource0", m->provider);
    EXPECT_EQ_INT(1, m->fields_ok);
    EXPECT_EQ_INT(3, m->nfields);
    EXPECT_EQ_INT(5, m->nfields_total);
    EXPECT_EQ_STR("arg0", m->fields[0].name);
    EXPECT_EQ_INT(NETTRACE_TYPE_ARRAY, m->fields[0].type);
    EXPECT_EQ_INT(1, m->fields[0].nchildren);
    EXPECT_EQ_INT(1, m->fields[0].span);
    EXPECT_EQ_INT(NETTRACE_TYPE_UINT32, m->fields[1].type);
    EXPECT_EQ_STR("arg1", m->fields[2].name);
    EXPECT_EQ_INT(NETTRACE_TYPE_INT16, m->fields[3].type);
    EXPECT_EQ_STR("arg2", m->fields[4].name);
    EXPECT_EQ_INT(NETTRACE_TYPE_INT64, m->fields[4].type);
    const uint8_t *p = f.payload[e];
    EXPECT_EQ_INT(6, le16(p));
    EXPECT_EQ_U64(2032854139, le32(p + 2));
    p += 2 + 6 * 4;
    EXPECT_EQ_INT(5, le16(p));
    EXPECT_EQ_INT(26494, (int16_t)le16(p + 2));
    EXPECT_EQ_INT(-7229, (int16_t)le16(p + 6));
    p += 2 + 5 * 2;
    EXPECT_EQ_U64(2033417279, le32(p));
    EXPECT_EQ_U64(2 + 24 + 2 + 10 + 8, f.payload_len[e]);
  }
  /* TestEvent3 carries an OpCode tag (24; the baseline names it
   * TestEvent3/24) and arg0 char[] = "\uE7A3㎯隍ᳯ诤" (5 UTF-16 units; the
   * baseline shows "㎯隍ᳯ诤": its first character is a private-use one,
   * which does not display). */
  e = find_event(&f, "TestEvent3");
  CHECK(e >= 0);
  if (e >= 0) {
    EXPECT_EQ_INT(24, f.meta[e]->opcode);
    EXPECT_EQ_INT(NETTRACE_TYPE_CHAR, f.meta[e]->fields[1].type);
    const uint8_t *p = f.payload[e];
    EXPECT_EQ_INT(5, le16(p));
    EXPECT_EQ_INT(0xE7A3, le16(p + 2));
    EXPECT_EQ_INT(0x33AF, le16(p + 4));  /* ㎯ */
    EXPECT_EQ_INT(0x8BE4, le16(p + 10)); /* 诤 */
  }
  e = find_event(&f, "ProcessInfo");
  CHECK(e >= 0);
  if (e >= 0) {
    EXPECT_EQ_STR("CommandLine", f.meta[e]->fields[0].name);
    EXPECT_EQ_INT(NETTRACE_TYPE_STRING, f.meta[e]->fields[0].type);
    EXPECT_EQ_INT('C', f.payload[e][0]); /* "C:\work\arraytypes_test..." */
  }
  nettrace_reader_free(r);
  return 0;
}

/* ---- hostile input ---- */

/* A stream cut short must never read as complete. */
DEF_TEST(truncated) {
  for (size_t i = 0; i < NFIXTURES; i++) {
    const uint8_t *d = fixtures[i].data;
    size_t len = fixtures[i].len;
    size_t dense = len < 4096 ? len : 300;
    size_t spread = len > (1u << 20) ? 10 : 40;
    int bad_cuts = 0;
    for (size_t cut = 0; cut < len; cut++) {
      if (cut >= dense) {
        size_t step = (len - dense) / spread + 1;
        cut += step - 1 - (cut - dense) % step;
        if (cut >= len)
          break;
      }
      struct summary s;
      read_stream(d, cut, 0, 0, NULL, &s);
      if (!((s.feed_rc == 0 && s.finish_rc == -ENODATA) ||
            s.finish_rc == -EBADMSG) &&
          bad_cuts++ < 3)
        printf("# %s cut at %zu: feed %d finish %d\n", fixtures[i].name, cut,
               s.feed_rc, s.finish_rc);
    }
    /* Just the end marker missing. */
    struct summary s;
    read_stream(d, len - 1, 7, 0, NULL, &s);
    EXPECT_EQ_INT(-ENODATA, s.finish_rc);
    EXPECT_EQ_INT(0, bad_cuts);
  }
  return 0;
}

static int acceptable_rc(int rc) {
  return rc == 0 || rc == -EBADMSG || rc == -E2BIG || rc == -ENODATA;
}

/* Offsets of the int32 size of the first blocks of a stream. */
static size_t block_size_offsets(const uint8_t *d, size_t len, size_t *out,
                                 size_t max) {
  size_t starts[64], n = 0;
  size_t nstarts = object_starts(d, len, starts, 64);
  for (size_t i = 0; i < nstarts && n < max; i++)
    if (memcmp(d + starts[i] + 15, "Trace", 5) != 0)
      out[n++] = starts[i] + 16 + le32(d + starts[i] + 11);
  return n;
}

DEF_TEST(corrupted_sizes) {
  static const uint32_t values[] = {
      0, 1, 3, 4, 19, 0x00010000, 0x000fffff, 0x7fffffff, 0xffffffff};
  for (size_t i = 0; i < NFIXTURES; i++) {
    size_t len = fixtures[i].len;
    uint8_t *d = malloc(len);
    size_t offs[16];
    size_t n = block_size_offsets(fixtures[i].data, len, offs, 16);
    CHECK(n >= 3);
    for (size_t k = 0; k < n; k++) {
      uint32_t orig = le32(fixtures[i].data + offs[k]);
      for (size_t v = 0; v < sizeof(values) / sizeof(values[0]) + 2; v++) {
        uint32_t val = v < sizeof(values) / sizeof(values[0])
                           ? values[v]
                           : orig + (v % 2 ? 1 : -1);
        memcpy(d, fixtures[i].data, len);
        d[offs[k]] = (uint8_t)val;
        d[offs[k] + 1] = (uint8_t)(val >> 8);
        d[offs[k] + 2] = (uint8_t)(val >> 16);
        d[offs[k] + 3] = (uint8_t)(val >> 24);
        struct summary s;
        read_stream(d, len, 0, 0, NULL, &s);
        CHECK(acceptable_rc(s.finish_rc));
        if (val > (1u << 20))
          EXPECT_EQ_INT(-E2BIG, s.finish_rc);
      }
      if (len > (1u << 20) && k >= 3)
        break; /* enough of the big one */
    }
    free(d);
  }
  return 0;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* Random byte flips (fixed seed): any outcome but a crash, a sanitizer
 * report or a leak. The small trace gets every offset. */
DEF_TEST(random_flips) {
  uint64_t outcomes[4] = {0};
  for (size_t i = 0; i < NFIXTURES; i++) {
    size_t len = fixtures[i].len;
    uint8_t *d = malloc(len);
    memcpy(d, fixtures[i].data, len);
    size_t trials = len < 4096 ? len * 3 : len > (1u << 20) ? 6 : 40;
    for (size_t t = 0; t < trials; t++) {
      size_t at[3];
      int nflips = len < 4096 ? 1 : 1 + (int)(rng() % 3);
      for (int k = 0; k < nflips; k++) {
        at[k] = len < 4096 ? t / 3 : (size_t)(rng() % len);
        d[at[k]] ^= len < 4096 ? (uint8_t)(1u << (t % 3 * 3))
                               : (uint8_t)(1 + rng() % 255);
      }
      struct summary s;
      read_stream(d, len, t % 2 ? 4096 : 0, 0, NULL, &s);
      CHECK(acceptable_rc(s.finish_rc));
      outcomes[s.finish_rc == 0          ? 0
               : s.finish_rc == -EBADMSG ? 1
               : s.finish_rc == -E2BIG   ? 2
                                         : 3]++;
      memcpy(d, fixtures[i].data, len); /* undo */
    }
    free(d);
  }
  printf("# flips: %" PRIu64 " read, %" PRIu64 " EBADMSG, %" PRIu64
         " E2BIG, %" PRIu64 " ENODATA\n",
         outcomes[0], outcomes[1], outcomes[2], outcomes[3]);
  return 0;
}

DEF_TEST(trailing_bytes) {
  const struct fixture *fx = &fixtures[FX_60];
  uint8_t *d = malloc(fx->len + 1);
  memcpy(d, fx->data, fx->len);
  d[fx->len] = 0;
  struct summary s;
  read_stream(d, fx->len + 1, 0, 0, NULL, &s);
  EXPECT_EQ_INT(-EBADMSG, s.feed_rc);
  EXPECT_EQ_INT(-EBADMSG, s.finish_rc);
  EXPECT_EQ_U64(3, s.events); /* delivered before the stray byte */

  struct nettrace_reader *r = nettrace_reader_new(NULL, NULL, NULL);
  EXPECT_EQ_INT(0, nettrace_reader_feed(r, fx->data, fx->len));
  EXPECT_EQ_INT(1, nettrace_reader_done(r));
  EXPECT_EQ_INT(0, nettrace_reader_feed(r, NULL, 0));
  EXPECT_EQ_INT(-EBADMSG, nettrace_reader_feed(r, "x", 1));
  EXPECT_EQ_U64(fx->len, nettrace_reader_error_offset(r));
  EXPECT_EQ_STR("data after the end-of-stream marker",
                nettrace_reader_error(r));
  /* sticky */
  EXPECT_EQ_INT(-EBADMSG, nettrace_reader_feed(r, "", 0));
  EXPECT_EQ_INT(-EBADMSG, nettrace_reader_finish(r));
  nettrace_reader_free(r);
  free(d);
  return 0;
}

DEF_TEST(limits) {
  const struct fixture *fx = &fixtures[FX_50];
  struct nettrace_limits lim = {.max_object = 1024};
  struct nettrace_reader *r = nettrace_reader_new(&lim, NULL, NULL);
  EXPECT_EQ_INT(-E2BIG, nettrace_reader_feed(r, fx->data, fx->len));
  printf("# max_object: %s at %" PRIu64 "\n", nettrace_reader_error(r),
         nettrace_reader_error_offset(r));
  CHECK(strstr(nettrace_reader_error(r), "max_object") != NULL);
  EXPECT_EQ_INT(-E2BIG, nettrace_reader_finish(r));
  uint64_t whole_off = nettrace_reader_error_offset(r);
  nettrace_reader_free(r);

  /* Byte by byte: refused as soon as the size field is complete, at the
   * same offset (the size field of the block). */
  r = nettrace_reader_new(&lim, NULL, NULL);
  int rc = 0;
  size_t off = 0;
  for (; off < fx->len && rc == 0; off++)
    rc = nettrace_reader_feed(r, fx->data + off, 1);
  EXPECT_EQ_INT(-E2BIG, rc);
  EXPECT_EQ_U64(whole_off, nettrace_reader_error_offset(r));
  EXPECT_EQ_U64(whole_off + 4, off);
  nettrace_reader_free(r);

  struct summary s;
  lim = (struct nettrace_limits){.max_metas = 5};
  read_stream(fx->data, fx->len, 0, 0, &lim, &s);
  EXPECT_EQ_INT(-E2BIG, s.finish_rc);
  EXPECT_EQ_U64(5, s.stats.metas);

  lim = (struct nettrace_limits){.max_metadata = 600};
  read_stream(fx->data, fx->len, 0, 0, &lim, &s);
  EXPECT_EQ_INT(-E2BIG, s.finish_rc);
  CHECK(s.stats.metadata_bytes <= 600);

  /* The defaults hold every fixture (checked by fixtures_whole); the
   * biggest metadata set of them: */
  read_stream(fixtures[FX_30].data, fixtures[FX_30].len, 0, 0, NULL, &s);
  EXPECT_EQ_U64(39, s.stats.metas);
  return 0;
}

/* ---- synthetic streams ---- */

static void put_stream_header(struct buf *b) {
  put(b, "Nettrace", 8);
  put_u32(b, 20);
  put(b, "!FastSerialization.1", 20);
}

static void put_type(struct buf *b, const char *name, uint32_t version,
                     uint32_t min_version) {
  put_u8(b, 5); /* BeginPrivateObject */
  put_u8(b, 5);
  put_u8(b, 1);
  put_u32(b, version);
  put_u32(b, min_version);
  put_u32(b, (uint32_t)strlen(name));
  put(b, name, strlen(name));
  put_u8(b, 6);
}

/* The Trace object put_trace writes: 2024-02-29 12:34:56.789 UTC. */
static const struct nettrace_trace_info synthetic_trace = {
    1709210096789LL, 1000, 1000000, 8, 4242, 2, 1000};

static void put_trace(struct buf *b) {
  put_type(b, "Trace", 4, 4);
  /* 2024-02-29 12:34:56.789 UTC (a Thursday) */
  static const uint16_t st[8] = {2024, 2, 4, 29, 12, 34, 56, 789};
  for (int i = 0; i < 8; i++)
    put_u16(b, st[i]);
  const struct nettrace_trace_info *t = &synthetic_trace;
  put_u64(b, (uint64_t)t->sync_qpc);
  put_u64(b, (uint64_t)t->qpc_frequency);
  put_u32(b, t->pointer_size);
  put_u32(b, t->process_id);
  put_u32(b, t->num_processors);
  put_u32(b, t->sampling_rate);
  put_u8(b, 6);
}

/* A block object around content: int32 size, padding to a 4-byte stream
 * offset, content, EndObject. */
static void put_block(struct buf *b, const char *name, const struct buf *c) {
  put_type(b, name, 2, 2);
  put_u32(b, (uint32_t)c->len);
  while (b->len % 4 != 0)
    put_u8(b, 0);
  put(b, c->d, c->len);
  put_u8(b, 6);
}

static void put_block_header(struct buf *c, uint16_t flags) {
  put_u16(c, 20);
  put_u16(c, flags);
  put_u64(c, 0);
  put_u64(c, 0);
}

/* One uncompressed event blob (EventSize includes the padding). */
static void put_uncompressed(struct buf *c, uint32_t metadata_id, uint32_t seq,
                             uint64_t thread, uint64_t ts,
                             const struct buf *payload) {
  uint32_t size = 76 + (uint32_t)payload->len;
  size = (size + 3) & ~3u;
  size_t start = c->len;
  put_u32(c, size);
  put_u32(c, metadata_id | 0x80000000u); /* not sorted */
  put_u32(c, seq);
  put_u64(c, thread);
  put_u64(c, thread); /* capture thread */
  put_u32(c, 1);      /* processor */
  put_u32(c, 7);      /* stack id */
  put_u64(c, ts);
  for (int i = 0; i < 16; i++)
    put_u8(c, (uint8_t)(0xA0 + i));
  for (int i = 0; i < 16; i++)
    put_u8(c, 0);
  put_u32(c, (uint32_t)payload->len);
  put(c, payload->d, payload->len);
  while (c->len - start < 4 + size)
    put_u8(c, 0);
}

static void put_meta_header(struct buf *m, uint32_t id, const char *provider,
                            uint32_t event_id, const char *name) {
  put_u32(m, id);
  put_utf16z(m, provider);
  put_u32(m, event_id);
  put_utf16z(m, name);
  put_u64(m, 0x10);
  put_u32(m, 1); /* version */
  put_u32(m, 4); /* level */
}

/* A V2 field: int32 size (itself included), name, type codes and what
 * follows them (in `rest`). */
static void put_v2_field(struct buf *m, const char *name,
                         const struct buf *rest) {
  struct buf f = {.len = 0};
  put_utf16z(&f, name);
  put(&f, rest->d, rest->len);
  put_u32(m, (uint32_t)f.len + 4);
  put(m, f.d, f.len);
}

/* A compressed event header: the flags, then what they ask for: v[] are
 * the metadata id (0x01), sequence delta, capture thread and processor
 * (0x02), thread (0x04), stack id (0x08) and, always, the timestamp delta,
 * as varints of w bytes (0: the shortest); 16 bytes of activity id from
 * `activity` up (0x10), of related activity id from activity + 0x10 up
 * (0x20); the payload size len (0x80). */
static void put_compressed(struct buf *e, uint8_t f, const uint64_t v[7], int w,
                           uint8_t activity, uint64_t len) {
#define VAR(x) (w ? put_var_n(e, (x), w) : put_var(e, (x)))
  put_u8(e, f);
  if (f & 0x01)
    VAR(v[0]);
  if (f & 0x02) {
    VAR(v[1]);
    VAR(v[2]);
    VAR(v[3]);
  }
  if (f & 0x04)
    VAR(v[4]);
  if (f & 0x08)
    VAR(v[5]);
  VAR(v[6]);
  for (int i = 0; i < 16 && (f & 0x10); i++)
    put_u8(e, (uint8_t)(activity + i));
  for (int i = 0; i < 16 && (f & 0x20); i++)
    put_u8(e, (uint8_t)(activity + 0x10 + i));
  if (f & 0x80)
    VAR(len);
#undef VAR
}

/* What a test states of an event: its metadata id, header fields, payload
 * size and first bytes of payload and activity id. */
struct seen {
  uint32_t id, seq, stack, len;
  uint64_t ts, thread;
  uint8_t payload0, activity0;
};

struct collected {
  int n;
  struct seen ev[16];
  const struct nettrace_meta *meta[16];
};

static void collect_cb(void *ctx, const struct nettrace_event *ev) {
  struct collected *c = ctx;
  if (c->n == 16)
    return;
  c->meta[c->n] = ev->meta;
  c->ev[c->n] = (struct seen){
      .id = ev->meta->id,
      .seq = ev->sequence,
      .stack = ev->stack_id,
      .len = ev->payload_len,
      .ts = ev->timestamp,
      .thread = ev->thread_id,
      .payload0 = ev->payload_len ? ev->payload[0] : 0,
      .activity0 = ev->activity_id[0],
  };
  c->n++;
}

static void check_seen(const struct seen *want, const struct seen *got) {
  EXPECT_EQ_INT(want->id, got->id);
  EXPECT_EQ_INT(want->seq, got->seq);
  EXPECT_EQ_INT(want->stack, got->stack);
  EXPECT_EQ_INT(want->len, got->len);
  EXPECT_EQ_U64(want->ts, got->ts);
  EXPECT_EQ_U64(want->thread, got->thread);
  EXPECT_EQ_INT(want->payload0, got->payload0);
  EXPECT_EQ_INT(want->activity0, got->activity0);
}

/* m's header; its fields are checked by check_fields. */
static void check_meta(const struct nettrace_meta *want,
                       const struct nettrace_meta *m) {
  EXPECT_EQ_STR(want->provider, m->provider);
  EXPECT_EQ_STR(want->event_name, m->event_name);
  EXPECT_EQ_INT(want->event_id, m->event_id);
  EXPECT_EQ_U64(want->keywords, m->keywords);
  EXPECT_EQ_INT(want->version, m->version);
  EXPECT_EQ_INT(want->level, m->level);
  EXPECT_EQ_INT(want->opcode, m->opcode);
  EXPECT_EQ_INT(want->fields_ok, m->fields_ok);
  EXPECT_EQ_INT(want->nfields, m->nfields);
  EXPECT_EQ_INT(want->nfields_total, m->nfields_total);
}

/* Metadata (uncompressed block):
 *   1: V1 fields {a int32, s {x uint8, y string}, z double}
 *   2: V2Params {xs int32[], pts struct{u uint16, v int64}[]}, OpCode 9,
 *      an unknown tag kind (skipped)
 *   3: a field of type 99: fields_ok 0, events still delivered raw
 *   4: no field list at all
 * Events: uncompressed block (ids 1, 4, 77 unknown: dropped), a compressed
 * block (ids 2, 3, 2 with deltas, activity id, sorted flag), an unknown
 * object type, a stack block and a sequence point block. */
static void build_synthetic(struct buf *b) {
  struct buf c = {.len = 0}, m = {.len = 0}, p = {.len = 0}, r = {.len = 0};
  put_stream_header(b);
  put_trace(b);

  put_block_header(&c, 0);
  put_meta_header(&m, 1, "Prov-A", 10, "Ev1");
  put_u32(&m, 3);
  put_u32(&m, NETTRACE_TYPE_INT32);
  put_utf16z(&m, "a");
  put_u32(&m, NETTRACE_TYPE_OBJECT);
  put_u32(&m, 2);
  put_u32(&m, NETTRACE_TYPE_BYTE);
  put_utf16z(&m, "x");
  put_u32(&m, NETTRACE_TYPE_STRING);
  put_utf16z(&m, "y");
  put_utf16z(&m, "s");
  put_u32(&m, NETTRACE_TYPE_DOUBLE);
  put_utf16z(&m, "z");
  put_uncompressed(&c, 0, 0, 0, 0, &m);

  m.len = 0;
  put_meta_header(&m, 2, "Prov-B", 20, "Ev2");
  put_u32(&m, 0); /* empty V1 list */
  /* OpCode tag */
  put_u32(&m, 1);
  put_u8(&m, 1);
  put_u8(&m, 9);
  /* unknown tag kind 7 */
  put_u32(&m, 3);
  put_u8(&m, 7);
  put(&m, "abc", 3);
  /* V2Params tag */
  struct buf v2 = {.len = 0};
  put_u32(&v2, 2);
  r.len = 0;
  put_u32(&r, NETTRACE_TYPE_ARRAY);
  put_u32(&r, NETTRACE_TYPE_INT32);
  put_v2_field(&v2, "xs", &r);
  r.len = 0;
  put_u32(&r, NETTRACE_TYPE_ARRAY);
  put_u32(&r, NETTRACE_TYPE_OBJECT);
  put_u32(&r, 2);
  struct buf sub = {.len = 0};
  put_u32(&sub, NETTRACE_TYPE_UINT16);
  put_v2_field(&r, "u", &sub);
  sub.len = 0;
  put_u32(&sub, NETTRACE_TYPE_INT64);
  put_u16(&sub, 0xEEEE); /* padding up to the field's size */
  put_v2_field(&r, "v", &sub);
  put_v2_field(&v2, "pts", &r);
  put_u32(&m, (uint32_t)v2.len);
  put_u8(&m, 2);
  put(&m, v2.d, v2.len);
  put_uncompressed(&c, 0, 0, 0, 0, &m);

  m.len = 0;
  put_meta_header(&m, 3, "Prov-B", 30, "Weird");
  put_u32(&m, 1);
  put_u32(&m, 99);
  put_utf16z(&m, "w");
  put_uncompressed(&c, 0, 0, 0, 0, &m);

  m.len = 0;
  put_meta_header(&m, 4, "Prov-A", 40, "");
  put_uncompressed(&c, 0, 0, 0, 0, &m);
  put_block(b, "MetadataBlock", &c);

  /* uncompressed events */
  c.len = 0;
  put_block_header(&c, 0);
  p.len = 0;
  put_u8(&p, 0x11);
  put_u8(&p, 0x22);
  put_u8(&p, 0x33); /* 3 bytes: 1 byte of padding */
  put_uncompressed(&c, 1, 5, 100, 5000, &p);
  p.len = 0;
  put_uncompressed(&c, 4, 6, 100, 5001, &p);
  p.len = 1;
  p.d[0] = 0x44;
  put_uncompressed(&c, 77, 7, 100, 5002, &p);
  put_block(b, "EventBlock", &c);

  /* an object of a type from the future */
  c.len = 0;
  put_u32(&c, 0xdeadbeef);
  put_type(b, "FutureBlock", 1, 1);
  put_u32(b, (uint32_t)c.len);
  while (b->len % 4 != 0)
    put_u8(b, 0);
  put(b, c.d, c.len);
  put_u8(b, 6);

  /* stack block: ids 1, 2 */
  c.len = 0;
  put_u32(&c, 1);
  put_u32(&c, 2);
  put_u32(&c, 8);
  put_u64(&c, 0x1234);
  put_u32(&c, 0);
  put_block(b, "StackBlock", &c);

  /* compressed events */
  c.len = 0;
  put_block_header(&c, 1);
  /* 1st: metadata 2, seq 0+9+1 = 10, capture thread 200, proc 3, thread 201,
   * stack 2, ts 0 + 7000, activity id, sorted, 2 bytes of payload */
  static const uint64_t first[7] = {2, 9, 200, 3, 201, 2, 7000};
  put_compressed(&c, 0x01 | 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80, first, 0,
                 0xC0, 2);
  put(&c, "\x55\x66", 2);
  /* 2nd: metadata 3, everything else carried over; seq 11, ts +300 */
  static const uint64_t second[7] = {3, 0, 0, 0, 0, 0, 300};
  put_compressed(&c, 0x01, second, 0, 0, 0);
  put(&c, "\x77\x88", 2);
  /* 3rd: metadata 2 again, payload size 0 */
  static const uint64_t third[7] = {2, 0, 0, 0, 0, 0, 1};
  put_compressed(&c, 0x01 | 0x80, third, 0, 0, 0);
  put_block(b, "EventBlock", &c);

  /* sequence point: one thread */
  c.len = 0;
  put_u64(&c, 9999);
  put_u32(&c, 1);
  put_u64(&c, 200);
  put_u32(&c, 12);
  put_block(b, "SPBlock", &c);

  put_u8(b, 1); /* end of stream */
}

/* m's first n fields are want[0..n). */
static void check_fields(const struct nettrace_meta *m,
                         const struct nettrace_field *want, uint32_t n) {
  for (uint32_t i = 0; i < n && i < m->nfields_total; i++) {
    EXPECT_EQ_STR(want[i].name, m->fields[i].name);
    EXPECT_EQ_INT(want[i].type, m->fields[i].type);
    EXPECT_EQ_INT(want[i].nchildren, m->fields[i].nchildren);
    EXPECT_EQ_INT(want[i].span, m->fields[i].span);
  }
}

/* What build_synthetic's events read as: id, seq, stack, len, ts, thread,
 * payload0, activity0. */
static const struct seen events[] = {
    /* uncompressed: id 1, 3 bytes; id 4, empty */
    {1, 5, 7, 3, 5000, 100, 0x11, 0xA0},
    {4, 6, 7, 0, 5001, 100, 0, 0xA0},
    /* compressed: the 2nd and 3rd carry the 1st's thread, stack and
     * activity id over */
    {2, 10, 2, 2, 7000, 201, 0x55, 0xC0},
    {3, 11, 2, 2, 7300, 201, 0x77, 0xC0},
    {2, 12, 2, 0, 7301, 201, 0, 0xC0},
};

/* V1 fields with a nested object */
static const struct nettrace_field ev1_fields[] = {
    {"a", NETTRACE_TYPE_INT32, 0, 0},  {"s", NETTRACE_TYPE_OBJECT, 2, 2},
    {"x", NETTRACE_TYPE_BYTE, 0, 0},   {"y", NETTRACE_TYPE_STRING, 0, 0},
    {"z", NETTRACE_TYPE_DOUBLE, 0, 0},
};
/* V2Params: xs int32[], pts {u, v}[] */
static const struct nettrace_field ev2_fields[] = {
    {"xs", NETTRACE_TYPE_ARRAY, 1, 1},  {"xs", NETTRACE_TYPE_INT32, 0, 0},
    {"pts", NETTRACE_TYPE_ARRAY, 1, 3}, {"pts", NETTRACE_TYPE_OBJECT, 2, 2},
    {"u", NETTRACE_TYPE_UINT16, 0, 0},  {"v", NETTRACE_TYPE_INT64, 0, 0},
};

/* The metadata of events[] (an id a metadata: events 2 and 4 share 2). */
#define SYNTHETIC_META(ID, PROV, EVENT, NAME, OP, OK, N, F, TOTAL)             \
  {                                                                            \
    .id = ID, .provider = PROV, .event_id = EVENT, .event_name = NAME,         \
    .keywords = 0x10, .version = 1, .level = 4, .opcode = OP, .fields_ok = OK, \
    .nfields = N, .fields = F, .nfields_total = TOTAL                          \
  }
static const struct nettrace_meta metas[] = {
    SYNTHETIC_META(1, "Prov-A", 10, "Ev1", 0, 1, 3, ev1_fields, 5),
    /* no field list: understood, zero fields, empty name */
    SYNTHETIC_META(4, "Prov-A", 40, "", 0, 1, 0, NULL, 0),
    SYNTHETIC_META(2, "Prov-B", 20, "Ev2", 9, 1, 2, ev2_fields, 6),
    /* unknown field type: delivered raw */
    SYNTHETIC_META(3, "Prov-B", 30, "Weird", 0, 0, 0, NULL, 0),
    SYNTHETIC_META(2, "Prov-B", 20, "Ev2", 9, 1, 2, ev2_fields, 6),
};

DEF_TEST(synthetic) {
  struct buf b = {.len = 0};
  build_synthetic(&b);
  static const size_t chunks[] = {0, 1, 3, 64};
  for (size_t k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
    struct collected col = {0};
    struct nettrace_reader *r = nettrace_reader_new(NULL, collect_cb, &col);
    int rc = feed_pieces(r, b.d, b.len, chunks[k], 0);
    EXPECT_EQ_INT(0, rc);
    EXPECT_EQ_INT(0, nettrace_reader_finish(r));
    if (rc != 0)
      printf("# %s at %" PRIu64 "\n", nettrace_reader_error(r),
             nettrace_reader_error_offset(r));

    const struct nettrace_stats *st = nettrace_reader_stats(r);
    EXPECT_EQ_U64(5, st->events);
    EXPECT_EQ_U64(1, st->dropped);
    EXPECT_EQ_U64(1, st->unknown_objects);
    EXPECT_EQ_U64(1, st->metadata_blocks);
    EXPECT_EQ_U64(2, st->event_blocks);
    EXPECT_EQ_U64(1, st->stack_blocks);
    EXPECT_EQ_U64(1, st->sp_blocks);
    EXPECT_EQ_U64(4, st->metas);

    check_trace_info(&synthetic_trace, nettrace_reader_trace_info(r));

    EXPECT_EQ_INT(5, col.n);
    for (int i = 0; i < col.n && i < 5; i++) {
      check_seen(&events[i], &col.ev[i]);
      check_meta(&metas[i], col.meta[i]);
      check_fields(col.meta[i], metas[i].fields, metas[i].nfields_total);
    }
    if (col.n > 0) { /* walking siblings: a, s, z */
      const struct nettrace_meta *m = col.meta[0];
      uint32_t n = 0;
      for (uint32_t i = 0; i < m->nfields_total; i += 1 + m->fields[i].span)
        n++;
      EXPECT_EQ_INT(3, n);
    }
    nettrace_reader_free(r);
  }

  /* every split and every truncation of the synthetic stream */
  struct summary whole, s;
  read_stream(b.d, b.len, 0, 0, NULL, &whole);
  for (size_t k = 1; k < b.len; k++) {
    read_stream(b.d, b.len, 0, k, NULL, &s);
    CHECK(same_summary(&whole, &s));
    read_stream(b.d, k, 0, 0, NULL, &s);
    CHECK(s.finish_rc == -ENODATA || s.finish_rc == -EBADMSG);
  }
  /* every byte flipped: no crash */
  for (size_t k = 0; k < b.len; k++)
    for (int bit = 0; bit < 8; bit += 3) {
      b.d[k] ^= (uint8_t)(1u << bit);
      read_stream(b.d, b.len, 0, 0, NULL, &s);
      CHECK(acceptable_rc(s.finish_rc));
      b.d[k] ^= (uint8_t)(1u << bit);
    }
  return 0;
}

struct one_event {
  int n, rc;
  uint32_t id;
  struct nettrace_event ev; /* its pointers are not kept */
  uint8_t activity[16], related[16];
  char error[128];
};

static void one_event_cb(void *ctx, const struct nettrace_event *ev) {
  struct one_event *o = ctx;
  if (o->n++ > 0)
    return;
  o->ev = *ev;
  o->id = ev->meta->id;
  memcpy(o->activity, ev->activity_id, 16);
  memcpy(o->related, ev->related_activity_id, 16);
}

/* A stream whose one EventBlock holds the compressed event `e`, and after
 * it, when filler, an event of 200 bytes: read, its first event kept. */
static void read_one(const struct buf *e, int filler, struct one_event *o) {
  struct buf b = {.len = 0}, c = {.len = 0}, m = {.len = 0};
  put_stream_header(&b);
  put_trace(&b);
  put_block_header(&c, 0);
  put_meta_header(&m, 2, "P", 1, "E");
  put_uncompressed(&c, 0, 0, 0, 0, &m);
  put_block(&b, "MetadataBlock", &c);
  c.len = 0;
  put_block_header(&c, 1);
  put(&c, e->d, e->len);
  if (filler) {
    static const uint64_t v[7] = {2, 0, 0, 0, 0, 0, 1};
    put_compressed(&c, 0x01 | 0x80, v, 0, 0, 200);
    for (int i = 0; i < 200; i++)
      put_u8(&c, (uint8_t)i);
  }
  put_block(&b, "EventBlock", &c);
  /* up to the EventBlock's end tag in a buffer of its size (a read past
   * the block is one past the buffer: ASan's), then the end of stream */
  *o = (struct one_event){.rc = -ENOMEM};
  uint8_t *exact = malloc(b.len);
  if (exact == NULL)
    return;
  memcpy(exact, b.d, b.len);
  struct nettrace_reader *r = nettrace_reader_new(NULL, one_event_cb, o);
  o->rc = nettrace_reader_feed(r, exact, b.len);
  free(exact);
  if (o->rc == 0)
    o->rc = nettrace_reader_feed(r, "\x01", 1);
  if (o->rc == 0)
    o->rc = nettrace_reader_finish(r);
  snprintf(o->error, sizeof(o->error), "%s", nettrace_reader_error(r));
  nettrace_reader_free(r);
}

/* Compressed headers are read without a bound test per field where the
 * longest header fits in what is left of the block, and with them near
 * its end: the same event, or the same refusal, both ways (headers of
 * up to 108 bytes near the end take the tested way; every header is read
 * from a buffer that ends with its block). Varints of every width. */
DEF_TEST(compressed_header_paths) {
  static const struct {
    uint8_t flags;
    uint64_t v[7]; /* id, seq delta, capture thread, proc, thread, stack,
                      ts delta */
    int w;         /* bytes of each varint (0: shortest) */
    uint64_t len;  /* payload bytes */
    int bad;       /* refused */
  } cases[] = {
      {0x01 | 0x80, {2, 0, 0, 0, 0, 0, 5}, 0, 1, 0},
      {0xff, {2, 9, 200, 3, 201, 2, 7000}, 0, 3, 0},
      {0xff, {2, 9, 200, 3, 201, 2, 7000}, 2, 3, 0},
      {0xff, {2, 9, 200, 3, 201, 2, 7000}, 3, 3, 0},
      {0xff, {2, 9, 200, 3, 201, 2, 7000}, 4, 3, 0},
      {0xff, {2, 9, 200, 3, 201, 2, 7000}, 6, 3, 0},
      {0xff, {2, 9, 200, 3, 201, 2, 7000}, 7, 3, 0},
      {0xff, {2, 9, 200, 3, 201, 2, 7000}, 8, 3, 0},
      {0xff, {2, 9, 200, 3, 201, 2, 7000}, 9, 3, 0},
      {0xff, {2, 9, 200, 3, 201, 2, 7000}, 10, 3, 0}, /* 113 bytes */
      {0x7f, {2, 9, 200, 3, 201, 2, 7000}, 10, 0, 0}, /* ends the block */
      {0xff,
       {2, 0xffffffffu, 1ull << 63, 0xffffffffu, ~0ull, 77, ~0ull},
       0,
       2,
       0},
      {0x01 | 0x02 | 0x80, {2, 127, 128, 16383, 0, 0, 16384}, 0, 0, 0},
      {0x01 | 0x08 | 0x80, {2, 0, 0, 0, 0, 0xffffffffu, 1ull << 34}, 5, 1, 0},
      {0x01 | 0x08 | 0x80, {2, 0, 0, 0, 0, 1ull << 32, 1}, 0, 1, 1},
      {0x01 | 0x80, {1ull << 32 | 2, 0, 0, 0, 0, 0, 1}, 0, 1, 1},
      {0x01 | 0x80, {2, 0, 0, 0, 0, 0, 1}, 11, 1, 1},   /* 11-byte varints */
      {0x01 | 0x80, {2, 0, 0, 0, 0, 0, 1}, 0, 1000, 1}, /* payload overruns */
  };
  for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
    struct buf e = {.len = 0};
    uint8_t f = cases[k].flags;
    const uint64_t *v = cases[k].v;
    put_compressed(&e, f, v, cases[k].w, 0xA0, cases[k].len);
    for (uint64_t i = 0; i < cases[k].len && i < 64; i++)
      put_u8(&e, (uint8_t)(0x40 + i));
    struct one_event fast, near_end;
    read_one(&e, 1, &fast);
    read_one(&e, 0, &near_end);
    printf("# case %zu: %d \"%s\" / %d \"%s\"\n", k, fast.rc, fast.error,
           near_end.rc, near_end.error);
    if (cases[k].bad) {
      EXPECT_EQ_INT(-EBADMSG, fast.rc);
      EXPECT_EQ_INT(-EBADMSG, near_end.rc);
      EXPECT_EQ_STR(near_end.error, fast.error);
      EXPECT_EQ_INT(0, fast.n);
      continue;
    }
    EXPECT_EQ_INT(0, fast.rc);
    EXPECT_EQ_INT(0, near_end.rc);
    EXPECT_EQ_INT(2, fast.n);
    EXPECT_EQ_INT(1, near_end.n);
    const struct nettrace_event *a = &fast.ev, *b = &near_end.ev;
    EXPECT_EQ_U64(b->timestamp, a->timestamp);
    EXPECT_EQ_U64(v[6], a->timestamp);
    EXPECT_EQ_U64(b->thread_id, a->thread_id);
    EXPECT_EQ_U64(b->capture_thread_id, a->capture_thread_id);
    EXPECT_EQ_INT(b->sequence, a->sequence);
    EXPECT_EQ_INT(b->processor, a->processor);
    EXPECT_EQ_INT(b->stack_id, a->stack_id);
    EXPECT_EQ_INT(b->payload_len, a->payload_len);
    EXPECT_EQ_INT(cases[k].len, a->payload_len);
    EXPECT_EQ_INT(2, fast.id);
    EXPECT_EQ_INT(2, near_end.id);
    CHECK(memcmp(fast.activity, near_end.activity, 16) == 0);
    CHECK(memcmp(fast.related, near_end.related, 16) == 0);
    if (f & 0x04)
      EXPECT_EQ_U64(v[4], a->thread_id);
    if (f & 0x02) {
      EXPECT_EQ_U64(v[2], a->capture_thread_id);
      EXPECT_EQ_INT((uint32_t)(v[1] + 1), a->sequence);
    }
  }
  /* the longest header cut at every length at the end of its block:
   * refused, nothing read past the block */
  struct buf whole = {.len = 0};
  put_u8(&whole, 0xff);
  for (int i = 0; i < 8; i++) {
    put_var_n(&whole, 2, 10);
    if (i == 6)
      for (int j = 0; j < 32; j++)
        put_u8(&whole, (uint8_t)j);
  }
  EXPECT_EQ_INT(113, whole.len);
  for (size_t cut = 1; cut < whole.len; cut++) {
    struct buf e = {.len = 0};
    put(&e, whole.d, cut);
    struct one_event o;
    read_one(&e, 0, &o);
    EXPECT_EQ_INT(-EBADMSG, o.rc);
    EXPECT_EQ_STR("truncated event header", o.error);
  }
  return 0;
}

/* Malformed framing: each gives -EBADMSG with a reason. */
DEF_TEST(bad_framing) {
  struct buf ok = {.len = 0};
  put_stream_header(&ok);
  put_trace(&ok);
  size_t after_trace = ok.len;
  put_u8(&ok, 1);
  struct summary s;
  read_stream(ok.d, ok.len, 0, 0, NULL, &s);
  EXPECT_EQ_INT(0, s.finish_rc);

  struct {
    const char *what;
    size_t at;
    uint8_t value;
    size_t len; /* 0: all */
  } cases[] = {
      {"bad magic", 0, 'n', 0},
      {"V6 header", 8, 0, 0},
      {"bad FastSerialization string", 13, 'f', 0},
      {"bad object tag", 32, 7, 0},
      {"bad type object", 33, 6, 0},
      {"huge type name length", 46, 0x7f, 0},
      {"trace type version 3", 35, 3, 0},
      {"trace min reader version 6", 39, 6, 0},
      {"trace not ended", after_trace - 1, 0, 0},
      {"end before Trace", 32, 1, 33},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct buf b = ok;
    if (cases[i].what[0] == 'V') {
      /* V6: "Nettrace" then a reserved int32 0 */
      b.d[8] = b.d[9] = b.d[10] = b.d[11] = 0;
    } else {
      b.d[cases[i].at] = cases[i].value;
    }
    size_t len = cases[i].len ? cases[i].len : b.len;
    struct nettrace_reader *r = nettrace_reader_new(NULL, NULL, NULL);
    int rc = nettrace_reader_feed(r, b.d, len);
    if (rc == 0)
      rc = nettrace_reader_finish(r);
    printf("# %s: %s at %" PRIu64 "\n", cases[i].what, nettrace_reader_error(r),
           nettrace_reader_error_offset(r));
    EXPECT_EQ_INT(-EBADMSG, rc);
    CHECK(nettrace_reader_error(r)[0] != 0);
    nettrace_reader_free(r);
  }

  /* a block before the Trace object */
  struct buf b = {.len = 0}, c = {.len = 0};
  put_stream_header(&b);
  put_u64(&c, 1);
  put_u32(&c, 0);
  put_block(&b, "SPBlock", &c);
  read_stream(b.d, b.len, 0, 0, NULL, &s);
  EXPECT_EQ_INT(-EBADMSG, s.finish_rc);
  return 0;
}

DEF_TEST(api) {
  nettrace_reader_free(NULL);
  struct nettrace_reader *r = nettrace_reader_new(NULL, NULL, NULL);
  CHECK(r != NULL);
  EXPECT_EQ_STR("", nettrace_reader_error(r));
  EXPECT_EQ_INT(0, nettrace_reader_done(r));
  EXPECT_EQ_INT(0, nettrace_reader_feed(r, NULL, 0));
  EXPECT_EQ_INT(-ENODATA, nettrace_reader_finish(r));
  EXPECT_EQ_U64(0, nettrace_reader_error_offset(r));
  nettrace_reader_free(r);

  /* Counting without a callback. */
  r = nettrace_reader_new(NULL, NULL, NULL);
  EXPECT_EQ_INT(
      0, nettrace_reader_feed(r, fixtures[FX_60].data, fixtures[FX_60].len));
  EXPECT_EQ_INT(0, nettrace_reader_finish(r));
  EXPECT_EQ_INT(0, nettrace_reader_finish(r));
  EXPECT_EQ_U64(3, nettrace_reader_stats(r)->events);
  nettrace_reader_free(r);
  return 0;
}

/* ---- memory: what a stream can make a reader hold ---- */

struct bigbuf {
  uint8_t *d;
  size_t len, cap;
};

static void big_put(struct bigbuf *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = (b->len + n) * 2;
    uint8_t *d = realloc(b->d, cap);
    if (d == NULL)
      abort();
    b->d = d;
    b->cap = cap;
  }
  memcpy(b->d + b->len, p, n);
  b->len += n;
}

static void big_u32(struct bigbuf *b, uint32_t v) {
  uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
                  (uint8_t)(v >> 24)};
  big_put(b, x, 4);
}

/* A block object of `size` content bytes (content: NULL for zeros, only
 * the first `give` bytes of the unit written) at the end of b. */
static void big_block(struct bigbuf *b, const char *name,
                      const uint8_t *content, size_t size, size_t give) {
  struct buf t = {.len = 0};
  put_type(&t, name, 2, 2);
  put_u32(&t, (uint32_t)size);
  while ((b->len + t.len) % 4 != 0)
    put_u8(&t, 0);
  big_put(b, t.d, t.len);
  size_t n = give < size ? give : size;
  for (size_t i = 0; i < n; i++)
    big_put(b, content ? content + i : (const uint8_t *)"", 1);
  if (give > size)
    big_put(b, "\x06", 1);
}

/* A metadata event of k fields with names of 60 characters (about
 * 126 * k bytes): the most the runtime's 100 KiB blocks could hold, kept
 * in the reader's metadata at the size of its fields and names only. */
static void big_metadata_block(struct bigbuf *b, uint32_t k) {
  struct bigbuf p = {0}, c = {0};
  uint8_t hdr[] = {1, 0, 0, 0, 'P', 0, 0, 0, 1, 0, 0, 0, 'E', 0, 0, 0};
  big_put(&p, hdr, sizeof(hdr));
  uint8_t kw[16] = {0}; /* keywords, version, level */
  big_put(&p, kw, sizeof(kw));
  big_u32(&p, k);
  for (uint32_t i = 0; i < k; i++) {
    big_u32(&p, NETTRACE_TYPE_INT32);
    char name[64];
    snprintf(name, sizeof(name), "%060u", i);
    for (int j = 0; j < 60; j++) {
      uint8_t u[2] = {(uint8_t)name[j], 0};
      big_put(&p, u, 2);
    }
    big_put(&p, "\0\0", 2);
  }
  uint8_t bh[20] = {20, 0, 0, 0};
  big_put(&c, bh, sizeof(bh));
  uint32_t size = 76 + (uint32_t)p.len;
  size = (size + 3) & ~3u;
  big_u32(&c, size);
  big_u32(&c, 0);
  uint8_t zero[68] = {0};
  big_put(&c, zero, 4 + 8 + 8 + 4 + 4 + 8 + 32);
  big_u32(&c, (uint32_t)p.len);
  big_put(&c, p.d, p.len);
  while ((c.len - 20) % 4 != 0)
    big_put(&c, "", 1);
  big_block(b, "MetadataBlock", c.d, c.len, c.len + 1);
  free(p.d);
  free(c.d);
}

DEF_TEST(memory_bound) {
  size_t worst = nettrace_reader_worst_bytes(NULL);
  printf("# reader, default limits: at most %zu bytes\n", worst);
  CHECK(worst <= (size_t)1 << 20);

  /* a metadata event as large as a block can be: what its parse needed is
   * given back; only what is kept stays */
  struct buf head = {.len = 0};
  put_stream_header(&head);
  put_trace(&head);
  struct bigbuf s = {0};
  big_put(&s, head.d, head.len);
  big_metadata_block(&s, 800);
  printf("# metadata block: %zu bytes\n", s.len - head.len);
  struct mallinfo2 m0 = mallinfo2();
  struct nettrace_reader *r = nettrace_reader_new(NULL, NULL, NULL);
  EXPECT_EQ_INT(0, nettrace_reader_feed(r, s.d, s.len));
  const struct nettrace_stats *st = nettrace_reader_stats(r);
  EXPECT_EQ_U64(1, st->metas);
  struct mallinfo2 m1 = mallinfo2();
  /* malloc's count, and the reader's own (ASan's allocator gives no
   * mallinfo2: 0) */
  size_t held = m1.uordblks - m0.uordblks, own = nettrace_reader_memory(r);
  printf("# after it: %zu bytes on the heap (%zu by the reader's count), "
         "%" PRIu64 " of metadata kept\n",
         held, own, st->metadata_bytes);
  CHECK(held <= st->metadata_bytes + 24 * 1024);
  CHECK(own >= st->metadata_bytes && own <= st->metadata_bytes + 24 * 1024);
  nettrace_reader_free(r);

  /* an incomplete block of max_object: held, within the bound; one
   * larger than a runtime writes (200 KiB): refused at its size */
  s.len = head.len;
  big_block(&s, "EventBlock", NULL, 128 * 1024, 128 * 1024 - 1);
  m0 = mallinfo2();
  r = nettrace_reader_new(NULL, NULL, NULL);
  EXPECT_EQ_INT(0, nettrace_reader_feed(r, s.d, s.len));
  m1 = mallinfo2();
  held = m1.uordblks - m0.uordblks;
  own = nettrace_reader_memory(r);
  printf("# an incomplete block of 128 KiB: %zu bytes on the heap (%zu by "
         "the reader's count)\n",
         held, own);
  CHECK(held <= worst);
  CHECK(own > 128 * 1024 && own <= worst);
  nettrace_reader_free(r);
  s.len = head.len;
  big_block(&s, "EventBlock", NULL, 200 * 1024, 100);
  r = nettrace_reader_new(NULL, NULL, NULL);
  EXPECT_EQ_INT(-E2BIG, nettrace_reader_feed(r, s.d, s.len));
  nettrace_reader_free(r);
  free(s.d);
  return 0;
}

/* A test that reads the real nettrace files: skipped without them. */
#define RUN_FIXTURE_TEST(func)                                                 \
  do {                                                                         \
    if (have_fixtures)                                                         \
      RUN_TEST(func);                                                          \
    else                                                                       \
      SKIP_TEST(func, "nettrace fixtures missing");                            \
  } while (0)

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  int have_fixtures = 0;
  if (!find_fixtures_dir(argc, argv))
    printf("# fixtures directory not found (%s)\n", fixtures_dir);
  else
    have_fixtures = load_fixtures();

  RUN_FIXTURE_TEST(api);
  RUN_TEST(synthetic);
  RUN_TEST(compressed_header_paths);
  RUN_TEST(bad_framing);
  RUN_FIXTURE_TEST(fixtures_whole);
  RUN_FIXTURE_TEST(trace_info);
  RUN_FIXTURE_TEST(first_events);
  RUN_FIXTURE_TEST(fixtures_chunked);
  RUN_FIXTURE_TEST(fixtures_split);
  RUN_FIXTURE_TEST(truncated);
  RUN_FIXTURE_TEST(corrupted_sizes);
  RUN_FIXTURE_TEST(random_flips);
  RUN_FIXTURE_TEST(trailing_bytes);
  RUN_FIXTURE_TEST(limits);
  RUN_TEST(memory_bound);

  free_fixtures();
  END_TEST;
}
