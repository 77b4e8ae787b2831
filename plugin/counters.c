/**
 * collectd-dotnet - plugin/counters.c
 *
 * EventCounters and System.Diagnostics.Metrics payloads to samples.
 *
 * An EventCounters event (EventSource.Write, self-describing) has one
 * top-level field "Payload", an object whose fields are, for a mean counter
 *   Name, DisplayName, Mean, StandardDeviation, Count, Min, Max, IntervalSec,
 *   Series, CounterType ("Mean"), Metadata, DisplayUnits
 * and for an incrementing counter
 *   Name, DisplayName, DisplayRateTimeScale, Increment, IntervalSec,
 *   Metadata, Series, CounterType ("Sum"), DisplayUnits
 * Nothing here depends on that order or list: fields are looked up by name
 * after a generic walk of the payload driven by the event's metadata.
 *
 * The Metrics provider's events carry strings (numbers formatted with the
 * invariant culture), e.g. CounterRateValuePublished(sessionId, meterName,
 * meterVersion, instrumentName, unit, tags, rate, value[, instrumentId]).
 */
#include "counters.h"
#include "wire.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define MAX_DEPTH 8

/* The payload fields the decoder uses: each has a slot. A metadata's field
 * list is mapped to slots once (by name, first occurrence wins) and the map
 * cached per metadata in a counters_decoder, so decoding an event walks its
 * payload without comparing names. */
enum slot {
  /* EventCounters */
  S_NAME, S_DISPLAY_NAME, S_DISPLAY_UNITS, S_COUNTER_TYPE, S_INCREMENT,
  S_MEAN, S_MIN, S_MAX, S_STDDEV, S_EC_COUNT, S_INTERVAL_SEC, S_SERIES,
  /* System.Diagnostics.Metrics */
  S_SESSION_ID, S_METER_NAME, S_INSTRUMENT_NAME, S_UNIT, S_TAGS, S_RATE,
  S_VALUE, S_LAST_VALUE, S_QUANTILES, S_COUNT, S_SUM,
  NSLOTS,
  S_NONE = 0xff
};

static const char *const slot_names[NSLOTS] = {
    [S_NAME] = "Name",
    [S_DISPLAY_NAME] = "DisplayName",
    [S_DISPLAY_UNITS] = "DisplayUnits",
    [S_COUNTER_TYPE] = "CounterType",
    [S_INCREMENT] = "Increment",
    [S_MEAN] = "Mean",
    [S_MIN] = "Min",
    [S_MAX] = "Max",
    [S_STDDEV] = "StandardDeviation",
    [S_EC_COUNT] = "Count",
    [S_INTERVAL_SEC] = "IntervalSec",
    [S_SERIES] = "Series",
    [S_SESSION_ID] = "sessionId",
    [S_METER_NAME] = "meterName",
    [S_INSTRUMENT_NAME] = "instrumentName",
    [S_UNIT] = "unit",
    [S_TAGS] = "tags",
    [S_RATE] = "rate",
    [S_VALUE] = "value",
    [S_LAST_VALUE] = "lastValue",
    [S_QUANTILES] = "quantiles",
    [S_COUNT] = "count",
    [S_SUM] = "sum",
};

static uint8_t slot_by_name(const char *name) {
  for (int i = 0; i < NSLOTS; i++)
    if (strcmp(slot_names[i], name) == 0)
      return (uint8_t)i;
  return S_NONE;
}

/* A slot's value as found in the payload: strings stay UTF-16 in the
 * payload until (and unless) someone asks for them. Which slots were found
 * is a bit mask beside them (no clearing of the values per event). */
struct slot_value {
  const uint8_t *utf16; /* strings: in the payload */
  const char *utf8;     /* strings: converted, once asked for */
  double num;
  uint32_t units; /* strings: UTF-16 code units */
  uint32_t is_string;
};

/* Where the walk puts the leaves: either every leaf into out[] (strings
 * converted; counters_fields) or the leaves that have a slot into slots[]
 * (slot_of[field index], or by name when there is no map). */
struct walk {
  const struct nettrace_meta *meta;
  struct wire_cursor c;
  struct counters_field *out;
  size_t max, n;
  const uint8_t *slot_of;
  struct slot_value *slots;
  uint32_t *found; /* bit k: slots[k] holds a value */
  char *scratch;
  size_t scratch_cap, scratch_used;
};

/* UTF-8 copy of a string into the scratch, made printable (names, units
 * and tags reach type instances, logs and terminals); "" when it does not
 * fit. */
static const char *to_scratch(struct walk *w, const uint8_t *s, size_t units) {
  size_t room = w->scratch_cap - w->scratch_used;
  char *dst = w->scratch + w->scratch_used;
  long l = room > 0 ? wire_utf16_to_utf8(s, units, dst, room) : -1;
  if (l < 0)
    return "";
  w->scratch_used += wire_utf8_printable(dst) + 1;
  return dst;
}

/* The slot of leaf fields[i] if it is the first leaf of its name. */
static struct slot_value *leaf_slot(struct walk *w, uint32_t i) {
  uint8_t k = w->slot_of ? w->slot_of[i] : slot_by_name(w->meta->fields[i].name);
  if (k == S_NONE || (*w->found & 1u << k))
    return NULL;
  *w->found |= 1u << k;
  return &w->slots[k];
}

static void put_num(struct walk *w, uint32_t i, double num) {
  if (w->slots != NULL) {
    struct slot_value *v = leaf_slot(w, i);
    if (v != NULL)
      *v = (struct slot_value){.num = num};
    return;
  }
  if (w->n < w->max)
    w->out[w->n] = (struct counters_field){
        .name = w->meta->fields[i].name, .num = num, .str = ""};
  w->n++;
}

static void put_string(struct walk *w, uint32_t i, const uint8_t *s,
                       size_t units) {
  if (w->slots != NULL) {
    struct slot_value *v = leaf_slot(w, i);
    if (v != NULL)
      *v = (struct slot_value){
          .utf16 = s, .units = (uint32_t)units, .is_string = 1};
    return;
  }
  if (w->n < w->max)
    w->out[w->n] =
        (struct counters_field){.name = w->meta->fields[i].name,
                                .is_string = 1,
                                .str = to_scratch(w, s, units)};
  w->n++;
}

/* Reads the value of fields[i] from the cursor; emit: record leaves (array
 * elements are checked, not recorded). */
static int walk_field(struct walk *w, uint32_t i, int depth, int emit) {
  const struct nettrace_field *f = &w->meta->fields[i];
  uint8_t b8;
  uint16_t u16;
  uint32_t u32;
  uint64_t u64;
  double d;
  float fl;
  if (depth > MAX_DEPTH)
    return -EBADMSG;
  switch (f->type) {
  case NETTRACE_TYPE_OBJECT: {
    uint32_t j = i + 1;
    for (uint32_t k = 0; k < f->nchildren; k++) {
      if (j >= w->meta->nfields_total)
        return -EBADMSG;
      int r = walk_field(w, j, depth + 1, emit);
      if (r < 0)
        return r;
      j += 1 + w->meta->fields[j].span;
    }
    return 0;
  }
  case NETTRACE_TYPE_ARRAY: {
    if (i + 1 >= w->meta->nfields_total || wire_u16(&w->c, &u16) != 0)
      return -EBADMSG;
    for (uint32_t k = 0; k < u16; k++) {
      size_t before = w->c.len;
      int r = walk_field(w, i + 1, depth + 1, 0);
      if (r < 0)
        return r;
      if (w->c.len == before)
        break; /* zero-size elements: nothing more to read */
    }
    return 0;
  }
  case NETTRACE_TYPE_STRING: {
    const uint8_t *s;
    size_t units;
    if (wire_utf16z(&w->c, &s, &units) != 0)
      return -EBADMSG;
    if (emit)
      put_string(w, i, s, units);
    return 0;
  }
  case NETTRACE_TYPE_BOOLEAN:
  case NETTRACE_TYPE_INT32:
  case NETTRACE_TYPE_UINT32:
    if (wire_u32(&w->c, &u32) != 0)
      return -EBADMSG;
    if (emit)
      put_num(w, i,
              f->type == NETTRACE_TYPE_UINT32 ? (double)u32
                                              : (double)(int32_t)u32);
    return 0;
  case NETTRACE_TYPE_SINGLE:
    if (wire_f32(&w->c, &fl) != 0)
      return -EBADMSG;
    if (emit)
      put_num(w, i, (double)fl);
    return 0;
  case NETTRACE_TYPE_DOUBLE:
    if (wire_f64(&w->c, &d) != 0)
      return -EBADMSG;
    if (emit)
      put_num(w, i, d);
    return 0;
  case NETTRACE_TYPE_INT64:
  case NETTRACE_TYPE_DATETIME:
  case NETTRACE_TYPE_UINT64:
    if (wire_u64(&w->c, &u64) != 0)
      return -EBADMSG;
    if (emit)
      put_num(w, i,
              f->type == NETTRACE_TYPE_UINT64 ? (double)u64
                                              : (double)(int64_t)u64);
    return 0;
  case NETTRACE_TYPE_INT16:
  case NETTRACE_TYPE_UINT16:
  case NETTRACE_TYPE_CHAR:
    if (wire_u16(&w->c, &u16) != 0)
      return -EBADMSG;
    if (emit)
      put_num(w, i,
              f->type == NETTRACE_TYPE_INT16 ? (double)(int16_t)u16
                                             : (double)u16);
    return 0;
  case NETTRACE_TYPE_SBYTE:
  case NETTRACE_TYPE_BYTE:
    if (wire_u8(&w->c, &b8) != 0)
      return -EBADMSG;
    if (emit)
      put_num(w, i,
              f->type == NETTRACE_TYPE_SBYTE ? (double)(int8_t)b8 : (double)b8);
    return 0;
  case NETTRACE_TYPE_DECIMAL:
  case NETTRACE_TYPE_GUID:
    return wire_skip(&w->c, 16) == 0 ? 0 : -EBADMSG;
  default:
    return -ENOTSUP;
  }
}

