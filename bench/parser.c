/**
 * collectd-dotnet - bench/parser.c
 *
 * Parser throughput: the nettrace reader plus counter decoding of every event,
 * single thread, on a real capture of a counters session.
 *
 *   parser FILE.nettrace [--mb N] [--runs N] [--chunk BYTES] [--write OUT]
 *          [--no-decode] [--stateless] [--serve]
 *
 * Two workloads, both from the capture in memory (no I/O is timed):
 *
 *   stream   one long stream, as a session that runs for hours gives: the
 *            capture's header, Trace and MetadataBlocks once, then its
 *            EventBlocks, StackBlocks and SPBlocks repeated (re-framed, with
 *            the padding of their new offsets) until the stream is ~N MB
 *            (default 100), then the end marker.
 *   fresh    the capture itself fed into a fresh reader again and again
 *            until ~N MB have been read (metadata parsed every time: the
 *            cost of short sessions, e.g. reconnects).
 *
 * Each is fed in chunks of --chunk bytes (default 65536, like read()s of a
 * socket), and timed --runs times (default 5). Prints, per workload, the
 * median and the min-max of MB/s (10^6 bytes), events/s and counter
 * samples/s, and the CPU time per event. --write OUT also saves the long
 * stream to OUT (for bench/traceevent, to read the very same bytes).
 * --no-decode times the reader alone (events counted, not decoded).
 * Decoding uses a counters_decoder per reader, as the plugin's sessions do;
 * --stateless uses counters_decode instead (field names looked up per
 * event).
 *
 * --serve: nothing timed at start; then each line "stream" or "fresh" on
 * standard input times one run of that workload and prints
 * "stream <MB/s>" (one decoder per workload, kept from run to run, as
 * --runs does). bench/compare-parsers.sh --paired drives
 * this and bench/traceevent's --serve in turns, a run each.
 */
#include "../plugin/counters.h"
#include "../plugin/counters_decoder.h"
#include "../plugin/nettrace.h"
#include "../plugin/wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct tally {
  uint64_t events, samples, bad;
  struct counters_decoder *dec; /* one per reader, as a session has */
};

static int decode = 1;
static int stateless = 0;

static void on_event(void *ctx, const struct nettrace_event *ev) {
  struct tally *t = ctx;
  if (!decode) {
    t->events++;
    return;
  }
  struct counters_sample s;
  char scratch[4096];
  int rc = stateless
               ? counters_decode(ev, &s, scratch, sizeof(scratch))
               : counters_decoder_decode(t->dec, ev, &s, scratch,
                                         sizeof(scratch));
  t->events++;
  if (rc == 1)
    t->samples++;
  else if (rc < 0)
    t->bad++;
}

