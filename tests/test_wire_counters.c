/**
 * collectd-dotnet - tests/test_wire_counters.c
 *
 * Unit tests of the wire cursor helpers, IPC message encoding/decoding and
 * the counter payload decoder, on hand-built inputs (the real streams are
 * covered by test_nettrace and the integration tests).
 */
#include "counters.h"
#include "counters_decoder.h"
#include "counters_table.h"
#include "ipc.h"
#include "naming.h"
#include "nettrace.h"
#include "wire.h"

#include "nettrace_build.h"
#include "testing.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>

/* The plain LEB128 definition (at most ten bytes, 64 bits) of the len
 * bytes at b: 1 with *want and *used, 0 when it is no varint. */
static int ref_varint(const uint8_t *b, size_t len, uint64_t *want,
                      size_t *used) {
  *want = 0;
  for (size_t i = 0; i < len && i < 10; i++) {
    if (i == 9 && b[i] > 1)
      return 0;
    *want |= (uint64_t)(b[i] & 0x7f) << (7 * i);
    if (!(b[i] & 0x80)) {
      *used = i + 1;
      return 1;
    }
  }
  return 0;
}

/* Whether wire_varu64 on the len bytes at b gives what ref_varint does
 * (the cursor past the varint, or unmoved when refused). */
static int varint_as_ref(const uint8_t *b, size_t len) {
  uint64_t want, v = 12345;
  size_t used = 0;
  int ok = ref_varint(b, len, &want, &used);
  struct wire_cursor c = wire_cursor(b, len);
  int r = wire_varu64(&c, &v);
  if (r != (ok ? 0 : -1) || (ok && (v != want || c.len != len - used)) ||
      (!ok && c.len != len)) {
    printf("# %02x %02x ... len %zu: %d %" PRIu64 ", want %d %" PRIu64 "\n",
           b[0], len > 1 ? b[1] : 0, len, r, v, ok, want);
    return 0;
  }
  return 1;
}

DEF_TEST(varint) {
  uint8_t in[] = {0x96, 0x01, 0x7f, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x80};
  struct wire_cursor c = wire_cursor(in, sizeof(in));
  uint64_t v;
  uint32_t v32;
  CHECK(wire_varu64(&c, &v) == 0);
  EXPECT_EQ_U64(150, v);
  CHECK(wire_varu32(&c, &v32) == 0);
  EXPECT_EQ_U64(127, v32);
  CHECK(wire_varu32(&c, &v32) == 0);
  EXPECT_EQ_U64(0xffffffffu, v32);
  /* a lone continuation byte: truncated, cursor unchanged */
  CHECK(wire_varu64(&c, &v) == -1);
  EXPECT_EQ_INT(1, c.len);
  /* 11 continuation bytes: more than 64 bits */
  uint8_t big[11];
  memset(big, 0xff, sizeof(big));
  c = wire_cursor(big, sizeof(big));
  CHECK(wire_varu64(&c, &v) == -1);
  /* a value above 32 bits refused by varu32, cursor unchanged */
  uint8_t v33[] = {0x80, 0x80, 0x80, 0x80, 0x10};
  c = wire_cursor(v33, sizeof(v33));
  CHECK(wire_varu32(&c, &v32) == -1);
  EXPECT_EQ_INT(5, c.len);
  /* every two leading bytes, alone, with a third and with a terminator:
   * what the plain LEB128 definition gives (the short forms' fast path) */
  for (unsigned x = 0; x < 65536; x++) {
    uint8_t b[3] = {(uint8_t)(x & 0xff), (uint8_t)(x >> 8), 0x01};
    for (size_t len = 1; len <= 3; len++)
      if (!varint_as_ref(b, len))
        CHECK(0);
  }
  /* forms of every length 1..11 (continuation bytes with random groups,
   * the high groups often zero or 0x7f), in buffers cut at every length
   * up to 12 and with bytes after them: the plain definition again (the
   * loop past the short forms, its ten-byte limit) */
  uint64_t seed = 0x9E3779B97F4A7C15ULL;
  for (int round = 0; round < 20000; round++) {
    uint8_t b[16];
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    size_t form = 1 + (size_t)(seed >> 60) % 11;
    for (size_t i = 0; i < sizeof(b); i++) {
      seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
      uint8_t g = (uint8_t)(seed >> 56) & 0x7f;
      if ((seed >> 40 & 3) == 0)
        g = (seed >> 42 & 1) ? 0x7f : 0;
      b[i] = (uint8_t)(g | (i + 1 < form ? 0x80 : 0));
    }
    for (size_t len = 0; len <= 12; len++)
      if (!varint_as_ref(b, len)) {
        printf("# form %zu\n", form);
        CHECK(0);
        break;
      }
  }
  return 0;
}

DEF_TEST(utf16) {
  /* "hé€😀" */
  uint8_t s[] = {'h', 0, 0xe9, 0, 0xac, 0x20, 0x3d, 0xd8, 0x00, 0xde, 0, 0};
  struct wire_cursor c = wire_cursor(s, sizeof(s));
  const uint8_t *start;
  size_t units;
  CHECK(wire_utf16z(&c, &start, &units) == 0);
  EXPECT_EQ_INT(5, units);
  EXPECT_EQ_INT(0, c.len);
  char out[32];
  EXPECT_EQ_INT(10, wire_utf16_to_utf8(start, units, out, sizeof(out)));
  EXPECT_EQ_STR("h\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", out);
  /* too small: refused, empty */
  EXPECT_EQ_INT(-1, wire_utf16_to_utf8(start, units, out, 4));
  EXPECT_EQ_STR("", out);
  /* unpaired surrogate */
  uint8_t lone[] = {0x3d, 0xd8, 'a', 0};
  EXPECT_EQ_INT(4, wire_utf16_to_utf8(lone, 2, out, sizeof(out)));
  EXPECT_EQ_STR("\xef\xbf\xbd"
                "a",
                out);
  /* no terminator: refused */
  uint8_t noterm[] = {'a', 0, 'b'};
  c = wire_cursor(noterm, sizeof(noterm));
  CHECK(wire_utf16z(&c, &start, &units) == -1);
  return 0;
}

/* The word-at-a-time paths of wire_utf16z and wire_utf16_to_utf8 against
 * plain per-unit references: every length 0..40, the terminator and a
 * non-ASCII unit at every position, every output capacity. */
static size_t ref_units(const uint8_t *p, size_t len) {
  for (size_t i = 0; i + 1 < len; i += 2)
    if (p[i] == 0 && p[i + 1] == 0)
      return i / 2;
  return (size_t)-1;
}