static int walk_top(struct walk *w) {
  const struct nettrace_meta *meta = w->meta;
  if (!meta->fields_ok || meta->fields == NULL)
    return -ENOTSUP;
  uint32_t i = 0;
  for (uint32_t k = 0; k < meta->nfields; k++) {
    if (i >= meta->nfields_total)
      return -EBADMSG;
    int r = walk_field(w, i, 0, 1);
    if (r < 0)
      return r;
    i += 1 + meta->fields[i].span;
  }
  return 0;
}

int counters_fields(const struct nettrace_meta *meta, const uint8_t *payload,
                    size_t len, struct counters_field *out, size_t max,
                    char *scratch, size_t scratch_cap) {
  struct walk w = {.meta = meta,
                   .c = wire_cursor(payload, len),
                   .out = out,
                   .max = out != NULL ? max : 0,
                   .scratch = scratch,
                   .scratch_cap = scratch_cap};
  int r = walk_top(&w);
  if (r < 0)
    return r;
  return (int)(w.n < w.max ? w.n : w.max);
}

/* ---- slots to a sample ---- */

struct fields {
  struct walk w; /* its scratch receives the strings asked for */
  uint32_t found; /* bit k: v[k] holds a value */
  struct slot_value v[NSLOTS];
};

static const struct slot_value *get(const struct fields *f, enum slot k) {
  return f->found & 1u << k ? &f->v[k] : NULL;
}

static const char *str_of(struct fields *f, enum slot k) {
  if (!(f->found & 1u << k) || !f->v[k].is_string)
    return "";
  struct slot_value *v = &f->v[k];
  if (v->utf8 == NULL)
    v->utf8 = to_scratch(&f->w, v->utf16, v->units);
  return v->utf8;
}

/* An ASCII copy of a short string slot (numbers): 0, or -1 when absent,
 * not a string, too long or not ASCII. */
static int ascii_of(const struct slot_value *v, char *buf, size_t cap) {
  if (v == NULL || !v->is_string || v->units >= cap)
    return -1;
  for (uint32_t i = 0; i < v->units; i++) {
    uint16_t u = wire_le16(v->utf16 + 2 * i);
    if (u == 0 || u >= 0x80)
      return -1;
    buf[i] = (char)u;
  }
  buf[v->units] = 0;
  return 0;
}

/* A plain decimal "[-]digits[.digits]" of at most 15 significant digits
 * and 22 decimals is m / 10^k with both exact doubles, so one division
 * rounds it correctly: the same double strtod gives. Its units are ASCII
 * bytes (stride 1) or UTF-16LE (stride 2), up to n, `stop` or (ASCII) a
 * NUL; *used receives how many. 0 when it is one. */
static inline int decimal_of(const uint8_t *p, size_t n, size_t stride,
                             unsigned stop, size_t *used, double *out) {
  static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,
                                 1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
                                 1e18, 1e19, 1e20, 1e21, 1e22};
  int digits = 0, significant = 0, decimals = -1;
  uint64_t m = 0;
  size_t i = 0;
  int neg = n > 0 && p[0] == '-' && (stride == 1 || p[1] == 0);
  for (i = (size_t)neg; i < n; i++) {
    unsigned u = stride == 1 ? p[i] : wire_le16(p + 2 * i);
    if (u == stop || (stride == 1 && u == 0))
      break;
    if (u == '.' && decimals < 0) {
      decimals = 0;
      continue;
    }
    if (u < '0' || u > '9')
      return -1;
    digits++;
    m = m * 10 + (u - '0');
    if (m != 0 && ++significant > 15)
      return -1;
    if (decimals >= 0 && ++decimals > 22)
      return -1;
  }
  *used = i;
  if (digits == 0)
    return -1;
  double v = (double)m / pow10[decimals > 0 ? decimals : 0];
  *out = neg ? -v : v;
  return 0;
}

/* A number from a numeric field, or from a string field holding one (the
 * Metrics provider formats numbers as text). NAN when absent or empty. */
static double num_of(const struct fields *f, enum slot k) {
  const struct slot_value *v = get(f, k);
  if (v == NULL)
    return NAN;
  if (!v->is_string)
    return v->num;
  char buf[128], *end;
  double d;
  if (v->units == 0 || v->units >= sizeof(buf))
    return NAN;
  size_t n;
  if (decimal_of(v->utf16, v->units, 2, UINT_MAX, &n, &d) == 0)
    return d;
  if (ascii_of(v, buf, sizeof(buf)) != 0)
    return NAN;
  d = strtod(buf, &end);
  return *end == 0 ? d : NAN;
}

/* Whether a string slot starts with (whole: equals) a UTF-16LE literal of
 * `bytes` bytes. */
static int str_starts(const struct fields *f, enum slot k, const void *lit16,
                      size_t bytes, int whole) {
  const struct slot_value *v = get(f, k);
  size_t units = bytes / 2;
  return v != NULL && v->is_string && v->units >= units &&
         (!whole || v->units == units) && memcmp(v->utf16, lit16, bytes) == 0;
}

static const uint8_t SUM16[] = {'S', 0, 'u', 0, 'm', 0};
static const uint8_t INTERVAL16[] = {'I', 0, 'n', 0, 't', 0, 'e', 0, 'r',
                                     0,   'v', 0, 'a', 0, 'l', 0, '=', 0};

/* EventCounters' "Series": "Interval=<ms>" (digits; saturates). */
static uint32_t series_ms(const struct fields *f) {
  if (!str_starts(f, S_SERIES, INTERVAL16, sizeof(INTERVAL16), 0))
    return 0;
  const struct slot_value *v = &f->v[S_SERIES];
  uint64_t ms = 0;
  for (uint32_t i = 9; i < v->units; i++) {
    uint16_t u = wire_le16(v->utf16 + 2 * i);
    if (u < '0' || u > '9')
      break;
    ms = ms * 10 + (u - '0');
    if (ms > UINT32_MAX)
      return UINT32_MAX;
  }
  return (uint32_t)ms;
}

/* strtod(s, end), by decimal_of when s up to the first `stop` (or the
 * end) is a plain decimal of under 64 characters: strtod would read
 * exactly that far then. One pass: decimal_of stops at the terminator. */
static double quick_strtod(const char *s, char stop, char **end) {
  double d;
  size_t n;
  if (decimal_of((const uint8_t *)s, 63, 1, (unsigned char)stop, &n, &d) == 0 &&
      (s[n] == 0 || s[n] == stop)) {
    *end = (char *)(uintptr_t)(s + n);
    return d;
  }
  return strtod(s, end);
}

/* The quantiles the runtime computes: AggregationManager's default
 * histogram configuration (0.50, 0.95, 0.99), the same in every version.
 * Any other quantile, or one repeated, is not the runtime's and is
 * dropped: a peer cannot make a new series per sample by naming a new
 * quantile. */
static void quantile_add(struct counters_sample *out, double q, double v) {
  if (q != 0.5 && q != 0.95 && q != 0.99)
    return;
  for (uint32_t i = 0; i < out->nquantiles; i++)
    if (out->quantile[i] == q)
      return;
  if (out->nquantiles >= COUNTERS_MAX_QUANTILES)
    return;
  out->quantile[out->nquantiles] = q;
  out->quantile_value[out->nquantiles] = v;
  out->nquantiles++;
}

/* parse_quantiles where the payload has it, when its numbers are plain
 * decimals (then each ends where quick_strtod's would): 0, or -1 with
 * anything else (parse_quantiles then reads it from its UTF-8). */
static int parse_quantiles16(const struct slot_value *v,
                             struct counters_sample *out) {
  const uint8_t *p = v->utf16;
  size_t n = v->units, i = 0, used;
  out->nquantiles = 0;
  while (i < n) {
    double q, x;
    if (decimal_of(p + 2 * i, n - i < 63 ? n - i : 63, 2, '=', &used, &q) !=
            0 ||
        i + used >= n || wire_le16(p + 2 * (i + used)) != '=')
      return -1;
    i += used + 1;
    if (decimal_of(p + 2 * i, n - i < 63 ? n - i : 63, 2, ';', &used, &x) !=
            0 ||
        (i + used < n && wire_le16(p + 2 * (i + used)) != ';'))
      return -1;
    i += used + 1; /* past the ';', or past the end */
    quantile_add(out, q, x);
  }
  return 0;
}

/* "0.5=1.5;0.95=2;0.99=3" */
static void parse_quantiles(const char *s, struct counters_sample *out) {
  out->nquantiles = 0;
  while (*s) {
    char *end;
    double q = quick_strtod(s, '=', &end);
    if (end == s || *end != '=')
      return;
    s = end + 1;
    double v = quick_strtod(s, ';', &end);
    if (end == s)
      return;
    quantile_add(out, q, v);
    s = end;
    if (*s == ';')
      s++;
    else
      return;
  }
}

/* Every field but the quantile arrays, which count only up to nquantiles:
 * zeroing all 272 bytes (rep stos) was ~7 % of decoding. */
static void sample_reset(struct counters_sample *s, uint64_t ts) {
  s->kind = COUNTERS_MEAN;
  s->provider = s->name = s->units = s->tags = s->session = "";
  s->display_name_utf16 = NULL;
  s->display_name_units = 0;
  s->value = 0;
  s->total = s->min = s->max = s->stddev = s->count = s->sum = NAN;
  s->interval_sec = 0;
  s->series_ms = 0;
  s->nquantiles = 0;
  s->timestamp = ts;
}

