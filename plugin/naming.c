/**
 * collectd-dotnet - plugin/naming.c
 *
 * See naming.h for the rules. Its state per counter (struct naming_state)
 * lives in the table entry's consumer block.
 */
#include "naming.h"
#include "wire.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(struct naming_state) + NAMING_MAX <=
                   COUNTERS_CONSUMER_BYTES,
               "a naming_state fits what counters_table_worst_bytes counts");

/* FNV-1a, 32 bits: a stable short fingerprint of an over-long name. */
static uint32_t fnv1a(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) {
    h ^= (uint8_t)*s;
    h *= 16777619u;
  }
  return h;
}

static int tag_cmp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

#define SUFFIX_ROOM 8 /* ":count", ":p50" */

/* A '/' would split collectd's identifiers ("host/plugin-pi/type-ti": the
 * value cache, unixsock, thresholds) and make directories of csv and rrd
 * file names; tag values such as http.route=/orders carry them. A control
 * character or an escape sequence would end a line of unixsock's LISTVAL
 * or of NotificationExec's input, or drive a terminal that shows a log:
 * none comes through (wire_utf8_printable). Returns the length. */
static size_t clean_name(char *s) {
  size_t n = wire_utf8_printable(s);
  for (char *p = s; *p; p++)
    if (*p == '/')
      *p = '_';
  return n;
}

/* s[0..n) into out[cap], cut on a UTF-8 boundary to fit. */
static void copy_cut(char *out, size_t cap, const char *s, size_t n) {
  if (n >= cap)
    n = wire_utf8_cut(s, cap - 1);
  memcpy(out, s, n);
  out[n] = 0;
}

void naming_type_instance(const char *provider, const char *name,
                          const char *tags, const char *suffix, char *out,
                          size_t cap) {
  char full[2048]; /* the longest key a table keeps (255 + 255 + 1023) */
  if (cap == 0)
    return;
  if (strcmp(provider, "System.Runtime") == 0 && (tags == NULL || !*tags) &&
      strchr(name, '.') == NULL)
    snprintf(full, sizeof(full), "%s", name);
  else
    snprintf(full, sizeof(full), "%s:%s", provider, name);
  size_t o = strlen(full);
  if (tags && *tags) {
    /* "k=v,k2=v2" sorted by key, each appended as ":k=v" */
    char copy[1024];
    const char *parts[32];
    size_t n = 0;
    snprintf(copy, sizeof(copy), "%s", tags);
    for (char *t = strtok(copy, ","); t && n < 32; t = strtok(NULL, ","))
      parts[n++] = t;
    qsort(parts, n, sizeof(parts[0]), tag_cmp);
    for (size_t i = 0; i < n && o < sizeof(full); i++) {
      snprintf(full + o, sizeof(full) - o, ":%s", parts[i]);
      o += strlen(full + o);
    }
  }
  /* The suffix (":p50", ":count") stays whole even when the name is cut:
   * it is what tells the rows of one histogram apart. Whether and where to
   * cut depends on the name alone (room for any suffix of up to 7 bytes),
   * so that all rows of a histogram share one cut name and hash. */
  size_t slen = suffix ? strlen(suffix) + 1 : 0;
  size_t room = suffix ? (slen > SUFFIX_ROOM ? slen : SUFFIX_ROOM) : 0;
  uint32_t h = fnv1a(full); /* of the name as it came */
  o = clean_name(full);
  if (o + room < cap || cap < 10 + room + 1) {
    char whole[sizeof(full) + 32];
    int n = snprintf(whole, sizeof(whole), "%s%s%s", full, suffix ? ":" : "",
                     suffix ? suffix : "");
    copy_cut(out, cap, whole, n < 0 ? 0 : (size_t)n);
    clean_name(out);
    return;
  }
  /* cut (on a character boundary) and fingerprint the name without the
   * suffix: 9 bytes of "~xxxxxxxx", then ":suffix" and the terminator */
  size_t keep = wire_utf8_cut(full, cap - 10 - room);
  memcpy(out, full, keep);
  snprintf(out + keep, cap - keep, "~%08x%s%s", h, suffix ? ":" : "",
           suffix ? suffix : "");
  clean_name(out + keep); /* the suffix: the caller's */
}

const char *naming_quantile_suffix(double q) {
  return q == 0.5 ? "p50" : q == 0.95 ? "p95" : q == 0.99 ? "p99" : NULL;
}

static int is_bytes(const char *u) {
  return !strcmp(u, "B") || !strcmp(u, "By");
}

static int64_t to_derive(double total) {
  if (!(total >= 0))
    return 0;
  if (total >= 9.2e18)
    return INT64_MAX;
  return (int64_t)floor(total);
}

/* e's naming_state, made (zeroed) when it has none; NULL without memory. */
static struct naming_state *state_of(struct counters_entry *e) {
  if (e->consumer == NULL)
    e->consumer = calloc(1, sizeof(struct naming_state));
  return e->consumer;
}

