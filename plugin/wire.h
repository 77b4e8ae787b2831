/**
 * collectd-dotnet - plugin/wire.h
 *
 * Cursor helpers for little-endian wire data: the one place where lengths
 * read from a peer are checked. A cursor is (pointer, remaining); every
 * reader checks the remaining length first, copies, converts from little
 * endian and advances, or returns -1 and leaves the cursor untouched. The
 * writers beside them (wire_put_*) do the same into a caller's buffer.
 */
#ifndef WIRE_H
#define WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct wire_cursor {
  const uint8_t *p;
  size_t len;
};

static inline struct wire_cursor wire_cursor(const void *p, size_t len) {
  return (struct wire_cursor){.p = p, .len = len};
}

static inline int wire_skip(struct wire_cursor *c, size_t n) {
  if (n > c->len)
    return -1;
  c->p += n;
  c->len -= n;
  return 0;
}

static inline int wire_take(struct wire_cursor *c, void *out, size_t n) {
  if (n > c->len)
    return -1;
  memcpy(out, c->p, n);
  c->p += n;
  c->len -= n;
  return 0;
}

static inline uint16_t wire_le16(const uint8_t *p) {
  return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}
static inline uint32_t wire_le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}
static inline uint64_t wire_le64(const uint8_t *p) {
  return (uint64_t)wire_le32(p) | (uint64_t)wire_le32(p + 4) << 32;
}

static inline int wire_u8(struct wire_cursor *c, uint8_t *out) {
  if (c->len < 1)
    return -1;
  *out = c->p[0];
  return wire_skip(c, 1);
}
/* wire_u16, wire_u32, wire_u64: a little-endian integer at the cursor. */
#define WIRE_READER(BITS)                                                      \
  static inline int wire_u##BITS(struct wire_cursor *c, uint##BITS##_t *out) { \
    if (c->len < BITS / 8)                                                     \
      return -1;                                                               \
    *out = wire_le##BITS(c->p);                                                \
    return wire_skip(c, BITS / 8);                                             \
  }
WIRE_READER(16)
WIRE_READER(32)
WIRE_READER(64)
#undef WIRE_READER

/* The writers: little endian into buf[cap] at *off, which advances; each
 * checks that the value fits first, or returns -1 with *off untouched. */
static inline void wire_set_le16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static inline void wire_set_le32(uint8_t *p, uint32_t v) {
  wire_set_le16(p, (uint16_t)v);
  wire_set_le16(p + 2, (uint16_t)(v >> 16));
}
static inline void wire_set_le64(uint8_t *p, uint64_t v) {
  wire_set_le32(p, (uint32_t)v);
  wire_set_le32(p + 4, (uint32_t)(v >> 32));
}
static inline int wire_fits(size_t cap, size_t off, size_t n) {
  return off <= cap && n <= cap - off;
}
static inline int wire_put_u8(uint8_t *buf, size_t cap, size_t *off,
                              uint8_t v) {
  if (!wire_fits(cap, *off, 1))
    return -1;
  buf[(*off)++] = v;
  return 0;
}
/* wire_put_u16, wire_put_u32, wire_put_u64 */
#define WIRE_WRITER(BITS)                                                      \
  static inline int wire_put_u##BITS(uint8_t *buf, size_t cap, size_t *off,    \
                                     uint##BITS##_t v) {                       \
    if (!wire_fits(cap, *off, BITS / 8))                                       \
      return -1;                                                               \
    wire_set_le##BITS(buf + *off, v);                                          \
    *off += BITS / 8;                                                          \
    return 0;                                                                  \
  }
WIRE_WRITER(16)
WIRE_WRITER(32)
WIRE_WRITER(64)
#undef WIRE_WRITER

/* wire_f32, wire_f64: an IEEE 754 value, little endian. */
#define WIRE_FLOAT(BITS, TYPE)                                                 \
  static inline int wire_f##BITS(struct wire_cursor *c, TYPE *out) {           \
    uint##BITS##_t u;                                                          \
    if (wire_u##BITS(c, &u) != 0)                                              \
      return -1;                                                               \
    memcpy(out, &u, sizeof(*out));                                             \
    return 0;                                                                  \
  }
WIRE_FLOAT(32, float)
WIRE_FLOAT(64, double)
#undef WIRE_FLOAT

/* LEB128-style unsigned varints of the nettrace compressed headers. */
static inline int wire_varu64(struct wire_cursor *c, uint64_t *out) {
  /* one or two bytes (ids, small deltas, sizes): no loop */
  if (c->len >= 2 && !(c->p[0] & 0x80 && c->p[1] & 0x80)) {
    size_t n = c->p[0] & 0x80 ? 2 : 1;
    *out =
        n == 1 ? c->p[0] : (uint64_t)(c->p[0] & 0x7f) | (uint64_t)c->p[1] << 7;
    c->p += n;
    c->len -= n;
    return 0;
  }
  uint64_t v = 0;
  for (size_t i = 0; i < 10; i++) {
    if (i >= c->len)
      return -1;
    uint8_t b = c->p[i];
    if (i == 9 && b > 1)
      return -1; /* more than 64 bits */
    v |= (uint64_t)(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) {
      c->p += i + 1;
      c->len -= i + 1;
      *out = v;
      return 0;
    }
  }
  return -1;
}
static inline int wire_varu32(struct wire_cursor *c, uint32_t *out) {
  struct wire_cursor save = *c;
  uint64_t v;
  if (wire_varu64(c, &v) != 0 || v > UINT32_MAX) {
    *c = save;
    return -1;
  }
  *out = (uint32_t)v;
  return 0;
}