static int decode_event_counters(struct fields *f, const char *provider,
                                 struct counters_sample *s) {
  s->provider = provider;
  s->name = str_of(f, S_NAME);
  if (s->name[0] == 0)
    return -EBADMSG;
  const struct slot_value *dn = get(f, S_DISPLAY_NAME);
  if (dn != NULL && dn->is_string) {
    s->display_name_utf16 = dn->utf16;
    s->display_name_units = dn->units;
  }
  s->units = str_of(f, S_DISPLAY_UNITS);
  double inc = num_of(f, S_INCREMENT);
  const struct slot_value *type = get(f, S_COUNTER_TYPE);
  if (str_starts(f, S_COUNTER_TYPE, SUM16, sizeof(SUM16), 1) ||
      ((type == NULL || !type->is_string || type->units == 0) && !isnan(inc))) {
    s->kind = COUNTERS_SUM;
    s->value = inc;
  } else {
    s->kind = COUNTERS_MEAN;
    s->value = num_of(f, S_MEAN);
    s->min = num_of(f, S_MIN);
    s->max = num_of(f, S_MAX);
    s->stddev = num_of(f, S_STDDEV);
    s->count = num_of(f, S_EC_COUNT);
  }
  if (isnan(s->value))
    return -EBADMSG;
  double iv = num_of(f, S_INTERVAL_SEC);
  s->interval_sec = isnan(iv) ? 0 : iv;
  s->series_ms = series_ms(f);
  return 1;
}

enum event_kind {
  EV_OTHER,     /* not a counter event */
  EV_COUNTERS,  /* EventCounters */
  EV_RATE,      /* Metrics: CounterRateValuePublished */
  EV_UPDOWN,    /* UpDownCounterRateValuePublished */
  EV_GAUGE,     /* GaugeValuePublished */
  EV_HISTOGRAM, /* HistogramValuePublished */
};

static enum event_kind event_kind(const struct nettrace_meta *m) {
  if (strcmp(m->event_name, "EventCounters") == 0)
    return EV_COUNTERS;
  if (strcmp(m->provider, "System.Diagnostics.Metrics") != 0)
    return EV_OTHER;
  /* instrument publication, errors, limits: not samples */
  if (strcmp(m->event_name, "CounterRateValuePublished") == 0)
    return EV_RATE;
  if (strcmp(m->event_name, "UpDownCounterRateValuePublished") == 0)
    return EV_UPDOWN;
  if (strcmp(m->event_name, "GaugeValuePublished") == 0)
    return EV_GAUGE;
  if (strcmp(m->event_name, "HistogramValuePublished") == 0)
    return EV_HISTOGRAM;
  return EV_OTHER;
}

static enum counters_kind metrics_kind(enum event_kind kind) {
  return kind == EV_RATE     ? COUNTERS_RATE
         : kind == EV_UPDOWN ? COUNTERS_UPDOWN
         : kind == EV_GAUGE  ? COUNTERS_GAUGE
                             : COUNTERS_HISTOGRAM;
}

static int metrics_values(struct fields *f, struct counters_sample *s);

static int decode_metrics(enum event_kind kind, struct fields *f,
                          struct counters_sample *s) {
  s->kind = metrics_kind(kind);
  s->session = str_of(f, S_SESSION_ID);
  s->provider = str_of(f, S_METER_NAME);
  s->name = str_of(f, S_INSTRUMENT_NAME);
  s->units = str_of(f, S_UNIT);
  s->tags = str_of(f, S_TAGS);
  if (s->provider[0] == 0 || s->name[0] == 0)
    return -EBADMSG;
  return metrics_values(f, s);
}

/* The numbers of a Metrics sample of s->kind, its strings set. */
static int metrics_values(struct fields *f, struct counters_sample *s) {
  switch (s->kind) {
  case COUNTERS_RATE:
    s->value = num_of(f, S_RATE);
    s->total = num_of(f, S_VALUE);
    break;
  case COUNTERS_UPDOWN:
    /* "value" is the level; "rate" its change over the interval. */
    s->total = num_of(f, S_RATE);
    s->value = num_of(f, S_VALUE);
    if (isnan(s->value))
      s->value = s->total;
    break;
  case COUNTERS_GAUGE:
    s->value = num_of(f, S_LAST_VALUE);
    break;
  case COUNTERS_HISTOGRAM: {
    const struct slot_value *q = get(f, S_QUANTILES);
    if (q == NULL || !q->is_string)
      s->nquantiles = 0;
    else if (parse_quantiles16(q, s) != 0)
      parse_quantiles(str_of(f, S_QUANTILES), s);
    s->count = num_of(f, S_COUNT);
    s->sum = num_of(f, S_SUM);
    s->value = s->nquantiles > 0 ? s->quantile_value[0] : NAN;
    return 1; /* an empty histogram is still a sample */
  }
  default:
    break;
  }
  /* Observable instruments that threw, or rates not yet known, come as "". */
  return isnan(s->value) ? 0 : 1;
}

/* ---- plans: a metadata's payload layout, compiled once ----
 *
 * For field lists without arrays (all counter events), the payload is a
 * fixed sequence of leaves: a plan lists them as ops (fixed-size runs of
 * unused leaves merged into one skip) with the slot of each used leaf (its
 * first leaf of that name). Running a plan reads exactly what the generic
 * walk reads, and fails where it fails. */

enum op_code {
  OP_SKIP, /* n bytes */
  OP_STR,
  OP_I8, OP_U8, OP_I16, OP_U16, OP_I32, OP_U32, OP_I64, OP_U64, OP_F32,
  OP_F64,
};

struct op {
  uint8_t code, slot;
  uint16_t n; /* bytes (0 for OP_STR) */
};

struct plan_builder {
  const struct nettrace_meta *meta;
  struct op *ops;
  size_t n, cap;
  uint32_t found;
};

static int leaf_op(uint32_t type, uint8_t *code, uint16_t *size) {
  switch (type) {
  case NETTRACE_TYPE_STRING: *code = OP_STR; *size = 0; return 0;
  case NETTRACE_TYPE_BOOLEAN:
  case NETTRACE_TYPE_INT32: *code = OP_I32; *size = 4; return 0;
  case NETTRACE_TYPE_UINT32: *code = OP_U32; *size = 4; return 0;
  case NETTRACE_TYPE_SINGLE: *code = OP_F32; *size = 4; return 0;
  case NETTRACE_TYPE_DOUBLE: *code = OP_F64; *size = 8; return 0;
  case NETTRACE_TYPE_INT64:
  case NETTRACE_TYPE_DATETIME: *code = OP_I64; *size = 8; return 0;
  case NETTRACE_TYPE_UINT64: *code = OP_U64; *size = 8; return 0;
  case NETTRACE_TYPE_INT16: *code = OP_I16; *size = 2; return 0;
  case NETTRACE_TYPE_UINT16:
  case NETTRACE_TYPE_CHAR: *code = OP_U16; *size = 2; return 0;
  case NETTRACE_TYPE_SBYTE: *code = OP_I8; *size = 1; return 0;
  case NETTRACE_TYPE_BYTE: *code = OP_U8; *size = 1; return 0;
  case NETTRACE_TYPE_DECIMAL:
  case NETTRACE_TYPE_GUID: *code = OP_SKIP; *size = 16; return 0;
  default: return -1;
  }
}

static int plan_push(struct plan_builder *b, struct op op) {
  if (op.code == OP_SKIP && b->n > 0 && b->ops[b->n - 1].code == OP_SKIP &&
      b->ops[b->n - 1].n <= UINT16_MAX - op.n) {
    b->ops[b->n - 1].n = (uint16_t)(b->ops[b->n - 1].n + op.n);
    return 0;
  }
  if (b->n == b->cap)
    return -1;
  b->ops[b->n++] = op;
  return 0;
}

/* -1: no plan for this field list (the generic walk decides). */
static int plan_field(struct plan_builder *b, uint32_t i, int depth) {
  const struct nettrace_field *f = &b->meta->fields[i];
  if (depth > MAX_DEPTH)
    return -1;
  if (f->type == NETTRACE_TYPE_OBJECT) {
    uint32_t j = i + 1;
    for (uint32_t k = 0; k < f->nchildren; k++) {
      if (j >= b->meta->nfields_total || plan_field(b, j, depth + 1) != 0)
        return -1;
      j += 1 + b->meta->fields[j].span;
    }
    return 0;
  }
  uint8_t code;
  uint16_t size;
  if (leaf_op(f->type, &code, &size) != 0)
    return -1; /* arrays, unknown types */
  uint8_t slot = code == OP_SKIP ? S_NONE : slot_by_name(f->name);
  if (slot != S_NONE && (b->found & 1u << slot))
    slot = S_NONE; /* the first leaf of a name has the slot */
  if (slot != S_NONE)
    b->found |= 1u << slot;
  else if (code != OP_STR)
    code = OP_SKIP;
  return plan_push(b, (struct op){.code = code, .slot = slot, .n = size});
}

static int plan_build(struct plan_builder *b) {
  const struct nettrace_meta *m = b->meta;
  if (!m->fields_ok || m->fields == NULL)
    return -1;
  uint32_t i = 0;
  for (uint32_t k = 0; k < m->nfields; k++) {
    if (i >= m->nfields_total || plan_field(b, i, 0) != 0)
      return -1;
    i += 1 + m->fields[i].span;
  }
  return 0;
}

