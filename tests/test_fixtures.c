/**
 * collectd-dotnet - tests/test_fixtures.c
 *
 * The nettrace reader and the counter decoding on real streams:
 * tests/fixtures/counters-net{8,9,10}.nettrace, recorded by
 * tests/fixtures/capture.sh (`triggerdump record`, 3.5 s, 1 s interval) from
 * tests/targets/CounterTarget (--heap-mb 64) on real .NET 8, 9 and 10
 * runtimes: the EventCounters of System.Runtime and CollectdDotnet-Test and
 * the Meter CollectdDotnet.Test. For each fixture:
 *  - chunks: fed whole, in 1-, 7- and 4096-byte chunks and split in two at
 *    a sample of offsets: the same events, the same decoded samples (a
 *    checksum over every event and every sample's names and values), and the
 *    end-of-stream marker reached each way;
 *  - summary: what `triggerdump stats` read from it at capture time
 *    (counters-netN.summary): bytes, events, events per provider, counter
 *    samples, samples and last value per counter;
 *  - values: what CounterTarget defines (its Program.cs): fixed-value 42.5,
 *    request-time mean 20 / min 10 / max 30 / count 3, ticks ~1000 and
 *    requests 50 a second, orders 50, queue-length 7, temperature 21.5,
 *    latency p50 60 / p95 100 / p99 100; every System.Runtime EventCounter
 *    of these runtimes, gc-heap-size >= the 64 MiB kept live;
 *  - truncated: every sampled prefix delivers a prefix of the same events
 *    and ends in -ENODATA, never in a malformed-input error.
 *
 * Usage: test_fixtures [DIR]; else $TEST_FIXTURES; else tests/fixtures
 * beside this source. Exits 77 (skipped) when the fixtures are missing.
 */
#include "counters.h"
#include "counters_decoder.h"
#include "naming.h"
#include "nettrace.h"
#include "nettrace_build.h"
#include "testing.h"

#include <malloc.h>

#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_FIXTURE_BYTES ((size_t)4 << 20)
#define MAX_SAMPLES 4096
#define MAX_SUMMARY_LINES 256
#define HEAP_MB 64 /* capture.sh starts CounterTarget --heap-mb 64 */

/* ---- fixtures ---- */

struct fixture {
  const char *name; /* counters-netN: .nettrace and .summary */
  int major;        /* .NET major version it was recorded from */
  uint8_t *data;
  size_t len;
  char *summary; /* the .summary file, NUL-terminated */
};

static struct fixture fixtures[] = {
    {"counters-net8", 8, NULL, 0, NULL},
    {"counters-net9", 9, NULL, 0, NULL},
    {"counters-net10", 10, NULL, 0, NULL},
    {"counters-net11", 11, NULL, 0, NULL},
};
#define NFIXTURES (sizeof(fixtures) / sizeof(fixtures[0]))

static char fixtures_dir[4096];

/* argv[1], $TEST_FIXTURES, or tests/fixtures (from this source file's
 * directory, else the working directory). */
static int find_fixtures_dir(int argc, char **argv) {
  static const char *const rel[] = {"fixtures", "tests/fixtures",
                                    "../tests/fixtures"};
  return testing_find_dir(argc, argv, "TEST_FIXTURES", rel,
                          sizeof(rel) / sizeof(rel[0]), fixtures_dir,
                          sizeof(fixtures_dir));
}

/* Reads a whole file (at most MAX_FIXTURE_BYTES) and NUL-terminates it.
 * 0 or a negative errno. */
static int read_file(const char *path, uint8_t **out, size_t *out_len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return -errno;
  uint8_t *buf = malloc(MAX_FIXTURE_BYTES + 1);
  if (buf == NULL) {
    fclose(f);
    return -ENOMEM;
  }
  size_t len = fread(buf, 1, MAX_FIXTURE_BYTES + 1, f);
  int bad = ferror(f);
  fclose(f);
  if (bad || len > MAX_FIXTURE_BYTES) {
    free(buf);
    return bad ? -EIO : -E2BIG;
  }
  buf[len] = 0;
  *out = buf;
  *out_len = len;
  return 0;
}