DEF_TEST(utf16_fast_paths) {
  uint8_t buf[96];
  char out[160], ref[160];
  for (size_t n = 0; n <= 40; n++) {
    for (size_t odd = 0; odd <= n; odd++) { /* odd == n: all ASCII */
      for (size_t i = 0; i < n; i++) {
        uint16_t u = (uint16_t)('a' + i % 26);
        if (i == odd)
          u = i % 2 ? 0xe9 : 0x20ac; /* 2 and 3 UTF-8 bytes */
        buf[2 * i] = (uint8_t)u;
        buf[2 * i + 1] = (uint8_t)(u >> 8);
      }
      buf[2 * n] = buf[2 * n + 1] = 0;
      memset(buf + 2 * n + 2, 'x', sizeof(buf) - 2 * n - 2);
      struct wire_cursor c = wire_cursor(buf, sizeof(buf));
      const uint8_t *start = NULL;
      size_t units = 0;
      CHECK(wire_utf16z(&c, &start, &units) == 0);
      EXPECT_EQ_INT(n, units);
      EXPECT_EQ_INT(ref_units(buf, sizeof(buf)), units);
      EXPECT_EQ_INT(sizeof(buf) - 2 * n - 2, c.len);
      /* no terminator within the cursor: refused, whatever follows */
      c = wire_cursor(buf, 2 * n + 1);
      CHECK(wire_utf16z(&c, &start, &units) == -1);
      /* the reference conversion: one unit at a time */
      size_t o = 0;
      for (size_t i = 0; i < n; i++) {
        uint16_t u = wire_le16(buf + 2 * i);
        if (u < 0x80) {
          ref[o++] = (char)u;
        } else if (u < 0x800) {
          ref[o++] = (char)(0xC0 | u >> 6);
          ref[o++] = (char)(0x80 | (u & 0x3F));
        } else {
          ref[o++] = (char)(0xE0 | u >> 12);
          ref[o++] = (char)(0x80 | ((u >> 6) & 0x3F));
          ref[o++] = (char)(0x80 | (u & 0x3F));
        }
      }
      ref[o] = 0;
      for (size_t cap = 1; cap <= o + 2; cap++) {
        memset(out, 'y', sizeof(out));
        long l = wire_utf16_to_utf8(buf, n, out, cap);
        if (cap > o) {
          EXPECT_EQ_INT((long)o, l);
          EXPECT_EQ_STR(ref, out);
        } else {
          EXPECT_EQ_INT(-1, l);
          EXPECT_EQ_STR("", out);
        }
        CHECK(out[cap] == 'y'); /* nothing written past cap */
      }
    }
  }
  return 0;
}

DEF_TEST(ipc_messages) {
  uint8_t msg[64];
  long n = ipc_message_encode(msg, sizeof(msg), IPC_SET_PROCESS,
                              IPC_PROCESS_INFO2, NULL, 0);
  EXPECT_EQ_INT(20, n);
  CHECK(memcmp(msg, "DOTNET_IPC_V1\0", 14) == 0);
  EXPECT_EQ_INT(20, msg[14]);
  EXPECT_EQ_INT(0x04, msg[16]);
  EXPECT_EQ_INT(0x04, msg[17]);
  uint8_t set, id;
  EXPECT_EQ_INT(0, ipc_header_decode(msg, &set, &id));
  msg[0] = 'X';
  EXPECT_EQ_INT(-EBADMSG, ipc_header_decode(msg, &set, &id));
  msg[0] = 'D';
  msg[14] = 19; /* size smaller than a header */
  EXPECT_EQ_INT(-EBADMSG, ipc_header_decode(msg, &set, &id));
  /* payload too large for the 16-bit size */
  static uint8_t big[70000];
  EXPECT_EQ_INT(-EMSGSIZE,
                ipc_message_encode(big, sizeof(big), 1, 1, big, 65520));
  return 0;
}

DEF_TEST(ipc_strings) {
  uint8_t b[64];
  long off = ipc_put_string(b, sizeof(b), 0, "ab");
  EXPECT_EQ_INT(4 + 6, off);
  EXPECT_EQ_INT(3, b[0]); /* length counts the terminator */
  off = ipc_put_string(b, sizeof(b), (size_t)off, NULL);
  EXPECT_EQ_INT(14, off);
  EXPECT_EQ_INT(-EMSGSIZE, ipc_put_string(b, 8, 0, "abc"));
  EXPECT_EQ_INT(-EILSEQ, ipc_put_string(b, sizeof(b), 0, "\xff"));
  struct wire_cursor c = wire_cursor(b, 14);
  char out[16];
  CHECK(ipc_take_string(&c, out, sizeof(out)) == 0);
  EXPECT_EQ_STR("ab", out);
  CHECK(ipc_take_string(&c, out, sizeof(out)) == 0);
  EXPECT_EQ_STR("", out);
  EXPECT_EQ_INT(0, c.len);
  /* a length that claims more than there is: refused, cursor unchanged */
  uint8_t bad[] = {0xff, 0xff, 0xff, 0x7f, 'a', 0};
  c = wire_cursor(bad, sizeof(bad));
  EXPECT_EQ_INT(-EBADMSG, ipc_take_string(&c, out, sizeof(out)));
  EXPECT_EQ_INT(sizeof(bad), c.len);
  /* no terminator in the last unit */
  uint8_t noterm[] = {2, 0, 0, 0, 'a', 0, 'b', 0};
  c = wire_cursor(noterm, sizeof(noterm));
  EXPECT_EQ_INT(-EBADMSG, ipc_take_string(&c, out, sizeof(out)));
  /* longer than the output: truncated, still consumed */
  uint8_t lng[4 + 2 * 20];
  c = wire_cursor(lng, 0);
  struct buf w = {.len = 0};
  put_u32(&w, 20);
  for (int i = 0; i < 19; i++)
    put_u16(&w, 'x');
  put_u16(&w, 0);
  memcpy(lng, w.d, w.len);
  c = wire_cursor(lng, w.len);
  CHECK(ipc_take_string(&c, out, 8) == 0);
  EXPECT_EQ_STR("xxxxxxx", out);
  EXPECT_EQ_INT(0, c.len);
  CHECK(ipc_hresult_name(IPC_E_UNKNOWN_COMMAND) != NULL);
  return 0;
}

/* Field tables, a field a name and type: what the runtime declares. */
#define STR(name)                                                              \
  { name, NETTRACE_TYPE_STRING, 0, 0 }
#define F64(name)                                                              \
  { name, NETTRACE_TYPE_DOUBLE, 0, 0 }
#define F32(name)                                                              \
  { name, NETTRACE_TYPE_SINGLE, 0, 0 }
#define I32(name)                                                              \
  { name, NETTRACE_TYPE_INT32, 0, 0 }
/* an object whose n fields follow it */
#define OBJ(name, n)                                                           \
  { name, NETTRACE_TYPE_OBJECT, n, n }

/* EventCounters: one object "Payload" of a mean or a sum. */
static const struct nettrace_field mean_fields[] = {OBJ("Payload", 12),
                                                    STR("Name"),
                                                    STR("DisplayName"),
                                                    F64("Mean"),
                                                    F64("StandardDeviation"),
                                                    I32("Count"),
                                                    F64("Min"),
                                                    F64("Max"),
                                                    F32("IntervalSec"),
                                                    STR("Series"),
                                                    STR("CounterType"),
                                                    STR("Metadata"),
                                                    STR("DisplayUnits")};

static const struct nettrace_field sum_fields[] = {
    OBJ("Payload", 9),  STR("Name"),
    STR("DisplayName"), STR("DisplayRateTimeScale"),
    F64("Increment"),   F32("IntervalSec"),
    STR("Metadata"),    STR("Series"),
    STR("CounterType"), STR("DisplayUnits")};

/* System.Diagnostics.Metrics: CounterRateValuePublished and
 * HistogramValuePublished, after the fields every such event starts with. */
#define METER_FIELDS                                                           \
  STR("sessionId"), STR("meterName"), STR("meterVersion"),                     \
      STR("instrumentName"), STR("unit"), STR("tags")

static const struct nettrace_field rate_fields[] = {
    METER_FIELDS, STR("rate"), STR("value"), I32("instrumentId")};

static const struct nettrace_field hist_fields[] = {
    METER_FIELDS, STR("quantiles"), I32("count"), F64("sum")};

static struct nettrace_meta ec_meta(const struct nettrace_field *f,
                                    uint32_t n) {
  return (struct nettrace_meta){.id = 1,
                                .provider = "Contoso",
                                .event_name = "EventCounters",
                                .fields = f,
                                .nfields_total = n,
                                .nfields = 1,
                                .fields_ok = 1};
}