/* The number of a numeric leaf (op code) at p, its size checked. */
static inline double op_num(uint8_t code, const uint8_t *p) {
  switch (code) {
  case OP_I8: return (int8_t)p[0];
  case OP_U8: return p[0];
  case OP_I16: return (int16_t)wire_le16(p);
  case OP_U16: return wire_le16(p);
  case OP_I32: return (int32_t)wire_le32(p);
  case OP_U32: return wire_le32(p);
  case OP_I64: return (double)(int64_t)wire_le64(p);
  case OP_U64: return (double)wire_le64(p);
  case OP_F32: {
    uint32_t u = wire_le32(p);
    float fl;
    memcpy(&fl, &u, sizeof(fl));
    return fl;
  }
  default: {
    uint64_t u = wire_le64(p);
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
  }
  }
}

/* Runs a plan on the payload at c. at (unless NULL) receives where each
 * op's leaf starts, and at[nops] where the last one ends (from c.p). */
static int plan_run(const struct op *ops, size_t nops, struct wire_cursor c,
                    struct slot_value *v, uint32_t *at) {
  const uint8_t *base = c.p;
  for (size_t i = 0; i < nops; i++) {
    const struct op *o = &ops[i];
    const uint8_t *str;
    size_t units;
    if (at != NULL)
      at[i] = (uint32_t)(c.p - base);
    if (o->code == OP_STR) {
      if (wire_utf16z(&c, &str, &units) != 0)
        return -EBADMSG;
      if (o->slot != S_NONE)
        v[o->slot] = (struct slot_value){
            .utf16 = str, .units = (uint32_t)units, .is_string = 1};
      continue;
    }
    if (o->code == OP_SKIP) {
      if (wire_skip(&c, o->n) != 0)
        return -EBADMSG;
      continue;
    }
    const uint8_t *p = c.p;
    if (wire_skip(&c, o->n) != 0)
      return -EBADMSG;
    v[o->slot] = (struct slot_value){.num = op_num(o->code, p)};
  }
  if (at != NULL)
    at[nops] = (uint32_t)(c.p - base);
  return 0;
}

static void fields_init(struct fields *f, const struct nettrace_event *ev,
                        const uint8_t *slot_of, char *scratch,
                        size_t scratch_cap) {
  f->found = 0;
  f->w = (struct walk){.meta = ev->meta,
                       .c = wire_cursor(ev->payload, ev->payload_len),
                       .slot_of = slot_of,
                       .slots = f->v,
                       .found = &f->found,
                       .scratch = scratch,
                       .scratch_cap = scratch_cap};
}

/* The sample from the slots found. */
static int to_sample(struct fields *f, const struct nettrace_event *ev,
                     enum event_kind kind, struct counters_sample *s) {
  sample_reset(s, ev->timestamp);
  if (kind == EV_COUNTERS)
    return decode_event_counters(f, ev->meta->provider, s);
  return decode_metrics(kind, f, s);
}

/* Decodes ev of the given kind by the generic walk, with a slot map (or
 * by names). */
static int decode(const struct nettrace_event *ev, enum event_kind kind,
                  const uint8_t *slot_of, struct counters_sample *s,
                  char *scratch, size_t scratch_cap) {
  if (kind == EV_OTHER)
    return 0;
  struct fields f;
  fields_init(&f, ev, slot_of, scratch, scratch_cap);
  int r = walk_top(&f.w);
  if (r == -ENOTSUP)
    return 0;
  if (r < 0)
    return r;
  return to_sample(&f, ev, kind, s);
}

int counters_decode(const struct nettrace_event *ev, struct counters_sample *s,
                    char *scratch, size_t scratch_cap) {
  return decode(ev, event_kind(ev->meta), NULL, s, scratch, scratch_cap);
}

/* ---- templates: what a repeated payload decodes to ----
 *
 * A counter's events repeat their strings byte for byte interval after
 * interval (name, display name, series, type, units); only the numbers
 * change. After the plan of an EventCounters event decoded a payload, a
 * template keeps the bytes of its string leaves, where its numbers lie and
 * what the strings gave (UTF-8 name and units, kind, series). A payload of
 * the same plan and length whose bytes equal the template's over every
 * string leaf has each leaf where the template has it (the plan's scans
 * would stop at the same terminators), and the same strings: decoding it
 * reads its numbers at the template's offsets, no scan, no conversion.
 *
 * Meters' events carry their numbers as text, whose lengths change: their
 * templates keep the payload's prefix up to the first number (session,
 * meter, version, instrument, unit and tags) and what its strings gave. A
 * payload of the same plan that starts with those bytes is decoded from
 * the template up to there, and by the rest of the plan after it.
 *
 * Templates live in a store shared by the decoders of one thread (all the
 * sessions of a reader): the processes of one runtime send the same
 * strings, so their sessions share templates, and the store's memory does
 * not grow with the number of sessions. Plans are interned in the store,
 * so that a template is only ever applied to payloads of the plan that
 * made it. */

#define TMPL_WAYS 256           /* direct-mapped by plan, length, start */
#define TMPL_PROBE 4            /* ways looked at from the home way on */
#define TMPL_MAX_LEN 1024       /* longer payloads are not kept */
#define TMPL_MAX_RUNS 8         /* runs of consecutive string leaves */
#define TMPL_PLANS 16           /* distinct plans with templates */
#define TMPL_BUDGET (64 * 1024) /* bytes of templates in a store */
#define TMPL_ROOM 1024          /* less free than this: full */
#define TMPL_NO_PLAN 0xffff
#define TMPL_BY_INC 0xff /* kind: SUM when Increment is a number, else MEAN */

/* How a template's numbers lie. The runtime's two payloads (CounterPayload
 * and IncrementingCounterPayload in EventCounters) have their numbers in
 * one block, the same in every version: read straight into the sample.
 * Any other layout goes through the list of leaves. */
enum {
  TMPL_SHAPE_LEAVES,
  TMPL_SHAPE_MEAN, /* kind MEAN: double Mean, StandardDeviation; int32
                      Count; double Min, Max; float IntervalSec */
  TMPL_SHAPE_SUM,  /* kind SUM: double Increment; float IntervalSec */
};

/* The numbers decode_event_counters reads, in this order. */
static const uint8_t tmpl_num_slots[] = {
    S_INCREMENT, S_MEAN, S_MIN, S_MAX, S_STDDEV, S_EC_COUNT, S_INTERVAL_SEC};
enum { TN_INC, TN_MEAN, TN_MIN, TN_MAX, TN_STDDEV, TN_COUNT, TN_IV, TN_N };

/* The strings decode_metrics takes, in the order it converts them. */
static const uint8_t tmpl_meter_slots[] = {S_SESSION_ID, S_METER_NAME,
                                           S_INSTRUMENT_NAME, S_UNIT, S_TAGS};
enum { TM_N = sizeof(tmpl_meter_slots) };
#define TM_SLOTS                                                               \
  (1u << S_SESSION_ID | 1u << S_METER_NAME | 1u << S_INSTRUMENT_NAME |         \
   1u << S_UNIT | 1u << S_TAGS)

/* A number of the sample that is a leaf of the payload: TN_* index k, op
 * code, offset. The others are constants (absent: NAN; a string's number:
 * constant bytes). */
struct tmpl_leaf {
  uint8_t k, code;
  uint16_t off;
};

struct tmpl {
  uint32_t len;  /* the payload's; a prefix template's: the prefix's */
  uint16_t plan; /* interned in the store */
  uint8_t prefix; /* 1: a meters' prefix template (see tmpl_new_prefix) */
  uint16_t nruns;
  uint16_t strs;                /* name and units: at data + strs */
  uint16_t name_len, units_len; /* UTF-8 with the NUL */
  uint16_t dn_off, dn_units;    /* DisplayName in the payload, if has_dn */
  uint32_t series_ms;
  uint8_t kind; /* enum counters_kind, or TMPL_BY_INC */
  uint8_t has_dn;
  uint8_t shape;      /* TMPL_SHAPE_*: how its numbers lie */
  uint16_t shape_off; /* where a shape's numbers start */
  uint32_t size; /* bytes allocated */
  uint16_t mlen[TM_N]; /* prefix: UTF-8 lengths with the NUL, 0: absent */
  uint8_t nleaves;
  uint16_t next; /* 1 + the way of the template a payload of the same
                    metadata matched after this one's, last time: a guess
                    (tmpl_match decides), as counters come in the same order
                    every interval; 0: none */
  struct tmpl_leaf leaf[TN_N];
  double num[TN_N]; /* the constants; the leaves' places are overwritten */
  uint16_t runs[2 * TMPL_MAX_RUNS]; /* offset, length */
  uint8_t data[];                   /* the runs' bytes, then name and units */
};

struct counters_templates {
  struct tmpl *way[TMPL_WAYS];
  struct op *plan[TMPL_PLANS];
  uint16_t plan_nops[TMPL_PLANS];
  uint32_t nplans;
  size_t bytes;
  uint64_t hits, misses;
};

struct counters_templates *counters_templates_new(void) {
  return calloc(1, sizeof(struct counters_templates));
}

void counters_templates_free(struct counters_templates *t) {
  if (t == NULL)
    return;
  for (size_t i = 0; i < TMPL_WAYS; i++)
    free(t->way[i]);
  for (size_t i = 0; i < t->nplans; i++)
    free(t->plan[i]);
  free(t);
}

void counters_templates_stats(const struct counters_templates *t,
                              struct counters_templates_stats *out) {
  size_t n = 0;
  for (size_t i = 0; i < TMPL_WAYS; i++)
    n += t->way[i] != NULL;
  *out = (struct counters_templates_stats){.hits = t->hits,
                                           .misses = t->misses,
                                           .templates = n,
                                           .bytes = t->bytes,
                                           .plans = t->nplans};
}