static void load_fixtures(void) {
  for (size_t i = 0; i < NFIXTURES; i++) {
    char path[4200];
    size_t slen;
    snprintf(path, sizeof(path), "%s/%s.nettrace", fixtures_dir,
             fixtures[i].name);
    int rc = read_file(path, &fixtures[i].data, &fixtures[i].len);
    if (rc == -ENOENT) {
      printf("# missing %s\n", path);
      SKIP_ALL("fixtures missing (tests/fixtures/capture.sh makes them)");
    }
    if (rc != 0) {
      printf("# cannot read %s: %s\n", path, strerror(-rc));
      exit(1);
    }
    snprintf(path, sizeof(path), "%s/%s.summary", fixtures_dir,
             fixtures[i].name);
    rc = read_file(path, (uint8_t **)&fixtures[i].summary, &slen);
    if (rc != 0) {
      printf("# cannot read %s: %s\n", path, strerror(-rc));
      exit(1);
    }
  }
}

static void free_fixtures(void) {
  for (size_t i = 0; i < NFIXTURES; i++) {
    free(fixtures[i].data);
    free(fixtures[i].summary);
  }
}

/* ---- what a read produced ---- */

/* One decoded sample, copied out of the callback. */
struct sample {
  char provider[64];
  char label[160]; /* as triggerdump names it: name, name[tags], name[pNN] */
  char name[64];
  char units[32];
  char tags[64];
  char session[32];
  enum counters_kind kind;
  double value, min, max, count, sum;
  uint32_t nquantiles;
  double quantile[COUNTERS_MAX_QUANTILES];
  double quantile_value[COUNTERS_MAX_QUANTILES];
  int64_t time_ms;
};

struct run {
  int keep;          /* copy samples into `samples` */
  uint64_t events;   /* delivered by the reader */
  uint64_t nsamples; /* counters_decode() == 1 */
  uint64_t bad;      /* counters_decode() < 0 */
  uint64_t checksum; /* over events and decoded samples */
  uint64_t *prefix;  /* if set: checksum after each event (cap events) */
  size_t prefix_cap;
  struct sample *samples;
  size_t nkept;
  struct nettrace_trace_info info;
  int have_info;
  struct nettrace_stats stats;
  int feed_rc, finish_rc;
  const struct nettrace_reader *reader;
  struct counters_decoder *dec; /* compared with counters_decode */
  uint64_t differ;              /* events where the two disagree */
  char scratch[8192], scratch2[8192];
};

/* 64-bit FNV-1a. */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const uint8_t *b = p;
  for (; n > 0; n--, b++)
    h = (h ^ *b) * 0x100000001b3ULL;
  return h;
}

static uint64_t fnv_str(uint64_t h, const char *s) {
  return fnv(h, s, strlen(s) + 1);
}

static uint64_t fnv_num(uint64_t h, double v) {
  if (isnan(v))
    v = NAN; /* one NaN pattern */
  return fnv(h, &v, sizeof(v));
}

static uint64_t sample_hash(uint64_t h, const struct counters_sample *s) {
  h = fnv_str(h, s->provider);
  h = fnv_str(h, s->name);
  char dn[256];
  h = fnv_str(h, counters_display_name(s, dn, sizeof(dn)));
  h = fnv_str(h, s->units);
  h = fnv_str(h, s->tags);
  h = fnv_str(h, s->session);
  h = fnv(h, &s->kind, sizeof(s->kind));
  h = fnv_num(h, s->value);
  h = fnv_num(h, s->total);
  h = fnv_num(h, s->min);
  h = fnv_num(h, s->max);
  h = fnv_num(h, s->stddev);
  h = fnv_num(h, s->count);
  h = fnv_num(h, s->sum);
  h = fnv_num(h, s->interval_sec);
  h = fnv(h, &s->series_ms, sizeof(s->series_ms));
  h = fnv(h, &s->timestamp, sizeof(s->timestamp));
  h = fnv(h, &s->nquantiles, sizeof(s->nquantiles));
  for (uint32_t i = 0; i < s->nquantiles; i++) {
    h = fnv_num(h, s->quantile[i]);
    h = fnv_num(h, s->quantile_value[i]);
  }
  return h;
}

static void keep_sample(struct run *r, const struct counters_sample *s, int q) {
  if (r->nkept >= MAX_SAMPLES)
    return;
  struct sample *k = &r->samples[r->nkept++];
  memset(k, 0, sizeof(*k));
  snprintf(k->provider, sizeof(k->provider), "%s", s->provider);
  counters_sample_label(s, q, k->label, sizeof(k->label));
  snprintf(k->name, sizeof(k->name), "%s", s->name);
  snprintf(k->units, sizeof(k->units), "%s", s->units);
  snprintf(k->tags, sizeof(k->tags), "%s", s->tags);
  snprintf(k->session, sizeof(k->session), "%s", s->session);
  k->kind = s->kind;
  k->value = q >= 0 ? s->quantile_value[q] : s->value;
  k->min = s->min;
  k->max = s->max;
  k->count = s->count;
  k->sum = s->sum;
  k->nquantiles = s->nquantiles;
  memcpy(k->quantile, s->quantile, sizeof(k->quantile));
  memcpy(k->quantile_value, s->quantile_value, sizeof(k->quantile_value));
  k->time_ms =
      counters_unix_ms(nettrace_reader_trace_info(r->reader), s->timestamp);
}

