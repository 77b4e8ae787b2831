/**
 * collectd-dotnet - plugin/counters.c
 *
 * EventCounters and System.Diagnostics.Metrics payloads to samples: the
 * spec, written once. The fast decoder (counters_decoder.c) fills the same
 * slots by a plan and comes here for the sample.
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
#include "counters_slots.h"
#include "wire.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 8

/* The field name of each slot, in enum counters_slot's order (a field
 * list is mapped to slots by name, first occurrence wins). */
static const char *const slot_names[NSLOTS] = {
    "Name",        "DisplayName", "DisplayUnits",
    "CounterType", "Increment",   "Mean",
    "Min",         "Max",         "StandardDeviation",
    "Count",       "IntervalSec", "Series",
    "sessionId",   "meterName",   "instrumentName",
    "unit",        "tags",        "rate",
    "value",       "lastValue",   "quantiles",
    "count",       "sum"};

uint8_t counters_slot_by_name(const char *name) {
  for (int i = 0; i < NSLOTS; i++)
    if (strcmp(slot_names[i], name) == 0)
      return (uint8_t)i;
  return S_NONE;
}

/* UTF-8 copy of a string into the scratch, made printable (names, units
 * and tags reach type instances, logs and terminals); "" when it does not
 * fit. */
static const char *to_scratch(struct counters_slots *f, const uint8_t *s,
                              size_t units) {
  size_t room = f->scratch_cap - f->scratch_used;
  char *dst = f->scratch + f->scratch_used;
  long l = room > 0 ? wire_utf16_to_utf8(s, units, dst, room) : -1;
  if (l < 0)
    return "";
  f->scratch_used += wire_utf8_printable(dst) + 1;
  return dst;
}

/* ---- the walk: a payload by its metadata ----
 *
 * It puts the leaves either all into out[] (strings converted;
 * counters_fields) or those that have a slot into slots (slot_of[field
 * index], or by name when there is no map). */

struct walk {
  const struct nettrace_meta *meta;
  struct wire_cursor c;
  struct counters_field *out;
  size_t max, n;
  const uint8_t *slot_of;
  struct counters_slots *slots;  /* NULL: into out[] */
  struct counters_slots strings; /* counters_fields: its scratch */
};

/* The slot of leaf fields[i] if it is the first leaf of its name. */
static struct counters_slot_value *leaf_slot(struct walk *w, uint32_t i) {
  uint8_t k = w->slot_of ? w->slot_of[i]
                         : counters_slot_by_name(w->meta->fields[i].name);
  if (k == S_NONE || (w->slots->found & 1u << k))
    return NULL;
  w->slots->found |= 1u << k;
  return &w->slots->v[k];
}

static void put_num(struct walk *w, uint32_t i, double num) {
  if (w->slots != NULL) {
    struct counters_slot_value *v = leaf_slot(w, i);
    if (v != NULL)
      *v = (struct counters_slot_value){.num = num};
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
    struct counters_slot_value *v = leaf_slot(w, i);
    if (v != NULL)
      *v = (struct counters_slot_value){
          .utf16 = s, .units = (uint32_t)units, .is_string = 1};
    return;
  }
  if (w->n < w->max)
    w->out[w->n] =
        (struct counters_field){.name = w->meta->fields[i].name,
                                .is_string = 1,
                                .str = to_scratch(&w->strings, s, units)};
  w->n++;
}

/* Reads the value of a leaf fields[i] of layout l; emit: record it. */
static int walk_leaf(struct walk *w, uint32_t i, struct nettrace_layout l,
                     int emit) {
  const uint8_t *p = w->c.p;
  size_t units;
  switch (l.kind) {
  case NETTRACE_LAYOUT_STRING:
    if (wire_utf16z(&w->c, &p, &units) != 0)
      return -EBADMSG;
    if (emit)
      put_string(w, i, p, units);
    return 0;
  case NETTRACE_LAYOUT_OPAQUE:
    return wire_skip(&w->c, l.size) == 0 ? 0 : -EBADMSG;
  case NETTRACE_LAYOUT_INT:
  case NETTRACE_LAYOUT_UINT:
  case NETTRACE_LAYOUT_FLOAT:
    if (wire_skip(&w->c, l.size) != 0)
      return -EBADMSG;
    if (emit)
      put_num(w, i, counters_leaf_num(l.kind, l.size, p));
    return 0;
  default:
    return -ENOTSUP;
  }
}

