/**
 * collectd-dotnet - plugin/counters_decoder.c
 *
 * The fast decoder: plans of payload layouts, cached per metadata.
 *
 * For field lists without arrays (all counter events), the payload is a
 * fixed sequence of leaves: a plan lists them as ops (fixed-size runs of
 * unused leaves merged into one skip) with the slot of each used leaf (its
 * first leaf of that name). Running a plan reads exactly what the generic
 * walk (counters.c) reads, and fails where it fails; the sample is then
 * made from the slots by counters.c, as for the walk. Field lists with
 * arrays get a slot map instead (the walk, without comparing names).
 */
#include "counters_decoder.h"
#include "counters_slots.h"
#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 8            /* as the walk's */
#define DECODER_WAYS 32        /* direct-mapped by metadata id */
#define DECODER_MAX_FIELDS 256 /* larger field lists are not cached */

/* One step of a plan: a leaf of layout kind (NETTRACE_LAYOUT_STRING, a
 * number, or NETTRACE_LAYOUT_OPAQUE: n bytes skipped) and its slot. */
struct op {
  uint8_t kind, slot;
  uint16_t n; /* bytes (0 for a string) */
};

struct plan_builder {
  const struct nettrace_meta *meta;
  struct op *ops;
  size_t n, cap;
  uint32_t found; /* the slots the plan fills */
};

static int plan_push(struct plan_builder *b, struct op op) {
  struct op *last = b->n > 0 ? &b->ops[b->n - 1] : NULL;
  if (op.kind == NETTRACE_LAYOUT_OPAQUE && last != NULL &&
      last->kind == NETTRACE_LAYOUT_OPAQUE && last->n <= UINT16_MAX - op.n) {
    last->n = (uint16_t)(last->n + op.n);
    return 0;
  }
  if (b->n == b->cap)
    return -1;
  b->ops[b->n++] = op;
  return 0;
}

/* The op of leaf fields[i] of layout l: -1 for none (an array, a type the
 * reader does not know). */
static int plan_leaf(struct plan_builder *b, uint32_t i,
                     struct nettrace_layout l) {
  if (l.kind < NETTRACE_LAYOUT_STRING)
    return -1;
  uint8_t slot = l.kind == NETTRACE_LAYOUT_OPAQUE
                     ? S_NONE
                     : counters_slot_by_name(b->meta->fields[i].name);
  if (slot != S_NONE && (b->found & 1u << slot))
    slot = S_NONE; /* the first leaf of a name has the slot */
  if (slot != S_NONE)
    b->found |= 1u << slot;
  else if (l.kind != NETTRACE_LAYOUT_STRING)
    l.kind = NETTRACE_LAYOUT_OPAQUE; /* a number no one reads: skipped */
  return plan_push(b, (struct op){.kind = l.kind, .slot = slot, .n = l.size});
}

/* The ops of n sibling fields from fields[first] on; -1: no plan for this
 * field list (the walk decides). */
static int plan_siblings(struct plan_builder *b, uint32_t first, uint32_t n,
                         int depth) {
  const struct nettrace_meta *m = b->meta;
  for (uint32_t k = 0, i = first; k < n; k++, i += 1 + m->fields[i].span) {
    if (i >= m->nfields_total || depth > MAX_DEPTH)
      return -1;
    struct nettrace_layout l = nettrace_type_layout(m->fields[i].type);
    int r = l.kind == NETTRACE_LAYOUT_OBJECT
                ? plan_siblings(b, i + 1, m->fields[i].nchildren, depth + 1)
                : plan_leaf(b, i, l);
    if (r != 0)
      return -1;
  }
  return 0;
}

static int plan_build(struct plan_builder *b) {
  const struct nettrace_meta *m = b->meta;
  if (!m->fields_ok || m->fields == NULL)
    return -1;
  return plan_siblings(b, 0, m->nfields, 0);
}

/* Runs a plan on the payload at c, filling the slots it has. */
static int plan_run(const struct op *ops, size_t nops, struct wire_cursor c,
                    struct counters_slot_value *v) {
  for (size_t i = 0; i < nops; i++) {
    const struct op *o = &ops[i];
    const uint8_t *p = c.p;
    size_t units;
    if (o->kind == NETTRACE_LAYOUT_STRING) {
      if (wire_utf16z(&c, &p, &units) != 0)
        return -EBADMSG;
      if (o->slot != S_NONE)
        v[o->slot] = (struct counters_slot_value){
            .utf16 = p, .units = (uint32_t)units, .is_string = 1};
      continue;
    }
    if (wire_skip(&c, o->n) != 0)
      return -EBADMSG;
    if (o->kind != NETTRACE_LAYOUT_OPAQUE)
      v[o->slot] = (struct counters_slot_value){
          .num = counters_leaf_num(o->kind, (uint8_t)o->n, p)};
  }
  return 0;
}