static void run_cb(void *ctx, const struct nettrace_event *ev) {
  struct run *r = ctx;
  uint64_t h = r->checksum;
  h = fnv(h, &ev->meta->id, sizeof(ev->meta->id));
  h = fnv_str(h, ev->meta->provider);
  h = fnv_str(h, ev->meta->event_name);
  h = fnv(h, &ev->timestamp, sizeof(ev->timestamp));
  h = fnv(h, &ev->thread_id, sizeof(ev->thread_id));
  h = fnv(h, &ev->sequence, sizeof(ev->sequence));
  h = fnv(h, &ev->payload_len, sizeof(ev->payload_len));
  h = fnv(h, ev->payload, ev->payload_len);
  struct counters_sample s, s2;
  int d = counters_decode(ev, &s, r->scratch, sizeof(r->scratch));
  uint64_t hs = d == 1 ? sample_hash(0xcbf29ce484222325ULL, &s) : 0;
  /* the decoder with its per-metadata cache must agree exactly */
  int d2 = counters_decoder_decode(r->dec, ev, &s2, r->scratch2,
                                   sizeof(r->scratch2));
  if (d2 != d || (d == 1 && sample_hash(0xcbf29ce484222325ULL, &s2) != hs))
    r->differ++;
  if (d < 0)
    r->bad++;
  if (d == 1) {
    r->nsamples++;
    h = sample_hash(h, &s);
    if (r->keep) {
      if (s.kind == COUNTERS_HISTOGRAM)
        for (uint32_t i = 0; i < s.nquantiles; i++)
          keep_sample(r, &s, (int)i);
      else
        keep_sample(r, &s, -1);
    }
  }
  r->checksum = h;
  if (r->prefix != NULL && r->events < r->prefix_cap)
    r->prefix[r->events] = h;
  r->events++;
}

/* Feeds data[0..len) in pieces: chunk bytes at a time (0: whole), or, if
 * split is nonzero, data[0..split) then the rest. */
static void run_stream(const uint8_t *data, size_t len, size_t chunk,
                       size_t split, struct run *r) {
  r->events = r->nsamples = r->bad = r->nkept = r->differ = 0;
  counters_decoder_reset(r->dec);
  r->checksum = 0xcbf29ce484222325ULL;
  r->feed_rc = r->finish_rc = 0;
  r->have_info = 0;
  struct nettrace_reader *rd = nettrace_reader_new(NULL, run_cb, r);
  if (rd == NULL) {
    r->feed_rc = -ENOMEM;
    return;
  }
  r->reader = rd;
  r->feed_rc = feed_pieces(rd, data, len, chunk, split);
  r->finish_rc = nettrace_reader_finish(rd);
  r->stats = *nettrace_reader_stats(rd);
  const struct nettrace_trace_info *ti = nettrace_reader_trace_info(rd);
  if (ti != NULL) {
    r->info = *ti;
    r->have_info = 1;
  }
  if (r->finish_rc != 0 && r->finish_rc != -ENODATA)
    printf("# reader: %s at byte %" PRIu64 "\n", nettrace_reader_error(rd),
           nettrace_reader_error_offset(rd));
  nettrace_reader_free(rd);
  r->reader = NULL;
}

static struct run *run_new(int keep) {
  struct run *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return NULL;
  r->keep = keep;
  r->dec = counters_decoder_new();
  if (keep)
    r->samples = calloc(MAX_SAMPLES, sizeof(*r->samples));
  if (r->dec == NULL || (keep && r->samples == NULL)) {
    counters_decoder_free(r->dec);
    free(r->samples);
    free(r);
    return NULL;
  }
  return r;
}

static void run_free(struct run *r) {
  if (r == NULL)
    return;
  counters_decoder_free(r->dec);
  free(r->samples);
  free(r->prefix);
  free(r);
}

/* Two runs that keep no samples: one for the whole stream, one for its
 * pieces. 0, or -1 with neither left. */