/* The Metrics provider's event `name` of fields f (rate_ or hist_fields). */
static struct nettrace_meta meter_meta(const char *name,
                                       const struct nettrace_field *f) {
  return (struct nettrace_meta){.provider = "System.Diagnostics.Metrics",
                                .event_name = name,
                                .fields = f,
                                .nfields_total = 9,
                                .nfields = 9,
                                .fields_ok = 1};
}

/* An event, its payload and what it decodes to. */
struct decoded {
  struct nettrace_meta m;
  struct buf b;
  struct nettrace_event ev;
  struct counters_sample s;
  char scratch[512];
};

/* x->ev := the event of metadata m whose payload is the values v (one a
 * field of m, as put_payload takes them). */
static void event_values(struct decoded *x, const struct nettrace_meta *m,
                         const char *const *v) {
  x->m = *m;
  put_payload(&x->b, m->fields, m->nfields_total, v);
  x->ev = (struct nettrace_event){
      .meta = &x->m, .payload = x->b.d, .payload_len = (uint32_t)x->b.len};
}

/* x->ev decoded by d, or by counters_decode when d is NULL, into x->s. */
static int decode_by(struct counters_decoder *d, struct decoded *x) {
  return d != NULL
             ? counters_decoder_decode(d, &x->ev, &x->s, x->scratch,
                                       sizeof(x->scratch))
             : counters_decode(&x->ev, &x->s, x->scratch, sizeof(x->scratch));
}

/* event_values, then counters_decode's result. */
static int decode_values(struct decoded *x, const struct nettrace_meta *m,
                         const char *const *v) {
  event_values(x, m, v);
  return decode_by(NULL, x);
}

/* The values v of metadata m decode (into x) to a sample of this kind,
 * provider and name. */
static void expect_sample(struct decoded *x, const struct nettrace_meta *m,
                          const char *const *v, enum counters_kind kind,
                          const char *provider, const char *name) {
  EXPECT_EQ_INT(1, decode_values(x, m, v));
  EXPECT_EQ_INT(kind, x->s.kind);
  EXPECT_EQ_STR(provider, x->s.provider);
  EXPECT_EQ_STR(name, x->s.name);
}

DEF_TEST(event_counter_mean) {
  static const char *const v[] = {
      "request-time",  "Request Time", "20", "8.16", "3", "10", "30", "1",
      "Interval=1000", "Mean",         "",   "ms"};
  struct nettrace_meta m = ec_meta(mean_fields, 13);
  struct decoded x;
  expect_sample(&x, &m, v, COUNTERS_MEAN, "Contoso", "request-time");
  const struct counters_sample *s = &x.s;
  char dn[64];
  EXPECT_EQ_STR("Request Time", counters_display_name(s, dn, sizeof(dn)));
  EXPECT_EQ_STR("ms", s->units);
  EXPECT_EQ_DOUBLE(20, s->value, 0);
  EXPECT_EQ_DOUBLE(10, s->min, 0);
  EXPECT_EQ_DOUBLE(30, s->max, 0);
  EXPECT_EQ_DOUBLE(3, s->count, 0);
  EXPECT_EQ_DOUBLE(1, s->interval_sec, 0);
  EXPECT_EQ_INT(1000, s->series_ms);
  /* every truncation of the payload: an error, never a read past it */
  for (size_t cut = 0; cut < x.b.len; cut++) {
    x.ev.payload_len = (uint32_t)cut;
    CHECK(decode_by(NULL, &x) < 0);
  }
  /* a tiny scratch buffer: strings come out empty, no overflow */
  x.ev.payload_len = (uint32_t)x.b.len;
  char tiny[4];
  EXPECT_EQ_INT(-EBADMSG, counters_decode(&x.ev, &x.s, tiny, sizeof(tiny)));
  return 0;
}

/* ---- the decoder: the same samples as counters_decode ---- */

static int same_num(double a, double b) {
  return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof(a)) == 0;
}

/* counters_decoder_decode(d) == counters_decode, result and sample. */
static int agrees(struct counters_decoder *d, const struct nettrace_event *ev,
                  size_t cap) {
  struct counters_sample a, b;
  char sa[512], sb[512];
  int ra = counters_decode(ev, &a, sa, cap);
  int rb = counters_decoder_decode(d, ev, &b, sb, cap);
  if (ra != rb)
    return printf("# rc %d, decoder %d\n", ra, rb), 0;
  if (ra != 1)
    return 1;
  int same = a.kind == b.kind && strcmp(a.provider, b.provider) == 0 &&
             strcmp(a.name, b.name) == 0 && strcmp(a.units, b.units) == 0 &&
             strcmp(a.tags, b.tags) == 0 && strcmp(a.session, b.session) == 0 &&
             a.display_name_utf16 == b.display_name_utf16 &&
             a.display_name_units == b.display_name_units &&
             same_num(a.value, b.value) && same_num(a.min, b.min) &&
             same_num(a.max, b.max) && same_num(a.stddev, b.stddev) &&
             same_num(a.count, b.count) && same_num(a.total, b.total) &&
             same_num(a.sum, b.sum) &&
             same_num(a.interval_sec, b.interval_sec) &&
             a.series_ms == b.series_ms && a.timestamp == b.timestamp &&
             a.nquantiles == b.nquantiles;
  for (uint32_t i = 0; same && i < a.nquantiles; i++)
    same = same_num(a.quantile[i], b.quantile[i]) &&
           same_num(a.quantile_value[i], b.quantile_value[i]);
  if (!same)
    printf("# %s/%s %g vs %s/%s %g\n", a.name, a.units, a.value, b.name,
           b.units, b.value);
  return same;
}

/* The decoder's plan gives counters_decode's result and sample: for each
 * CounterType, each truncation of the payload, a scratch too small for its
 * strings, and two metadata taking turns in one way of its cache. */
DEF_TEST(decoder_agrees) {
  static const char *const types[] = {"Mean", "Sum", "", "Other"};
  struct nettrace_meta m = ec_meta(mean_fields, 13), m2 = m;
  m2.id = m.id + 32;
  struct counters_decoder *d = counters_decoder_new();
  CHECK(d != NULL);
  struct decoded x;
  for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
    const char *v[] = {
        "request-time",  "Display", "20", "0.5", "3", "19", "21", "1",
        "Interval=1000", types[k],  "",   "ms"};
    event_values(&x, &m, v);
    struct nettrace_event ev = x.ev;
    for (size_t cut = 0; cut <= x.b.len; cut++) {
      ev.payload_len = (uint32_t)cut;
      CHECK(agrees(d, &ev, 512));
    }
    CHECK(agrees(d, &ev, 8));
    ev.meta = &m2;
    CHECK(agrees(d, &ev, 512));
    ev.meta = &m;
    CHECK(agrees(d, &ev, 512));
  }
  counters_decoder_free(d);
  return 0;
}