static int walk_field(struct walk *w, uint32_t i, int depth, int emit);

/* Reads n sibling fields from fields[first] on. */
static int walk_siblings(struct walk *w, uint32_t first, uint32_t n, int depth,
                         int emit) {
  for (uint32_t k = 0, j = first; k < n;
       k++, j += 1 + w->meta->fields[j].span) {
    if (j >= w->meta->nfields_total)
      return -EBADMSG;
    int r = walk_field(w, j, depth, emit);
    if (r < 0)
      return r;
  }
  return 0;
}

/* Reads an ARRAY fields[i]: its count, then its elements (checked, not
 * recorded). */
static int walk_array(struct walk *w, uint32_t i, int depth) {
  uint16_t count;
  if (i + 1 >= w->meta->nfields_total || wire_u16(&w->c, &count) != 0)
    return -EBADMSG;
  for (uint32_t k = 0; k < count; k++) {
    size_t before = w->c.len;
    int r = walk_field(w, i + 1, depth + 1, 0);
    if (r < 0)
      return r;
    if (w->c.len == before)
      break; /* zero-size elements: nothing more to read */
  }
  return 0;
}

/* Reads the value of fields[i] from the cursor; emit: record leaves. */
static int walk_field(struct walk *w, uint32_t i, int depth, int emit) {
  const struct nettrace_field *f = &w->meta->fields[i];
  if (depth > MAX_DEPTH)
    return -EBADMSG;
  struct nettrace_layout l = nettrace_type_layout(f->type);
  if (l.kind == NETTRACE_LAYOUT_OBJECT)
    return walk_siblings(w, i + 1, f->nchildren, depth + 1, emit);
  if (l.kind == NETTRACE_LAYOUT_ARRAY)
    return walk_array(w, i, depth);
  return walk_leaf(w, i, l, emit);
}

static int walk_top(struct walk *w) {
  const struct nettrace_meta *meta = w->meta;
  if (!meta->fields_ok || meta->fields == NULL)
    return -ENOTSUP;
  return walk_siblings(w, 0, meta->nfields, 0, 1);
}

int counters_fields(const struct nettrace_meta *meta, const uint8_t *payload,
                    size_t len, struct counters_field *out, size_t max,
                    char *scratch, size_t scratch_cap) {
  struct walk w = {.meta = meta,
                   .c = wire_cursor(payload, len),
                   .out = out,
                   .max = out != NULL ? max : 0};
  counters_slots_init(&w.strings, scratch, scratch_cap);
  int r = walk_top(&w);
  if (r < 0)
    return r;
  return (int)(w.n < w.max ? w.n : w.max);
}

/* ---- slots to a sample ---- */

static const struct counters_slot_value *get(const struct counters_slots *f,
                                             enum counters_slot k) {
  return f->found & 1u << k ? &f->v[k] : NULL;
}

static const char *str_of(struct counters_slots *f, enum counters_slot k) {
  if (!(f->found & 1u << k) || !f->v[k].is_string)
    return "";
  struct counters_slot_value *v = &f->v[k];
  if (v->utf8 == NULL)
    v->utf8 = to_scratch(f, v->utf16, v->units);
  return v->utf8;
}

/* An ASCII copy of a short string slot (numbers): 0, or -1 when absent,
 * not a string, too long or not ASCII. */