/* The type instance of a counter without a suffix, into r: the kept copy,
 * made at its first row. */
static void plain_type_instance(struct counters_entry *e,
                                struct naming_row *r) {
  struct naming_state *st = state_of(e);
  if (st != NULL && st->has_type_instance) {
    size_t n = strlen(st->type_instance); /* < NAMING_MAX: made to fit */
    memcpy(r->type_instance, st->type_instance, n + 1);
    return;
  }
  naming_type_instance(e->provider, e->name, e->tags, NULL, r->type_instance,
                       sizeof(r->type_instance));
  size_t n = strlen(r->type_instance);
  if (st == NULL || (st = realloc(st, sizeof(*st) + n + 1)) == NULL)
    return; /* made again next time */
  memcpy(st->type_instance, r->type_instance, n + 1);
  st->has_type_instance = 1;
  e->consumer = st;
}

size_t naming_rows(struct counters_entry *e, struct naming_row *rows,
                   size_t max) {
  size_t n = 0;
  if (max == 0)
    return 0;
  struct naming_row *r = &rows[0];
  r->is_derive = 0;
  r->gauge = 0;
  r->derive = 0;
  switch (e->kind) {
  case COUNTERS_MEAN:
  case COUNTERS_UPDOWN:
  case COUNTERS_GAUGE:
    plain_type_instance(e, r);
    r->gauge = e->value;
    if (!strcmp(e->units, "MB")) {
      r->type = "bytes";
      r->gauge = e->value * 1e6;
    } else if (is_bytes(e->units)) {
      r->type = "bytes";
    } else if (!strcmp(e->units, "%")) {
      r->type = "percent";
    } else {
      r->type = "gauge";
    }
    return 1;
  case COUNTERS_SUM:
  case COUNTERS_RATE:
    plain_type_instance(e, r);
    r->is_derive = 1;
    if (is_bytes(e->units)) {
      r->type = "total_bytes";
      r->derive = to_derive(e->total);
    } else if (!strcmp(e->units, "ms")) {
      r->type = "total_time_in_ms";
      r->derive = to_derive(e->total);
    } else if (!strcmp(e->units, "s")) {
      /* a DERIVE is whole: seconds (the meters' CPU and GC pause times)
       * would lose all below a second, their rate 0 or 1; in ms they keep
       * it */
      r->type = "total_time_in_ms";
      r->derive = to_derive(e->total * 1000.0);
    } else {
      r->type = "derive";
      r->derive = to_derive(e->total);
    }
    return 1;
  case COUNTERS_HISTOGRAM:
    for (uint32_t i = 0; e->hist != NULL && i < e->hist->nquantiles &&
                         i < COUNTERS_MAX_QUANTILES && n < max;
         i++) {
      const char *suffix = naming_quantile_suffix(e->hist->quantile[i]);
      if (suffix == NULL)
        continue; /* not the runtime's (the decoder drops them) */
      r = &rows[n++];
      memset(r, 0, sizeof(*r));
      naming_type_instance(e->provider, e->name, e->tags, suffix,
                           r->type_instance, sizeof(r->type_instance));
      r->type = is_bytes(e->units) ? "bytes" : "gauge";
      r->gauge = e->hist->quantile_value[i];
    }
    if (n < max) {
      r = &rows[n++];
      memset(r, 0, sizeof(*r));
      naming_type_instance(e->provider, e->name, e->tags, "count",
                           r->type_instance, sizeof(r->type_instance));
      r->type = "derive";
      r->is_derive = 1;
      r->derive = to_derive(e->total);
    }
    return n;
  }
  return 0;
}

int naming_due(struct counters_entry *e, int64_t now_ms, int64_t iv_ms) {
  int64_t iv = iv_ms < 4 ? 4 : iv_ms;
  struct naming_state *st = state_of(e);
  if (st == NULL || (st->due_known && now_ms < st->due_ms - iv / 4))
    return 0;
  if (!st->due_known)
    st->due_ms = now_ms + iv;
  else
    st->due_ms =
        st->due_ms + iv > now_ms + iv / 4 ? st->due_ms + iv : now_ms + iv / 4;
  st->due_known = 1;
  return 1;
}

int64_t naming_stamp(struct counters_entry *e, int64_t sample_ms,
                     int64_t now_ms, int64_t iv_ms) {
  int64_t iv = iv_ms < 4 ? 4 : iv_ms;
  struct naming_state *st = state_of(e);
  int64_t last = st != NULL ? st->published_ms : 0;
  int64_t t = sample_ms;
  if (!(t > last && t <= now_ms + NAMING_STAMP_AHEAD_MS &&
        t >= now_ms - 2 * iv - NAMING_STAMP_BEHIND_MS))
    t = now_ms > last ? now_ms : last + 1;
  if (st != NULL)
    st->published_ms = t;
  return t;
}