/* The id of a plan in the store (added when new), or TMPL_NO_PLAN. */
static uint16_t tmpl_plan(struct counters_templates *t, const struct op *ops,
                          size_t nops) {
  for (uint32_t i = 0; i < t->nplans; i++)
    if (t->plan_nops[i] == nops &&
        memcmp(t->plan[i], ops, nops * sizeof(*ops)) == 0)
      return (uint16_t)i;
  if (t->nplans == TMPL_PLANS || nops == 0)
    return TMPL_NO_PLAN;
  struct op *copy = malloc(nops * sizeof(*ops));
  if (copy == NULL)
    return TMPL_NO_PLAN;
  memcpy(copy, ops, nops * sizeof(*ops));
  t->plan[t->nplans] = copy;
  t->plan_nops[t->nplans] = (uint16_t)nops;
  return (uint16_t)t->nplans++;
}

/* A way from a seed and the first 32 bytes of a payload (all of them when
 * it is that long). */
static uint32_t home_way(uint64_t h, const uint8_t *p, uint32_t len) {
  if (len >= 32)
    h ^= (wire_le64(p) * 0xC2B2AE3D27D4EB4FULL ^
          wire_le64(p + 8) * 0x165667B19E3779F9ULL) +
         (wire_le64(p + 16) * 0x85EBCA77C2B2AE63ULL ^
          wire_le64(p + 24) * 0x27D4EB2F165667C5ULL);
  h ^= h >> 29;
  return (uint32_t)(h * 0xBF58476D1CE4E5B9ULL >> 56) % TMPL_WAYS;
}

/* The home way of a payload: by its plan, length and first 32 bytes (the
 * name, mostly: "threadpool-thread-count" and "threadpool-queue-length"
 * part after 11 characters). */
static uint32_t tmpl_home(uint16_t plan, const uint8_t *p, uint32_t len) {
  return home_way((len + ((uint64_t)plan << 32)) * 0x9E3779B97F4A7C15ULL, p,
                  len);
}

/* Whether n bytes at a and b are equal (short runs: memcmp's call and
 * dispatch cost more than the compare). Payloads that reach here match
 * nearly always, so the differences are gathered without a branch per
 * step and tested once; the last, partial step compares the run's last 16
 * (or 8, 4) bytes, overlapping the step before. */
static inline int bytes_equal(const uint8_t *a, const uint8_t *b, size_t n) {
  uint64_t x, y;
#if defined(__SSE2__)
  if (n >= 16) {
#define DIFF16(i)                                                              \
  _mm_xor_si128(_mm_loadu_si128((const __m128i *)(const void *)(a + (i))),     \
                _mm_loadu_si128((const __m128i *)(const void *)(b + (i))))
    __m128i d = DIFF16(n - 16);
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
      d = _mm_or_si128(d, _mm_or_si128(DIFF16(i), DIFF16(i + 16)));
    if (i + 16 < n)
      d = _mm_or_si128(d, DIFF16(i));
#undef DIFF16
    return _mm_movemask_epi8(_mm_cmpeq_epi8(d, _mm_setzero_si128())) == 0xffff;
  }
#endif
  if (n >= 8) {
    for (size_t i = 0;; i += 8) {
      if (i + 8 > n)
        i = n - 8;
      memcpy(&x, a + i, 8);
      memcpy(&y, b + i, 8);
      if (x != y)
        return 0;
      if (i + 8 == n)
        return 1;
    }
  }
  if (n >= 4) {
    uint32_t u, v, w, z;
    memcpy(&u, a, 4);
    memcpy(&v, b, 4);
    memcpy(&w, a + n - 4, 4);
    memcpy(&z, b + n - 4, 4);
    return u == v && w == z;
  }
  for (; n > 0; a++, b++, n--)
    if (*a != *b)
      return 0;
  return 1;
}

static int tmpl_match(const struct tmpl *t, uint16_t plan, const uint8_t *p,
                      uint32_t len) {
  if (t->len != len || t->plan != plan || t->prefix)
    return 0;
  const uint8_t *b = t->data;
  for (uint32_t k = 0; k < t->nruns; k++) {
    if (!bytes_equal(p + t->runs[2 * k], b, t->runs[2 * k + 1]))
      return 0;
    b += t->runs[2 * k + 1];
  }
  return 1;
}

static inline double f64_at(const uint8_t *p) {
  uint64_t u = wire_le64(p);
  double d;
  memcpy(&d, &u, sizeof(d));
  return d;
}

static inline double f32_at(const uint8_t *p) {
  uint32_t u = wire_le32(p);
  float f;
  memcpy(&f, &u, sizeof(f));
  return f;
}

/* The numbers of a template without a shape, by its leaves: the sample's
 * kind and values set; IntervalSec returned. */
static double tmpl_leaves(const struct tmpl *t, const struct nettrace_event *ev,
                          struct counters_sample *s) {
  double n[TN_N];
  memcpy(n, t->num, sizeof(n));
  for (uint32_t i = 0; i < t->nleaves; i++)
    n[t->leaf[i].k] = op_num(t->leaf[i].code, ev->payload + t->leaf[i].off);
  uint8_t kind = t->kind;
  if (kind == TMPL_BY_INC)
    kind = isnan(n[TN_INC]) ? COUNTERS_MEAN : COUNTERS_SUM;
  if (kind == COUNTERS_SUM) {
    s->kind = COUNTERS_SUM;
    s->value = n[TN_INC];
  } else {
    s->kind = COUNTERS_MEAN;
    s->value = n[TN_MEAN];
    s->min = n[TN_MIN];
    s->max = n[TN_MAX];
    s->stddev = n[TN_STDDEV];
    s->count = n[TN_COUNT];
  }
  return n[TN_IV];
}

/* The shape of a template's numbers (its kind and leaves set). */
static void tmpl_shape(struct tmpl *t) {
  static const struct {
    uint8_t kind, shape, n;
    struct tmpl_leaf leaf[6]; /* .off: from the first */
  } shapes[] = {
      {COUNTERS_MEAN,
       TMPL_SHAPE_MEAN,
       6,
       {{TN_MEAN, OP_F64, 0},
        {TN_STDDEV, OP_F64, 8},
        {TN_COUNT, OP_I32, 16},
        {TN_MIN, OP_F64, 20},
        {TN_MAX, OP_F64, 28},
        {TN_IV, OP_F32, 36}}},
      {COUNTERS_SUM,
       TMPL_SHAPE_SUM,
       2,
       {{TN_INC, OP_F64, 0}, {TN_IV, OP_F32, 8}}},
  };
  const struct tmpl_leaf *of[TN_N] = {0}; /* t's leaf of each number */
  for (uint32_t l = 0; l < t->nleaves; l++)
    of[t->leaf[l].k] = &t->leaf[l];
  t->shape = TMPL_SHAPE_LEAVES;
  for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
    const struct tmpl_leaf *first = of[shapes[i].leaf[0].k];
    if (t->kind != shapes[i].kind || t->nleaves != shapes[i].n || first == NULL)
      continue;
    uint32_t j = 0;
    for (; j < shapes[i].n; j++) {
      const struct tmpl_leaf *want = &shapes[i].leaf[j], *have = of[want->k];
      if (have == NULL || have->code != want->code ||
          have->off != first->off + want->off)
        break;
    }
    if (j == shapes[i].n) {
      t->shape = shapes[i].shape;
      t->shape_off = first->off;
      return;
    }
  }
}

/* Decodes a payload that matches t, as decode_event_counters would; 2 when
 * the scratch is too small for the strings (the plan decides then). */
static int tmpl_decode(const struct tmpl *t, const struct nettrace_event *ev,
                       struct counters_sample *s, char *scratch,
                       size_t scratch_cap) {
  if ((size_t)t->name_len + t->units_len > scratch_cap)
    return 2;
  sample_reset(s, ev->timestamp);
  s->provider = ev->meta->provider;
  /* the strings the template holds, not a copy: valid until the next
   * decode with this store (the scratch check above keeps the result the
   * plan's whatever its size) */
  (void)scratch;
  s->name = (const char *)t->data + t->strs;
  s->units = s->name + t->name_len;
  if (t->has_dn) {
    s->display_name_utf16 = ev->payload + t->dn_off;
    s->display_name_units = t->dn_units;
  }
  const uint8_t *q = ev->payload + t->shape_off;
  double iv;
  if (t->shape == TMPL_SHAPE_MEAN) {
    s->kind = COUNTERS_MEAN;
    s->value = f64_at(q);
    s->stddev = f64_at(q + 8);
    s->count = (int32_t)wire_le32(q + 16);
    s->min = f64_at(q + 20);
    s->max = f64_at(q + 28);
    iv = f32_at(q + 36);
  } else if (t->shape == TMPL_SHAPE_SUM) {
    s->kind = COUNTERS_SUM;
    s->value = f64_at(q);
    iv = f32_at(q + 8);
  } else {
    iv = tmpl_leaves(t, ev, s);
  }
  if (isnan(s->value))
    return -EBADMSG;
  s->interval_sec = isnan(iv) ? 0 : iv;
  s->series_ms = t->series_ms;
  return 1;
}

/* A template of the payload the plan (ops, leaves at at[]) decoded into f
 * and s. NULL when it cannot be kept (too many runs, out of memory). */