static int ascii_of(const struct counters_slot_value *v, char *buf,
                    size_t cap) {
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
  static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
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
static double num_of(const struct counters_slots *f, enum counters_slot k) {
  const struct counters_slot_value *v = get(f, k);
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
static int str_starts(const struct counters_slots *f, enum counters_slot k,
                      const void *lit16, size_t bytes, int whole) {
  const struct counters_slot_value *v = get(f, k);
  size_t units = bytes / 2;
  return v != NULL && v->is_string && v->units >= units &&
         (!whole || v->units == units) && memcmp(v->utf16, lit16, bytes) == 0;
}

static const uint8_t SUM16[] = {'S', 0, 'u', 0, 'm', 0};
static const uint8_t INTERVAL16[] = {'I', 0, 'n', 0, 't', 0, 'e', 0, 'r', 0,
                                     'v', 0, 'a', 0, 'l', 0, '=', 0};

/* EventCounters' "Series": "Interval=<ms>" (digits; saturates). */
static uint32_t series_ms(const struct counters_slots *f) {
  if (!str_starts(f, S_SERIES, INTERVAL16, sizeof(INTERVAL16), 0))
    return 0;
  const struct counters_slot_value *v = &f->v[S_SERIES];
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
static int parse_quantiles16(const struct counters_slot_value *v,
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

/* Every field but the quantile arrays, which count only up to nquantiles
 * (clearing them for every event would cost more than the rest). */
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

static int decode_event_counters(struct counters_slots *f, const char *provider,
                                 struct counters_sample *s) {
  s->provider = provider;
  s->name = str_of(f, S_NAME);
  if (s->name[0] == 0)
    return -EBADMSG;
  const struct counters_slot_value *dn = get(f, S_DISPLAY_NAME);
  if (dn != NULL && dn->is_string) {
    s->display_name_utf16 = dn->utf16;
    s->display_name_units = dn->units;
  }
  s->units = str_of(f, S_DISPLAY_UNITS);
  double inc = num_of(f, S_INCREMENT);
  const struct counters_slot_value *type = get(f, S_COUNTER_TYPE);
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

enum counters_event_kind counters_event_kind(const struct nettrace_meta *m) {
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

static enum counters_kind metrics_kind(enum counters_event_kind kind) {
  return kind == EV_RATE     ? COUNTERS_RATE
         : kind == EV_UPDOWN ? COUNTERS_UPDOWN
         : kind == EV_GAUGE  ? COUNTERS_GAUGE
                             : COUNTERS_HISTOGRAM;
}

/* The numbers of a Metrics sample of s->kind, its strings set. */
static int metrics_values(struct counters_slots *f, struct counters_sample *s) {
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
    const struct counters_slot_value *q = get(f, S_QUANTILES);
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

static int decode_metrics(enum counters_event_kind kind,
                          struct counters_slots *f, struct counters_sample *s) {
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

int counters_slots_sample(struct counters_slots *f,
                          const struct nettrace_event *ev,
                          enum counters_event_kind kind,
                          struct counters_sample *s) {
  sample_reset(s, ev->timestamp);
  if (kind == EV_COUNTERS)
    return decode_event_counters(f, ev->meta->provider, s);
  return decode_metrics(kind, f, s);
}

int counters_decode_walk(const struct nettrace_event *ev,
                         enum counters_event_kind kind, const uint8_t *slot_of,
                         struct counters_sample *s, char *scratch,
                         size_t scratch_cap) {
  if (kind == EV_OTHER)
    return 0;
  struct counters_slots f;
  counters_slots_init(&f, scratch, scratch_cap);
  struct walk w = {.meta = ev->meta,
                   .c = wire_cursor(ev->payload, ev->payload_len),
                   .slot_of = slot_of,
                   .slots = &f};
  int r = walk_top(&w);
  if (r == -ENOTSUP)
    return 0;
  if (r < 0)
    return r;
  return counters_slots_sample(&f, ev, kind, s);
}

int counters_decode(const struct nettrace_event *ev, struct counters_sample *s,
                    char *scratch, size_t scratch_cap) {
  return counters_decode_walk(ev, counters_event_kind(ev->meta), NULL, s,
                              scratch, scratch_cap);
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

void counters_sample_label(const struct counters_sample *s, int q, char *out,
                           size_t cap) {
  const char *tags = s->tags;
  if (q >= 0)
    snprintf(out, cap, "%s[%s%sp%g]", s->name, tags, tags[0] ? "," : "",
             s->quantile[q] * 100);
  else if (tags[0])
    snprintf(out, cap, "%s[%s]", s->name, tags);
  else
    snprintf(out, cap, "%s", s->name);
}
