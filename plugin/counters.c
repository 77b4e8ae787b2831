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
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 8
#define MAX_FIELDS 48

struct walk {
  const struct nettrace_meta *meta;
  struct wire_cursor c;
  struct counters_field *out;
  size_t max, n;
  char *scratch;
  size_t scratch_cap, scratch_used;
};

static int put_leaf(struct walk *w, const char *name, int is_string, double num,
                    const char *str) {
  if (w->out != NULL && w->n < w->max)
    w->out[w->n] = (struct counters_field){
        .name = name, .is_string = is_string, .num = num, .str = str};
  w->n++;
  return 0;
}

/* Reads the value of fields[i] from the cursor; emit: write leaves. */
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
    if (!emit)
      return 0;
    const char *str = "";
    size_t room = w->scratch_cap - w->scratch_used;
    char *dst = w->scratch + w->scratch_used;
    long l = room > 0 ? wire_utf16_to_utf8(s, units, dst, room) : -1;
    if (l >= 0) {
      str = dst;
      w->scratch_used += (size_t)l + 1;
    }
    return put_leaf(w, f->name, 1, 0, str);
  }
  case NETTRACE_TYPE_BOOLEAN:
  case NETTRACE_TYPE_INT32:
    if (wire_u32(&w->c, &u32) != 0)
      return -EBADMSG;
    return emit ? put_leaf(w, f->name, 0, (double)(int32_t)u32, "") : 0;
  case NETTRACE_TYPE_UINT32:
    if (wire_u32(&w->c, &u32) != 0)
      return -EBADMSG;
    return emit ? put_leaf(w, f->name, 0, (double)u32, "") : 0;
  case NETTRACE_TYPE_SINGLE:
    if (wire_f32(&w->c, &fl) != 0)
      return -EBADMSG;
    return emit ? put_leaf(w, f->name, 0, (double)fl, "") : 0;
  case NETTRACE_TYPE_DOUBLE:
    if (wire_f64(&w->c, &d) != 0)
      return -EBADMSG;
    return emit ? put_leaf(w, f->name, 0, d, "") : 0;
  case NETTRACE_TYPE_INT64:
  case NETTRACE_TYPE_DATETIME:
    if (wire_u64(&w->c, &u64) != 0)
      return -EBADMSG;
    return emit ? put_leaf(w, f->name, 0, (double)(int64_t)u64, "") : 0;
  case NETTRACE_TYPE_UINT64:
    if (wire_u64(&w->c, &u64) != 0)
      return -EBADMSG;
    return emit ? put_leaf(w, f->name, 0, (double)u64, "") : 0;
  case NETTRACE_TYPE_INT16:
  case NETTRACE_TYPE_UINT16:
  case NETTRACE_TYPE_CHAR:
    if (wire_u16(&w->c, &u16) != 0)
      return -EBADMSG;
    return emit ? put_leaf(w, f->name, 0,
                           f->type == NETTRACE_TYPE_INT16 ? (double)(int16_t)u16
                                                          : (double)u16,
                           "")
                : 0;
  case NETTRACE_TYPE_SBYTE:
  case NETTRACE_TYPE_BYTE:
    if (wire_u8(&w->c, &b8) != 0)
      return -EBADMSG;
    return emit ? put_leaf(w, f->name, 0,
                           f->type == NETTRACE_TYPE_SBYTE ? (double)(int8_t)b8
                                                          : (double)b8,
                           "")
                : 0;
  case NETTRACE_TYPE_DECIMAL:
  case NETTRACE_TYPE_GUID:
    return wire_skip(&w->c, 16) == 0 ? 0 : -EBADMSG;
  default:
    return -ENOTSUP;
  }
}

int counters_fields(const struct nettrace_meta *meta, const uint8_t *payload,
                    size_t len, struct counters_field *out, size_t max,
                    char *scratch, size_t scratch_cap) {
  if (!meta->fields_ok || meta->fields == NULL)
    return -ENOTSUP;
  struct walk w = {.meta = meta,
                   .c = wire_cursor(payload, len),
                   .out = out,
                   .max = max,
                   .scratch = scratch,
                   .scratch_cap = scratch_cap};
  uint32_t i = 0;
  for (uint32_t k = 0; k < meta->nfields; k++) {
    if (i >= meta->nfields_total)
      return -EBADMSG;
    int r = walk_field(&w, i, 0, 1);
    if (r < 0)
      return r;
    i += 1 + meta->fields[i].span;
  }
  return (int)(w.n < max ? w.n : max);
}

