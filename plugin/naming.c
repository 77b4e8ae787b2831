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

void naming_type_instance(const char *provider, const char *name,
                          const char *tags, const char *suffix, char *out,
                          size_t cap) {
  char full[1024];
  size_t o;
  if (strcmp(provider, "System.Runtime") == 0 && (tags == NULL || !*tags) &&
      strchr(name, '.') == NULL)
    o = (size_t)snprintf(full, sizeof(full), "%s", name);
  else
    o = (size_t)snprintf(full, sizeof(full), "%s:%s", provider, name);
  if (tags && *tags && o < sizeof(full)) {
    /* "k=v,k2=v2" sorted by key, each appended as ":k=v" */
    char copy[512];
    const char *parts[32];
    size_t n = 0;
    snprintf(copy, sizeof(copy), "%s", tags);
    for (char *t = strtok(copy, ","); t && n < 32; t = strtok(NULL, ","))
      parts[n++] = t;
    qsort(parts, n, sizeof(parts[0]), tag_cmp);
    for (size_t i = 0; i < n && o < sizeof(full); i++)
      o += (size_t)snprintf(full + o, sizeof(full) - o, ":%s", parts[i]);
  }
  if (suffix && o < sizeof(full))
    o += (size_t)snprintf(full + o, sizeof(full) - o, ":%s", suffix);
  if (strlen(full) < cap) {
    snprintf(out, cap, "%s", full);
    return;
  }
  /* cut and fingerprint: 9 bytes of "~xxxxxxxx" and the terminator */
  uint32_t h = fnv1a(full);
  size_t keep = cap - 10;
  memcpy(out, full, keep);
  snprintf(out + keep, cap - keep, "~%08x", h);
}

static int is_bytes(const char *u) { return !strcmp(u, "B") || !strcmp(u, "By"); }

static int64_t to_derive(double total) {
  if (!(total >= 0))
    return 0;
  if (total >= 9.2e18)
    return INT64_MAX;
  return (int64_t)floor(total);
}

size_t naming_rows(const struct counters_entry *e, struct naming_row *rows,
                   size_t max) {
  size_t n = 0;
  if (max == 0)
    return 0;
  struct naming_row *r = &rows[0];
  memset(r, 0, sizeof(*r));
  switch (e->kind) {
  case COUNTERS_MEAN:
  case COUNTERS_UPDOWN:
  case COUNTERS_GAUGE:
    naming_type_instance(e->provider, e->name, e->tags, NULL, r->type_instance,
                         sizeof(r->type_instance));
    if (!strcmp(e->units, "MB")) {
      snprintf(r->type, sizeof(r->type), "bytes");
      r->gauge = e->value * 1e6;
    } else if (is_bytes(e->units)) {
      snprintf(r->type, sizeof(r->type), "bytes");
      r->gauge = e->value;
    } else if (!strcmp(e->units, "%")) {
      snprintf(r->type, sizeof(r->type), "percent");
      r->gauge = e->value;
    } else {
      snprintf(r->type, sizeof(r->type), "gauge");
      r->gauge = e->value;
    }
    return 1;
  case COUNTERS_SUM:
  case COUNTERS_RATE:
    naming_type_instance(e->provider, e->name, e->tags, NULL, r->type_instance,
                         sizeof(r->type_instance));
    r->is_derive = 1;
    r->derive = to_derive(e->total);
    snprintf(r->type, sizeof(r->type), "%s",
             is_bytes(e->units) ? "total_bytes"
             : !strcmp(e->units, "ms") ? "total_time_in_ms"
                                       : "derive");
    return 1;
  case COUNTERS_HISTOGRAM:
    for (uint32_t i = 0; i < e->nquantiles && n < max; i++) {
      r = &rows[n++];
      memset(r, 0, sizeof(*r));
      char suffix[16];
      snprintf(suffix, sizeof(suffix), "p%g", e->quantile[i] * 100);
      naming_type_instance(e->provider, e->name, e->tags, suffix,
                           r->type_instance, sizeof(r->type_instance));
      snprintf(r->type, sizeof(r->type), "%s", is_bytes(e->units) ? "bytes" : "gauge");
      r->gauge = e->quantile_value[i];
    }
    if (n < max) {
      r = &rows[n++];
      memset(r, 0, sizeof(*r));
      naming_type_instance(e->provider, e->name, e->tags, "count",
                           r->type_instance, sizeof(r->type_instance));
      snprintf(r->type, sizeof(r->type), "derive");
      r->is_derive = 1;
      r->derive = to_derive(e->total);
    }
    return n;
  }
  return 0;
}