DEF_TEST(event_counter_sum_and_table) {
  static const char *const v[] = {
      "requests", "Requests",      "00:00:01", "50", "1",
      "",         "Interval=1000", "Sum",      ""};
  struct nettrace_meta m = ec_meta(sum_fields, 10);
  struct decoded x;
  expect_sample(&x, &m, v, COUNTERS_SUM, "Contoso", "requests");
  struct counters_sample s = x.s;
  EXPECT_EQ_DOUBLE(50, s.value, 0);

  struct counters_table t;
  counters_table_init(&t, 2);
  for (int i = 0; i < 3; i++)
    CHECK(counters_table_update(&t, &s, 1000 * i) != NULL);
  EXPECT_EQ_INT(1, t.n);
  EXPECT_EQ_DOUBLE(150, t.entries[0].total, 0);
  EXPECT_EQ_INT(3, t.entries[0].updates);
  /* the cap holds */
  s.name = "b";
  CHECK(counters_table_update(&t, &s, 0) != NULL);
  s.name = "c";
  CHECK(counters_table_update(&t, &s, 0) == NULL);
  EXPECT_EQ_INT(2, t.n);
  EXPECT_EQ_INT(1, t.overflow);
  counters_table_fini(&t);

  /* keys are copied (the sample's strings may go), bounded in length; a
   * histogram entry has its quantiles, also after a change of kind */
  counters_table_init(&t, 0);
  static char tags[1100];
  memset(tags, 'k', sizeof(tags) - 1);
  s.tags = tags;
  CHECK(counters_table_update(&t, &s, 0) == NULL); /* 1099 > 1023 */
  tags[1023] = 0;
  struct counters_entry *e = counters_table_update(&t, &s, 0);
  CHECK(e != NULL && e->hist == NULL && strlen(e->tags) == 1023);
  tags[0] = 'x'; /* the entry has its own copy */
  CHECK(e->tags[0] == 'k');
  EXPECT_EQ_INT(1, t.overflow);
  s.kind = COUNTERS_HISTOGRAM;
  s.nquantiles = 1;
  s.quantile[0] = 0.5;
  s.quantile_value[0] = 7;
  s.count = 3;
  s.tags = "k=1";
  e = counters_table_update(&t, &s, 0); /* new key */
  CHECK(e != NULL && e->hist != NULL && e->hist->nquantiles == 1);
  EXPECT_EQ_DOUBLE(7, e->hist->quantile_value[0], 0);
  s.tags = "";
  s.name = "c";
  s.kind = COUNTERS_SUM;
  CHECK(counters_table_update(&t, &s, 0) != NULL);
  s.kind = COUNTERS_HISTOGRAM;
  e = counters_table_update(&t, &s, 0); /* same name, another kind: a key
                                           of its own, with its quantiles */
  CHECK(e != NULL && e->hist != NULL && e->hist->count == 3);
  EXPECT_EQ_INT(4, t.n);
  EXPECT_EQ_INT(1 + 1 + 4 + 4, t.series);
  counters_table_clear(&t);
  EXPECT_EQ_INT(0, t.n);

  /* a lookup starts after the entry last found: every order of samples
   * (the usual one, reversed, rotated, one key repeated) still finds each
   * key's own entry, and a new key after a cleared table */
  static const char *const keys[5] = {"k0", "k1", "k2", "k3", "k4"};
  static const int orders[4][5] = {
      {0, 1, 2, 3, 4}, {4, 3, 2, 1, 0}, {2, 3, 4, 0, 1}, {3, 3, 0, 3, 4}};
  s.kind = COUNTERS_SUM;
  s.tags = "";
  s.value = 1;
  for (int o = 0; o < 4; o++)
    for (int k = 0; k < 5; k++) {
      s.name = keys[orders[o][k]];
      e = counters_table_update(&t, &s, 0);
      CHECK(e != NULL && strcmp(e->name, s.name) == 0);
      CHECK(e == &t.entries[orders[o][k]]); /* the first order made them */
    }
  EXPECT_EQ_INT(5, t.n);
  static const double totals[5] = {4, 3, 3, 6, 4};
  for (int k = 0; k < 5; k++)
    EXPECT_EQ_DOUBLE(totals[k], t.entries[k].total, 0);
  s.tags = "other"; /* same name, another key */
  e = counters_table_update(&t, &s, 0);
  CHECK(e != NULL && e == &t.entries[5] && strcmp(e->name, "k4") == 0);
  EXPECT_EQ_INT(6, t.n);
  counters_table_clear(&t);
  s.tags = "";
  e = counters_table_update(&t, &s, 0);
  CHECK(e != NULL && e == &t.entries[0] && e->total == 1);
  counters_table_fini(&t);
  return 0;
}

/* CounterRateValuePublished values (meter version "", instrument id 7). */
#define RATE_VALUES(meter, instrument, unit, tags, rate, value)                \
  { "SHARED", meter, "", instrument, unit, tags, rate, value, "7" }

/* HistogramValuePublished values of meter Contoso.Shop 1.0, unit ms, no
 * tags. */
#define HIST_VALUES(instrument, quantiles, count, sum)                         \
  {                                                                            \
    "SHARED", "Contoso.Shop", "1.0", instrument, "ms", "", quantiles, count,   \
        sum                                                                    \
  }

DEF_TEST(meters) {
  static const char *const rate[] = RATE_VALUES(
      "Contoso.Shop", "orders", "{order}", "region=eu", "50", "1234");
  /* a rate not known yet ("") is not a sample */
  static const char *const no_rate[] =
      RATE_VALUES("Contoso.Shop", "orders", "", "", "", "");
  static const char *const hist[] =
      HIST_VALUES("latency", "0.5=50;0.95=100;0.99=100", "100", "5500");
  struct nettrace_meta m = meter_meta("CounterRateValuePublished", rate_fields);
  struct decoded x;
  expect_sample(&x, &m, rate, COUNTERS_RATE, "Contoso.Shop", "orders");
  const struct counters_sample *s = &x.s;
  EXPECT_EQ_STR("region=eu", s->tags);
  EXPECT_EQ_STR("SHARED", s->session);
  EXPECT_EQ_DOUBLE(50, s->value, 0);
  EXPECT_EQ_DOUBLE(1234, s->total, 0);
  EXPECT_EQ_INT(0, decode_values(&x, &m, no_rate));

  m = meter_meta("HistogramValuePublished", hist_fields);
  expect_sample(&x, &m, hist, COUNTERS_HISTOGRAM, "Contoso.Shop", "latency");
  EXPECT_EQ_INT(3, s->nquantiles);
  EXPECT_EQ_DOUBLE(0.95, s->quantile[1], 1e-12);
  EXPECT_EQ_DOUBLE(100, s->quantile_value[1], 0);
  EXPECT_EQ_DOUBLE(100, s->count, 0);
  EXPECT_EQ_DOUBLE(5500, s->sum, 0);

  /* other events of the provider are not samples */
  m.event_name = "BeginInstrumentReporting";
  EXPECT_EQ_INT(0, decode_values(&x, &m, hist));
  /* nor events of other providers */
  m.provider = "Microsoft-Windows-DotNETRuntime";
  m.event_name = "GCStart";
  EXPECT_EQ_INT(0, decode_values(&x, &m, hist));
  return 0;
}

/* The Metrics provider's numbers are text: whatever path parses them, the
 * value is the double strtod gives (NAN when strtod stops early). */
/* parse_quantiles by plain strtod: "q=v;q=v", up to 4 pairs; only the
 * runtime's quantiles (0.5, 0.95, 0.99), each once, are kept. */
static uint32_t ref_quantiles(const char *s, double *q, double *v) {
  uint32_t n = 0;
  while (*s && n < 4) {
    char *end;
    q[n] = strtod(s, &end);
    if (end == s || *end != '=')
      return n;
    s = end + 1;
    v[n] = strtod(s, &end);
    if (end == s)
      return n;
    int keep = q[n] == 0.5 || q[n] == 0.95 || q[n] == 0.99;
    for (uint32_t i = 0; keep && i < n; i++)
      keep = q[i] != q[n];
    n += keep;
    s = end;
    if (*s != ';')
      return n;
    s++;
  }
  return n;
}