static int run_pair(struct run **whole, struct run **r) {
  *whole = run_new(0);
  *r = run_new(0);
  if (*whole != NULL && *r != NULL)
    return 0;
  run_free(*whole);
  run_free(*r);
  return -1;
}

/* ---- chunks: the same result however the stream is cut ---- */

static int same_run(const struct run *a, const struct run *b) {
  return a->feed_rc == b->feed_rc && a->finish_rc == b->finish_rc &&
         a->events == b->events && a->nsamples == b->nsamples &&
         a->bad == b->bad && a->checksum == b->checksum &&
         a->differ == b->differ &&
         a->stats.bytes == b->stats.bytes &&
         a->stats.dropped == b->stats.dropped &&
         a->stats.event_blocks == b->stats.event_blocks &&
         a->stats.metadata_blocks == b->stats.metadata_blocks &&
         a->stats.sp_blocks == b->stats.sp_blocks;
}

static int test_chunks_of(const struct fixture *fx) {
  struct run *whole, *r;
  if (run_pair(&whole, &r) != 0)
    return -1;
  run_stream(fx->data, fx->len, 0, 0, whole);
  EXPECT_EQ_INT(0, whole->feed_rc);
  EXPECT_EQ_INT(0, whole->finish_rc);
  EXPECT_EQ_U64(fx->len, whole->stats.bytes);
  EXPECT_EQ_U64(0, whole->stats.dropped);
  EXPECT_EQ_U64(0, whole->bad);
  EXPECT_EQ_U64(0, whole->differ); /* counters_decoder == counters_decode */
  CHECK(whole->events > 50);
  CHECK(whole->nsamples > 50);
  printf("# %s: %zu bytes, %" PRIu64 " events, %" PRIu64
         " counter samples, checksum %016" PRIx64 "\n",
         fx->name, fx->len, whole->events, whole->nsamples, whole->checksum);

  static const size_t chunks[] = {1, 7, 4096};
  for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
    run_stream(fx->data, fx->len, chunks[i], 0, r);
    if (!same_run(whole, r))
      printf("# %s in %zu-byte chunks: %" PRIu64 " events, %" PRIu64
             " samples, checksum %016" PRIx64 ", finish %d\n",
             fx->name, chunks[i], r->events, r->nsamples, r->checksum,
             r->finish_rc);
    CHECK(same_run(whole, r));
  }
  /* split in two: the first 64 offsets, then ~500 spread over the rest */
  size_t step = fx->len / 500 + 1, bad = 0;
  for (size_t split = 1; split < fx->len; split += split < 64 ? 1 : step) {
    run_stream(fx->data, fx->len, 0, split, r);
    if (!same_run(whole, r) && bad++ < 3)
      printf("# %s split at %zu: %" PRIu64 " events, finish %d\n", fx->name,
             split, r->events, r->finish_rc);
  }
  EXPECT_EQ_U64(0, bad);
  run_free(whole);
  run_free(r);
  return 0;
}

/* ---- truncated: a prefix of the events, then -ENODATA ---- */

static int test_truncated_of(const struct fixture *fx) {
  struct run *whole, *r;
  if (run_pair(&whole, &r) != 0)
    return -1;
  whole->prefix_cap = 1 << 16;
  whole->prefix = calloc(whole->prefix_cap, sizeof(*whole->prefix));
  if (whole->prefix == NULL) {
    run_free(whole);
    run_free(r);
    return -1;
  }
  run_stream(fx->data, fx->len, 0, 0, whole);
  CHECK(whole->events <= whole->prefix_cap);
  size_t step = fx->len / 300 + 1, bad = 0, n = 0;
  uint64_t prev_events = 0;
  int monotonic = 1;
  for (size_t cut = 0; cut < fx->len; cut += cut + 64 >= fx->len ? 1 : step) {
    run_stream(fx->data, cut, 4096, 0, r);
    n++;
    int ok = r->feed_rc == 0 && r->finish_rc == -ENODATA &&
             r->events <= whole->events &&
             (r->events == 0 ? r->checksum == 0xcbf29ce484222325ULL
                             : r->checksum == whole->prefix[r->events - 1]);
    if (r->events < prev_events)
      monotonic = 0;
    prev_events = r->events;
    if (!ok && bad++ < 3)
      printf("# %s cut at %zu: feed %d finish %d, %" PRIu64 " events\n",
             fx->name, cut, r->feed_rc, r->finish_rc, r->events);
  }
  EXPECT_EQ_U64(0, bad);
  CHECK(monotonic);
  CHECK(n > 100);
  /* the events after the middle need the second half */
  run_stream(fx->data, fx->len / 2, 0, 0, r);
  CHECK(r->events > 0 && r->events < whole->events);
  EXPECT_EQ_INT(-ENODATA, r->finish_rc);
  run_free(whole);
  run_free(r);
  return 0;
}