static struct tmpl *tmpl_new(uint16_t plan, const struct op *ops, uint32_t nops,
                             const struct nettrace_event *ev,
                             const uint32_t *at, struct fields *f,
                             const struct counters_sample *s) {
  const uint8_t *p = ev->payload;
  struct tmpl h = {.len = ev->payload_len, .plan = plan};
  size_t run_bytes = 0;
  for (uint32_t i = 0; i < nops; i++) {
    if (ops[i].code != OP_STR)
      continue;
    uint16_t *last = h.nruns > 0 ? &h.runs[2 * (h.nruns - 1)] : NULL;
    if (last != NULL && last[0] + last[1] == at[i]) {
      last[1] = (uint16_t)(last[1] + at[i + 1] - at[i]);
    } else {
      if (h.nruns == TMPL_MAX_RUNS)
        return NULL;
      h.runs[2 * h.nruns] = (uint16_t)at[i];
      h.runs[2 * h.nruns + 1] = (uint16_t)(at[i + 1] - at[i]);
      h.nruns++;
    }
    run_bytes += at[i + 1] - at[i];
  }
  /* name and units converted in full, to compare with what the plan
   * gave */
  char name[TMPL_MAX_LEN * 3 / 2 + 1], units[TMPL_MAX_LEN * 3 / 2 + 1];
  const struct slot_value *v = get(f, S_NAME);
  if (v == NULL || !v->is_string ||
      wire_utf16_to_utf8(v->utf16, v->units, name, sizeof(name)) < 0)
    return NULL;
  units[0] = 0;
  v = get(f, S_DISPLAY_UNITS);
  if (v != NULL && v->is_string &&
      wire_utf16_to_utf8(v->utf16, v->units, units, sizeof(units)) < 0)
    return NULL;
  h.name_len = (uint16_t)(wire_utf8_printable(name) + 1); /* as to_scratch */
  h.units_len = (uint16_t)(wire_utf8_printable(units) + 1);
  /* a template gives what the plan gave: not when the plan's scratch was
   * too small for a string (it gave "" there) */
  if (strcmp(name, s->name) != 0 || strcmp(units, s->units) != 0)
    return NULL;
  if (s->display_name_utf16 != NULL) {
    h.has_dn = 1;
    h.dn_off = (uint16_t)(s->display_name_utf16 - p);
    h.dn_units = (uint16_t)s->display_name_units;
  }
  h.series_ms = s->series_ms;
  /* the kind: as decode_event_counters decides it */
  v = get(f, S_COUNTER_TYPE);
  if (v != NULL && v->is_string && v->units > 0)
    h.kind = str_starts(f, S_COUNTER_TYPE, SUM16, sizeof(SUM16), 1)
                 ? COUNTERS_SUM
                 : COUNTERS_MEAN;
  else
    h.kind = TMPL_BY_INC;
  for (int k = 0; k < TN_N; k++) {
    uint8_t slot = tmpl_num_slots[k];
    h.num[k] = num_of(f, (enum slot)slot);
    v = get(f, (enum slot)slot);
    if (v == NULL || v->is_string)
      continue; /* absent, or text among the runs: constant */
    for (uint32_t i = 0; i < nops; i++)
      if (ops[i].slot == slot) {
        h.leaf[h.nleaves++] = (struct tmpl_leaf){
            .k = (uint8_t)k, .code = ops[i].code, .off = (uint16_t)at[i]};
        break;
      }
  }
  tmpl_shape(&h);
  h.strs = (uint16_t)run_bytes;
  h.size = (uint32_t)(sizeof(h) + run_bytes + h.name_len + h.units_len);
  struct tmpl *t = malloc(h.size);
  if (t == NULL)
    return NULL;
  *t = h;
  uint8_t *b = t->data;
  for (uint32_t k = 0; k < h.nruns; k++) {
    memcpy(b, p + h.runs[2 * k], h.runs[2 * k + 1]);
    b += h.runs[2 * k + 1];
  }
  memcpy(b, name, h.name_len);
  memcpy(b + h.name_len, units, h.units_len);
  return t;
}

/* Keeps t at the first free way of its probe, else in place of the one at
 * its home way; drops it when the store would exceed its budget. */
static void tmpl_keep(struct counters_templates *st, uint32_t home,
                      struct tmpl *t) {
  uint32_t w = home;
  for (uint32_t k = 0; k < TMPL_PROBE; k++)
    if (st->way[(home + k) % TMPL_WAYS] == NULL) {
      w = (home + k) % TMPL_WAYS;
      break;
    }
  if (st->way[w] != NULL) {
    st->bytes -= st->way[w]->size;
    free(st->way[w]);
    st->way[w] = NULL;
  }
  if (st->bytes + t->size > TMPL_BUDGET) {
    free(t);
    return;
  }
  st->way[w] = t;
  st->bytes += t->size;
}

/* ---- prefix templates: meters' events ---- */

/* Where a meters' plan can be cut: the number of its first ops that hold
 * nothing but strings and skipped bytes, up to the first number (as text
 * or not), when every string decode_metrics converts lies before the cut;
 * else 0 (no prefix templates for the plan). */
static uint16_t prefix_split(const struct op *ops, size_t nops) {
  size_t k = 0;
  while (k < nops && (ops[k].code == OP_STR || ops[k].code == OP_SKIP) &&
         ops[k].slot != S_RATE && ops[k].slot != S_VALUE &&
         ops[k].slot != S_LAST_VALUE && ops[k].slot != S_QUANTILES &&
         ops[k].slot != S_COUNT && ops[k].slot != S_SUM)
    k++;
  if (k == 0 || k > UINT16_MAX)
    return 0;
  for (size_t i = k; i < nops; i++)
    for (int j = 0; j < TM_N; j++)
      if (ops[i].slot == tmpl_meter_slots[j])
        return 0;
  return (uint16_t)k;
}

/* The bytes a meters' plan ends with at a fixed place, in a field it does
 * not use (the instrument id of .NET 9 and later: the same in every
 * payload of an instrument): at most 8; 0 when it ends with a string or a
 * number it uses (a histogram's sum, say: it changes). */
static uint8_t prefix_tail(const struct op *ops, size_t nops) {
  if (nops == 0 || ops[nops - 1].code != OP_SKIP)
    return 0;
  return (uint8_t)(ops[nops - 1].n < 8 ? ops[nops - 1].n : 8);
}

/* The home way of a meters' payload: by its plan, the bytes it ends with
 * (the instrument id, where there is one: the prefix's length is not
 * known before the match) and its first 32 bytes (the session, mostly). */
static uint32_t prefix_home(uint16_t plan, const uint8_t *p, uint32_t len,
                            uint8_t tail) {
  uint64_t h = (0x5bd1e995u + ((uint64_t)plan << 32)) * 0x9E3779B97F4A7C15ULL;
  if (tail > 0 && len >= tail) {
    uint64_t x = 0;
    memcpy(&x, p + len - tail, tail);
    h ^= x * 0xD6E8FEB86659FD93ULL;
  }
  return home_way(h, p, len);
}

static int prefix_match(const struct tmpl *t, uint16_t plan, const uint8_t *p,
                        uint32_t len) {
  return t->prefix && t->plan == plan && len >= t->len &&
         bytes_equal(p, t->data, t->len);
}

/* Decodes a payload that starts with t's prefix: its strings from t (not
 * copies: valid until the next decode with this store), the rest by the
 * plan's ops from ops[split] on, as decode_plan would; 2 when the scratch
 * is too small for t's strings (the plan decides then). */
static int prefix_decode(const struct tmpl *t, const struct op *ops,
                         size_t nops, uint16_t split, uint32_t found,
                         enum event_kind kind, const struct nettrace_event *ev,
                         struct counters_sample *s, char *scratch,
                         size_t scratch_cap) {
  const char *str[TM_N];
  size_t need = 0;
  const char *src = (const char *)t->data + t->len;
  for (int i = 0; i < TM_N; i++) {
    str[i] = t->mlen[i] != 0 ? src : ""; /* absent: as str_of gives */
    src += t->mlen[i];
    need += t->mlen[i];
  }
  if (need > scratch_cap)
    return 2;
  sample_reset(s, ev->timestamp);
  s->kind = metrics_kind(kind);
  s->session = str[0]; /* in tmpl_meter_slots' order */
  s->provider = str[1];
  s->name = str[2];
  s->units = str[3];
  s->tags = str[4];
  if (s->provider[0] == 0 || s->name[0] == 0)
    return -EBADMSG;
  struct fields f;
  fields_init(&f, ev, NULL, scratch, scratch_cap);
  f.found = found & ~TM_SLOTS; /* those were in the prefix, and are set */
  /* the room the plan's copies of them would take: the strings converted
   * after them (quantiles) fit, or not, as they would in the plan */
  f.w.scratch_used = need;
  struct wire_cursor c =
      wire_cursor(ev->payload + t->len, ev->payload_len - t->len);
  int r = plan_run(ops + split, nops - split, c, f.v, NULL);
  if (r < 0)
    return r;
  return metrics_values(&f, s);
}

/* A prefix template of a meters' payload the plan decoded into f (leaves
 * at at[]): its bytes up to ops[split], and the strings decode_metrics
 * converts, converted in full. NULL when it cannot be kept. */
static struct tmpl *tmpl_new_prefix(uint16_t plan, uint16_t split,
                                    const struct nettrace_event *ev,
                                    const uint32_t *at, struct fields *f) {
  struct tmpl h = {.len = at[split], .plan = plan, .prefix = 1};
  char utf8[TM_N][TMPL_MAX_LEN * 3 / 2 + 1];
  size_t bytes = 0;
  for (int i = 0; i < TM_N; i++) {
    const struct slot_value *v = get(f, (enum slot)tmpl_meter_slots[i]);
    if (v == NULL)
      continue; /* str_of gives "" without the scratch */
    utf8[i][0] = 0;
    if (v->is_string &&
        wire_utf16_to_utf8(v->utf16, v->units, utf8[i], sizeof(utf8[i])) < 0)
      return NULL;
    h.mlen[i] = (uint16_t)(wire_utf8_printable(utf8[i]) + 1); /* as to_scratch */
    bytes += h.mlen[i];
  }
  h.size = (uint32_t)(sizeof(h) + h.len + bytes);
  struct tmpl *t = malloc(h.size);
  if (t == NULL)
    return NULL;
  *t = h;
  memcpy(t->data, ev->payload, h.len);
  uint8_t *b = t->data + h.len;
  for (int i = 0; i < TM_N; i++) {
    memcpy(b, utf8[i], h.mlen[i]);
    b += h.mlen[i];
  }
  return t;
}