static const struct counters_field *find(const struct counters_field *f, int n,
                                         const char *name) {
  for (int i = 0; i < n; i++)
    if (strcmp(f[i].name, name) == 0)
      return &f[i];
  return NULL;
}

static const char *str_of(const struct counters_field *f, int n,
                          const char *name) {
  const struct counters_field *x = find(f, n, name);
  return x && x->is_string ? x->str : "";
}

/* A number from a numeric field, or from a string field holding one (the
 * Metrics provider formats numbers as text). NAN when absent or empty. */
static double num_of(const struct counters_field *f, int n, const char *name) {
  const struct counters_field *x = find(f, n, name);
  if (x == NULL)
    return NAN;
  if (!x->is_string)
    return x->num;
  if (x->str[0] == 0)
    return NAN;
  char *end;
  double v = strtod(x->str, &end);
  return *end == 0 ? v : NAN;
}

/* "0.5=1.5;0.95=2;0.99=3" */
static void parse_quantiles(const char *s, struct counters_sample *out) {
  out->nquantiles = 0;
  while (*s && out->nquantiles < COUNTERS_MAX_QUANTILES) {
    char *end;
    double q = strtod(s, &end);
    if (end == s || *end != '=')
      return;
    s = end + 1;
    double v = strtod(s, &end);
    if (end == s)
      return;
    out->quantile[out->nquantiles] = q;
    out->quantile_value[out->nquantiles] = v;
    out->nquantiles++;
    s = end;
    if (*s == ';')
      s++;
    else
      return;
  }
}

static void sample_reset(struct counters_sample *s, uint64_t ts) {
  *s = (struct counters_sample){.provider = "",
                                .name = "",
                                .display_name = "",
                                .units = "",
                                .tags = "",
                                .session = "",
                                .total = NAN,
                                .min = NAN,
                                .max = NAN,
                                .stddev = NAN,
                                .count = NAN,
                                .sum = NAN,
                                .timestamp = ts};
}

static int decode_event_counters(const struct counters_field *f, int n,
                                 const char *provider,
                                 struct counters_sample *s) {
  s->provider = provider;
  s->name = str_of(f, n, "Name");
  if (s->name[0] == 0)
    return -EBADMSG;
  s->display_name = str_of(f, n, "DisplayName");
  s->units = str_of(f, n, "DisplayUnits");
  const char *type = str_of(f, n, "CounterType");
  double inc = num_of(f, n, "Increment");
  if (strcmp(type, "Sum") == 0 || (type[0] == 0 && !isnan(inc))) {
    s->kind = COUNTERS_SUM;
    s->value = inc;
  } else {
    s->kind = COUNTERS_MEAN;
    s->value = num_of(f, n, "Mean");
    s->min = num_of(f, n, "Min");
    s->max = num_of(f, n, "Max");
    s->stddev = num_of(f, n, "StandardDeviation");
    s->count = num_of(f, n, "Count");
  }
  if (isnan(s->value))
    return -EBADMSG;
  double iv = num_of(f, n, "IntervalSec");
  s->interval_sec = isnan(iv) ? 0 : iv;
  const char *series = str_of(f, n, "Series");
  if (strncmp(series, "Interval=", 9) == 0) {
    unsigned long ms = strtoul(series + 9, NULL, 10);
    s->series_ms = ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
  }
  return 1;
}

static int decode_metrics(const char *event, const struct counters_field *f,
                          int n, struct counters_sample *s) {
  if (strcmp(event, "CounterRateValuePublished") == 0)
    s->kind = COUNTERS_RATE;
  else if (strcmp(event, "UpDownCounterRateValuePublished") == 0)
    s->kind = COUNTERS_UPDOWN;
  else if (strcmp(event, "GaugeValuePublished") == 0)
    s->kind = COUNTERS_GAUGE;
  else if (strcmp(event, "HistogramValuePublished") == 0)
    s->kind = COUNTERS_HISTOGRAM;
  else
    return 0; /* instrument publication, errors, limits: not samples */
  s->session = str_of(f, n, "sessionId");
  s->provider = str_of(f, n, "meterName");
  s->name = str_of(f, n, "instrumentName");
  s->units = str_of(f, n, "unit");
  s->tags = str_of(f, n, "tags");
  if (s->provider[0] == 0 || s->name[0] == 0)
    return -EBADMSG;
  switch (s->kind) {
  case COUNTERS_RATE:
    s->value = num_of(f, n, "rate");
    s->total = num_of(f, n, "value");
    break;
  case COUNTERS_UPDOWN:
    /* "value" is the level; "rate" its change over the interval. */
    s->total = num_of(f, n, "rate");
    s->value = num_of(f, n, "value");
    if (isnan(s->value))
      s->value = s->total;
    break;
  case COUNTERS_GAUGE:
    s->value = num_of(f, n, "lastValue");
    break;
  case COUNTERS_HISTOGRAM:
    parse_quantiles(str_of(f, n, "quantiles"), s);
    s->count = num_of(f, n, "count");
    s->sum = num_of(f, n, "sum");
    s->value = s->nquantiles > 0 ? s->quantile_value[0] : NAN;
    return 1; /* an empty histogram is still a sample */
  default:
    break;
  }
  /* Observable instruments that threw, or rates not yet known, come as "". */
  return isnan(s->value) ? 0 : 1;
}

