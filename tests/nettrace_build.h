/**
 * collectd-dotnet - tests/nettrace_build.h
 *
 * What the unit tests build their inputs with and feed them by: a byte
 * buffer with little-endian writers (integers, floats, varints, ASCII as
 * UTF-16LE), an event payload written from its field table with the values
 * given as text, and a reader fed whole, in chunks or split in two.
 */
#ifndef NETTRACE_BUILD_H
#define NETTRACE_BUILD_H

#include "nettrace.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct buf {
  uint8_t d[8192];
  size_t len;
};

/* Appends n bytes; a test that outgrows the buffer stops there (it would
 * test a cut input without saying so). */
static inline void put(struct buf *b, const void *p, size_t n) {
  if (n > sizeof(b->d) - b->len) {
    fprintf(stderr, "nettrace_build: buffer full at %zu bytes\n", b->len);
    abort();
  }
  memcpy(b->d + b->len, p, n);
  b->len += n;
}

static inline void put_u8(struct buf *b, uint8_t v) { put(b, &v, 1); }

static inline void put_u16(struct buf *b, uint16_t v) {
  uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
  put(b, x, 2);
}

static inline void put_u32(struct buf *b, uint32_t v) {
  uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
                  (uint8_t)(v >> 24)};
  put(b, x, 4);
}

static inline void put_u64(struct buf *b, uint64_t v) {
  put_u32(b, (uint32_t)v);
  put_u32(b, (uint32_t)(v >> 32));
}

static inline void put_f32(struct buf *b, float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof(u));
  put_u32(b, u);
}

static inline void put_f64(struct buf *b, double d) {
  uint64_t u;
  memcpy(&u, &d, sizeof(u));
  put_u64(b, u);
}

/* v as a varint in its shortest form. */
static inline void put_var(struct buf *b, uint64_t v) {
  do {
    put_u8(b, (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0)));
    v >>= 7;
  } while (v != 0);
}

/* v as a varint of exactly n bytes (n at least its shortest form; longer
 * forms carry zero groups, which readers accept up to ten bytes). */
static inline void put_var_n(struct buf *b, uint64_t v, int n) {
  for (int i = 0; i < n; i++, v >>= 7)
    put_u8(b, (uint8_t)((v & 0x7f) | (i + 1 < n ? 0x80 : 0)));
}

/* Each byte of s as one UTF-16LE unit (so "\x9b" is U+009B), then a NUL
 * unit. */
static inline void put_utf16z(struct buf *b, const char *s) {
  for (; *s; s++)
    put_u16(b, (uint8_t)*s);
  put_u16(b, 0);
}

/* b := the payload of an event whose fields are f[0..n), from values
 * v[], one a field in their order, as text: a string as UTF-16, a number
 * converted to its field's type. An object's own entry takes no value (its
 * children follow it); a type not listed here stops the test. */
static inline void put_payload(struct buf *b, const struct nettrace_field *f,
                               size_t n, const char *const *v) {
  b->len = 0;
  for (size_t i = 0; i < n; i++) {
    switch (f[i].type) {
    case NETTRACE_TYPE_OBJECT:
      continue;
    case NETTRACE_TYPE_STRING:
      put_utf16z(b, *v);
      break;
    case NETTRACE_TYPE_INT32:
      put_u32(b, (uint32_t)strtol(*v, NULL, 10));
      break;
    case NETTRACE_TYPE_SINGLE:
      put_f32(b, strtof(*v, NULL));
      break;
    case NETTRACE_TYPE_DOUBLE:
      put_f64(b, strtod(*v, NULL));
      break;
    default:
      fprintf(stderr, "nettrace_build: field type %u\n", f[i].type);
      abort();
    }
    v++;
  }
}

/* Feeds data[0..len) to r: whole (chunk and split 0), chunk bytes at a
 * time, or data[0..split) then the rest. Returns the first feed's error
 * or 0. */
static inline int feed_pieces(struct nettrace_reader *r, const uint8_t *data,
                              size_t len, size_t chunk, size_t split) {
  if (split != 0) {
    int rc = nettrace_reader_feed(r, data, split);
    return rc != 0 ? rc : nettrace_reader_feed(r, data + split, len - split);
  }
  if (chunk == 0)
    return nettrace_reader_feed(r, data, len);
  int rc = 0;
  for (size_t off = 0; off < len && rc == 0; off += chunk)
    rc = nettrace_reader_feed(r, data + off,
                              len - off < chunk ? len - off : chunk);
  return rc;
}

#endif /* NETTRACE_BUILD_H */
