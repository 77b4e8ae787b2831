/**
 * collectd-dotnet - plugin/naming.c
 *
 * See naming.h for the rules.
 */
#include "naming.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#define SUFFIX_ROOM 8 /* ":p99.99", ":count" */

/* A '/' would split collectd's identifiers ("host/plugin-pi/type-ti": the
 * value cache, unixsock, thresholds) and make directories of csv and rrd
 * file names; tag values such as http.route=/orders carry them. */
static void replace_slashes(char *s) {
  for (; *s; s++)
    if (*s == '/')
      *s = '_';
}

void naming_type_instance(const char *provider, const char *name,
                          const char *tags, const char *suffix, char *out,
                          size_t cap) {
  char full[1024];
  if (strcmp(provider, "System.Runtime") == 0 && (tags == NULL || !*tags) &&
      strchr(name, '.') == NULL)
    snprintf(full, sizeof(full), "%s", name);
  else
    snprintf(full, sizeof(full), "%s:%s", provider, name);
  size_t o = strlen(full);
  if (tags && *tags) {
    /* "k=v,k2=v2" sorted by key, each appended as ":k=v" */
    char copy[512];
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
  if (o + room < cap || cap < 10 + room + 1) {
    snprintf(out, cap, "%s%s%s", full, suffix ? ":" : "", suffix ? suffix : "");
    replace_slashes(out);
    return;
  }
  /* cut and fingerprint the name without the suffix: 9 bytes of
   * "~xxxxxxxx", then ":suffix" and the terminator */
  uint32_t h = fnv1a(full);
  size_t keep = cap - 10 - room;
  memcpy(out, full, keep);
  snprintf(out + keep, cap - keep, "~%08x%s%s", h, suffix ? ":" : "",
           suffix ? suffix : "");
  replace_slashes(out);
}

static int is_bytes(const char *u) { return !strcmp(u, "B") || !strcmp(u, "By"); }

static int64_t to_derive(double total) {
  if (!(total >= 0))
    return 0;
  if (total >= 9.2e18)
    return INT64_MAX;
  return (int64_t)floor(total);
}

/* The type instance of a counter without a suffix, into r: the entry's
 * kept copy, made at its first row. */
static void plain_type_instance(struct counters_entry *e, struct naming_row *r) {
  if (e->type_instance == NULL) {
    naming_type_instance(e->provider, e->name, e->tags, NULL, r->type_instance,
                         sizeof(r->type_instance));
    e->type_instance = strdup(r->type_instance); /* NULL: made again */
    return;
  }
  size_t n = strlen(e->type_instance); /* < NAMING_MAX: made to fit */
  memcpy(r->type_instance, e->type_instance, n + 1);
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
    r->derive = to_derive(e->total);
    r->type = is_bytes(e->units)         ? "total_bytes"
              : !strcmp(e->units, "ms") ? "total_time_in_ms"
                                        : "derive";
    return 1;
  case COUNTERS_HISTOGRAM:
    for (uint32_t i = 0; e->hist != NULL && i < e->hist->nquantiles && n < max;
         i++) {
      r = &rows[n++];
      memset(r, 0, sizeof(*r));
      char suffix[16];
      snprintf(suffix, sizeof(suffix), "p%g", e->hist->quantile[i] * 100);
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

int naming_due(struct counters_entry *e, int64_t ms, int64_t iv_ms) {
  int64_t iv = iv_ms < 4 ? 4 : iv_ms;
  if (e->published_ms != 0 &&
      (ms <= e->published_ms || ms < e->due_ms - iv / 4))
    return 0;
  if (e->published_ms == 0)
    e->due_ms = ms + iv;
  else
    e->due_ms = e->due_ms + iv > ms + iv / 4 ? e->due_ms + iv : ms + iv / 4;
  e->published_ms = ms;
  return 1;
}