/* ---- the decoder: plans cached per metadata ---- */

#define DECODER_WAYS 32        /* direct-mapped by metadata id */
#define DECODER_MAX_FIELDS 256 /* larger field lists are not cached */

struct decoder_entry {
  const struct nettrace_meta *meta; /* NULL: empty */
  const struct nettrace_field *fields;
  uint32_t id, nfields_total;
  uint8_t kind;
  int16_t nops;   /* >= 0: ops is a plan; -1: slot_of is a slot map */
  uint16_t plan;  /* the plan's id in the templates, or TMPL_NO_PLAN */
  uint16_t split; /* meters: the ops of the prefix (prefix_split) */
  uint8_t tail;   /* meters: prefix_tail */
  uint16_t last;  /* 1 + the way of the template the last payload matched;
                     0: none */
  uint32_t found; /* the slots the plan fills */
  void *map;      /* struct op[nops] or uint8_t[nfields_total]; NULL for
                     EV_OTHER */
};

struct counters_decoder {
  struct counters_templates *templates; /* NULL: none */
  struct decoder_entry e[DECODER_WAYS];
};

struct counters_decoder *
counters_decoder_new(struct counters_templates *templates) {
  struct counters_decoder *d = calloc(1, sizeof(struct counters_decoder));
  if (d != NULL)
    d->templates = templates;
  return d;
}

void counters_decoder_reset(struct counters_decoder *d) {
  if (d == NULL)
    return;
  for (size_t i = 0; i < DECODER_WAYS; i++)
    free(d->e[i].map);
  memset(d->e, 0, sizeof(d->e));
}

void counters_decoder_free(struct counters_decoder *d) {
  counters_decoder_reset(d);
  free(d);
}

static int entry_is(const struct decoder_entry *e,
                    const struct nettrace_meta *m) {
  return e->meta == m && e->id == m->id && e->fields == m->fields &&
         e->nfields_total == m->nfields_total;
}

/* Fills e for m: a plan if the field list has one, else a slot map. */
static int entry_build(struct counters_decoder *d, struct decoder_entry *e,
                       const struct nettrace_meta *m, enum event_kind kind) {
  void *map = NULL;
  int nops = -1;
  uint32_t found = 0;
  uint16_t plan = TMPL_NO_PLAN, split = 0;
  uint8_t tail = 0;
  if (kind != EV_OTHER) {
    if (!m->fields_ok || m->fields == NULL || m->nfields_total == 0 ||
        m->nfields_total > DECODER_MAX_FIELDS)
      return -1;
    struct op ops[DECODER_MAX_FIELDS];
    struct plan_builder b = {.meta = m, .ops = ops, .cap = DECODER_MAX_FIELDS};
    if (plan_build(&b) == 0) {
      map = malloc(b.n ? b.n * sizeof(struct op) : 1);
      if (map == NULL)
        return -1;
      memcpy(map, ops, b.n * sizeof(struct op));
      nops = (int)b.n;
      found = b.found;
      if (kind != EV_COUNTERS) {
        split = prefix_split(ops, b.n);
        tail = prefix_tail(ops, b.n);
      }
      if (d->templates != NULL && (kind == EV_COUNTERS || split > 0))
        plan = tmpl_plan(d->templates, ops, b.n);
    } else {
      uint8_t *slot_of = malloc(m->nfields_total);
      if (slot_of == NULL)
        return -1;
      for (uint32_t i = 0; i < m->nfields_total; i++)
        slot_of[i] = slot_by_name(m->fields[i].name);
      map = slot_of;
    }
  }
  free(e->map);
  *e = (struct decoder_entry){.meta = m,
                              .fields = m->fields,
                              .id = m->id,
                              .nfields_total = m->nfields_total,
                              .kind = (uint8_t)kind,
                              .nops = (int16_t)nops,
                              .plan = plan,
                              .split = split,
                              .tail = tail,
                              .found = found,
                              .map = map};
  return 0;
}

/* decode_plan's way without a template: runs the plan, and keeps a
 * template of the payload when keep (out of line: the template hit, the
 * common case, needs none of its stack). */
static __attribute__((noinline)) int
decode_plan_run(struct counters_templates *st, const struct decoder_entry *e,
                const struct nettrace_event *ev, struct counters_sample *s,
                char *scratch, size_t scratch_cap, int keep, uint32_t home) {
  const struct op *ops = e->map;
  struct fields f;
  fields_init(&f, ev, NULL, scratch, scratch_cap);
  uint32_t at[DECODER_MAX_FIELDS + 1];
  int r = plan_run(ops, (size_t)e->nops, f.w.c, f.v, keep ? at : NULL);
  if (r < 0)
    return r;
  f.found = e->found;
  r = to_sample(&f, ev, (enum event_kind)e->kind, s);
  if (keep && r == 1) {
    st->misses++;
    /* a full store takes one in eight: a stream of more counters than it
     * holds does not pay for a new template at every miss */
    if (st->bytes + TMPL_ROOM <= TMPL_BUDGET || st->misses % 8 == 0) {
      struct tmpl *t =
          e->split ? tmpl_new_prefix(e->plan, e->split, ev, at, &f)
                   : tmpl_new(e->plan, ops, (uint32_t)e->nops, ev, at, &f, s);
      if (t != NULL)
        tmpl_keep(st, home, t);
    }
  }
  return r;
}

/* The decode of a payload of e's plan by template t: 3 when it does not
 * match, 2 when the scratch is too small, else as decode_plan. */
static inline int tmpl_try(const struct tmpl *t, const struct decoder_entry *e,
                           const struct nettrace_event *ev,
                           struct counters_sample *s, char *scratch,
                           size_t scratch_cap) {
  if (e->split == 0)
    return tmpl_match(t, e->plan, ev->payload, ev->payload_len)
               ? tmpl_decode(t, ev, s, scratch, scratch_cap)
               : 3;
  return prefix_match(t, e->plan, ev->payload, ev->payload_len)
             ? prefix_decode(t, e->map, (size_t)e->nops, e->split, e->found,
                             (enum event_kind)e->kind, ev, s, scratch,
                             scratch_cap)
             : 3;
}

/* By e's plan: from a template when one matches (those from the payload's
 * home way on, the guess having failed), else by running the plan (the
 * payload then kept as a template when e's events have them). */
static int decode_plan(struct counters_templates *st, struct decoder_entry *e,
                       const struct nettrace_event *ev,
                       struct counters_sample *s, char *scratch,
                       size_t scratch_cap) {
  if (e->plan == TMPL_NO_PLAN || ev->payload_len > TMPL_MAX_LEN)
    return decode_plan_run(st, e, ev, s, scratch, scratch_cap, 0, 0);
  /* the guess (the template that followed the last one) was tried */
  struct tmpl *last = e->last ? st->way[e->last - 1] : NULL;
  uint32_t home =
      e->split ? prefix_home(e->plan, ev->payload, ev->payload_len, e->tail)
               : tmpl_home(e->plan, ev->payload, ev->payload_len);
  for (uint32_t k = 0; k < TMPL_PROBE; k++) {
    uint32_t w = (home + k) % TMPL_WAYS;
    const struct tmpl *t = st->way[w];
    if (t == NULL)
      continue;
    int r = tmpl_try(t, e, ev, s, scratch, scratch_cap);
    if (r == 2)
      return decode_plan_run(st, e, ev, s, scratch, scratch_cap, 0, 0);
    if (r != 3) {
      if (last != NULL)
        last->next = (uint16_t)(w + 1);
      e->last = (uint16_t)(w + 1);
      st->hits++;
      return r;
    }
  }
  e->last = 0;
  return decode_plan_run(st, e, ev, s, scratch, scratch_cap, 1, home);
}

/* counters_decoder_decode but its first guess (out of line: the common
 * case needs none of its stack). */
static __attribute__((noinline)) int
decode_entry(struct counters_decoder *d, struct decoder_entry *e,
             const struct nettrace_event *ev, struct counters_sample *s,
             char *scratch, size_t scratch_cap) {
  const struct nettrace_meta *m = ev->meta;
  if (!entry_is(e, m)) {
    enum event_kind kind = event_kind(m);
    if (entry_build(d, e, m, kind) != 0) /* not cacheable: the slow way */
      return decode(ev, kind, NULL, s, scratch, scratch_cap);
  }
  if (e->kind == EV_OTHER)
    return 0;
  if (e->nops >= 0)
    return decode_plan(d->templates, e, ev, s, scratch, scratch_cap);
  return decode(ev, (enum event_kind)e->kind, e->map, s, scratch, scratch_cap);
}

int counters_decoder_decode(struct counters_decoder *d,
                            const struct nettrace_event *ev,
                            struct counters_sample *s, char *scratch,
                            size_t scratch_cap) {
  struct decoder_entry *e = &d->e[ev->meta->id % DECODER_WAYS];
  /* the guess: the template that followed the one this metadata's last
   * payload matched (e->last is set only by a hit of e's plan, so the
   * entry has templates) */
  if (e->last != 0 && entry_is(e, ev->meta) &&
      ev->payload_len <= TMPL_MAX_LEN) {
    struct counters_templates *st = d->templates;
    const struct tmpl *last = st->way[e->last - 1];
    if (last != NULL && last->next != 0 && st->way[last->next - 1] != NULL) {
      int r = tmpl_try(st->way[last->next - 1], e, ev, s, scratch, scratch_cap);
      if (r != 3 && r != 2) {
        e->last = last->next;
        st->hits++;
        return r;
      }
    }
  }
  return decode_entry(d, e, ev, s, scratch, scratch_cap);
}