/* ---- the cache: a plan (or a slot map) per metadata ---- */

struct decoder_entry {
  const struct nettrace_meta *meta; /* NULL: empty */
  const struct nettrace_field *fields;
  uint32_t id, nfields_total;
  uint8_t kind;   /* enum counters_event_kind */
  int16_t nops;   /* >= 0: map is a plan; -1: map is a slot map */
  uint32_t found; /* the slots the plan fills */
  void *map;      /* struct op[nops] or uint8_t[nfields_total]; NULL for
                     EV_OTHER */
};

struct counters_decoder {
  struct decoder_entry e[DECODER_WAYS];
};

struct counters_decoder *counters_decoder_new(void) {
  return calloc(1, sizeof(struct counters_decoder));
}

void counters_decoder_reset(struct counters_decoder *d) {
  if (d == NULL)
    return;
  for (size_t i = 0; i < DECODER_WAYS; i++)
    free(d->e[i].map);
  memset(d->e, 0, sizeof(d->e));
}

void counters_decoder_free(struct counters_decoder *d) {
  counters_decoder_reset(d);
  free(d);
}

static int entry_is(const struct decoder_entry *e,
                    const struct nettrace_meta *m) {
  return e->meta == m && e->id == m->id && e->fields == m->fields &&
         e->nfields_total == m->nfields_total;
}

/* A copy of a plan, or (no plan for the field list) a slot map; NULL when
 * out of memory. */
static void *entry_map(const struct nettrace_meta *m, int *nops,
                       uint32_t *found) {
  struct op ops[DECODER_MAX_FIELDS];
  struct plan_builder b = {.meta = m, .ops = ops, .cap = DECODER_MAX_FIELDS};
  if (plan_build(&b) == 0) {
    struct op *plan = malloc(b.n ? b.n * sizeof(struct op) : 1);
    if (plan != NULL)
      memcpy(plan, ops, b.n * sizeof(struct op));
    *nops = (int)b.n;
    *found = b.found;
    return plan;
  }
  uint8_t *slot_of = malloc(m->nfields_total);
  if (slot_of != NULL)
    for (uint32_t i = 0; i < m->nfields_total; i++)
      slot_of[i] = counters_slot_by_name(m->fields[i].name);
  *nops = -1;
  *found = 0;
  return slot_of;
}

/* Fills e for m, of the given kind: -1 when m is not cached. */
static int entry_build(struct decoder_entry *e, const struct nettrace_meta *m,
                       enum counters_event_kind kind) {
  void *map = NULL;
  int nops = -1;
  uint32_t found = 0;
  if (kind != EV_OTHER) {
    if (!m->fields_ok || m->fields == NULL || m->nfields_total == 0 ||
        m->nfields_total > DECODER_MAX_FIELDS)
      return -1;
    if ((map = entry_map(m, &nops, &found)) == NULL)
      return -1;
  }
  free(e->map);
  *e = (struct decoder_entry){.meta = m,
                              .fields = m->fields,
                              .id = m->id,
                              .nfields_total = m->nfields_total,
                              .kind = (uint8_t)kind,
                              .nops = (int16_t)nops,
                              .found = found,
                              .map = map};
  return 0;
}

static int decode_plan(const struct decoder_entry *e,
                       const struct nettrace_event *ev,
                       struct counters_sample *s, char *scratch,
                       size_t scratch_cap) {
  struct counters_slots f;
  counters_slots_init(&f, scratch, scratch_cap);
  int r = plan_run(e->map, (size_t)e->nops,
                   wire_cursor(ev->payload, ev->payload_len), f.v);
  if (r < 0)
    return r;
  f.found = e->found;
  return counters_slots_sample(&f, ev, (enum counters_event_kind)e->kind, s);
}

int counters_decoder_decode(struct counters_decoder *d,
                            const struct nettrace_event *ev,
                            struct counters_sample *s, char *scratch,
                            size_t scratch_cap) {
  const struct nettrace_meta *m = ev->meta;
  struct decoder_entry *e = &d->e[m->id % DECODER_WAYS];
  if (!entry_is(e, m)) {
    enum counters_event_kind kind = counters_event_kind(m);
    if (entry_build(e, m, kind) != 0) /* not cached: the slow way */
      return counters_decode_walk(ev, kind, NULL, s, scratch, scratch_cap);
  }
  if (e->kind == EV_OTHER)
    return 0;
  if (e->nops >= 0)
    return decode_plan(e, ev, s, scratch, scratch_cap);
  return counters_decode_walk(ev, (enum counters_event_kind)e->kind, e->map, s,
                              scratch, scratch_cap);
}
