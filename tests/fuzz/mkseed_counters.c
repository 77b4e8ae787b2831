/**
 * collectd-dotnet - tests/fuzz/mkseed_counters.c
 *
 * Writes fuzz_counters seeds from a real nettrace stream: for the first
 * event of each metadata id whose event is known to fuzz_counters.h, its
 * metadata in the fuzz_counters input format followed by its payload.
 *
 *   mkseed_counters FILE.nettrace OUTDIR PREFIX
 *
 * (tests/fuzz/run.sh does not need it: the seeds it wrote are committed.)
 */
#include "../../plugin/nettrace.h"
#include "fuzz_counters.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ctx {
  const char *dir, *prefix;
  uint32_t seen[256];
  size_t nseen, written;
};

static size_t encode_field(const struct nettrace_meta *m, uint32_t i,
                           uint8_t *out, size_t o, int with_name) {
  const struct nettrace_field *f = &m->fields[i];
  out[o++] = (uint8_t)f->type;
  if (with_name) {
    uint8_t nb = 0xff;
    for (size_t k = 0; k < FUZZ_NNAMES; k++)
      if (strcmp(fuzz_names[k], f->name) == 0)
        nb = (uint8_t)k;
    out[o++] = nb;
  }
  if (f->type == NETTRACE_TYPE_ARRAY)
    return encode_field(m, i + 1, out, o, 0);
  if (f->type == NETTRACE_TYPE_OBJECT) {
    out[o++] = (uint8_t)f->nchildren;
    uint32_t j = i + 1;
    for (uint32_t k = 0; k < f->nchildren; k++) {
      o = encode_field(m, j, out, o, 1);
      j += 1 + m->fields[j].span;
    }
  }
  return o;
}

static void on_event(void *p, const struct nettrace_event *ev) {
  struct ctx *c = p;
  const struct nettrace_meta *m = ev->meta;
  size_t e;
  for (e = 0; e < FUZZ_NEVENTS; e++)
    if (strcmp(fuzz_events[e].event, m->event_name) == 0 &&
        (strcmp(fuzz_events[e].provider, m->provider) == 0 ||
         strcmp(m->event_name, "EventCounters") == 0))
      break;
  if (e == FUZZ_NEVENTS || !m->fields_ok || m->nfields_total > 200)
    return;
  for (size_t k = 0; k < c->nseen; k++)
    if (c->seen[k] == m->id)
      return;
  if (c->nseen == 256)
    return;
  c->seen[c->nseen++] = m->id;
  uint8_t *buf = malloc(4 + 3 * m->nfields_total + ev->payload_len);
  if (buf == NULL)
    return;
  size_t o = 0;
  buf[o++] = (uint8_t)e;
  buf[o++] = 0;  /* 4096 bytes of scratch */
  buf[o++] = 48; /* as counters_decode */
  buf[o++] = (uint8_t)m->nfields;
  uint32_t i = 0;
  for (uint32_t k = 0; k < m->nfields; k++) {
    o = encode_field(m, i, buf, o, 1);
    i += 1 + m->fields[i].span;
  }
  memcpy(buf + o, ev->payload, ev->payload_len);
  o += ev->payload_len;
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s-%s-%u", c->dir, c->prefix, m->event_name,
           m->id);
  FILE *f = fopen(path, "wb");
  if (f != NULL) {
    fwrite(buf, 1, o, f);
    fclose(f);
    c->written++;
  }
  free(buf);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: mkseed_counters FILE.nettrace OUTDIR PREFIX\n");
    return 2;
  }
  FILE *f = fopen(argv[1], "rb");
  if (f == NULL) {
    perror(argv[1]);
    return 1;
  }
  struct ctx c = {.dir = argv[2], .prefix = argv[3]};
  struct nettrace_reader *r = nettrace_reader_new(NULL, on_event, &c);
  uint8_t buf[65536];
  size_t n;
  int rc = 0;
  while (r != NULL && rc == 0 && (n = fread(buf, 1, sizeof(buf), f)) > 0)
    rc = nettrace_reader_feed(r, buf, n);
  fclose(f);
  if (r == NULL || rc != 0 || nettrace_reader_finish(r) != 0) {
    fprintf(stderr, "mkseed_counters: %s: %s\n", argv[1],
            r ? nettrace_reader_error(r) : "out of memory");
    nettrace_reader_free(r);
    return 1;
  }
  nettrace_reader_free(r);
  printf("%zu seeds\n", c.written);
  return 0;
}
