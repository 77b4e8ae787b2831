/**
 * collectd-dotnet - plugin/gctypes.c
 *
 * Per-type aggregation of GC heap snapshots and allocation samples from
 * nettrace events (see gctypes.h). Three bounded tables: the types (id ->
 * objects, bytes, name), the names (one arena), the threads (capture thread
 * -> last sequence number, to find lost events).
 *
 * Payloads (Microsoft-Windows-DotNETRuntime, ClrEtwAll.man; "ptr" is the
 * trace's pointer size, strings NUL-terminated UTF-16LE):
 *   1   GCStart_V1/V2   u32 Count; u32 Depth; u32 Reason; u32 Type;
 *                       u16 ClrInstanceID; [V2: u64 ClientSequenceNumber]
 *   2   GCEnd_V1        u32 Count; u32 Depth; u16 ClrInstanceID
 *   4   GCHeapStats_V1+ 10 u64 (GenerationSize0, TotalPromotedSize0, ...,
 *                       GenerationSize3, TotalPromotedSize3,
 *                       FinalizationPromotedSize, FinalizationPromotedCount);
 *                       u32 PinnedObjectCount, SinkBlockCount, GCHandleCount;
 *                       u16 ClrInstanceID; [V2: u64 GenerationSize4 (POH),
 *                       u64 TotalPromotedSize4]
 *   10  GCAllocationTick_V2+  u32 AllocationAmount; u32 AllocationKind;
 *                       u16 ClrInstanceID; u64 AllocationAmount64;
 *                       ptr TypeID; string TypeName; u32 HeapIndex;
 *                       [V3: ptr Address] [V4: u64 ObjectSize]
 *   15  BulkType        u32 Count; u16 ClrInstanceID; Count x { u64 TypeID;
 *                       u64 ModuleID; u32 TypeNameID; u32 Flags;
 *                       u8 CorElementType; string Name;
 *                       u32 TypeParameterCount; TypeParameterCount x u64 }
 *   18  GCBulkNode      u32 Index; u32 Count; u16 ClrInstanceID;
 *                       Count x { ptr Address; u64 Size; u64 TypeID;
 *                       u64 EdgeCount }
 *   303 AllocationSampled  u32 AllocationKind; u16 ClrInstanceID;
 *                       ptr TypeID; string TypeName; ptr Address;
 *                       u64 ObjectSize; u64 SampledByteOffset
 *
 * The snapshot's GC is the first GCStart with Depth 2, Type 0 (blocking)
 * and Reason 1 (induced), and its GCEnd (same Count): the rule of
 * dotnet-gcdump's DotNetHeapDumpGraphReader. The runtime walks the heap
 * only during a GC it induced for a session with the GCHeapDump keyword
 * (eventtrace.cpp, s_forcedGCInProgress), one thread numbering its
 * GCBulkNode events from Index 0: a gap in that numbering is lost node
 * events; Index 0 again is a second walk (another session's), ignored.
 *
 * Lost events: EventPipe numbers each thread's events 1, 2, 3, ... in a
 * session and counts an event it drops as one more number, so a gap in a
 * capture thread's numbers is events lost (a drop after a thread's last
 * delivered event is not seen this way).
 */
#include "gctypes.h"
#include "wire.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_TYPES 65536u
#define DEFAULT_MAX_NAMES ((size_t)4 << 20)
#define DEFAULT_MAX_THREADS 1024u
#define TYPES_INITIAL 256u

#define EV_GC_START 1
#define EV_GC_END 2
#define EV_GC_HEAP_STATS 4
#define EV_ALLOCATION_TICK 10
#define EV_BULK_TYPE 15
#define EV_BULK_NODE 18
#define EV_ALLOCATION_SAMPLED 303

#define GC_TYPE_BLOCKING 0
#define GC_REASON_INDUCED 1

/* AllocationSampled: each sample stands for (1 - p) / p bytes allocated
 * before it plus the part of its object past the sampling point, p =
 * 1/102400 (dotnet/runtime's randomized allocation sampling, as its
 * AllocationProfiler test application upscales) */
#define SAMPLING_BYTES_PER_SAMPLE 102399u

#define NO_NAME UINT32_MAX

struct type {
  uint64_t id;
  uint64_t count, bytes;          /* heap: objects; alloc: ticks */
  uint64_t samples, sampled_rest; /* alloc: AllocationSampled, and the sum
                                     of ObjectSize - SampledByteOffset */
  uint32_t name_off;              /* in names; NO_NAME when none */
  uint32_t name_len;
};

struct thread_seq {
  uint64_t tid; /* 0: free slot */
  uint32_t last;
};

struct gctypes {
  enum gctypes_mode mode;
  struct gctypes_limits lim;

  struct type *types; /* ntypes used of cap_types */
  uint32_t ntypes, cap_types;
  uint32_t *slots; /* open addressing: index + 1 into types; 0 free */
  uint32_t nslots; /* power of two, >= 2 * cap_types */

  char *names; /* arena: names, each NUL-terminated */
  size_t names_len, names_cap;
  uint64_t names_dropped;