/* A NUL-terminated UTF-16LE string in place (nettrace payloads, metadata):
 * on success *units is the number of code units before the terminator and
 * the cursor is past the terminator. Looks at four code units a step: a
 * zero unit in a 64-bit word x has (x - 0x0001...) & ~x & 0x8000... set in
 * its lane, and the lowest such lane is exact (borrows only run upwards). */
static inline int wire_utf16z(struct wire_cursor *c, const uint8_t **start,
                              size_t *units) {
  const uint64_t ones = 0x0001000100010001ULL, highs = 0x8000800080008000ULL;
  size_t i = 0;
  for (; i + 8 <= c->len; i += 8) {
    uint64_t x = wire_le64(c->p + i);
    uint64_t t = (x - ones) & ~x & highs;
    if (t != 0) {
      i += (size_t)(__builtin_ctzll(t) / 16) * 2;
      goto found;
    }
  }
  for (; i + 1 < c->len; i += 2)
    if (c->p[i] == 0 && c->p[i + 1] == 0)
      goto found;
  return -1;
found:
  *start = c->p;
  *units = i / 2;
  c->p += i + 2;
  c->len -= i + 2;
  return 0;
}

/* Converts `units` UTF-16LE code units to NUL-terminated UTF-8 in out[cap].
 * Unpaired surrogates become U+FFFD. Returns the UTF-8 length, or -1 if it
 * does not fit (out is then empty). */
static inline long wire_utf16_to_utf8(const uint8_t *s, size_t units, char *out,
                                      size_t cap) {
  size_t o = 0, i = 0;
  if (cap == 0)
    return -1;
  /* ASCII first (names, units, tags): four code units a step, the low
   * bytes of the 16-bit lanes packed into 32 bits in memory order; then
   * one at a time; the general loop takes over at the first other unit */
  for (; i + 4 <= units && o + 4 < cap; i += 4, o += 4) {
    uint64_t x = wire_le64(s + 2 * i);
    if (x & 0xFF80FF80FF80FF80ULL)
      break;
    x = (x | x >> 8) & 0x0000FFFF0000FFFFULL;
    x = (x | x >> 16) & 0xFFFFFFFFULL;
    uint8_t b[4] = {(uint8_t)x, (uint8_t)(x >> 8), (uint8_t)(x >> 16),
                    (uint8_t)(x >> 24)};
    memcpy(out + o, b, 4);
  }
  for (; i < units && o + 1 < cap && s[2 * i + 1] == 0 && s[2 * i] < 0x80; i++)
    out[o++] = (char)s[2 * i];
  for (; i < units; i++) {
    uint32_t cp = wire_le16(s + 2 * i);
    if (cp >= 0xD800 && cp <= 0xDBFF && i + 1 < units) {
      uint32_t lo = wire_le16(s + 2 * (i + 1));
      if (lo >= 0xDC00 && lo <= 0xDFFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        i++;
      } else {
        cp = 0xFFFD;
      }
    } else if (cp >= 0xD800 && cp <= 0xDFFF) {
      cp = 0xFFFD;
    }
    size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (o + n >= cap) {
      out[0] = 0;
      return -1;
    }
    if (n == 1) {
      out[o++] = (char)cp;
    } else if (n == 2) {
      out[o++] = (char)(0xC0 | cp >> 6);
      out[o++] = (char)(0x80 | (cp & 0x3F));
    } else if (n == 3) {
      out[o++] = (char)(0xE0 | cp >> 12);
      out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
      out[o++] = (char)(0x80 | (cp & 0x3F));
    } else {
      out[o++] = (char)(0xF0 | cp >> 18);
      out[o++] = (char)(0x80 | ((cp >> 12) & 0x3F));
      out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
      out[o++] = (char)(0x80 | (cp & 0x3F));
    }
  }
  out[o] = 0;
  return (long)o;
}

/* Makes a NUL-terminated UTF-8 string (as wire_utf16_to_utf8 writes it)
 * safe to print and to use in a name, in place: what a terminal, a log
 * reader or a line-based protocol (collectd's unixsock, NotificationExec)
 * would take for something other than text becomes one '_' each: the C0
 * controls (newline, ESC, ...), DEL, the C1 controls U+0080..U+009F (CSI
 * among them), the line and paragraph separators U+2028, U+2029 and the
 * bidirectional embeddings, overrides and isolates U+202A..U+202E,
 * U+2066..U+2069. Returns the new length. */
static inline size_t wire_utf8_printable(char *s) {
  unsigned char *p = (unsigned char *)s, *o = p;
  /* the common case: printable ASCII up to the end, nothing moved */
  while (*p >= 0x20 && *p < 0x7f)
    p++;
  if (*p == 0)
    return (size_t)(p - (unsigned char *)s);
  o = p;
  while (*p != 0) {
    unsigned c = *p;
    if (c < 0x20 || c == 0x7f) {
      *o++ = '_';
      p++;
    } else if (c == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F) {
      *o++ = '_';
      p += 2;
    } else if (c == 0xE2 && ((p[1] == 0x80 && p[2] >= 0xA8 && p[2] <= 0xAE) ||
                             (p[1] == 0x81 && p[2] >= 0xA6 && p[2] <= 0xA9))) {
      *o++ = '_';
      p += 3;
    } else {
      *o++ = *p++;
    }
  }
  *o = 0;
  return (size_t)(o - (unsigned char *)s);
}

/* The longest prefix of s of at most n bytes that ends on a character
 * boundary (s holds at least n bytes before its terminator): a cut there
 * never leaves a partial UTF-8 sequence. */
static inline size_t wire_utf8_cut(const char *s, size_t n) {
  while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
    n--;
  return n;
}

#endif /* WIRE_H */
