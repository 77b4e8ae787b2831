/**
 * collectd-dotnet - tests/fuzz/fuzz_counters.c
 *
 * libFuzzer target: counters_fields, counters_decode and a
 * counters_decoder (which must agree with counters_decode) on event metadata
 * built from the input (types, names, nesting; see fuzz_counters.h) and a
 * payload. The metadata is built as the reader builds it (pre-order, spans
 * and child counts consistent), so what is fuzzed is the payload decoder's
 * contract, not inputs the reader can never produce.
 */
#include "fuzz_counters.h"
#include "../../plugin/counters.h"
#include "../../plugin/counters_decoder.h"
#include "../../plugin/counters_table.h"
#include "../../plugin/nettrace.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct builder {
  const uint8_t *p;
  size_t len;
  struct nettrace_field f[FUZZ_MAX_FIELDS];
  uint32_t n;
};

static int take(struct builder *b, uint8_t *v) {
  if (b->len == 0)
    return -1;
  *v = *b->p++;
  b->len--;
  return 0;
}

/* One field (and its subtree) at b->f[b->n]; name given for array
 * elements, read from the input otherwise. */
static int build_field(struct builder *b, int depth, const char *name) {
  uint8_t type, nb, nchildren;
  if (depth > FUZZ_MAX_NEST || b->n >= FUZZ_MAX_FIELDS || take(b, &type) != 0)
    return -1;
  if (name == NULL) {
    if (take(b, &nb) != 0)
      return -1;
    name = nb < FUZZ_NNAMES ? fuzz_names[nb] : "x";
  }
  uint32_t me = b->n++;
  b->f[me] = (struct nettrace_field){.name = name, .type = type};
  if (type == NETTRACE_TYPE_ARRAY) {
    b->f[me].nchildren = 1;
    if (build_field(b, depth + 1, name) != 0)
      return -1;
  } else if (type == NETTRACE_TYPE_OBJECT) {
    if (take(b, &nchildren) != 0)
      return -1;
    b->f[me].nchildren = nchildren % 16;
    for (uint32_t k = 0; k < b->f[me].nchildren; k++)
      if (build_field(b, depth + 1, NULL) != 0)
        return -1;
  }
  b->f[me].span = b->n - me - 1;
  return 0;
}

static int same_num(double a, double b) {
  return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof(a)) == 0;
}

static int same_sample(const struct counters_sample *a,
                       const struct counters_sample *b) {
  int same = a->kind == b->kind && strcmp(a->provider, b->provider) == 0 &&
             strcmp(a->name, b->name) == 0 &&
             strcmp(a->units, b->units) == 0 &&
             strcmp(a->tags, b->tags) == 0 &&
             strcmp(a->session, b->session) == 0 &&
             a->display_name_utf16 == b->display_name_utf16 &&
             a->display_name_units == b->display_name_units &&
             same_num(a->value, b->value) && same_num(a->total, b->total) &&
             same_num(a->min, b->min) && same_num(a->max, b->max) &&
             same_num(a->stddev, b->stddev) &&
             same_num(a->count, b->count) && same_num(a->sum, b->sum) &&
             same_num(a->interval_sec, b->interval_sec) &&
             a->series_ms == b->series_ms && a->timestamp == b->timestamp &&
             a->nquantiles == b->nquantiles;
  for (uint32_t i = 0; same && i < a->nquantiles; i++)
    same = same_num(a->quantile[i], b->quantile[i]) &&
           same_num(a->quantile_value[i], b->quantile_value[i]);
  return same;
}

/* The decoder (a plan or slot map cached for this metadata) gives what
 * counters_decode gave (rc, and *s when 1), the first time and from its
 * cache. */