  struct thread_seq *threads; /* power of two slots, 2 * max_threads */
  uint32_t nthreads, thread_slots;
  uint64_t unchecked_events;

  /* totals */
  struct type other; /* what type ids that found the table full hold */
  int capped;
  uint64_t lost_events, bad_events, reader_dropped;
  int stream_rc, finished;

  /* heap-types */
  int gc_started, gc_ended;
  uint32_t gc_number;
  uint64_t gc_start_ts, gc_end_ts;
  int64_t qpc_frequency;
  uint64_t gc_heap_bytes;
  int walk_started, second_walk;
  uint32_t next_index;
  uint64_t node_events, lost_node_events;
  uint64_t node_bytes; /* of every node counted */

  /* alloc-types */
  uint64_t tick_events, sampled_events;

  char reason[256];
  char scratch[GCTYPES_NAME_MAX * 3 + 4]; /* one name's UTF-8 */
};

/* ---- tables ---- */

static uint32_t hash64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return (uint32_t)x;
}

static uint32_t pow2_at_least(uint64_t n) {
  uint32_t p = 16;
  while (p < n && p < (1u << 30))
    p <<= 1;
  return p;
}

/* Where id is in an index of types (its slot holds that type's index + 1)
 * or would go (a free slot). */
static uint32_t slot_of(const uint32_t *slots, uint32_t nslots,
                        const struct type *types, uint64_t id) {
  uint32_t h = hash64(id) & (nslots - 1);
  while (slots[h] != 0 && types[slots[h] - 1].id != id)
    h = (h + 1) & (nslots - 1);
  return h;
}

/* Grows the types array and its index (doubling, up to max_types). */
static int types_grow(struct gctypes *g) {
  uint32_t cap = g->cap_types ? g->cap_types * 2 : TYPES_INITIAL;
  if (cap > g->lim.max_types)
    cap = g->lim.max_types;
  if (cap <= g->cap_types)
    return -E2BIG;
  struct type *t = realloc(g->types, (size_t)cap * sizeof(*t));
  if (t == NULL)
    return -ENOMEM;
  g->types = t;
  uint32_t nslots = pow2_at_least((uint64_t)cap * 2);
  uint32_t *slots = calloc(nslots, sizeof(*slots));
  if (slots == NULL)
    return -ENOMEM;
  for (uint32_t i = 0; i < g->ntypes; i++)
    slots[slot_of(slots, nslots, t, t[i].id)] = i + 1;
  free(g->slots);
  g->slots = slots;
  g->nslots = nslots;
  g->cap_types = cap;
  return 0;
}

/* The type of that id, added when new; NULL when the table is full. */
static struct type *type_get(struct gctypes *g, uint64_t id) {
  uint32_t h = 0;
  if (g->nslots > 0) {
    h = slot_of(g->slots, g->nslots, g->types, id);
    if (g->slots[h] != 0)
      return &g->types[g->slots[h] - 1];
  }
  if (g->ntypes == g->cap_types) {
    if (types_grow(g) != 0)
      return NULL;
    h = slot_of(g->slots, g->nslots, g->types, id);
  }
  struct type *t = &g->types[g->ntypes];
  *t = (struct type){.id = id, .name_off = NO_NAME};
  g->slots[h] = ++g->ntypes;
  return t;
}

