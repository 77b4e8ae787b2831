/**
 * collectd-dotnet - plugin/counters_slots.h
 *
 * What the sample module (counters.c) shares with the fast decoder
 * (counters_decoder.c), and no one else uses: the payload fields a sample
 * is made of ("slots"), the values found for them, and the step from those
 * values to a sample. The decoder fills the slots its own way (a plan per
 * metadata) and leaves the rest to counters.c, so the rules of the spec
 * are written once.
 */
#ifndef COUNTERS_SLOTS_H
#define COUNTERS_SLOTS_H

#include "counters.h"
#include "wire.h"

#include <stdint.h>
#include <string.h>

/* The payload fields a sample is made of: each has a slot. */
enum counters_slot {
  /* EventCounters */
  S_NAME,
  S_DISPLAY_NAME,
  S_DISPLAY_UNITS,
  S_COUNTER_TYPE,
  S_INCREMENT,
  S_MEAN,
  S_MIN,
  S_MAX,
  S_STDDEV,
  S_EC_COUNT,
  S_INTERVAL_SEC,
  S_SERIES,
  /* System.Diagnostics.Metrics */
  S_SESSION_ID,
  S_METER_NAME,
  S_INSTRUMENT_NAME,
  S_UNIT,
  S_TAGS,
  S_RATE,
  S_VALUE,
  S_LAST_VALUE,
  S_QUANTILES,
  S_COUNT,
  S_SUM,
  NSLOTS,
  S_NONE = 0xff
};

/* The slot of a field name, or S_NONE. */
uint8_t counters_slot_by_name(const char *name);

/* A slot's value as found in the payload: strings stay UTF-16 in the
 * payload until (and unless) someone asks for them. */
struct counters_slot_value {
  const uint8_t *utf16; /* strings: in the payload */
  const char *utf8;     /* strings: converted, once asked for */
  double num;
  uint32_t units; /* strings: UTF-16 code units */
  uint32_t is_string;
};

/* The slots of one payload. Which were found is a bit mask beside them (no
 * clearing of the values per event); the strings asked for are converted
 * into the caller's scratch. */
struct counters_slots {
  uint32_t found; /* bit k: v[k] holds a value */
  struct counters_slot_value v[NSLOTS];
  char *scratch;
  size_t scratch_cap, scratch_used;
};

static inline void counters_slots_init(struct counters_slots *f, char *scratch,
                                       size_t scratch_cap) {
  f->found = 0;
  f->scratch = scratch;
  f->scratch_cap = scratch_cap;
  f->scratch_used = 0;
}

/* What an event is to the decoders. */
enum counters_event_kind {
  EV_OTHER,     /* not a counter event */
  EV_COUNTERS,  /* EventCounters */
  EV_RATE,      /* Metrics: CounterRateValuePublished */
  EV_UPDOWN,    /* UpDownCounterRateValuePublished */
  EV_GAUGE,     /* GaugeValuePublished */
  EV_HISTOGRAM, /* HistogramValuePublished */
};

enum counters_event_kind counters_event_kind(const struct nettrace_meta *m);

/* The sample of ev (of a kind other than EV_OTHER) from the slots found:
 * as counters_decode. */
int counters_slots_sample(struct counters_slots *f,
                          const struct nettrace_event *ev,
                          enum counters_event_kind kind,
                          struct counters_sample *s);

/* counters_decode of an event of a known kind, by the walk of its payload;
 * slot_of[field index] gives each field's slot (NULL: by name). */
int counters_decode_walk(const struct nettrace_event *ev,
                         enum counters_event_kind kind, const uint8_t *slot_of,
                         struct counters_sample *s, char *scratch,
                         size_t scratch_cap);

/* The number of a fixed-size leaf (a NETTRACE_LAYOUT_INT, _UINT or _FLOAT
 * of its size) at p, whose size the caller has checked. */
static inline double counters_leaf_num(uint8_t kind, uint8_t size,
                                       const uint8_t *p) {
  uint64_t u = size == 1   ? p[0]
               : size == 2 ? wire_le16(p)
               : size == 4 ? wire_le32(p)
                           : wire_le64(p);
  if (kind == NETTRACE_LAYOUT_UINT)
    return (double)u;
  if (kind == NETTRACE_LAYOUT_INT) { /* sign-extended from its size */
    unsigned shift = 64 - 8u * size;
    return (double)((int64_t)(u << shift) >> shift);
  }
  if (size == 4) {
    uint32_t u32 = (uint32_t)u;
    float fl;
    memcpy(&fl, &u32, sizeof(fl));
    return fl;
  }
  double d;
  memcpy(&d, &u, sizeof(d));
  return d;
}

#endif /* COUNTERS_SLOTS_H */