/* ---- summary: what `triggerdump stats` read at capture time ---- */

struct provider_count {
  char name[96];
  uint64_t n;
};

struct provider_ctx {
  struct provider_count p[32];
  int np;
};

static void provider_cb(void *ctx, const struct nettrace_event *ev) {
  struct provider_ctx *c = ctx;
  for (int i = 0; i < c->np; i++)
    if (strcmp(c->p[i].name, ev->meta->provider) == 0) {
      c->p[i].n++;
      return;
    }
  if (c->np < 32) {
    snprintf(c->p[c->np].name, sizeof(c->p[c->np].name), "%s",
             ev->meta->provider);
    c->p[c->np++].n = 1;
  }
}

static int test_summary_of(const struct fixture *fx) {
  struct run *r = run_new(1);
  if (r == NULL)
    return -1;
  run_stream(fx->data, fx->len, 0, 0, r);
  struct provider_ctx pc = {.np = 0};
  struct nettrace_reader *rd = nettrace_reader_new(NULL, provider_cb, &pc);
  CHECK(rd != NULL);
  if (rd != NULL) {
    EXPECT_EQ_INT(0, nettrace_reader_feed(rd, fx->data, fx->len));
    EXPECT_EQ_INT(0, nettrace_reader_finish(rd));
    nettrace_reader_free(rd);
  }

  int nprov = 0, nsamp = 0, have_events = 0, have_samples = 0, have_bytes = 0,
      have_runtime = 0;
  char *save = NULL;
  char *text = strdup(fx->summary);
  CHECK(text != NULL);
  for (char *line = text ? strtok_r(text, "\n", &save) : NULL; line != NULL;
       line = strtok_r(NULL, "\n", &save)) {
    char a[160], b[160];
    unsigned long long n;
    double last;
    if (line[0] == '#')
      continue;
    if (sscanf(line, "runtime %159s", a) == 1) {
      have_runtime = 1;
      printf("# %s: recorded from .NET %s\n", fx->name, a);
      EXPECT_EQ_INT(fx->major, atoi(a));
    } else if (sscanf(line, "bytes %llu", &n) == 1) {
      have_bytes = 1;
      EXPECT_EQ_U64(n, fx->len);
    } else if (sscanf(line, "events %llu", &n) == 1) {
      have_events = 1;
      EXPECT_EQ_U64(n, r->events);
    } else if (sscanf(line, "dropped %llu", &n) == 1) {
      EXPECT_EQ_U64(n, r->stats.dropped);
    } else if (sscanf(line, "counter_samples %llu", &n) == 1) {
      have_samples = 1;
      EXPECT_EQ_U64(n, r->nsamples);
    } else if (sscanf(line, "provider %95s %llu", a, &n) == 2) {
      nprov++;
      uint64_t got = 0;
      for (int i = 0; i < pc.np; i++)
        if (strcmp(pc.p[i].name, a) == 0)
          got = pc.p[i].n;
      if (got != n)
        printf("# %s: provider %s: %" PRIu64 " events, summary says %llu\n",
               fx->name, a, got, n);
      CHECK(got == n);
    } else if (sscanf(line, "sample %63s %159s %llu %lf", a, b, &n, &last) ==
               4) {
      nsamp++;
      uint64_t got = 0;
      double got_last = NAN;
      for (size_t i = 0; i < r->nkept; i++)
        if (strcmp(r->samples[i].provider, a) == 0 &&
            strcmp(r->samples[i].label, b) == 0) {
          got++;
          got_last = r->samples[i].value;
        }
      if (got != n || !(got_last == last || (isnan(got_last) && isnan(last))))
        printf("# %s: %s %s: %" PRIu64 " samples, last %.17g; summary says "
               "%llu, %.17g\n",
               fx->name, a, b, got, got_last, n, last);
      CHECK(got == n);
      CHECK(got_last == last || (isnan(got_last) && isnan(last)));
    } else {
      printf("# %s.summary: cannot read line '%s'\n", fx->name, line);
      CHECK(0);
    }
  }
  free(text);
  CHECK(have_runtime && have_bytes && have_events && have_samples);
  EXPECT_EQ_INT(pc.np, nprov);
  /* every label the run decoded is in the summary */
  int labels = 0;
  for (size_t i = 0; i < r->nkept; i++) {
    int seen = 0;
    for (size_t j = 0; j < i && !seen; j++)
      seen = strcmp(r->samples[j].provider, r->samples[i].provider) == 0 &&
             strcmp(r->samples[j].label, r->samples[i].label) == 0;
    labels += !seen;
  }
  EXPECT_EQ_INT(labels, nsamp);
  run_free(r);
  return 0;
}