DEF_TEST(meter_numbers) {
  struct nettrace_meta m = meter_meta("CounterRateValuePublished", rate_fields);
  static const char *const fixed[] = {"0",
                                      "-0",
                                      "1",
                                      "-1",
                                      ".5",
                                      "5.",
                                      "0.1",
                                      "0.3",
                                      "1e3",
                                      "-2.5E-3",
                                      "123456789012345",
                                      "1234567890123456",
                                      "9007199254740993",
                                      "0.000000000000000000001",
                                      "0.0000000000000000000001",
                                      "0.00000000000000000000001",
                                      "3.14159265358979",
                                      "99999999999999.9",
                                      "1.7976931348623157E+308",
                                      "4.9E-324",
                                      "00000000000000000000012",
                                      "12.34.5",
                                      "-",
                                      ".",
                                      "+5",
                                      " 5",
                                      "5 ",
                                      "1,5",
                                      "NaN",
                                      "Infinity",
                                      "0x10",
                                      "-.5",
                                      "--5",
                                      "1.2.",
                                      "12345678901234567890123"};
  char text[64];
  struct counters_decoder *d = counters_decoder_new();
  CHECK(d != NULL);
  struct nettrace_meta hm = meter_meta("HistogramValuePublished", hist_fields);
  hm.id = 2;
  unsigned seed = 12345;
  for (int k = 0; k < 2000 + (int)(sizeof(fixed) / sizeof(fixed[0])); k++) {
    if (k < (int)(sizeof(fixed) / sizeof(fixed[0]))) {
      snprintf(text, sizeof(text), "%s", fixed[k]);
    } else { /* random decimals: 1..20 digits, a point anywhere, a sign */
      seed = seed * 1103515245u + 12345u;
      int len = 1 + (int)(seed >> 16) % 20, o = 0;
      if ((seed >> 8) & 1)
        text[o++] = '-';
      seed = seed * 1103515245u + 12345u;
      int dot = (int)(seed >> 16) % (len + 2);
      for (int i = 0; i < len; i++) {
        if (i == dot)
          text[o++] = '.';
        seed = seed * 1103515245u + 12345u;
        text[o++] = (char)('0' + (seed >> 16) % 10);
      }
      text[o] = 0;
    }
    /* as a histogram's quantiles, twice: what strtod reads of them */
    char qtext[160];
    snprintf(qtext, sizeof(qtext), "0.5=%s;%s=0.25", text, text);
    const char *hist[] = HIST_VALUES("i", qtext, "1", "2");
    struct decoded x;
    event_values(&x, &hm, hist);
    const struct counters_sample *s = &x.s;
    double rq[4], rv[4];
    uint32_t rn = ref_quantiles(qtext, rq, rv);
    for (int way = 0; way < 2; way++) {
      EXPECT_EQ_INT(1, decode_by(way ? d : NULL, &x));
      int same = s->nquantiles == rn;
      for (uint32_t i = 0; same && i < rn; i++)
        same = memcmp(&s->quantile[i], &rq[i], sizeof(double)) == 0 &&
               memcmp(&s->quantile_value[i], &rv[i], sizeof(double)) == 0;
      if (!same) {
        printf("# quantiles \"%s\": %u, strtod %u\n", qtext, s->nquantiles, rn);
        CHECK(0);
      }
    }
    const char *rate[] = RATE_VALUES("M", "i", "", "", text, "1");
    event_values(&x, &m, rate);
    char *end;
    double want = strtod(text, &end);
    int is_num = text[0] != 0 && *end == 0 && !isnan(want);
    for (int way = 0; way < 2; way++) {
      int r = decode_by(way ? d : NULL, &x);
      if (!is_num) {
        EXPECT_EQ_INT(0, r); /* no rate (or NaN): not a sample */
        continue;
      }
      EXPECT_EQ_INT(1, r);
      if (memcmp(&s->value, &want, sizeof(want)) != 0) {
        printf("# \"%s\": %.17g, strtod %.17g\n", text, s->value, want);
        CHECK(0);
      }
    }
  }
  counters_decoder_free(d);
  return 0;
}

DEF_TEST(hostile_metadata) {
  /* An object claiming more children than the field table holds. */
  static const struct nettrace_field f[] = {
      {"Payload", NETTRACE_TYPE_OBJECT, 5, 1},
      {"Name", NETTRACE_TYPE_STRING, 0, 0},
  };
  static const char *const name[] = {"x"};
  struct nettrace_meta m = ec_meta(f, 2);
  struct decoded x;
  event_values(&x, &m, name);
  struct nettrace_event ev = x.ev;
  ev.meta = &m; /* m changes below */
  struct counters_sample s;
  char scratch[64];
  CHECK(counters_decode(&ev, &s, scratch, sizeof(scratch)) < 0);
  /* an array of 65535 elements of an empty object: bounded work */
  static const struct nettrace_field arr[] = {
      {"Payload", NETTRACE_TYPE_ARRAY, 0, 1},
      {"", NETTRACE_TYPE_OBJECT, 0, 0},
  };
  m = ec_meta(arr, 2);
  uint8_t cnt[] = {0xff, 0xff};
  ev.payload = cnt;
  ev.payload_len = 2;
  CHECK(counters_decode(&ev, &s, scratch, sizeof(scratch)) < 0); /* no Name */
  /* an unknown type code: not understood, ignored */
  static const struct nettrace_field unk[] = {{"Payload", 99, 0, 0}};
  m = ec_meta(unk, 1);
  EXPECT_EQ_INT(0, counters_decode(&ev, &s, scratch, sizeof(scratch)));
  return 0;
}

/* Feeds sample times (ms) to naming_due with interval iv; returns how many
 * were published and the smallest and largest gap between published ones. */
static int due_run(const int64_t *t, size_t n, int64_t iv, int64_t *min_gap,
                   int64_t *max_gap) {
  struct counters_entry e;
  memset(&e, 0, sizeof(e));
  int published = 0;
  int64_t last = 0;
  *min_gap = INT64_MAX;
  *max_gap = 0;
  for (size_t i = 0; i < n; i++) {
    if (!naming_due(&e, t[i], iv))
      continue;
    if (published > 0) {
      int64_t g = t[i] - last;
      *min_gap = g < *min_gap ? g : *min_gap;
      *max_gap = g > *max_gap ? g : *max_gap;
    }
    last = t[i];
    published++;
  }
  free(e.consumer);
  return published;
}

DEF_TEST(naming_due) {
  int64_t t[400], lo, hi;
  const int64_t base = 1795700000000;
  /* own samples, 1 s apart with +-20 ms jitter: every one published */
  for (int i = 0; i < 60; i++)
    t[i] = base + i * 1000 + (i % 3 - 1) * 20;
  EXPECT_EQ_INT(60, due_run(t, 60, 1000, &lo, &hi));
  /* a late sample (a busy runtime) and the next back on the grid: both */
  int64_t late[] = {base, base + 1000, base + 2300, base + 3000, base + 4000};
  EXPECT_EQ_INT(5, due_run(late, 5, 1000, &lo, &hi));
  EXPECT_EQ_INT(1300, hi);
  /* another tool at 0.5 s (the runtime sends every session that): one a
   * second */
  for (int i = 0; i < 120; i++)
    t[i] = base + i * 500;
  EXPECT_EQ_INT(60, due_run(t, 120, 1000, &lo, &hi));
  EXPECT_EQ_INT(1000, lo);
  EXPECT_EQ_INT(1000, hi);
  /* at 0.3 s: one a second on average, gaps within 0.75..1.25 s */
  for (int i = 0; i < 400; i++)
    t[i] = base + i * 300;
  int n = due_run(t, 400, 1000, &lo, &hi);
  CHECK(n >= 118 && n <= 121);
  CHECK(lo >= 750 && hi <= 1250);
  /* Interval 3 s, samples every second (the test of plugin.sh check 9) */
  for (int i = 0; i < 30; i++)
    t[i] = base + i * 1000;
  EXPECT_EQ_INT(10, due_run(t, 30, 3000, &lo, &hi));
  EXPECT_EQ_INT(3000, lo);
  /* a 5 s pause (SIGSTOP) then the grid again: the first after it and
   * every one after that */
  int64_t pause[] = {base, base + 1000, base + 6200, base + 7000, base + 8000};
  EXPECT_EQ_INT(5, due_run(pause, 5, 1000, &lo, &hi));
  /* the same time twice, or going back: never published again */
  int64_t same[] = {base, base, base - 5, base + 1000};
  EXPECT_EQ_INT(2, due_run(same, 4, 1000, &lo, &hi));
  return 0;
}