static uint64_t sat_add(uint64_t a, uint64_t b) {
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* What n AllocationSampled samples whose objects reach `rest` bytes past
 * their sampling points stand for. */
static uint64_t sampled_bytes(uint64_t n, uint64_t rest) {
  uint64_t base = n > UINT64_MAX / SAMPLING_BYTES_PER_SAMPLE
                      ? UINT64_MAX
                      : n * SAMPLING_BYTES_PER_SAMPLE;
  return sat_add(base, rest);
}

/* The name as dotnet-gcdump shows it: generic arity marks ("`2") dropped,
 * brackets of generic arguments as angle brackets, "<>" as "[]" (arrays),
 * then made printable. In place; returns the new length. */
static size_t name_normalize(char *s) {
  char *o = s;
  for (const char *p = s; *p != 0; p++) {
    if (*p == '`' && p[1] >= '0' && p[1] <= '9') {
      while (p[1] >= '0' && p[1] <= '9')
        p++;
      continue;
    }
    char c = *p == '[' ? '<' : *p == ']' ? '>' : *p;
    if (c == '>' && o > s && o[-1] == '<') {
      o[-1] = '[';
      c = ']';
    }
    *o++ = c;
  }
  *o = 0;
  return wire_utf8_printable(s);
}

/* The type of that id; "(other)" when the table is full. */
static struct type *type_or_other(struct gctypes *g, uint64_t id) {
  struct type *t = type_get(g, id);
  if (t != NULL)
    return t;
  g->capped = 1;
  return &g->other;
}

/* Sets the name of t from UTF-16LE units, unless it has one. */
static void type_name_set(struct gctypes *g, struct type *t,
                          const uint8_t *utf16, size_t units) {
  if (t->name_off != NO_NAME || units == 0)
    return;
  if (units > GCTYPES_NAME_MAX)
    units = GCTYPES_NAME_MAX; /* a surrogate pair cut here: U+FFFD */
  long n = wire_utf16_to_utf8(utf16, units, g->scratch, sizeof(g->scratch));
  if (n <= 0)
    return;
  size_t len = name_normalize(g->scratch);
  if (len > GCTYPES_NAME_MAX)
    len = wire_utf8_cut(g->scratch, GCTYPES_NAME_MAX);
  g->scratch[len] = 0;
  if (len == 0)
    return;
  if (g->names_cap - g->names_len < len + 1) {
    size_t cap = g->names_cap ? g->names_cap : 4096;
    while (cap - g->names_len < len + 1 && cap < g->lim.max_names)
      cap *= 2;
    if (cap > g->lim.max_names)
      cap = g->lim.max_names;
    if (cap - g->names_len < len + 1) {
      g->names_dropped++;
      return;
    }
    char *p = realloc(g->names, cap);
    if (p == NULL) {
      g->names_dropped++;
      return;
    }
    g->names = p;
    g->names_cap = cap;
  }
  memcpy(g->names + g->names_len, g->scratch, len + 1);
  t->name_off = (uint32_t)g->names_len;
  t->name_len = (uint32_t)len;
  g->names_len += len + 1;
}

/* Follows the capture thread's sequence numbers: counts the gaps. */
static void sequence_check(struct gctypes *g, const struct nettrace_event *ev) {
  uint64_t tid = ev->capture_thread_id;
  if (tid == 0 || ev->sequence == 0)
    return;
  uint32_t mask = g->thread_slots - 1;
  uint32_t h = hash64(tid) & mask;
  for (; g->threads[h].tid != 0; h = (h + 1) & mask) {
    if (g->threads[h].tid != tid)
      continue;
    uint32_t last = g->threads[h].last;
    /* later numbers only: an older one (a reordered or repeated event)
     * tells nothing about loss */
    if ((int32_t)(ev->sequence - last) > 0) {
      g->lost_events += ev->sequence - last - 1;
      g->threads[h].last = ev->sequence;
    }
    return;
  }
  if (g->nthreads == g->lim.max_threads) {
    g->unchecked_events++;
    return;
  }
  g->nthreads++;
  g->threads[h].tid = tid;
  g->threads[h].last = ev->sequence;
  g->lost_events += ev->sequence - 1; /* each thread starts at 1 */
}

/* ---- payloads ---- */

static int take_ptr(struct wire_cursor *c, uint32_t ptr_size, uint64_t *out) {
  uint32_t v32 = 0;
  if (ptr_size == 8)
    return wire_u64(c, out);
  if (wire_u32(c, &v32) != 0)
    return -1;
  *out = v32;
  return 0;
}

static int on_gc_start(struct gctypes *g, const struct nettrace_event *ev,
                       uint32_t ptr_size) {
  (void)ptr_size;
  struct wire_cursor c = wire_cursor(ev->payload, ev->payload_len);
  uint32_t count = 0, depth = 0, reason = 0, type = 0;
  if (ev->meta->version < 1)
    return 0; /* no Depth nor Type: not a runtime of this decade */
  if (wire_u32(&c, &count) != 0 || wire_u32(&c, &depth) != 0 ||
      wire_u32(&c, &reason) != 0 || wire_u32(&c, &type) != 0)
    return -1;
  if (!g->gc_started && depth == 2 && type == GC_TYPE_BLOCKING &&
      reason == GC_REASON_INDUCED) {
    g->gc_started = 1;
    g->gc_number = count;
    g->gc_start_ts = ev->timestamp;
  }
  return 0;
}

static int on_gc_end(struct gctypes *g, const struct nettrace_event *ev,
                     uint32_t ptr_size) {
  (void)ptr_size;
  if (ev->payload_len < 4)
    return -1; /* Count, the only field needed */
  if (g->gc_started && !g->gc_ended && wire_le32(ev->payload) == g->gc_number) {
    g->gc_ended = 1;
    g->gc_end_ts = ev->timestamp;
  }
  return 0;
}

static int on_heap_stats(struct gctypes *g, const struct nettrace_event *ev,
                         uint32_t ptr_size) {
  (void)ptr_size;
  struct wire_cursor c = wire_cursor(ev->payload, ev->payload_len);
  uint64_t v[10] = {0}, poh = 0;
  /* the first after the snapshot's GC ended: the heap it left */
  if (!g->gc_ended || g->gc_heap_bytes != 0)
    return 0;
  for (int i = 0; i < 10; i++)
    if (wire_u64(&c, &v[i]) != 0)
      return -1;
  if (wire_skip(&c, 3 * 4 + 2) != 0)
    return -1;
  if (ev->meta->version >= 2 && wire_u64(&c, &poh) != 0)
    return -1;
  uint64_t sum = poh;
  for (int i = 0; i < 8; i += 2)
    sum = sat_add(sum, v[i]);
  g->gc_heap_bytes = sum;
  return 0;
}

static int on_bulk_type(struct gctypes *g, const struct nettrace_event *ev,
                        uint32_t ptr_size) {
  (void)ptr_size;
  struct wire_cursor c = wire_cursor(ev->payload, ev->payload_len);
  uint32_t count = 0;
  uint16_t clr = 0;
  if (wire_u32(&c, &count) != 0 || wire_u16(&c, &clr) != 0)
    return -1;
  /* a value takes at least 35 bytes: a count past that is a lie */
  if (count > c.len / 35)
    return -1;
  for (uint32_t i = 0; i < count; i++) {
    uint64_t id = 0, module = 0;
    uint32_t name_id = 0, flags = 0, nparams = 0;
    uint8_t elem = 0;
    const uint8_t *name = NULL;
    size_t units = 0;
    if (wire_u64(&c, &id) != 0 || wire_u64(&c, &module) != 0 ||
        wire_u32(&c, &name_id) != 0 || wire_u32(&c, &flags) != 0 ||
        wire_u8(&c, &elem) != 0 || wire_utf16z(&c, &name, &units) != 0 ||
        wire_u32(&c, &nparams) != 0 || nparams > c.len / 8 ||
        wire_skip(&c, (size_t)nparams * 8) != 0)
      return -1;
    struct type *t = type_get(g, id);
    if (t == NULL)
      g->names_dropped++;
    else
      type_name_set(g, t, name, units);
  }
  return 0;
}

static int on_bulk_node(struct gctypes *g, const struct nettrace_event *ev,
                        uint32_t ptr_size) {
  struct wire_cursor c = wire_cursor(ev->payload, ev->payload_len);
  uint32_t index = 0, count = 0;
  uint16_t clr = 0;
  size_t value_len = ptr_size + 24u;
  if (wire_u32(&c, &index) != 0 || wire_u32(&c, &count) != 0 ||
      wire_u16(&c, &clr) != 0 || count > c.len / value_len)
    return -1; /* before anything is counted: the event is lost whole */
  if (g->second_walk || (g->walk_started && index == 0)) {
    g->second_walk = 1;
    return 0;
  }
  if (!g->walk_started) {
    g->walk_started = 1;
    g->lost_node_events += index; /* the walk starts at 0 */
  } else if (index > g->next_index) {
    g->lost_node_events += index - g->next_index;
  } else if (index < g->next_index) {
    return -1; /* repeated or out of order: not counted twice */
  }
  g->next_index = index + 1;
  g->node_events++;
  for (uint32_t i = 0; i < count; i++) {
    uint64_t addr = 0, size = 0, id = 0, edges = 0;
    take_ptr(&c, ptr_size, &addr); /* the length was checked above */
    wire_u64(&c, &size);
    wire_u64(&c, &id);
    wire_u64(&c, &edges);
    struct type *t = type_or_other(g, id);
    g->node_bytes = sat_add(g->node_bytes, size);
    t->count++;
    t->bytes = sat_add(t->bytes, size);
  }
  return 0;
}

/* One allocation event of a type (by id, named from the event): a tick
 * and the bytes it stands for, or a sample and its object's bytes past the
 * sampling point. */
static void alloc_add(struct gctypes *g, uint64_t id, const uint8_t *name,
                      size_t units, int sampled, uint64_t bytes) {
  struct type *t = type_or_other(g, id);
  if (t != &g->other)
    type_name_set(g, t, name, units);
  if (sampled) {
    t->samples++;
    t->sampled_rest = sat_add(t->sampled_rest, bytes);
  } else {
    t->count++;
    t->bytes = sat_add(t->bytes, bytes);
  }
}

static int on_allocation_tick(struct gctypes *g,
                              const struct nettrace_event *ev,
                              uint32_t ptr_size) {
  struct wire_cursor c = wire_cursor(ev->payload, ev->payload_len);
  uint32_t amount = 0, kind = 0;
  uint16_t clr = 0;
  uint64_t amount64 = 0, id = 0;
  const uint8_t *name = NULL;
  size_t units = 0;
  if (ev->meta->version < 2)
    return 0; /* no type in it */
  if (wire_u32(&c, &amount) != 0 || wire_u32(&c, &kind) != 0 ||
      wire_u16(&c, &clr) != 0 || wire_u64(&c, &amount64) != 0 ||
      take_ptr(&c, ptr_size, &id) != 0 || wire_utf16z(&c, &name, &units) != 0)
    return -1;
  g->tick_events++;
  alloc_add(g, id, name, units, 0, amount64);
  return 0;
}

static int on_allocation_sampled(struct gctypes *g,
                                 const struct nettrace_event *ev,
                                 uint32_t ptr_size) {
  struct wire_cursor c = wire_cursor(ev->payload, ev->payload_len);
  uint32_t kind = 0;
  uint16_t clr = 0;
  uint64_t id = 0, addr = 0, size = 0, offset = 0;
  const uint8_t *name = NULL;
  size_t units = 0;
  if (wire_u32(&c, &kind) != 0 || wire_u16(&c, &clr) != 0 ||
      take_ptr(&c, ptr_size, &id) != 0 || wire_utf16z(&c, &name, &units) != 0 ||
      take_ptr(&c, ptr_size, &addr) != 0 || wire_u64(&c, &size) != 0 ||
      wire_u64(&c, &offset) != 0)
    return -1;
  g->sampled_events++;
  alloc_add(g, id, name, units, 1, size > offset ? size - offset : 0);
  return 0;
}

/* ---- API ---- */

struct gctypes *gctypes_new(enum gctypes_mode mode,
                            const struct gctypes_limits *limits) {
  if (mode != GCTYPES_HEAP && mode != GCTYPES_ALLOC)
    return NULL;
  struct gctypes *g = calloc(1, sizeof(*g));
  if (g == NULL)
    return NULL;
  g->mode = mode;
  if (limits != NULL)
    g->lim = *limits;
  if (g->lim.max_types == 0)
    g->lim.max_types = DEFAULT_MAX_TYPES;
  if (g->lim.max_types > (1u << 24))
    g->lim.max_types = 1u << 24;
  if (g->lim.max_names == 0)
    g->lim.max_names = DEFAULT_MAX_NAMES;
  if (g->lim.max_names > UINT32_MAX / 2)
    g->lim.max_names = UINT32_MAX / 2;
  if (g->lim.max_threads == 0)
    g->lim.max_threads = DEFAULT_MAX_THREADS;
  if (g->lim.max_threads > (1u << 20))
    g->lim.max_threads = 1u << 20;
  g->thread_slots = pow2_at_least((uint64_t)g->lim.max_threads * 2);
  g->threads = calloc(g->thread_slots, sizeof(*g->threads));
  if (g->threads == NULL) {
    free(g);
    return NULL;
  }
  return g;
}

void gctypes_free(struct gctypes *g) {
  if (g == NULL)
    return;
  free(g->types);
  free(g->slots);
  free(g->names);
  free(g->threads);
  free(g);
}

/* The events each mode decodes. */
typedef int (*decoder)(struct gctypes *g, const struct nettrace_event *ev,
                       uint32_t ptr_size);
static const struct {
  uint32_t event_id;
  enum gctypes_mode mode;
  decoder decode;
} decoders[] = {
    {EV_GC_START, GCTYPES_HEAP, on_gc_start},
    {EV_GC_END, GCTYPES_HEAP, on_gc_end},
    {EV_GC_HEAP_STATS, GCTYPES_HEAP, on_heap_stats},
    {EV_BULK_TYPE, GCTYPES_HEAP, on_bulk_type},
    {EV_BULK_NODE, GCTYPES_HEAP, on_bulk_node},
    {EV_ALLOCATION_TICK, GCTYPES_ALLOC, on_allocation_tick},
    {EV_ALLOCATION_SAMPLED, GCTYPES_ALLOC, on_allocation_sampled},
};

void gctypes_event(struct gctypes *g, const struct nettrace_event *ev,
                   const struct nettrace_trace_info *ti) {
  sequence_check(g, ev);
  if (strcmp(ev->meta->provider, GCTYPES_PROVIDER) != 0)
    return;
  if (ti != NULL)
    g->qpc_frequency = ti->qpc_frequency;
  uint32_t ptr_size = ti != NULL ? ti->pointer_size : 0;
  for (size_t i = 0; i < sizeof(decoders) / sizeof(decoders[0]); i++) {
    if (decoders[i].event_id != ev->meta->event_id ||
        decoders[i].mode != g->mode)
      continue;
    /* a trace of another pointer size is not one these layouts know */
    if ((ptr_size != 4 && ptr_size != 8) ||
        decoders[i].decode(g, ev, ptr_size) != 0)
      g->bad_events++;
    return;
  }
}

int gctypes_snapshot_done(const struct gctypes *g) {
  return g->mode == GCTYPES_HEAP && g->gc_ended;
}

/* Appends "; "-separated parts to g->reason. */
__attribute__((format(printf, 2, 3))) static void
reason_add(struct gctypes *g, const char *fmt, ...) {
  size_t len = strlen(g->reason);
  if (len + 3 >= sizeof(g->reason))
    return;
  if (len > 0) {
    memcpy(g->reason + len, "; ", 3);
    len += 2;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g->reason + len, sizeof(g->reason) - len, fmt, ap);
  va_end(ap);
}

/* AllocationSampled when the runtime sent any: GCAllocationTick events of
 * the same session are then the coarser view of the same allocations. */
static int use_sampled(const struct gctypes *g) {
  return g->mode == GCTYPES_ALLOC && g->sampled_events > 0;
}

void gctypes_finish(struct gctypes *g, int stream_rc, uint64_t reader_dropped) {
  if (g->finished)
    return;
  g->finished = 1;
  g->stream_rc = stream_rc;
  g->reader_dropped = reader_dropped;
  g->lost_events = sat_add(g->lost_events, reader_dropped);
  g->reason[0] = 0;
  if (g->mode == GCTYPES_HEAP) {
    if (!g->gc_started)
      reason_add(g, "no heap snapshot: no induced blocking gen2 GC started");
    else if (!g->gc_ended)
      reason_add(g, "the snapshot's GC %" PRIu32 " never ended in the stream",
                 g->gc_number);
    if (g->gc_started && g->node_events == 0)
      reason_add(g, "no heap nodes");
    if (g->lost_node_events > 0)
      reason_add(g, "%" PRIu64 " of %" PRIu64 " node events lost",
                 g->lost_node_events, g->lost_node_events + g->node_events);
  } else if (g->tick_events == 0 && g->sampled_events == 0) {
    reason_add(g, "no allocation events");
  }
  if (stream_rc != 0 && !(g->mode == GCTYPES_HEAP && g->gc_ended))
    reason_add(g, "the stream ended early (%s)",
               stream_rc == -ENODATA ? "cut" : "malformed");
  if (g->lost_events > 0)
    reason_add(g, "%" PRIu64 " events lost", g->lost_events);
  if (g->bad_events > 0)
    reason_add(g, "%" PRIu64 " events malformed", g->bad_events);
  /* how much is missing: the GC's own figure for its heap (generation
   * sizes, free space in them included) beside what the nodes add up to */
  if (g->reason[0] != 0 && g->gc_heap_bytes > 0)
    reason_add(
        g, "objects of %" PRIu64 " bytes seen in a heap of %" PRIu64 " bytes",
        g->node_bytes, g->gc_heap_bytes);
}

static uint64_t type_count(const struct gctypes *g, const struct type *t) {
  return use_sampled(g) ? t->samples : t->count;
}

static uint64_t type_bytes(const struct gctypes *g, const struct type *t) {
  return use_sampled(g) ? sampled_bytes(t->samples, t->sampled_rest) : t->bytes;
}

void gctypes_summary(const struct gctypes *g, struct gctypes_summary *out) {
  int sampled = use_sampled(g);
  *out = (struct gctypes_summary){
      .mode = g->mode,
      .types = 0,
      .capped = g->capped,
      .lost_events = g->lost_events,
      .lost_node_events = g->lost_node_events,
      .unchecked_events = g->unchecked_events,
      .names_dropped = g->names_dropped,
      .bad_events = g->bad_events,
      .gc_started = g->gc_started,
      .gc_ended = g->gc_ended,
      .gc_number = g->gc_number,
      .gc_pause_ms = -1,
      .gc_heap_bytes = g->gc_heap_bytes,
      .node_events = g->node_events,
      .method = g->mode != GCTYPES_ALLOC ? ""
                : sampled                ? "AllocationSampled"
                : g->tick_events > 0     ? "GCAllocationTick"
                                         : "",
      .tick_events = g->tick_events,
      .sampled_events = g->sampled_events,
  };
  out->other_count = type_count(g, &g->other);
  out->other_bytes = type_bytes(g, &g->other);
  out->count = out->other_count;
  out->bytes = out->other_bytes;
  for (uint32_t i = 0; i < g->ntypes; i++) {
    const struct type *t = &g->types[i];
    uint64_t n = type_count(g, t);
    if (n == 0)
      continue; /* named by BulkType, no object of it */
    out->types++;
    out->count = sat_add(out->count, n);
    out->bytes = sat_add(out->bytes, type_bytes(g, t));
  }
  if (g->gc_ended && g->qpc_frequency > 0 && g->gc_end_ts >= g->gc_start_ts)
    out->gc_pause_ms = (double)(g->gc_end_ts - g->gc_start_ts) * 1000.0 /
                       (double)g->qpc_frequency;
  out->reason = g->reason;
  out->complete = g->finished && g->reason[0] == 0;
  if (!g->finished)
    out->reason = "not finished";
}

/* ---- results ---- */

/* Whether a ranks before b: more bytes, then more objects, then lower id. */
static int ranks_before(const struct gctypes_row *a,
                        const struct gctypes_row *b) {
  if (a->bytes != b->bytes)
    return a->bytes > b->bytes;
  if (a->count != b->count)
    return a->count > b->count;
  return a->id < b->id;
}

size_t gctypes_top(const struct gctypes *g, struct gctypes_row *rows,
                   size_t n) {
  struct gctypes_summary s;
  gctypes_summary(g, &s);
  size_t used = 0;
  for (uint32_t i = 0; i < g->ntypes && n > 0; i++) {
    const struct type *t = &g->types[i];
    struct gctypes_row r = {
        .name = t->name_off == NO_NAME ? "" : g->names + t->name_off,
        .id = t->id,
        .count = type_count(g, t),
        .bytes = type_bytes(g, t),
    };
    if (r.count == 0)
      continue;
    r.share = s.bytes > 0 ? (double)r.bytes / (double)s.bytes : 0;
    /* insertion into the n best so far */
    size_t k = used < n ? used++ : n;
    if (k == n) {
      if (!ranks_before(&r, &rows[n - 1]))
        continue;
      k = n - 1;
    }
    while (k > 0 && ranks_before(&r, &rows[k - 1])) {
      rows[k] = rows[k - 1];
      k--;
    }
    rows[k] = r;
  }
  return used;
}

/* An output buffer with snprintf's contract: len counts what was wanted. */
struct out {
  char *buf;
  size_t cap, len;
};

__attribute__((format(printf, 2, 3))) static void
out_printf(struct out *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *p = o->len < o->cap ? o->buf + o->len : NULL;
  size_t room = o->len < o->cap ? o->cap - o->len : 0;
  int n = vsnprintf(p, room, fmt, ap);
  va_end(ap);
  if (n > 0)
    o->len += (size_t)n;
}

/* The name to show: a type the stream never named shows its id. */
static const char *row_name(const struct gctypes_row *r, char *buf,
                            size_t cap) {
  if (r->name[0] != 0)
    return r->name;
  snprintf(buf, cap, "(type 0x%" PRIx64 ")", r->id);
  return buf;
}

/* Bytes as the project writes them: MB = 1,000,000 bytes. */
void gctypes_human_bytes(uint64_t b, char *buf, size_t cap) {
  if (b < 1000)
    snprintf(buf, cap, "%" PRIu64 " B", b);
  else if (b < 1000000)
    snprintf(buf, cap, "%.1f kB", (double)b / 1e3);
  else if (b < 1000000000)
    snprintf(buf, cap, "%.1f MB", (double)b / 1e6);
  else
    snprintf(buf, cap, "%.2f GB", (double)b / 1e9);
}

static const char *action_name(const struct gctypes *g) {
  return g->mode == GCTYPES_HEAP ? "heap-types" : "alloc-types";
}

static void format_text(const struct gctypes *g, const struct gctypes_row *rows,
                        size_t n, const struct gctypes_summary *s,
                        struct out *o) {
  char name[64];
  if (g->mode == GCTYPES_HEAP)
    out_printf(o,
               "heap-types: %" PRIu64 " bytes in %" PRIu64
               " objects of %" PRIu32 " types",
               s->bytes, s->count, s->types);
  else
    out_printf(o,
               "alloc-types (%s): %" PRIu64 " samples, %" PRIu64
               " bytes estimated, %" PRIu32 " types",
               s->method[0] ? s->method : "no events", s->count, s->bytes,
               s->types);
  if (s->complete)
    out_printf(o, ", complete\n");
  else
    out_printf(o, ", INCOMPLETE: %s\n", s->reason);
  out_printf(o, "%15s %10s %6s  %s\n", "BYTES",
             g->mode == GCTYPES_HEAP ? "OBJECTS" : "SAMPLES", "SHARE", "TYPE");
  for (size_t i = 0; i < n; i++)
    out_printf(o, "%15" PRIu64 " %10" PRIu64 " %5.1f%%  %s\n", rows[i].bytes,
               rows[i].count, rows[i].share * 100,
               row_name(&rows[i], name, sizeof(name)));
  if (s->capped)
    out_printf(o, "%15" PRIu64 " %10" PRIu64 " %5.1f%%  (other)\n",
               s->other_bytes, s->other_count,
               s->bytes ? (double)s->other_bytes * 100 / (double)s->bytes : 0);
}

/* A CSV field: quoted when it holds a comma, a quote or a line break. */
static void csv_field(struct out *o, const char *s) {
  if (strpbrk(s, ",\"\r\n") == NULL) {
    out_printf(o, "%s", s);
    return;
  }
  out_printf(o, "\"");
  for (; *s != 0; s++)
    out_printf(o, *s == '"' ? "\"\"" : "%c", *s);
  out_printf(o, "\"");
}

static void format_csv(const struct gctypes *g, const struct gctypes_row *rows,
                       size_t n, const struct gctypes_summary *s,
                       struct out *o) {
  char name[64];
  out_printf(o, "type,%s,bytes\n",
             g->mode == GCTYPES_HEAP ? "count" : "samples");
  for (size_t i = 0; i < n; i++) {
    csv_field(o, row_name(&rows[i], name, sizeof(name)));
    out_printf(o, ",%" PRIu64 ",%" PRIu64 "\n", rows[i].count, rows[i].bytes);
  }
  if (s->capped)
    out_printf(o, "(other),%" PRIu64 ",%" PRIu64 "\n", s->other_count,
               s->other_bytes);
}

static void json_string(struct out *o, const char *s) {
  out_printf(o, "\"");
  for (; *s != 0; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      out_printf(o, "\\%c", c);
    else if (c < 0x20)
      out_printf(o, "\\u%04x", c);
    else
      out_printf(o, "%c", c);
  }
  out_printf(o, "\"");
}

static void format_json(const struct gctypes *g, const struct gctypes_row *rows,
                        size_t n, const struct gctypes_summary *s,
                        struct out *o) {
  char name[64];
  const char *unit = g->mode == GCTYPES_HEAP ? "count" : "samples";
  out_printf(o,
             "{\"action\":\"%s\",\"complete\":%s,\"reason\":", action_name(g),
             s->complete ? "true" : "false");
  json_string(o, s->complete ? "" : s->reason);
  out_printf(o,
             ",\"%s\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"types\":%" PRIu32
             ",\"lost_events\":%" PRIu64 ",\"malformed_events\":%" PRIu64,
             unit, s->count, s->bytes, s->types, s->lost_events, s->bad_events);
  if (g->mode == GCTYPES_HEAP)
    out_printf(o,
               ",\"lost_node_events\":%" PRIu64 ",\"gc\":{\"number\":%" PRIu32
               ",\"ended\":%s,\"pause_ms\":%.3f,\"heap_bytes\":%" PRIu64 "}",
               s->lost_node_events, s->gc_number,
               s->gc_ended ? "true" : "false", s->gc_pause_ms,
               s->gc_heap_bytes);
  else
    out_printf(o, ",\"method\":\"%s\"", s->method);
  out_printf(o, ",\"other\":{\"%s\":%" PRIu64 ",\"bytes\":%" PRIu64 "}", unit,
             s->other_count, s->other_bytes);
  out_printf(o, ",\"top\":[");
  for (size_t i = 0; i < n; i++) {
    out_printf(o, "%s{\"type\":", i ? "," : "");
    json_string(o, row_name(&rows[i], name, sizeof(name)));
    out_printf(o,
               ",\"id\":\"0x%" PRIx64 "\",\"%s\":%" PRIu64 ",\"bytes\":%" PRIu64
               ",\"share\":%.4f}",
               rows[i].id, unit, rows[i].count, rows[i].bytes, rows[i].share);
  }
  out_printf(o, "]}\n");
}

/* The longest name a compact line shows, in bytes. */
#define COMPACT_NAME_MAX 60

static size_t format_compact(const struct gctypes *g,
                             const struct gctypes_row *rows, size_t n,
                             char *buf, size_t cap) {
  size_t len = 0;
  if (cap > 0)
    buf[0] = 0;
  for (size_t i = 0; i < n; i++) {
    char name[64], shown[COMPACT_NAME_MAX + 4], size[32], line[160];
    const char *nm = row_name(&rows[i], name, sizeof(name));
    size_t nl = strlen(nm);
    if (nl > COMPACT_NAME_MAX) {
      nl = wire_utf8_cut(nm, COMPACT_NAME_MAX - 3);
      memcpy(shown, nm, nl);
      memcpy(shown + nl, "...", 4);
    } else {
      memcpy(shown, nm, nl + 1);
    }
    gctypes_human_bytes(rows[i].bytes, size, sizeof(size));
    int w = snprintf(line, sizeof(line), "%s%s %" PRIu64 " %s %s (%.0f %%)",
                     i ? "; " : "", shown, rows[i].count,
                     g->mode == GCTYPES_HEAP ? "objects" : "samples", size,
                     rows[i].share * 100);
    if (w < 0 || (size_t)w >= sizeof(line) || len + (size_t)w + 1 > cap)
      break;
    memcpy(buf + len, line, (size_t)w + 1);
    len += (size_t)w;
  }
  return len;
}

size_t gctypes_format(const struct gctypes *g, enum gctypes_format fmt,
                      size_t n, char *buf, size_t cap) {
  struct gctypes_row rows[GCTYPES_FORMAT_MAX_ROWS];
  struct gctypes_summary s;
  struct out o = {.buf = buf, .cap = cap};
  if (n > sizeof(rows) / sizeof(rows[0]))
    n = sizeof(rows) / sizeof(rows[0]);
  n = gctypes_top(g, rows, n);
  gctypes_summary(g, &s);
  if (cap > 0)
    buf[0] = 0;
  switch (fmt) {
  case GCTYPES_TEXT:
    format_text(g, rows, n, &s, &o);
    break;
  case GCTYPES_CSV:
    format_csv(g, rows, n, &s, &o);
    break;
  case GCTYPES_JSON:
    format_json(g, rows, n, &s, &o);
    break;
  case GCTYPES_COMPACT:
    return format_compact(g, rows, n, buf, cap);
  }
  return o.len;
}

size_t gctypes_memory(const struct gctypes *g) {
  return sizeof(*g) + (size_t)g->cap_types * sizeof(struct type) +
         (size_t)g->nslots * sizeof(uint32_t) + g->names_cap +
         (size_t)g->thread_slots * sizeof(struct thread_seq);
}

size_t gctypes_worst_bytes(const struct gctypes_limits *limits) {
  struct gctypes_limits l =
      limits != NULL ? *limits : (struct gctypes_limits){0};
  struct gctypes *g = gctypes_new(GCTYPES_HEAP, &l);
  if (g == NULL)
    return 0;
  uint32_t max_types = g->lim.max_types;
  size_t names = g->lim.max_names;
  size_t threads = (size_t)g->thread_slots * sizeof(struct thread_seq);
  gctypes_free(g);
  size_t slots = pow2_at_least((uint64_t)max_types * 2);
  /* while the index grows, the old one (half the size) is still held */
  return sizeof(struct gctypes) + (size_t)max_types * sizeof(struct type) +
         slots * sizeof(uint32_t) * 3 / 2 + names + threads;
}