static void check_decoder(const struct nettrace_event *e, int rc,
                          const struct counters_sample *s,
                          size_t scratch_cap) {
  struct counters_decoder *d = counters_decoder_new();
  char *scratch2 = malloc(scratch_cap);
  for (int pass = 0; d != NULL && scratch2 != NULL && pass < 2; pass++) {
    struct counters_sample s2;
    if (counters_decoder_decode(d, e, &s2, scratch2, scratch_cap) != rc ||
        (rc == 1 && !same_sample(s, &s2)))
      __builtin_trap();
  }
  counters_decoder_free(d);
  free(scratch2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4)
    return 0;
  struct builder b = {.p = data + 4, .len = size - 4};
  size_t ev = data[0] % FUZZ_NEVENTS;
  size_t scratch_cap = data[1] ? data[1] : 4096;
  size_t max = data[2];
  uint32_t count = data[3] % (FUZZ_MAX_TOP + 1);
  for (uint32_t k = 0; k < count; k++)
    if (build_field(&b, 0, NULL) != 0)
      return 0;

  struct nettrace_meta meta = {
      .id = 1,
      .provider = fuzz_events[ev].provider,
      .event_name = fuzz_events[ev].event,
      .fields = b.f,
      .nfields_total = b.n,
      .nfields = count,
      .fields_ok = 1,
  };
  /* the payload in its own allocation, so ASan sees reads past its end */
  uint8_t *payload = malloc(b.len ? b.len : 1);
  if (payload == NULL)
    return 0;
  memcpy(payload, b.p, b.len);
  char *scratch = malloc(scratch_cap);
  struct counters_field *out = malloc((max ? max : 1) * sizeof(*out));
  if (scratch == NULL || out == NULL)
    goto done;

  int n =
      counters_fields(&meta, payload, b.len, out, max, scratch, scratch_cap);
  if (n > (int)max)
    __builtin_trap();
  for (int i = 0; i < n; i++) {
    if (out[i].name == NULL || out[i].str == NULL)
      __builtin_trap();
    if (out[i].is_string && out[i].str[0] != 0 &&
        (out[i].str < scratch || out[i].str >= scratch + scratch_cap ||
         memchr(out[i].str, 0, (size_t)(scratch + scratch_cap - out[i].str)) ==
             NULL))
      __builtin_trap(); /* strings live, terminated, in the scratch */
  }

  struct nettrace_event e = {.meta = &meta,
                             .timestamp = 12345,
                             .payload = payload,
                             .payload_len = (uint32_t)b.len};
  struct counters_sample s;
  int rc = counters_decode(&e, &s, scratch, scratch_cap);
  if (rc == 1) {
    if (s.provider == NULL || s.name == NULL || s.units == NULL ||
        s.tags == NULL || s.session == NULL ||
        s.nquantiles > COUNTERS_MAX_QUANTILES)
      __builtin_trap();
    if (s.display_name_utf16 != NULL &&
        (s.display_name_utf16 < payload ||
         s.display_name_utf16 + 2 * (size_t)s.display_name_units >
             payload + b.len))
      __builtin_trap(); /* DisplayName is a view into the payload */
    char dn[64];
    (void)counters_display_name(&s, dn, sizeof(dn));
    /* nothing from the peer keeps a control character; only the
     * runtime's quantiles, each once */
    const char *strs[] = {s.provider, s.name, s.units, s.tags, s.session, dn};
    for (size_t k = 0; k < sizeof(strs) / sizeof(strs[0]); k++)
      for (const unsigned char *p = (const unsigned char *)strs[k]; *p; p++)
        if (*p < 0x20 || *p == 0x7f || (p[0] == 0xC2 && p[1] < 0xA0))
          __builtin_trap();
    for (uint32_t k = 0; k < s.nquantiles; k++) {
      if (s.quantile[k] != 0.5 && s.quantile[k] != 0.95 &&
          s.quantile[k] != 0.99)
        __builtin_trap();
      for (uint32_t j = 0; j < k; j++)
        if (s.quantile[j] == s.quantile[k])
          __builtin_trap();
    }
    check_decoder(&e, rc, &s, scratch_cap);
    struct counters_table t;
    counters_table_init(&t, 4);
    counters_table_update(&t, &s, 0);
    counters_table_update(&t, &s, 1);
    counters_table_fini(&t);
  } else if (rc != 0 && rc != -EBADMSG) {
    __builtin_trap();
  } else {
    check_decoder(&e, rc, NULL, scratch_cap);
  }
  meta.fields_ok = 0; /* a field list the reader did not understand */
  if (counters_fields(&meta, payload, b.len, out, max, scratch, scratch_cap) !=
      -ENOTSUP)
    __builtin_trap();
done:
  free(out);
  free(scratch);
  free(payload);
  return 0;
}