DEF_TEST(naming) {
  char ti[NAMING_MAX];
  naming_type_instance("System.Runtime", "gc-heap-size", "", NULL, ti,
                       sizeof(ti));
  EXPECT_EQ_STR("gc-heap-size", ti);
  naming_type_instance("Microsoft.AspNetCore.Hosting", "total-requests", "",
                       NULL, ti, sizeof(ti));
  EXPECT_EQ_STR("Microsoft.AspNetCore.Hosting:total-requests", ti);
  /* tags sorted by key, whatever order the runtime sent */
  naming_type_instance("Contoso.Shop", "orders", "zone=b,region=eu", NULL, ti,
                       sizeof(ti));
  EXPECT_EQ_STR("Contoso.Shop:orders:region=eu:zone=b", ti);
  naming_type_instance("Contoso.Shop", "latency", "", "p95", ti, sizeof(ti));
  EXPECT_EQ_STR("Contoso.Shop:latency:p95", ti);
  /* the System.Runtime meter's dotted names keep their provider */
  naming_type_instance("System.Runtime", "dotnet.gc.collections",
                       "gc.heap.generation=gen0", NULL, ti, sizeof(ti));
  EXPECT_EQ_STR("System.Runtime:dotnet.gc.collections:gc.heap.generation=gen0",
                ti);
  /* over-long: cut, with a hash of the whole name; two names differing only
   * at the end stay different */
  char long1[300], long2[300], ti2[NAMING_MAX];
  memset(long1, 'a', 250);
  long1[250] = 0;
  memcpy(long2, long1, 251);
  long2[249] = 'b';
  naming_type_instance("P", long1, "", NULL, ti, sizeof(ti));
  naming_type_instance("P", long2, "", NULL, ti2, sizeof(ti2));
  EXPECT_EQ_INT(NAMING_MAX - 1, strlen(ti));
  CHECK(ti[NAMING_MAX - 10] == '~');
  CHECK(strcmp(ti, ti2) != 0);

  /* a cut histogram name keeps its suffix after the hash, and all rows of
   * one histogram share the cut name */
  char p50[NAMING_MAX], cnt[NAMING_MAX];
  naming_type_instance("P", long1, "", "p50", p50, sizeof(p50));
  naming_type_instance("P", long1, "", "count", cnt, sizeof(cnt));
  CHECK(strlen(p50) < NAMING_MAX);
  CHECK(strstr(p50, "~") != NULL);
  EXPECT_EQ_STR(":p50", p50 + strlen(p50) - 4);
  EXPECT_EQ_STR(":count", cnt + strlen(cnt) - 6);
  CHECK(strncmp(p50, cnt, (size_t)(strchr(p50, '~') - p50) + 9) == 0);
  /* '/' would split collectd's identifiers (and csv paths) */
  naming_type_instance("M", "x", "route=/a/b", "p95", ti, sizeof(ti));
  EXPECT_EQ_STR("M:x:route=_a_b:p95", ti);

  struct counters_histogram hist = {0};
  struct counters_entry e = {.kind = COUNTERS_MEAN,
                             .value = 250.5,
                             .provider = "System.Runtime",
                             .name = "gc-heap-size",
                             .tags = ""};
  snprintf(e.units, sizeof(e.units), "MB");
  struct naming_row rows[4];
  EXPECT_EQ_INT(1, naming_rows(&e, rows, 4));
  EXPECT_EQ_STR("bytes", rows[0].type);
  EXPECT_EQ_STR("gc-heap-size", rows[0].type_instance);
  EXPECT_EQ_DOUBLE(250.5e6, rows[0].gauge, 1e-3);
  /* the type instance is made once and kept in the entry's naming state */
  const struct naming_state *st = e.consumer;
  CHECK(st != NULL && st->has_type_instance);
  EXPECT_EQ_STR("gc-heap-size", st->type_instance);
  memset(rows, 0x55, sizeof(rows));
  EXPECT_EQ_INT(1, naming_rows(&e, rows, 4));
  EXPECT_EQ_STR("gc-heap-size", rows[0].type_instance);
  CHECK(e.consumer == st);
  e.kind = COUNTERS_SUM;
  e.total = 12345.9;
  snprintf(e.units, sizeof(e.units), "B");
  EXPECT_EQ_INT(1, naming_rows(&e, rows, 4));
  EXPECT_EQ_STR("total_bytes", rows[0].type);
  EXPECT_EQ_INT(1, rows[0].is_derive);
  EXPECT_EQ_INT(12345, rows[0].derive);
  /* seconds (dotnet.process.cpu.time, dotnet.gc.pause.time) as ms: the
   * whole DERIVE keeps what is below a second */
  e.total = 0.2345;
  snprintf(e.units, sizeof(e.units), "s");
  EXPECT_EQ_INT(1, naming_rows(&e, rows, 4));
  EXPECT_EQ_STR("total_time_in_ms", rows[0].type);
  EXPECT_EQ_INT(234, rows[0].derive);
  e.total = 12.0015;
  snprintf(e.units, sizeof(e.units), "ms");
  naming_rows(&e, rows, 4);
  EXPECT_EQ_STR("total_time_in_ms", rows[0].type);
  EXPECT_EQ_INT(12, rows[0].derive);
  e.kind = COUNTERS_MEAN;
  snprintf(e.units, sizeof(e.units), "%%");
  naming_rows(&e, rows, 4);
  EXPECT_EQ_STR("percent", rows[0].type);
  e.kind = COUNTERS_HISTOGRAM;
  EXPECT_EQ_INT(1, naming_rows(&e, rows, 4)); /* no histogram state: count */
  e.hist = &hist;
  hist.nquantiles = 3;
  hist.quantile[0] = 0.5, hist.quantile[1] = 0.95, hist.quantile[2] = 0.99;
  e.total = 30;
  snprintf(e.units, sizeof(e.units), "ms");
  e.provider = "M";
  e.name = "lat";
  EXPECT_EQ_INT(4, naming_rows(&e, rows, 4));
  EXPECT_EQ_STR("M:lat:p50", rows[0].type_instance);
  EXPECT_EQ_STR("M:lat:p95", rows[1].type_instance);
  EXPECT_EQ_STR("M:lat:count", rows[3].type_instance);
  EXPECT_EQ_INT(30, rows[3].derive);
  /* a row buffer too small: no overflow */
  EXPECT_EQ_INT(2, naming_rows(&e, rows, 2));
  free(e.consumer); /* a table's entry_free does this */
  return 0;
}

/* ---- what a hostile process sends (issue 18) ---- */