/* ---- values: what CounterTarget and the runtime define ---- */

/* The EventCounters of System.Runtime on .NET 8, 9 and 10 (the runtime's
 * RuntimeEventSource; 9 and 10 added their new metrics to the
 * System.Runtime Meter only). */
static const char *const runtime_counters[] = {
    "cpu-usage",
    "working-set",
    "gc-heap-size",
    "gen-0-gc-count",
    "gen-1-gc-count",
    "gen-2-gc-count",
    "threadpool-thread-count",
    "monitor-lock-contention-count",
    "threadpool-queue-length",
    "threadpool-completed-items-count",
    "alloc-rate",
    "active-timer-count",
    "gc-fragmentation",
    "gc-committed",
    "exception-count",
    "time-in-gc",
    "gen-0-size",
    "gen-1-size",
    "gen-2-size",
    "loh-size",
    "poh-size",
    "assembly-count",
    "il-bytes-jitted",
    "methods-jitted-count",
    "time-in-jit",
    "gen-0-gc-budget",
    "total-pause-time-by-gc",
};
#define NRUNTIME_COUNTERS                                                      \
  (sizeof(runtime_counters) / sizeof(runtime_counters[0]))

/* Samples of provider/label. */
static size_t count_of(const struct run *r, const char *provider,
                       const char *label) {
  size_t n = 0;
  for (size_t i = 0; i < r->nkept; i++)
    n += strcmp(r->samples[i].provider, provider) == 0 &&
         strcmp(r->samples[i].label, label) == 0;
  return n;
}

/* A rate of 50 a second measured over a ~1 s interval: 5 every 100 ms, so
 * a multiple of 5, one step more or less when the interval edge falls
 * between two steps. */
static int about_50(double v) { return v >= 45 && v <= 55 && fmod(v, 5) == 0; }