/* Instruments of the System.Runtime meter that .NET 9 and 10 declare as
 * (monotonic) observable counters though they report a level that goes
 * down as well (dotnet/runtime issues 112077 and 126167): as RATE their
 * drops would be lost and their DERIVE would only grow. */
static const char *const level_counters[] = {
    "dotnet.thread_pool.thread.count",
    "dotnet.thread_pool.queue.length",
};

void counters_fix_kind(struct counters_sample *s) {
  if (s->kind != COUNTERS_RATE || isnan(s->total) ||
      strcmp(s->provider, "System.Runtime") != 0)
    return;
  for (size_t i = 0; i < sizeof(level_counters) / sizeof(level_counters[0]);
       i++)
    if (strcmp(s->name, level_counters[i]) == 0) {
      s->kind = COUNTERS_UPDOWN; /* the level, as the runtime fixed it */
      s->value = s->total;
      s->total = NAN;
      return;
    }
}

const char *counters_display_name(const struct counters_sample *s, char *out,
                                  size_t cap) {
  if (cap == 0)
    return "";
  if (s->display_name_utf16 == NULL ||
      wire_utf16_to_utf8(s->display_name_utf16, s->display_name_units, out,
                         cap) < 0)
    out[0] = 0;
  wire_utf8_printable(out);
  return out;
}

int64_t counters_unix_ms(const struct nettrace_trace_info *ti, uint64_t qpc) {
  if (ti == NULL || ti->qpc_frequency <= 0)
    return 0;
  double delta = ((double)(int64_t)qpc - (double)ti->sync_qpc) * 1000.0 /
                 (double)ti->qpc_frequency;
  /* Both the Trace object and the timestamps come from the peer: a delta
   * beyond any real clock (+-100 million years) is "unknown", not an int64
   * overflow. sync_time_unix_ms is within +-2^51 (a 16-bit year). */
  if (!(fabs(delta) < 3.2e18))
    return 0;
  return ti->sync_time_unix_ms + (int64_t)llround(delta);
}

/* ---- table ----
 *
 * A few dozen entries per target, each ~140 bytes plus its strings: a
 * linear scan comparing 32-bit hashes first is as fast as anything here.
 *
 * Bounded by what a process could make it hold: every entry holds series
 * (the values published for it under names of their own: one, a histogram
 * COUNTERS_HISTOGRAM_SERIES), and a new key is refused once the series
 * would exceed max_series or the names (provider, name, tags) would exceed
 * COUNTERS_NAME_BYTES per series; the entries already there go on. The
 * kind is part of the key and the units are those of the first sample, so
 * an entry's series never change (a peer cannot make more of one key by
 * changing its kind or units from sample to sample). */

#define COUNTERS_NAME_BYTES 256
#define NAME_BYTES_MIN 4096 /* room for one key of the longest names */

void counters_table_init(struct counters_table *t, size_t max_series) {
  if (max_series == 0)
    max_series = COUNTERS_DEFAULT_MAX_SERIES;
  if (max_series > COUNTERS_MAX_MAX_SERIES)
    max_series = COUNTERS_MAX_MAX_SERIES;
  *t = (struct counters_table){
      .max_series = max_series,
      .max_name_bytes = max_series * COUNTERS_NAME_BYTES + NAME_BYTES_MIN};
}

static void entry_free(struct counters_entry *e) {
  free((char *)e->provider);
  free(e->hist);
  free(e->type_instance);
}

void counters_table_fini(struct counters_table *t) {
  counters_table_clear(t);
  free(t->entries);
  counters_table_init(t, t->max_series);
}

void counters_table_clear(struct counters_table *t) {
  for (size_t i = 0; i < t->n; i++)
    entry_free(&t->entries[i]);
  t->n = 0;
  t->next = 0;
  t->series = 0;
  t->name_bytes = 0;
}

/* 32-bit FNV-1a over the three strings, each with its terminator. */
static uint32_t key_hash(const char *provider, const char *name,
                         const char *tags) {
  uint32_t h = 2166136261u;
  const char *parts[3] = {provider, name, tags};
  for (int k = 0; k < 3; k++) {
    const unsigned char *p = (const unsigned char *)parts[k];
    do
      h = (h ^ *p) * 16777619u;
    while (*p++);
  }
  return h;
}

static struct counters_entry *table_find(struct counters_table *t,
                                         const struct counters_sample *s,
                                         uint32_t h) {
  size_t i = t->next < t->n ? t->next : 0;
  for (size_t k = 0; k < t->n; k++) {
    struct counters_entry *e = &t->entries[i];
    if (e->hash == h && e->kind == s->kind && strcmp(e->name, s->name) == 0 &&
        strcmp(e->provider, s->provider) == 0 && strcmp(e->tags, s->tags) == 0) {
      t->next = i + 1;
      return e;
    }
    if (++i == t->n)
      i = 0;
  }
  return NULL;
}

/* Longest provider, name and tags kept (bounded memory per entry); a
 * sample with longer ones counts as overflow. */
#define MAX_PROVIDER 255
#define MAX_NAME 255
#define MAX_TAGS 1023

static struct counters_entry *table_add(struct counters_table *t,
                                        const struct counters_sample *s,
                                        uint32_t h) {
  size_t lp = strlen(s->provider), ln = strlen(s->name), lt = strlen(s->tags);
  if (lp > MAX_PROVIDER || ln > MAX_NAME || lt > MAX_TAGS)
    return NULL;
  size_t series = s->kind == COUNTERS_HISTOGRAM ? COUNTERS_HISTOGRAM_SERIES : 1;
  size_t bytes = lp + ln + lt + 3;
  if (series > t->max_series - t->series ||
      bytes > t->max_name_bytes - t->name_bytes) {
    t->refused++;
    return NULL;
  }
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap + t->cap / 2 : 16;
    if (cap > t->max_series)
      cap = t->max_series;
    struct counters_entry *ne = realloc(t->entries, cap * sizeof(*ne));
    if (ne == NULL)
      return NULL;
    t->entries = ne;
    t->cap = cap;
  }
  char *str = malloc(bytes);
  struct counters_histogram *hist = NULL;
  if (str == NULL || (s->kind == COUNTERS_HISTOGRAM &&
                      (hist = calloc(1, sizeof(*hist))) == NULL)) {
    free(str);
    return NULL;
  }
  memcpy(str, s->provider, lp + 1);
  memcpy(str + lp + 1, s->name, ln + 1);
  memcpy(str + lp + 1 + ln + 1, s->tags, lt + 1);
  struct counters_entry *e = &t->entries[t->n++];
  t->next = t->n;
  t->series += series;
  t->name_bytes += bytes;
  *e = (struct counters_entry){.provider = str,
                               .name = str + lp + 1,
                               .tags = str + lp + 1 + ln + 1,
                               .hash = h,
                               .kind = s->kind,
                               .hist = hist};
  /* the units of the first sample, for good (see above) */
  size_t lu = strnlen(s->units, sizeof(e->units) - 1);
  lu = wire_utf8_cut(s->units, lu);
  memcpy(e->units, s->units, lu);
  e->units[lu] = '\0';
  return e;
}

struct counters_entry *counters_table_update(struct counters_table *t,
                                             const struct counters_sample *s,
                                             int64_t time_ms) {
  uint32_t h = key_hash(s->provider, s->name, s->tags);
  struct counters_entry *e = table_find(t, s, h);
  if (e == NULL && (e = table_add(t, s, h)) == NULL) {
    t->overflow++;
    return NULL;
  }
  e->value = s->value;
  if (s->kind == COUNTERS_SUM || s->kind == COUNTERS_RATE) {
    if (!isnan(s->value) && s->value >= 0)
      e->total += s->value;
  }
  if (s->kind == COUNTERS_HISTOGRAM) {
    struct counters_histogram *hg = e->hist;
    uint32_t nq = s->nquantiles <= COUNTERS_MAX_QUANTILES
                      ? s->nquantiles
                      : COUNTERS_MAX_QUANTILES;
    hg->nquantiles = nq;
    memcpy(hg->quantile, s->quantile, nq * sizeof(hg->quantile[0]));
    memcpy(hg->quantile_value, s->quantile_value,
           nq * sizeof(hg->quantile_value[0]));
    hg->count = s->count;
    hg->sum = s->sum;
    if (!isnan(s->count) && s->count >= 0)
      e->total += s->count;
  }
  e->time_ms = time_ms;
  e->updates++;
  return e;
}

size_t counters_table_worst_bytes(size_t max_series) {
  if (max_series == 0)
    max_series = COUNTERS_DEFAULT_MAX_SERIES;
  if (max_series > COUNTERS_MAX_MAX_SERIES)
    max_series = COUNTERS_MAX_MAX_SERIES;
  /* entries (one series each at most), their names, a type instance each
   * (naming's, at most 128 bytes), a histogram state per
   * COUNTERS_HISTOGRAM_SERIES series, and malloc's 16 bytes a block */
  return max_series * (sizeof(struct counters_entry) + 128 + 2 * 16) +
         max_series * COUNTERS_NAME_BYTES + NAME_BYTES_MIN +
         max_series / COUNTERS_HISTOGRAM_SERIES *
             (sizeof(struct counters_histogram) + 16);
}