/* Whether s is valid UTF-8 without control characters (C0, DEL, C1). */
static int clean_utf8(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    unsigned c = *p, n = c < 0x80             ? 1
                         : (c & 0xE0) == 0xC0 ? 2
                         : (c & 0xF0) == 0xE0 ? 3
                         : (c & 0xF8) == 0xF0 ? 4
                                              : 0;
    if (n == 0 || c < 0x20 || c == 0x7f || (c == 0xC2 && p[1] < 0xA0))
      return 0;
    for (unsigned i = 1; i < n; i++)
      if ((p[i] & 0xC0) != 0x80)
        return 0;
    p += n;
  }
  return 1;
}

/* Only the runtime's quantiles (0.5, 0.95, 0.99), each once, whatever
 * else a payload names, by every decoding path (the plan, the fallback
 * by strtod), and never more than COUNTERS_MAX_QUANTILES. */
DEF_TEST(hostile_quantiles) {
  static const char *const texts[] = {
      "0.5=1;0.75=9;0.95=2;0.999=9;0.5=8;0.99=3;0.5000001=9",
      "0.1=9;0.2=9;0.3=9;0.4=9;0.5=1;0.6=9;0.7=9;0.8=9;0.9=9;0.95=2;0.99=3",
      "0.5=1E+00;0.25=9;0.95=2;0.99=3", /* an exponent: the strtod way */
  };
  static const double want[3][2] = {{0.5, 1}, {0.95, 2}, {0.99, 3}};
  struct nettrace_meta hm = meter_meta("HistogramValuePublished", hist_fields);
  struct counters_decoder *d = counters_decoder_new();
  CHECK(d != NULL);
  for (size_t k = 0; k < sizeof(texts) / sizeof(texts[0]); k++) {
    const char *hist[] = HIST_VALUES("lat", texts[k], "3", "6");
    struct decoded x;
    event_values(&x, &hm, hist);
    for (int way = 0; way < 4; way++) {
      EXPECT_EQ_INT(1, decode_by(way ? d : NULL, &x));
      EXPECT_EQ_INT(3, x.s.nquantiles);
      for (int i = 0; i < 3; i++) {
        EXPECT_EQ_DOUBLE(want[i][0], x.s.quantile[i], 0);
        EXPECT_EQ_DOUBLE(want[i][1], x.s.quantile_value[i], 0);
      }
    }
  }
  counters_decoder_free(d);
  return 0;
}

/* A name with a newline, an ANSI escape, DEL, a C1 CSI and a bidi override
 * (as a process can name its counter) decodes, by every path, to a name
 * without any of them. */
DEF_TEST(hostile_names) {
  static const char *const v[] = {"evil\nname\x1b[31mred\x7f\x9b"
                                  "2J",
                                  "D\x1b]0;x\x07",
                                  "00:00:01",
                                  "1",
                                  "1",
                                  "",
                                  "Interval=1000",
                                  "Sum",
                                  "u\r\n"};
  struct nettrace_meta m = ec_meta(sum_fields, 10);
  struct decoded x;
  event_values(&x, &m, v);
  const struct counters_sample *s = &x.s;
  struct counters_decoder *d = counters_decoder_new();
  CHECK(d != NULL);
  for (int way = 0; way < 4; way++) {
    char dn[64];
    EXPECT_EQ_INT(1, decode_by(way ? d : NULL, &x));
    EXPECT_EQ_STR("evil_name_[31mred__2J", s->name);
    EXPECT_EQ_STR("u__", s->units);
    CHECK(clean_utf8(counters_display_name(s, dn, sizeof(dn))));
    char ti[NAMING_MAX];
    naming_type_instance(s->provider, s->name, s->tags, NULL, ti, sizeof(ti));
    CHECK(clean_utf8(ti));
  }
  counters_decoder_free(d);
  /* and so do names given straight to naming */
  char ti[NAMING_MAX];
  naming_type_instance("P\n", "a\x1b[2Jb", "k=v\r\n,z=\x7f", "p50", ti,
                       sizeof(ti));
  CHECK(clean_utf8(ti));
  EXPECT_EQ_STR("P_:a_[2Jb:k=v__:z=_:p50", ti);
  return 0;
}

/* The cut of an over-long name never splits a UTF-8 character: names of
 * 2-, 3- and 4-byte characters, at every length around the cut, with and
 * without a suffix, stay valid UTF-8 of less than NAMING_MAX bytes. */
DEF_TEST(naming_cut_utf8) {
  static const char *const chars[] = {"\xc3\xa9", "\xe6\x97\xa5",
                                      "\xf0\x9f\x98\x80", "a\xc3\xa9"};
  for (size_t c = 0; c < 4; c++)
    for (int n = 30; n < 80; n++) {
      char name[400] = "";
      for (int i = 0; i < n && strlen(name) + 8 < sizeof(name); i++)
        strcat(name, chars[c]);
      const char *suffixes[] = {NULL, "p50", "count"};
      for (int k = 0; k < 3; k++) {
        char ti[NAMING_MAX];
        naming_type_instance("Meter", name, "", suffixes[k], ti, sizeof(ti));
        if (!clean_utf8(ti) || strlen(ti) >= NAMING_MAX) {
          printf("# char %zu n %d suffix %s: \"%s\"\n", c, n,
                 suffixes[k] ? suffixes[k] : "-", ti);
          CHECK(0);
        }
      }
    }
  return 0;
}

/* The longest names a key may have: a provider and a name of 255 bytes,
 * tags of 1023 (one static set, written afresh by each call). */
struct longest {
  char provider[256], name[256], tags[1024];
};

static struct longest *longest_names(void) {
  static struct longest l;
  memset(&l, 0, sizeof(l));
  memset(l.provider, 'p', sizeof(l.provider) - 1);
  memset(l.name, 'n', sizeof(l.name) - 1);
  memset(l.tags, 't', sizeof(l.tags) - 1);
  return &l;
}

/* The cap on series: an entry holds one, a histogram four; new keys over
 * the cap are refused (counted), keys already there go on; the kind is
 * part of the key; the names of the keys are capped too. */
DEF_TEST(series_cap) {
  struct counters_sample s;
  memset(&s, 0, sizeof(s));
  s.provider = "P";
  s.tags = "";
  s.units = "";
  s.session = "";
  s.kind = COUNTERS_SUM;
  s.value = 1;
  struct counters_table t;
  counters_table_init(&t, 10);
  char name[32];
  for (int i = 0; i < 6; i++) {
    snprintf(name, sizeof(name), "c-%d", i);
    s.name = name;
    CHECK(counters_table_update(&t, &s, 0) != NULL);
  }
  s.kind = COUNTERS_HISTOGRAM;
  s.name = "lat";
  CHECK(counters_table_update(&t, &s, 0) != NULL); /* 6 + 4 = 10 */
  s.name = "lat2";
  CHECK(counters_table_update(&t, &s, 0) == NULL); /* 14 > 10 */
  s.kind = COUNTERS_SUM;
  for (int i = 6; i < 100; i++) {
    snprintf(name, sizeof(name), "c-%d", i);
    s.name = name;
    CHECK(counters_table_update(&t, &s, 0) == NULL);
  }
  EXPECT_EQ_INT(7, t.n);
  EXPECT_EQ_INT(10, t.series);
  EXPECT_EQ_U64(95, t.refused);
  EXPECT_EQ_U64(95, t.overflow);
  s.name = "c-3"; /* known keys go on */
  struct counters_entry *e = counters_table_update(&t, &s, 0);
  CHECK(e != NULL && e->updates == 2);
  s.kind = COUNTERS_MEAN; /* the same name as another kind: a new key */
  CHECK(counters_table_update(&t, &s, 0) == NULL);
  counters_table_fini(&t);

  /* the units are the first sample's: the type of the values never
   * changes */
  counters_table_init(&t, 0);
  EXPECT_EQ_INT(COUNTERS_DEFAULT_MAX_SERIES, t.max_series);
  s.kind = COUNTERS_MEAN;
  s.units = "MB";
  e = counters_table_update(&t, &s, 0);
  CHECK(e != NULL);
  s.units = "%";
  CHECK(counters_table_update(&t, &s, 0) == e);
  EXPECT_EQ_STR("MB", e->units);
  counters_table_fini(&t);

  /* names: 256 bytes a series (and 4 KiB): 8 series take 4 keys of the
   * longest names, not 5 */
  counters_table_init(&t, 8);
  struct longest *l = longest_names();
  s.provider = l->provider;
  s.tags = l->tags;
  s.name = l->name;
  for (int i = 0; i < 5; i++) {
    l->name[0] = (char)('a' + i);
    e = counters_table_update(&t, &s, 0);
    CHECK((e != NULL) == (i < 4));
  }
  EXPECT_EQ_U64(1, t.refused);
  CHECK(t.name_bytes <= t.max_name_bytes);
  counters_table_fini(&t);
  return 0;
}