static int test_values_of(const struct fixture *fx) {
  struct run *r = run_new(1);
  if (r == NULL)
    return -1;
  run_stream(fx->data, fx->len, 0, 0, r);
  EXPECT_EQ_INT(0, r->finish_rc);

  /* the Trace object, and sample times near the session's start */
  CHECK(r->have_info);
  EXPECT_EQ_INT(8, r->info.pointer_size);
  CHECK(r->info.qpc_frequency > 0);
  CHECK(r->info.process_id > 0);
  CHECK(r->info.sync_time_unix_ms > 1704067200000LL); /* after 2024-01-01 */
  CHECK(r->info.sync_time_unix_ms < (int64_t)time(NULL) * 1000 + 86400000);
  int times_ok = 1;
  for (size_t i = 0; i < r->nkept; i++)
    if (r->samples[i].time_ms < r->info.sync_time_unix_ms - 1000 ||
        r->samples[i].time_ms > r->info.sync_time_unix_ms + 60000)
      times_ok = 0;
  CHECK(times_ok);

  /* every System.Runtime EventCounter, in each of the ~3 intervals */
  for (size_t i = 0; i < NRUNTIME_COUNTERS; i++) {
    size_t n = count_of(r, "System.Runtime", runtime_counters[i]);
    if (n < 2)
      printf("# %s: System.Runtime %s: %zu samples\n", fx->name,
             runtime_counters[i], n);
    CHECK(n >= 2);
  }
  size_t n_runtime = 0;
  for (size_t i = 0; i < r->nkept; i++)
    n_runtime += strcmp(r->samples[i].provider, "System.Runtime") == 0;

  const double heap_mb = HEAP_MB * 1.048576; /* MiB kept live, in MB */
  size_t seen[16] = {0};
  int bad[16] = {0};
  for (size_t i = 0; i < r->nkept; i++) {
    const struct sample *s = &r->samples[i];
    int k = -1, ok = 1;
    if (strcmp(s->provider, "System.Runtime") == 0) {
      if (strcmp(s->label, "gc-heap-size") == 0) {
        /* the live heap plus at most a gen0 budget (16 MB) and change */
        k = 0;
        ok = s->kind == COUNTERS_MEAN && strcmp(s->units, "MB") == 0 &&
             s->value >= heap_mb && s->value < heap_mb + 40;
      } else if (strcmp(s->label, "working-set") == 0) {
        k = 1; /* every page of the live heap was written */
        ok = s->kind == COUNTERS_MEAN && strcmp(s->units, "MB") == 0 &&
             s->value >= heap_mb && s->value < 4096;
      } else if (strcmp(s->label, "loh-size") == 0) {
        k = 2; /* 1 MiB arrays: the large object heap */
        ok = strcmp(s->units, "B") == 0 && s->value >= HEAP_MB * 1048576.0;
      } else if (strcmp(s->label, "gen-0-gc-count") == 0) {
        k = 3; /* an incrementing counter: the GCs of the interval */
        ok = s->kind == COUNTERS_SUM && s->value >= 0 && s->value < 100;
      }
    } else if (strcmp(s->provider, "CollectdDotnet-Test") == 0) {
      if (strcmp(s->label, "fixed-value") == 0) {
        k = 4;
        ok = s->kind == COUNTERS_MEAN && s->value == 42.5 && s->min == 42.5 &&
             s->max == 42.5 && s->units[0] == 0;
      } else if (strcmp(s->label, "ticks") == 0) {
        k = 5; /* 1000 x the interval's seconds: 1 s +- timer jitter */
        ok = s->kind == COUNTERS_SUM && s->value > 900 && s->value < 1100;
      } else if (strcmp(s->label, "request-time") == 0) {
        k = 6; /* 10, 20 and 30 ms written once per interval */
        ok = s->kind == COUNTERS_MEAN && s->value == 20 && s->min == 10 &&
             s->max == 30 && s->count == 3 && strcmp(s->units, "ms") == 0;
      } else if (strcmp(s->label, "requests") == 0) {
        k = 7;
        ok = s->kind == COUNTERS_SUM && about_50(s->value);
      }
    } else if (strcmp(s->provider, "CollectdDotnet.Test") == 0) {
      ok = strcmp(s->session, "SHARED") == 0;
      if (strcmp(s->label, "orders[region=eu]") == 0) {
        k = 8;
        ok = ok && s->kind == COUNTERS_RATE && about_50(s->value) &&
             strcmp(s->units, "{order}") == 0 &&
             strcmp(s->tags, "region=eu") == 0;
      } else if (strcmp(s->label, "queue-length") == 0) {
        k = 9;
        ok = ok && s->kind == COUNTERS_UPDOWN && s->value == 7 &&
             strcmp(s->units, "{item}") == 0;
      } else if (strcmp(s->label, "temperature") == 0) {
        k = 10;
        ok = ok && s->kind == COUNTERS_GAUGE && s->value == 21.5 &&
             strcmp(s->units, "Cel") == 0;
      } else if (strncmp(s->label, "latency[", 8) == 0) {
        /* 10, 20, ..., 100 recorded every 100 ms: p50 60, p95 and p99
         * 100; count 10 a step, sum 550 a step */
        k = 11;
        ok = ok && s->kind == COUNTERS_HISTOGRAM &&
             strcmp(s->units, "ms") == 0 && s->nquantiles == 3 &&
             s->quantile[0] == 0.5 && s->quantile_value[0] == 60 &&
             s->quantile[1] == 0.95 && s->quantile_value[1] == 100 &&
             s->quantile[2] == 0.99 && s->quantile_value[2] == 100 &&
             s->count >= 90 && s->count <= 110 && fmod(s->count, 10) == 0 &&
             s->sum == s->count * 55;
      }
    }
    if (k < 0)
      continue;
    seen[k]++;
    if (!ok && bad[k]++ < 2)
      printf("# %s: unexpected %s %s: kind %d value %.17g min %g max %g "
             "count %g sum %g units '%s' tags '%s' session '%s'\n",
             fx->name, s->provider, s->label, (int)s->kind, s->value, s->min,
             s->max, s->count, s->sum, s->units, s->tags, s->session);
  }
  static const char *const what[] = {
      "gc-heap-size", "working-set",  "loh-size",     "gen-0-gc-count",
      "fixed-value",  "ticks",        "request-time", "requests",
      "orders",       "queue-length", "temperature",  "latency quantiles"};
  for (int k = 0; k < 12; k++) {
    if (seen[k] < 2 || bad[k])
      printf("# %s: %s: %zu samples, %d wrong\n", fx->name, what[k], seen[k],
             bad[k]);
    CHECK(seen[k] >= 2);
    EXPECT_EQ_INT(0, bad[k]);
  }
  printf("# %s: %zu System.Runtime samples of %zu counters\n", fx->name,
         n_runtime, NRUNTIME_COUNTERS);
  run_free(r);
  return 0;
}

