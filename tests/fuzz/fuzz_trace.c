/**
 * collectd-dotnet - tests/fuzz/fuzz_trace.c
 *
 * libFuzzer target: the provider list parser of plugin/trace.c
 * (trace_providers_parse, dotnet-trace's Name[:KEYWORDS[:LEVEL]],...).
 *
 * Input layout:
 *   uint8 cap      the error buffer's capacity (0: none given)
 *   rest           the spec (cut at its first NUL)
 *
 * Checked beyond the sanitizers: an accepted list has 1 to
 * TRACE_MAX_PROVIDERS providers, each named by printable ASCII without
 * spaces, ':' or ',' within TRACE_NAME_MAX, no name twice, a level of 0-5,
 * and no error; written back in the same form it parses to the same list;
 * a refused one leaves no provider and says why (the message
 * NUL-terminated within its buffer).
 */
#include "../../plugin/trace.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SPEC 4096

static void check_config(const struct trace_config *c) {
  if (c->nproviders < 1 || c->nproviders > TRACE_MAX_PROVIDERS)
    __builtin_trap();
  for (size_t i = 0; i < c->nproviders; i++) {
    const struct trace_provider *p = &c->providers[i];
    size_t l = strnlen(p->name, TRACE_NAME_MAX);
    if (l == 0 || l == TRACE_NAME_MAX || p->level > 5)
      __builtin_trap();
    for (size_t k = 0; k < l; k++)
      if (p->name[k] <= ' ' || p->name[k] > '~' || p->name[k] == ':' ||
          p->name[k] == ',')
        __builtin_trap();
    for (size_t k = 0; k < i; k++)
      if (strcmp(c->providers[k].name, p->name) == 0)
        __builtin_trap();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > MAX_SPEC)
    return 0;
  size_t cap = data[0];
  static char spec[MAX_SPEC + 1];
  memcpy(spec, data + 1, size - 1);
  spec[size - 1] = 0;

  static struct trace_config cfg;
  char *err = cap ? malloc(cap) : NULL; /* exactly cap: ASan sees overruns */
  memset(&cfg, 0xA5, sizeof(cfg));
  int r = trace_providers_parse(spec, &cfg, err, cap);
  if (r == 0) {
    check_config(&cfg);
    if (cap && err[0] != 0)
      __builtin_trap();
    /* written back, parsed again: the same list */
    static char again[TRACE_MAX_PROVIDERS * (TRACE_NAME_MAX + 32)];
    size_t off = 0;
    for (size_t i = 0; i < cfg.nproviders; i++)
      off += (size_t)snprintf(again + off, sizeof(again) - off,
                              "%s%s:0x%" PRIx64 ":%" PRIu32, i ? "," : "",
                              cfg.providers[i].name, cfg.providers[i].keywords,
                              cfg.providers[i].level);
    static struct trace_config cfg2;
    memset(&cfg2, 0x5A, sizeof(cfg2));
    if (trace_providers_parse(again, &cfg2, NULL, 0) != 0 ||
        cfg2.nproviders != cfg.nproviders)
      __builtin_trap();
    for (size_t i = 0; i < cfg.nproviders; i++)
      if (strcmp(cfg.providers[i].name, cfg2.providers[i].name) != 0 ||
          cfg.providers[i].keywords != cfg2.providers[i].keywords ||
          cfg.providers[i].level != cfg2.providers[i].level)
        __builtin_trap();
  } else {
    if (r != -22 || cfg.nproviders != 0)
      __builtin_trap();
    if (cap && (memchr(err, 0, cap) == NULL || (cap > 1 && err[0] == 0)))
      __builtin_trap();
  }
  free(err);
  return 0;
}