/* Rate by arrival: a peer that stamps its samples 2 s apart while it sends
 * them 100 ms apart (and one that goes back in time) gets one value a
 * second published, each stamped no later than 1 s after it arrived and
 * later than the one before; a plausible time (the runtime's own, a few
 * ms before arrival) is kept. */
DEF_TEST(naming_due_arrival) {
  const int64_t wall0 = 1795700000000, mono0 = 5000000;
  static const int64_t steps[] = {2000, -2000, 0, 37};
  for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
    struct counters_entry e;
    memset(&e, 0, sizeof(e));
    int published = 0;
    int64_t last = 0;
    for (int i = 0; i < 100; i++) { /* 10 s */
      int64_t mono = mono0 + i * 100, wall = wall0 + i * 100;
      int64_t peer = wall0 + i * steps[k];
      if (!naming_due(&e, mono, 1000))
        continue;
      int64_t t = naming_stamp(&e, peer, wall, 1000);
      CHECK(t > last);
      CHECK(t <= wall + NAMING_STAMP_AHEAD_MS);
      last = t;
      published++;
    }
    free(e.consumer);
    if (published < 10 || published > 11) {
      printf("# step %" PRId64 ": %d values in 10 s\n", steps[k], published);
      CHECK(0);
    }
  }
  /* the runtime's own time, 30 ms before arrival: kept */
  struct counters_entry e;
  memset(&e, 0, sizeof(e));
  CHECK(naming_due(&e, mono0, 1000));
  EXPECT_EQ_INT(wall0 - 30, naming_stamp(&e, wall0 - 30, wall0, 1000));
  CHECK(!naming_due(&e, mono0 + 100, 1000));
  CHECK(naming_due(&e, mono0 + 1000, 1000));
  EXPECT_EQ_INT(wall0 + 970, naming_stamp(&e, wall0 + 970, wall0 + 1000, 1000));
  /* no clock in the stream (0): the arrival time */
  CHECK(naming_due(&e, mono0 + 2000, 1000));
  EXPECT_EQ_INT(wall0 + 2000, naming_stamp(&e, 0, wall0 + 2000, 1000));
  free(e.consumer);
  return 0;
}

/* The most a table holds: filled to its caps with the longest names and
 * every entry's type instance made, it takes no more than
 * counters_table_worst_bytes says (malloc's own count). */
DEF_TEST(table_memory_bound) {
  struct mallinfo2 before = mallinfo2();
  struct counters_table t;
  counters_table_init(&t, 0);
  struct counters_sample s;
  memset(&s, 0, sizeof(s));
  struct longest *l = longest_names();
  s.name = l->name;
  s.units = "";
  s.session = "";
  s.nquantiles = 3;
  s.quantile[0] = 0.5, s.quantile[1] = 0.95, s.quantile[2] = 0.99;
  struct naming_row rows[COUNTERS_MAX_QUANTILES + 1];
  for (int i = 0; i < 4 * COUNTERS_DEFAULT_MAX_SERIES; i++) {
    /* the longest names for half the name bytes, then short ones up to
     * the cap on series, then long ones up to the cap on names */
    int lng = i < 44 || i >= 2 * COUNTERS_DEFAULT_MAX_SERIES;
    snprintf(l->name, sizeof(l->name), lng ? "%0250d" : "n%d", i);
    s.provider = lng ? l->provider : "P";
    s.tags = lng ? l->tags : "";
    s.kind = i % 16 == 0 ? COUNTERS_HISTOGRAM : COUNTERS_MEAN;
    struct counters_entry *e = counters_table_update(&t, &s, 0);
    if (e != NULL)
      naming_rows(e, rows, COUNTERS_MAX_QUANTILES + 1);
  }
  struct mallinfo2 after = mallinfo2();
  size_t used = after.uordblks - before.uordblks;
  size_t worst = counters_table_worst_bytes(0);
  printf("# table full: %zu entries, %zu series, %zu name bytes: %zu bytes "
         "on the heap (worst case %zu)\n",
         t.n, t.series, t.name_bytes, used, worst);
  CHECK(t.series > COUNTERS_DEFAULT_MAX_SERIES - COUNTERS_HISTOGRAM_SERIES);
  CHECK(used <= worst); /* 0 under ASan, whose allocator has no mallinfo2 */
  counters_table_fini(&t);
  return 0;
}

/* .NET 9 and 10 declare two System.Runtime levels as monotonic counters:
 * they are published as the levels they are. A real counter, another
 * meter's instrument of that name and a sample with no level reported are
 * kept as they are. */
DEF_TEST(fix_kind) {
  static const struct {
    const char *provider, *name;
    double value, total;
    enum counters_kind kind; /* after counters_fix_kind */
    double published;        /* the value then */
  } cases[] = {
      {"System.Runtime", "dotnet.thread_pool.thread.count", -3, 7,
       COUNTERS_UPDOWN, 7},
      {"System.Runtime", "dotnet.thread_pool.queue.length", 2, 5,
       COUNTERS_UPDOWN, 5},
      {"System.Runtime", "dotnet.thread_pool.work_item.count", 2, 5,
       COUNTERS_RATE, 2},
      {"Contoso", "dotnet.thread_pool.thread.count", 2, 5, COUNTERS_RATE, 2},
      {"System.Runtime", "dotnet.thread_pool.thread.count", 2, NAN,
       COUNTERS_RATE, 2},
  };
  for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
    struct counters_sample s = {.kind = COUNTERS_RATE,
                                .provider = cases[k].provider,
                                .name = cases[k].name,
                                .value = cases[k].value,
                                .total = cases[k].total};
    counters_fix_kind(&s);
    EXPECT_EQ_INT(cases[k].kind, s.kind);
    EXPECT_EQ_DOUBLE(cases[k].published, s.value, 0);
  }
  return 0;
}

int main(void) {
  RUN_TEST(varint);
  RUN_TEST(utf16);
  RUN_TEST(utf16_fast_paths);
  RUN_TEST(ipc_messages);
  RUN_TEST(ipc_strings);
  RUN_TEST(event_counter_mean);
  RUN_TEST(event_counter_sum_and_table);
  RUN_TEST(decoder_agrees);
  RUN_TEST(meters);
  RUN_TEST(meter_numbers);
  RUN_TEST(hostile_metadata);
  RUN_TEST(naming);
  RUN_TEST(naming_due);
  RUN_TEST(hostile_quantiles);
  RUN_TEST(hostile_names);
  RUN_TEST(naming_cut_utf8);
  RUN_TEST(series_cap);
  RUN_TEST(naming_due_arrival);
  RUN_TEST(table_memory_bound);
  RUN_TEST(fix_kind);
  END_TEST;
}