/* ---- the tests, one set per fixture ---- */

#define FIXTURE_TESTS(n, i)                                                    \
  DEF_TEST(chunks_##n) { return test_chunks_of(&fixtures[i]); }                \
  DEF_TEST(truncated_##n) { return test_truncated_of(&fixtures[i]); }          \
  DEF_TEST(summary_##n) { return test_summary_of(&fixtures[i]); }              \
  DEF_TEST(values_##n) { return test_values_of(&fixtures[i]); }                \
  DEF_TEST(memory_##n) { return test_memory_of(&fixtures[i]); }


/* ---- memory of a session on a real stream ---- */

struct mem_run {
  struct counters_decoder *d;
  struct counters_table t;
  char scratch[8192];
};

static void mem_cb(void *ctx, const struct nettrace_event *ev) {
  struct mem_run *m = ctx;
  struct counters_sample s;
  if (counters_decoder_decode(m->d, ev, &s, m->scratch, sizeof(m->scratch)) !=
      1)
    return;
  struct counters_entry *e = counters_table_update(&m->t, &s, 0);
  struct naming_row rows[COUNTERS_MAX_QUANTILES + 1];
  if (e != NULL)
    naming_rows(e, rows, COUNTERS_MAX_QUANTILES + 1);
}

/* What a session's reader, decoder and table hold on the heap after a
 * real stream (malloc's count; 0 under ASan), against the worst case. */
static int test_memory_of(const struct fixture *fx) {
  struct mallinfo2 m0 = mallinfo2();
  struct mem_run *m = calloc(1, sizeof(*m));
  CHECK(m != NULL);
  m->d = counters_decoder_new();
  counters_table_init(&m->t, 0);
  struct nettrace_reader *r = nettrace_reader_new(NULL, mem_cb, m);
  CHECK(r != NULL && m->d != NULL);
  EXPECT_EQ_INT(0, nettrace_reader_feed(r, fx->data, fx->len));
  struct mallinfo2 m1 = mallinfo2();
  size_t delta = m1.uordblks - m0.uordblks; /* 0 under ASan: no mallinfo2 */
  size_t used = delta > sizeof(*m) ? delta - sizeof(*m) : 0;
  size_t worst = nettrace_reader_worst_bytes(NULL) +
                 counters_table_worst_bytes(0) + 64 * 1024;
  printf("# %s: reader %zu bytes by its count, %zu entries / %zu series; "
         "reader + decoder + table: %zu bytes on the heap (worst %zu)\n",
         fx->name, nettrace_reader_memory(r), m->t.n, m->t.series, used,
         worst);
  CHECK(used <= worst);
  CHECK(nettrace_reader_memory(r) <= nettrace_reader_worst_bytes(NULL));
  nettrace_reader_free(r);
  counters_decoder_free(m->d);
  counters_table_fini(&m->t);
  free(m);
  return 0;
}

FIXTURE_TESTS(net8, 0)
FIXTURE_TESTS(net9, 1)
FIXTURE_TESTS(net10, 2)
FIXTURE_TESTS(net11, 3)

int main(int argc, char **argv) {
  if (!find_fixtures_dir(argc, argv))
    SKIP_ALL("no fixtures directory (argv[1], $TEST_FIXTURES, tests/fixtures)");
  printf("# fixtures in %s\n", fixtures_dir);
  load_fixtures();
  RUN_TEST(chunks_net8);
  RUN_TEST(truncated_net8);
  RUN_TEST(summary_net8);
  RUN_TEST(values_net8);
  RUN_TEST(memory_net8);
  RUN_TEST(chunks_net9);
  RUN_TEST(truncated_net9);
  RUN_TEST(summary_net9);
  RUN_TEST(values_net9);
  RUN_TEST(memory_net9);
  RUN_TEST(chunks_net10);
  RUN_TEST(truncated_net10);
  RUN_TEST(summary_net10);
  RUN_TEST(values_net10);
  RUN_TEST(memory_net10);
  RUN_TEST(chunks_net11);
  RUN_TEST(truncated_net11);
  RUN_TEST(summary_net11);
  RUN_TEST(values_net11);
  RUN_TEST(memory_net11);
  free_fixtures();
  END_TEST;
}
