/**
 * collectd-dotnet - plugin/counters_table.c
 *
 * The latest values per target (see counters_table.h).
 */
#include "counters_table.h"
#include "wire.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A few dozen entries per target, each ~140 bytes plus its strings: a
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
  free(e->consumer);
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
        strcmp(e->provider, s->provider) == 0 &&
        strcmp(e->tags, s->tags) == 0) {
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
  /* entries (one series each at most), their names, a consumer state
   * each, a histogram state per COUNTERS_HISTOGRAM_SERIES series, and
   * malloc's 16 bytes a block */
  return max_series * (sizeof(struct counters_entry) + COUNTERS_CONSUMER_BYTES +
                       2 * 16) +
         max_series * COUNTERS_NAME_BYTES + NAME_BYTES_MIN +
         max_series / COUNTERS_HISTOGRAM_SERIES *
             (sizeof(struct counters_histogram) + 16);
}