static double now(clockid_t clk) {
  struct timespec ts;
  clock_gettime(clk, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int feed_all(const uint8_t *p, size_t n, size_t chunk, struct tally *t) {
  struct nettrace_reader *r = nettrace_reader_new(NULL, on_event, t);
  if (r == NULL)
    return -ENOMEM;
  counters_decoder_reset(t->dec); /* a new reader: new metadata */
  int rc = 0;
  for (size_t off = 0; off < n && rc == 0; off += chunk)
    rc = nettrace_reader_feed(r, p + off, n - off < chunk ? n - off : chunk);
  if (rc == 0)
    rc = nettrace_reader_finish(r);
  if (rc != 0)
    fprintf(stderr, "parser: %s at byte %llu\n", nettrace_reader_error(r),
            (unsigned long long)nettrace_reader_error_offset(r));
  nettrace_reader_free(r);
  return rc;
}

/* ---- building the long stream ---- */

struct buf {
  uint8_t *p;
  size_t len, cap;
};

static void put(struct buf *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 1 << 20;
    while (cap < b->len + n)
      cap *= 2;
    b->p = realloc(b->p, cap);
    if (b->p == NULL) {
      perror("parser: realloc");
      exit(1);
    }
    b->cap = cap;
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
}

struct object {
  size_t off, type_len, content_off, content_len, total;
  int is_trace, is_metadata;
};

/* The objects of the capture (framing as in plugin/nettrace.c). */
static size_t objects(const uint8_t *d, size_t n, struct object *o,
                      size_t max) {
  size_t k = 0, at = 32;
  while (at < n && d[at] != 1 && k < max) {
    if (at + 15 > n)
      break;
    uint32_t nl = wire_le32(d + at + 11);
    struct object x = {.off = at, .type_len = 15 + nl + 1};
    const char *name = (const char *)d + at + 15;
    x.is_trace = nl == 5 && memcmp(name, "Trace", 5) == 0;
    x.is_metadata = nl == 13 && memcmp(name, "MetadataBlock", 13) == 0;
    if (x.is_trace) {
      x.content_off = x.type_len;
      x.content_len = 48;
    } else {
      size_t after = at + x.type_len + 4;
      x.content_off = x.type_len + 4 + (4 - after % 4) % 4;
      x.content_len = wire_le32(d + at + x.type_len);
    }
    x.total = x.content_off + x.content_len + 1;
    if (at + x.total > n)
      break;
    o[k++] = x;
    at += x.total;
  }
  return k;
}

static void put_object(struct buf *b, const uint8_t *d,
                       const struct object *x) {
  static const uint8_t zero[4];
  put(b, d + x->off, x->type_len);
  if (!x->is_trace) {
    put(b, d + x->off + x->type_len, 4);
    put(b, zero, (4 - b->len % 4) % 4);
  }
  put(b, d + x->off + x->content_off, x->content_len + 1);
}

static size_t build_stream(const uint8_t *d, size_t n, size_t target,
                           struct buf *out, size_t *copies) {
  static struct object o[65536];
  size_t k = objects(d, n, o, 65536);
  put(out, d, 32);
  for (size_t i = 0; i < k; i++)
    if (o[i].is_trace || o[i].is_metadata)
      put_object(out, d, &o[i]);
  *copies = 0;
  while (out->len < target) {
    for (size_t i = 0; i < k; i++)
      if (!o[i].is_trace && !o[i].is_metadata)
        put_object(out, d, &o[i]);
    (*copies)++;
  }
  put(out, "\x01", 1);
  return k;
}

/* ---- timing ---- */

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void summary(const char *what, const double *v, int runs,
                    const char *unit, double scale) {
  double s[64];
  memcpy(s, v, sizeof(double) * (size_t)runs);
  qsort(s, (size_t)runs, sizeof(double), cmp);
  printf("  %-18s median %10.2f %s  (min %.2f, max %.2f)\n", what,
         s[runs / 2] * scale, unit, s[0] * scale, s[runs - 1] * scale);
}

static int bench(const char *name, const uint8_t *d, size_t n, size_t reps,
                 size_t chunk, int runs) {
  double mbs[64], evs[64], sps[64], nspe[64];
  struct tally t = {0};
  struct counters_decoder *dec = counters_decoder_new();
  if (dec == NULL)
    return 1;
  for (int k = 0; k < runs; k++) {
    t = (struct tally){.dec = dec};
    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    for (size_t i = 0; i < reps; i++)
      if (feed_all(d, n, chunk, &t) != 0)
        return counters_decoder_free(dec), 1;
    double w = now(CLOCK_MONOTONIC) - w0;
    double c = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
    mbs[k] = (double)n * (double)reps / w / 1e6;
    evs[k] = (double)t.events / w;
    sps[k] = (double)t.samples / w;
    nspe[k] = c / (double)t.events * 1e9;
  }
  printf("%s: %.1f MB (%zu x %zu bytes), %llu events, %llu counter samples"
         " (%llu malformed) per run, %d runs\n",
         name, (double)n * (double)reps / 1e6, reps, n,
         (unsigned long long)t.events, (unsigned long long)t.samples,
         (unsigned long long)t.bad, runs);
  summary("throughput", mbs, runs, "MB/s", 1);
  summary("events", evs, runs, "M events/s", 1e-6);
  summary("counter samples", sps, runs, "M samples/s", 1e-6);
  summary("cpu per event", nspe, runs, "ns", 1);
  counters_decoder_free(dec);
  return 0;
}

/* --serve: one untimed run of each workload, then a timed run per line. */
static int serve(const uint8_t *sp, size_t sn, const uint8_t *cp, size_t cn,
                 size_t reps, size_t chunk) {
  struct workload {
    const char *name;
    const uint8_t *d;
    size_t n, reps;
    struct tally t;
  } w[2] = {{"stream", sp, sn, 1, {0}}, {"fresh", cp, cn, reps, {0}}};
  int rc = 0;
  for (int k = 0; k < 2 && rc == 0; k++) {
    w[k].t.dec = counters_decoder_new();
    if (w[k].t.dec == NULL)
      rc = 1;
    for (size_t i = 0; i < w[k].reps && rc == 0; i++)
      rc = feed_all(w[k].d, w[k].n, chunk, &w[k].t);
  }
  printf("ready\n");
  fflush(stdout);
  char line[64];
  while (rc == 0 && fgets(line, sizeof(line), stdin) != NULL) {
    line[strcspn(line, "\r\n")] = 0;
    struct workload *x = strcmp(line, "stream") == 0  ? &w[0]
                         : strcmp(line, "fresh") == 0 ? &w[1]
                                                      : NULL;
    if (x == NULL) {
      fprintf(stderr, "parser: --serve: unknown workload \"%s\"\n", line);
      rc = 2;
      break;
    }
    double w0 = now(CLOCK_MONOTONIC);
    for (size_t i = 0; i < x->reps && rc == 0; i++)
      rc = feed_all(x->d, x->n, chunk, &x->t);
    double sec = now(CLOCK_MONOTONIC) - w0;
    printf("%s %.2f\n", x->name, (double)x->n * (double)x->reps / sec / 1e6);
    fflush(stdout);
  }
  for (int k = 0; k < 2; k++)
    counters_decoder_free(w[k].t.dec);
  return rc;
}

int main(int argc, char **argv) {
  const char *file = NULL;
  double mb = 100;
  int runs = 5;
  size_t chunk = 65536;
  const char *write = NULL;
  int serving = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--mb") == 0 && i + 1 < argc)
      mb = atof(argv[++i]);
    else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
      runs = atoi(argv[++i]);
    else if (strcmp(argv[i], "--chunk") == 0 && i + 1 < argc)
      chunk = (size_t)atol(argv[++i]);
    else if (strcmp(argv[i], "--no-decode") == 0)
      decode = 0;
    else if (strcmp(argv[i], "--stateless") == 0)
      stateless = 1;
    else if (strcmp(argv[i], "--serve") == 0)
      serving = 1;
    else if (strcmp(argv[i], "--write") == 0 && i + 1 < argc)
      write = argv[++i];
    else if (argv[i][0] != '-' && file == NULL)
      file = argv[i];
    else
      file = NULL, argc = 0;
  }
  if (file == NULL || runs < 1 || runs > 64 || chunk == 0 || mb <= 0) {
    fprintf(stderr, "usage: parser FILE.nettrace [--mb N] [--runs 1..64] "
                    "[--chunk BYTES] [--write OUT] [--no-decode] "
                    "[--stateless] [--serve]\n");
    return 2;
  }
  FILE *f = fopen(file, "rb");
  if (f == NULL) {
    perror(file);
    return 1;
  }
  struct buf cap = {0};
  uint8_t tmp[65536];
  size_t n;
  while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
    put(&cap, tmp, n);
  fclose(f);
  size_t target = (size_t)(mb * 1e6);

  struct buf stream = {0};
  size_t copies = 0;
  size_t nobj = build_stream(cap.p, cap.len, target, &stream, &copies);
  printf("capture %s: %zu bytes, %zu objects; stream: its event/stack/SP "
         "blocks x %zu\n",
         file, cap.len, nobj, copies);
  if (write != NULL) {
    FILE *w = fopen(write, "wb");
    if (w == NULL || fwrite(stream.p, 1, stream.len, w) != stream.len ||
        fclose(w) != 0) {
      perror(write);
      return 1;
    }
  }
  size_t reps = (target + cap.len - 1) / cap.len;
  int rc;
  if (serving) {
    rc = serve(stream.p, stream.len, cap.p, cap.len, reps, chunk);
  } else {
    rc = bench("stream", stream.p, stream.len, 1, chunk, runs);
    rc |= bench("fresh", cap.p, cap.len, reps, chunk, runs);
  }
  free(stream.p);
  free(cap.p);
  return rc;
}