int counters_decode(const struct nettrace_event *ev, struct counters_sample *s,
                    char *scratch, size_t scratch_cap) {
  const struct nettrace_meta *m = ev->meta;
  int is_ec = strcmp(m->event_name, "EventCounters") == 0;
  int is_metrics = !is_ec && strcmp(m->provider, "System.Diagnostics.Metrics") == 0;
  if (!is_ec && !is_metrics)
    return 0;
  struct counters_field f[MAX_FIELDS];
  int n = counters_fields(m, ev->payload, ev->payload_len, f, MAX_FIELDS,
                          scratch, scratch_cap);
  if (n == -ENOTSUP)
    return 0;
  if (n < 0)
    return n;
  sample_reset(s, ev->timestamp);
  if (is_ec)
    return decode_event_counters(f, n, m->provider, s);
  return decode_metrics(m->event_name, f, n, s);
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

/* ---- table ---- */

void counters_table_init(struct counters_table *t, size_t max) {
  *t = (struct counters_table){.max = max ? max : 1024};
}

void counters_table_fini(struct counters_table *t) {
  free(t->entries);
  *t = (struct counters_table){.max = t->max};
}

void counters_table_clear(struct counters_table *t) { t->n = 0; }

static int make_key(char *key, size_t cap, const struct counters_sample *s) {
  int l = snprintf(key, cap, "%s\x1f%s\x1f%s", s->provider, s->name, s->tags);
  return l < 0 || (size_t)l >= cap ? -1 : 0;
}

struct counters_entry *counters_table_update(struct counters_table *t,
                                             const struct counters_sample *s,
                                             int64_t time_ms) {
  char key[sizeof(((struct counters_entry *)0)->key)];
  if (make_key(key, sizeof(key), s) != 0) {
    t->overflow++;
    return NULL;
  }
  struct counters_entry *e = NULL;
  for (size_t i = 0; i < t->n; i++) {
    if (strcmp(t->entries[i].key, key) == 0) {
      e = &t->entries[i];
      break;
    }
  }
  if (e == NULL) {
    if (t->n >= t->max) {
      t->overflow++;
      return NULL;
    }
    if (t->n == t->cap) {
      size_t cap = t->cap ? t->cap * 2 : 32;
      if (cap > t->max)
        cap = t->max;
      struct counters_entry *ne = realloc(t->entries, cap * sizeof(*ne));
      if (ne == NULL) {
        t->overflow++;
        return NULL;
      }
      t->entries = ne;
      t->cap = cap;
    }
    e = &t->entries[t->n++];
    memset(e, 0, sizeof(*e));
    memcpy(e->key, key, sizeof(key));
    snprintf(e->provider, sizeof(e->provider), "%s", s->provider);
    snprintf(e->name, sizeof(e->name), "%s", s->name);
    snprintf(e->tags, sizeof(e->tags), "%s", s->tags);
    e->kind = s->kind;
  }
  snprintf(e->units, sizeof(e->units), "%s", s->units);
  e->kind = s->kind;
  e->value = s->value;
  if (s->kind == COUNTERS_SUM || s->kind == COUNTERS_RATE) {
    if (!isnan(s->value) && s->value >= 0)
      e->total += s->value;
  }
  if (s->kind == COUNTERS_HISTOGRAM) {
    e->nquantiles = s->nquantiles;
    memcpy(e->quantile, s->quantile, sizeof(e->quantile));
    memcpy(e->quantile_value, s->quantile_value, sizeof(e->quantile_value));
    e->count = s->count;
    e->sum = s->sum;
    if (!isnan(s->count) && s->count >= 0)
      e->total += s->count;
  }
  e->time_ms = time_ms;
  e->updates++;
  return e;
}
