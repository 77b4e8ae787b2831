/**
 * collectd-dotnet - plugin/nettrace.c
 *
 * Incremental reader of the nettrace V4/V5 stream (see nettrace.h).
 *
 * The stream, as a runtime writes it (all integers little endian):
 *
 *   "Nettrace"                      8 bytes magic
 *   int32 20, "!FastSerialization.1" the FastSerialization stream header
 *   object*                         Trace first, then blocks in any order
 *   0x01                            NullReference tag: end of stream
 *
 * An object:
 *
 *   0x05                BeginPrivateObject
 *   0x05 0x01           type: BeginPrivateObject, NullReference (type of type)
 *   int32 version       type version
 *   int32 min_version   oldest reader version that understands the payload
 *   int32 len, name     type name, UTF-8 ("Trace", "EventBlock", ...)
 *   0x06                EndObject (of the type)
 *   payload
 *   0x06                EndObject (of the object)
 *
 * The Trace payload is 48 fixed bytes (nettrace_trace_info). Every other
 * object the runtime writes is a block:
 *
 *   int32 size          bytes of content, padding excluded
 *   0-3 zero bytes      padding to a 4-byte stream offset
 *   content[size]
 *
 * The reader works on units: the 32-byte stream header, then whole objects.
 * A unit that arrives complete in one feed is parsed in place; otherwise its
 * bytes are held in one buffer (at most max_object plus the object framing)
 * until it is complete. Events are delivered when their block is parsed.
 */
#include "nettrace.h"
#include "wire.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A runtime writes its events, metadata and stacks in blocks of at most
 * 100 KiB (ep-file.c: ep_event_block_alloc (100 * 1024, ...)): no object
 * of a real stream is larger than max_object. A counters session's
 * metadata is a few dozen entries of a few hundred bytes. */
#define NETTRACE_DEFAULT_MAX_OBJECT ((size_t)128 << 10)
#define NETTRACE_DEFAULT_MAX_METADATA ((size_t)256 << 10)
#define NETTRACE_DEFAULT_MAX_METAS 1024u

#define NETTRACE_MAGIC "Nettrace"
#define NETTRACE_FS_HEADER "!FastSerialization.1"
#define NETTRACE_STREAM_HEADER_LEN 32 /* magic 8, int32 20, 20 chars */

/* Metadata ids below this are found by index, the others by hash. */
#define META_DIRECT 64

/* FastSerialization tags. */
#define TAG_NULL_REFERENCE 1
#define TAG_BEGIN_PRIVATE_OBJECT 5
#define TAG_END_OBJECT 6

/* Longest type name accepted; the runtime's longest is "MetadataBlock". */
#define TYPE_NAME_MAX 64
/* tag, 0x05 0x01, version, min_version, name length: bytes before the name */
#define TYPE_FIXED_LEN 15
#define TRACE_PAYLOAD_LEN 48
/* A unit's bytes beyond its block's content: the type object, the size,
 * up to 3 bytes of padding and the EndObject tag. */
#define UNIT_FRAMING (TYPE_FIXED_LEN + TYPE_NAME_MAX + 1 + 4 + 3 + 1)
/* Metadata scratch kept between metadata events (a larger one, grown for
 * a large metadata event, is given back after it). */
#define SCRATCH_KEEP 4096

/* Uncompressed (V4) event header after its int32 EventSize:
 * MetadataId 4, Sequence 4, ThreadId 8, CaptureThreadId 8, Processor 4,
 * StackId 4, TimeStamp 8, ActivityId 16, RelatedActivityId 16,
 * PayloadSize 4. */
#define UNCOMPRESSED_HEADER_LEN 76

/* Event and metadata block header: HeaderSize 2, Flags 2, MinTimestamp 8,
 * MaxTimestamp 8, then HeaderSize - 20 reserved bytes. */
#define BLOCK_HEADER_MIN 20
#define BLOCK_FLAG_HEADER_COMPRESSION 0x1

/* Compressed event header flags. */
#define CH_METADATA_ID 0x01
#define CH_CAPTURE_THREAD_AND_SEQUENCE 0x02
#define CH_THREAD_ID 0x04
#define CH_STACK_ID 0x08
#define CH_ACTIVITY_ID 0x10
#define CH_RELATED_ACTIVITY_ID 0x20
#define CH_SORTED 0x40
#define CH_DATA_LENGTH 0x80

/* Metadata tags after the V1 field list (nettrace V5). */
#define META_TAG_OPCODE 1
#define META_TAG_V2_PARAMS 2

/* Nesting of OBJECT fields accepted in metadata. */
#define FIELD_DEPTH_MAX 16

enum reader_state { ST_STREAM_HEADER, ST_OBJECT, ST_DONE };

enum object_kind {
  OBJ_TRACE,
  OBJ_EVENT_BLOCK,
  OBJ_METADATA_BLOCK,
  OBJ_STACK_BLOCK,
  OBJ_SP_BLOCK,
  OBJ_UNKNOWN,
};

/* The framing of one object, as far as it is known. */
struct object_frame {
  enum object_kind kind;
  int32_t version;
  int32_t min_version;
  const uint8_t *name;
  size_t name_len;
  size_t type_len;    /* the leading tag and the type object */
  size_t content_off; /* blocks: offset of the content in the unit */
  size_t content_len;
  size_t total; /* the whole unit, trailing EndObject included */
};

/* The header fields carried from one event to the next within a block
 * (compressed headers are deltas against the previous event). */
struct event_header {
  struct nettrace_event ev; /* what the callback gets, built in place */
  uint32_t metadata_id;
  uint8_t activity_id[16];
  uint8_t related_activity_id[16];
};

/* A metadata field while its metadata is being parsed: names are offsets
 * into the string scratch, which may move. */
struct field_scratch {
  uint32_t name_off;
  uint32_t type;
  uint32_t nchildren;
  uint32_t span;
};

struct nettrace_reader {
  struct nettrace_limits limits;
  nettrace_event_cb cb;
  void *ctx;

  enum reader_state state;
  int have_trace;
  uint64_t offset; /* stream offset of the unit being assembled */

  /* The bytes of an incomplete unit. */
  uint8_t *held;
  size_t held_len;
  size_t held_cap;

  /* The unit being parsed, for error offsets. */
  const uint8_t *unit;
  uint64_t unit_off;

  int err;
  uint64_t err_off;
  char reason[128];

  struct nettrace_trace_info trace;
  struct nettrace_stats stats;

  /* Metadata: one allocation per entry, found by id through an open
   * addressing table of indexes + 1 into metas (0: empty slot). */
  struct nettrace_meta **metas;
  uint32_t nmetas;
  uint32_t metas_cap;
  uint32_t *table;
  uint32_t table_cap; /* power of two */
  /* ids below META_DIRECT (a runtime numbers its metadata from 1) */
  const struct nettrace_meta *direct[META_DIRECT];
  size_t meta_bytes;

  /* Scratch reused while parsing one metadata entry. */
  struct field_scratch *fields;
  uint32_t nfields;
  uint32_t fields_cap;
  char *strings;
  size_t strings_len;
  size_t strings_cap;
};

static int __attribute__((format(printf, 4, 5)))
reader_fail(struct nettrace_reader *r, int err, uint64_t off, const char *fmt,
            ...) {
  if (r->err != 0)
    return r->err;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
  va_end(ap);
  r->err = err;
  r->err_off = off;
  return err;
}

/* Stream offset of a pointer into the unit being parsed. */
static uint64_t unit_offset(const struct nettrace_reader *r, const uint8_t *p) {
  return r->unit_off + (uint64_t)(p - r->unit);
}

static int bad(struct nettrace_reader *r, const uint8_t *p, const char *what) {
  return reader_fail(r, -EBADMSG, unit_offset(r, p), "%s", what);
}

/* Grows *buf (elements of `size` bytes) to hold `want` elements, by
 * doubling but never beyond `max` elements: -E2BIG when want is more. */
static int grow(void **buf, size_t *cap, size_t want, size_t size, size_t first,
                size_t max) {
  if (want <= *cap)
    return 0;
  if (want > max)
    return -E2BIG;
  size_t n = *cap ? *cap : first;
  while (n < want) {
    if (n > SIZE_MAX / 2)
      return -ENOMEM;
    n *= 2;
  }
  if (n > max)
    n = max;
  if (n > SIZE_MAX / size)
    return -ENOMEM;
  void *p = realloc(*buf, n * size);
  if (p == NULL)
    return -ENOMEM;
  *buf = p;
  *cap = n;
  return 0;
}

/* ---- metadata storage ---- */

static uint32_t meta_hash(uint32_t id, uint32_t cap) {
  return (id * 2654435761u) & (cap - 1);
}

static const struct nettrace_meta *meta_hashed(struct nettrace_reader *r,
                                               uint32_t id) {
  if (r->table_cap == 0)
    return NULL;
  for (uint32_t i = meta_hash(id, r->table_cap);;
       i = (i + 1) & (r->table_cap - 1)) {
    uint32_t slot = r->table[i];
    if (slot == 0)
      return NULL;
    if (r->metas[slot - 1]->id == id)
      return r->metas[slot - 1];
  }
}

static inline const struct nettrace_meta *meta_find(struct nettrace_reader *r,
                                                    uint32_t id) {
  return id < META_DIRECT ? r->direct[id] : meta_hashed(r, id);
}

/* Rebuilds the table with twice the room when it is half full. */
static int meta_table_grow(struct nettrace_reader *r) {
  if ((uint64_t)(r->nmetas + 1) * 2 <= r->table_cap)
    return 0;
  uint32_t cap = r->table_cap ? r->table_cap * 2 : 64;
  uint32_t *t = calloc(cap, sizeof(*t));
  if (t == NULL)
    return -ENOMEM;
  for (uint32_t m = 0; m < r->nmetas; m++) {
    uint32_t i = meta_hash(r->metas[m]->id, cap);
    while (t[i] != 0)
      i = (i + 1) & (cap - 1);
    t[i] = m + 1;
  }
  free(r->table);
  r->table = t;
  r->table_cap = cap;
  return 0;
}

/* ---- metadata parsing ---- */

/* Appends `units` UTF-16LE code units to the string scratch as NUL-terminated
 * UTF-8; *off receives where. The scratch holds at most max_metadata bytes
 * (what a stored metadata could hold): -E2BIG beyond. */
static int scratch_string(struct nettrace_reader *r, const uint8_t *s,
                          size_t units, uint32_t *off) {
  size_t max = r->limits.max_metadata;
  if (r->strings_len >= max)
    return -E2BIG;
  /* A code unit becomes at most 3 UTF-8 bytes (a surrogate pair: 4 for 2);
   * what the scratch has left is the most it may take. */
  size_t room = units * 3 + 1; /* units < 2^31: no overflow */
  if (room > max - r->strings_len)
    room = max - r->strings_len;
  size_t cap = r->strings_cap;
  void *buf = r->strings;
  int rc = grow(&buf, &cap, r->strings_len + room, 1, 256, max);
  if (rc != 0)
    return rc;
  r->strings = buf;
  r->strings_cap = cap;
  long n = wire_utf16_to_utf8(s, units, r->strings + r->strings_len, room);
  if (n < 0)
    return -E2BIG; /* more than the scratch's room */
  *off = (uint32_t)r->strings_len;
  r->strings_len += (size_t)n + 1;
  return 0;
}

static int scratch_field(struct nettrace_reader *r, uint32_t type,
                         uint32_t name_off, uint32_t *index) {
  size_t cap = r->fields_cap;
  void *buf = r->fields;
  int rc = grow(&buf, &cap, (size_t)r->nfields + 1, sizeof(*r->fields), 16,
                r->limits.max_metadata / sizeof(*r->fields));
  if (rc != 0)
    return rc;
  if (cap > UINT32_MAX)
    cap = UINT32_MAX;
  r->fields = buf;
  r->fields_cap = (uint32_t)cap;
  *index = r->nfields;
  r->fields[r->nfields++] = (struct field_scratch){
      .name_off = name_off, .type = type, .nchildren = 0, .span = 0};
  return 0;
}

struct nettrace_layout nettrace_type_layout(uint32_t type) {
  /* grouped by layout; BOOLEAN is a Win32 BOOL, DATETIME a FILETIME */
#define L(type, kind, size)                                                    \
  [NETTRACE_TYPE_##type] = {NETTRACE_LAYOUT_##kind, size}
  static const struct nettrace_layout layouts[] = {
      L(OBJECT, OBJECT, 0), L(ARRAY, ARRAY, 0), L(STRING, STRING, 0),
      L(SBYTE, INT, 1), L(INT16, INT, 2), L(INT32, INT, 4), L(INT64, INT, 8),
      L(BOOLEAN, INT, 4), L(DATETIME, INT, 8),
      L(BYTE, UINT, 1), L(UINT16, UINT, 2), L(UINT32, UINT, 4), L(UINT64, UINT, 8),
      L(CHAR, UINT, 2), L(SINGLE, FLOAT, 4), L(DOUBLE, FLOAT, 8),
      L(DECIMAL, OPAQUE, 16), L(GUID, OPAQUE, 16)};
#undef L
  if (type >= sizeof(layouts) / sizeof(layouts[0]))
    return (struct nettrace_layout){NETTRACE_LAYOUT_UNKNOWN, 0};
  return layouts[type];
}

/* A value of its own in a payload: neither an OBJECT nor an ARRAY. */
static int type_is_primitive(uint32_t type) {
  return nettrace_type_layout(type).kind >= NETTRACE_LAYOUT_STRING;
}

/* Parses a field list into the scratch array, in pre-order.
 *
 * V1 layout (the metadata payload itself):
 *   int32 count, then per field:
 *     int32 type; [type == OBJECT: a nested field list]; UTF-16z name
 * V2 layout (inside a V2Params tag; arrays allowed):
 *   int32 count, then per field:
 *     int32 size (itself included); UTF-16z name; int32 type;
 *     [ARRAY: int32 element type, and so on]; [OBJECT: nested V2 list];
 *     padding up to size
 *
 * Returns 0, 1 if the list is not understood (unknown type, bad framing:
 * the event is then delivered raw), or -ENOMEM. */
static int parse_fields(struct nettrace_reader *r, struct wire_cursor *c,
                        int v2, int depth, uint32_t *count) {
  uint32_t n = 0;
  if (depth > FIELD_DEPTH_MAX || wire_u32(c, &n) != 0)
    return 1;
  /* Each field takes at least a type and an empty name (V1: 6 bytes). */
  if (n > c->len / 6)
    return 1;
  for (uint32_t i = 0; i < n; i++) {
    struct wire_cursor fc = *c;
    uint32_t name_off = 0;
    const uint8_t *name = NULL;
    size_t units = 0;
    int rc = 0;

    if (v2) {
      uint32_t size = 0;
      if (wire_u32(c, &size) != 0 || size < 4 || size - 4 > c->len)
        return 1;
      fc = wire_cursor(c->p, size - 4);
      wire_skip(c, size - 4);
      if (wire_utf16z(&fc, &name, &units) != 0)
        return 1;
      rc = scratch_string(r, name, units, &name_off);
      if (rc != 0)
        return rc;
    }

    /* The field, then one entry per ARRAY element level. */
    uint32_t first = r->nfields, cur = 0;
    rc = scratch_field(r, 0, name_off, &cur);
    if (rc != 0)
      return rc;
    for (;;) {
      uint32_t type = 0;
      if (wire_u32(&fc, &type) != 0)
        return 1;
      r->fields[cur].type = type;
      if (type == NETTRACE_TYPE_ARRAY) {
        if (!v2)
          return 1; /* V1 field lists cannot describe arrays */
        r->fields[cur].nchildren = 1;
        rc = scratch_field(r, 0, name_off, &cur);
        if (rc != 0)
          return rc;
        continue;
      }
      if (type == NETTRACE_TYPE_OBJECT) {
        uint32_t nchildren = 0;
        rc = parse_fields(r, &fc, v2, depth + 1, &nchildren);
        if (rc != 0)
          return rc;
        r->fields[cur].nchildren = nchildren;
      } else if (!type_is_primitive(type)) {
        return 1;
      }
      break;
    }
    for (uint32_t k = first; k <= cur; k++)
      r->fields[k].span = r->nfields - k - 1;

    if (!v2) {
      if (wire_utf16z(&fc, &name, &units) != 0)
        return 1;
      rc = scratch_string(r, name, units, &name_off);
      if (rc != 0)
        return rc;
      for (uint32_t k = first; k <= cur; k++)
        r->fields[k].name_off = name_off;
      *c = fc;
    }
  }
  *count = n;
  return 0;
}

/* Copies the parsed metadata out of the scratch into one allocation:
 *   struct nettrace_meta | struct nettrace_field[nfields] | strings */
static int meta_store(struct nettrace_reader *r, const struct nettrace_meta *m,
                      uint32_t provider_off, uint32_t event_name_off,
                      const uint8_t *at) {
  size_t fields_bytes = (size_t)r->nfields * sizeof(struct nettrace_field);
  size_t total = sizeof(struct nettrace_meta) + fields_bytes + r->strings_len;

  if (r->nmetas >= r->limits.max_metas)
    return reader_fail(r, -E2BIG, unit_offset(r, at),
                       "more than %" PRIu32 " metadata entries (max_metas)",
                       r->limits.max_metas);
  if (total > r->limits.max_metadata - r->meta_bytes)
    return reader_fail(r, -E2BIG, unit_offset(r, at),
                       "metadata exceeds %zu bytes (max_metadata)",
                       r->limits.max_metadata);

  size_t cap = r->metas_cap;
  void *buf = r->metas;
  if (grow(&buf, &cap, (size_t)r->nmetas + 1, sizeof(*r->metas), 64,
           r->limits.max_metas) != 0 ||
      meta_table_grow(r) != 0)
    return reader_fail(r, -ENOMEM, unit_offset(r, at), "out of memory");
  r->metas = buf;
  r->metas_cap = (uint32_t)(cap > UINT32_MAX ? UINT32_MAX : cap);

  uint8_t *chunk = malloc(total);
  if (chunk == NULL)
    return reader_fail(r, -ENOMEM, unit_offset(r, at), "out of memory");
  struct nettrace_meta *meta = (struct nettrace_meta *)chunk;
  struct nettrace_field *fields =
      (struct nettrace_field *)(chunk + sizeof(*meta));
  char *strings = (char *)(chunk + sizeof(*meta) + fields_bytes);

  memcpy(strings, r->strings, r->strings_len);
  for (uint32_t i = 0; i < r->nfields; i++)
    fields[i] = (struct nettrace_field){
        .name = strings + r->fields[i].name_off,
        .type = r->fields[i].type,
        .nchildren = r->fields[i].nchildren,
        .span = r->fields[i].span,
    };
  *meta = *m;
  meta->provider = strings + provider_off;
  meta->event_name = strings + event_name_off;
  meta->fields = fields;
  meta->nfields_total = r->nfields;

  uint32_t i = meta_hash(meta->id, r->table_cap);
  while (r->table[i] != 0)
    i = (i + 1) & (r->table_cap - 1);
  r->metas[r->nmetas++] = meta;
  r->table[i] = r->nmetas;
  if (meta->id < META_DIRECT)
    r->direct[meta->id] = meta;
  r->meta_bytes += total;
  r->stats.metas = r->nmetas;
  r->stats.metadata_bytes = r->meta_bytes;
  return 0;
}

/* The payload of a metadata "event":
 *   int32 MetadataId; UTF-16z ProviderName; int32 EventId; UTF-16z EventName;
 *   int64 Keywords; int32 Version; int32 Level;
 *   [V1 field list (see parse_fields)]
 *   then, in V5, tags: int32 TagPayloadBytes; uint8 TagKind; payload
 *     kind 1 OpCode: uint8 opcode
 *     kind 2 V2Params: a V2 field list, which replaces the (empty) V1 one */
static int parse_metadata_scratch(struct nettrace_reader *r, const uint8_t *p,
                                  size_t len) {
  struct wire_cursor c = wire_cursor(p, len);
  struct nettrace_meta m = {0};
  const uint8_t *s = NULL;
  size_t units = 0;
  uint32_t provider_off = 0, event_name_off = 0;
  int rc = 0;

  r->nfields = 0;
  r->strings_len = 0;
  if (wire_u32(&c, &m.id) != 0 || wire_utf16z(&c, &s, &units) != 0)
    return bad(r, p, "truncated metadata header");
  if ((rc = scratch_string(r, s, units, &provider_off)) != 0)
    goto nomem;
  if (wire_u32(&c, &m.event_id) != 0 || wire_utf16z(&c, &s, &units) != 0)
    return bad(r, p, "truncated metadata header");
  if ((rc = scratch_string(r, s, units, &event_name_off)) != 0)
    goto nomem;
  /* the provider and event names reach logs, terminals and (a provider)
   * type instances: made printable, in place (field names are only
   * compared) */
  wire_utf8_printable(r->strings + provider_off);
  wire_utf8_printable(r->strings + event_name_off);
  if (wire_u64(&c, &m.keywords) != 0 || wire_u32(&c, &m.version) != 0 ||
      wire_u32(&c, &m.level) != 0)
    return bad(r, p, "truncated metadata header");
  if (m.id == 0)
    return bad(r, p, "metadata id 0");
  if (meta_find(r, m.id) != NULL)
    return reader_fail(r, -EBADMSG, unit_offset(r, p),
                       "duplicate metadata id %" PRIu32, m.id);

  size_t names_len = r->strings_len;
  m.fields_ok = 1;
  if (c.len > 0) {
    rc = parse_fields(r, &c, 0, 0, &m.nfields);
    if (rc < 0)
      goto nomem;
    if (rc > 0)
      m.fields_ok = 0;
  }
  /* Tags; unreadable after a field list that was not understood. */
  while (m.fields_ok && c.len > 0) {
    uint32_t tag_len = 0;
    uint8_t kind = 0;
    if (wire_u32(&c, &tag_len) != 0 || wire_u8(&c, &kind) != 0 ||
        tag_len > c.len) {
      m.fields_ok = 0;
      break;
    }
    struct wire_cursor tc = wire_cursor(c.p, tag_len);
    wire_skip(&c, tag_len);
    if (kind == META_TAG_OPCODE) {
      if (wire_u8(&tc, &m.opcode) != 0)
        m.fields_ok = 0;
    } else if (kind == META_TAG_V2_PARAMS) {
      r->nfields = 0;
      r->strings_len = names_len;
      rc = parse_fields(r, &tc, 1, 0, &m.nfields);
      if (rc < 0)
        goto nomem;
      if (rc > 0)
        m.fields_ok = 0;
    }
    /* other kinds: skipped */
  }
  if (!m.fields_ok) {
    r->nfields = 0;
    r->strings_len = names_len;
    m.nfields = 0;
  }
  return meta_store(r, &m, provider_off, event_name_off, p);

nomem:
  if (rc == -E2BIG)
    return reader_fail(r, -E2BIG, unit_offset(r, p),
                       "metadata exceeds %zu bytes (max_metadata)",
                       r->limits.max_metadata);
  return reader_fail(r, -ENOMEM, unit_offset(r, p), "out of memory");
}

/* Parses one metadata event through the scratch, and gives the scratch
 * back when that event made it large: no session keeps what its largest
 * metadata needed. */
static int parse_metadata(struct nettrace_reader *r, const uint8_t *p,
                          size_t len) {
  int rc = parse_metadata_scratch(r, p, len);
  if (r->strings_cap > SCRATCH_KEEP) {
    free(r->strings);
    r->strings = NULL;
    r->strings_cap = 0;
  }
  if ((size_t)r->fields_cap * sizeof(*r->fields) > SCRATCH_KEEP) {
    free(r->fields);
    r->fields = NULL;
    r->fields_cap = 0;
  }
  r->strings_len = 0;
  r->nfields = 0;
  return rc;
}

/* ---- event and metadata blocks ---- */

/* Reads one event blob's header and locates its payload.
 *
 * Compressed (block flag bit 0), every field optional or a delta against the
 * previous event of the block:
 *   uint8 flags
 *   [flags & 0x01] varuint32 MetadataId
 *   [flags & 0x02] varuint32 SequenceNumber delta (value = prev + delta + 1),
 *                  varuint64 CaptureThreadId, varuint32 ProcessorNumber
 *                  (else SequenceNumber = prev + 1 unless MetadataId is 0)
 *                  The runtime writes the delta as value - prev - 1 even for
 *                  metadata, as TraceEvent reads it; NetTraceFormat_v5.md
 *                  words it differently, which matters only for metadata
 *                  records (whose numbers are unused).
 *   [flags & 0x04] varuint64 ThreadId
 *   [flags & 0x08] varuint32 StackId
 *   varuint64 TimeStamp delta
 *   [flags & 0x10] GUID ActivityId
 *   [flags & 0x20] GUID RelatedActivityId
 *   (flags & 0x40: IsSorted)
 *   [flags & 0x80] varuint32 PayloadSize
 *   payload, no padding
 *
 * Uncompressed:
 *   int32 EventSize (what follows, padding included: the runtime rounds
 *         header + payload up to 4; the next event starts right after)
 *   int32 MetadataId (bit 31: set when the event is NOT sorted, as the
 *         runtime writes it; the spec calls the bit IsSorted)
 *   int32 SequenceNumber; int64 ThreadId; int64 CaptureThreadId;
 *   int32 ProcessorNumber; int32 StackId; int64 TimeStamp;
 *   GUID ActivityId; GUID RelatedActivityId; int32 PayloadSize
 *   payload, zero padding to a 4-byte stream offset
 */

/* The longest compressed header: the flags, eight varints of at most ten
 * bytes (metadata id, sequence delta, capture thread, processor, thread,
 * stack, timestamp delta, payload size) and two GUIDs. */
#define COMPRESSED_HEADER_MAX (1 + 8 * 10 + 2 * 16)

/* A varint where ten bytes can be read: as wire_varu64 (NULL for more
 * than 64 bits), without a bound test per byte. */
static inline const uint8_t *varu64_at(const uint8_t *q, uint64_t *out) {
  uint64_t b, v = q[0];
  if (v < 0x80) {
    *out = v;
    return q + 1;
  }
  v &= 0x7f;
#define VAR_STEP(i)                                                            \
  b = q[i];                                                                    \
  v |= (b & 0x7f) << (7 * (i));                                                \
  if (b < 0x80) {                                                              \
    *out = v;                                                                  \
    return q + (i) + 1;                                                        \
  }
  VAR_STEP(1)
  VAR_STEP(2)
  VAR_STEP(3)
  VAR_STEP(4)
  VAR_STEP(5)
  VAR_STEP(6)
  VAR_STEP(7)
  VAR_STEP(8)
#undef VAR_STEP
  b = q[9];
  if (b > 1)
    return NULL; /* more than 64 bits, or more than ten bytes */
  *out = v | b << 63;
  return q + 10;
}

static inline const uint8_t *varu32_at(const uint8_t *q, uint32_t *out) {
  uint64_t v;
  q = varu64_at(q, &v);
  if (q == NULL || v > UINT32_MAX)
    return NULL;
  *out = (uint32_t)v;
  return q;
}

/* A compressed header where COMPRESSED_HEADER_MAX bytes can be read (all
 * but the last few events of a block): read_event's, without a bound test
 * per field. The cursor is then at the payload; -1 for a varint read_event
 * would refuse. */
static inline int read_compressed(struct wire_cursor *c,
                                  struct event_header *h) {
  const uint8_t *q = c->p;
  uint8_t flags = *q++;
  uint32_t delta32;
  uint64_t delta64;
  if ((flags & CH_METADATA_ID) && (q = varu32_at(q, &h->metadata_id)) == NULL)
    return -1;
  if (flags & CH_CAPTURE_THREAD_AND_SEQUENCE) {
    if ((q = varu32_at(q, &delta32)) == NULL ||
        (q = varu64_at(q, &h->ev.capture_thread_id)) == NULL ||
        (q = varu32_at(q, &h->ev.processor)) == NULL)
      return -1;
    h->ev.sequence += delta32 + 1;
  } else if (h->metadata_id != 0) {
    h->ev.sequence++;
  }
  if ((flags & CH_THREAD_ID) && (q = varu64_at(q, &h->ev.thread_id)) == NULL)
    return -1;
  if ((flags & CH_STACK_ID) && (q = varu32_at(q, &h->ev.stack_id)) == NULL)
    return -1;
  if ((q = varu64_at(q, &delta64)) == NULL)
    return -1;
  h->ev.timestamp += delta64;
  if (flags & CH_ACTIVITY_ID) {
    memcpy(h->activity_id, q, sizeof(h->activity_id));
    q += sizeof(h->activity_id);
  }
  if (flags & CH_RELATED_ACTIVITY_ID) {
    memcpy(h->related_activity_id, q, sizeof(h->related_activity_id));
    q += sizeof(h->related_activity_id);
  }
  if ((flags & CH_DATA_LENGTH) &&
      (q = varu32_at(q, &h->ev.payload_len)) == NULL)
    return -1;
  wire_skip(c, (size_t)(q - c->p));
  return 0;
}

/* read_compressed near the end of a block, every field's bounds tested:
 * -1 when the header is cut or a varint is refused. */
static int read_compressed_checked(struct wire_cursor *c,
                                   struct event_header *h) {
  uint8_t flags = 0;
  uint32_t delta32 = 0;
  uint64_t delta64 = 0;
  if (wire_u8(c, &flags) != 0)
    return -1;
  if ((flags & CH_METADATA_ID) && wire_varu32(c, &h->metadata_id) != 0)
    return -1;
  if (flags & CH_CAPTURE_THREAD_AND_SEQUENCE) {
    if (wire_varu32(c, &delta32) != 0 ||
        wire_varu64(c, &h->ev.capture_thread_id) != 0 ||
        wire_varu32(c, &h->ev.processor) != 0)
      return -1;
    h->ev.sequence += delta32 + 1;
  } else if (h->metadata_id != 0) {
    h->ev.sequence++;
  }
  if ((flags & CH_THREAD_ID) && wire_varu64(c, &h->ev.thread_id) != 0)
    return -1;
  if ((flags & CH_STACK_ID) && wire_varu32(c, &h->ev.stack_id) != 0)
    return -1;
  if (wire_varu64(c, &delta64) != 0)
    return -1;
  h->ev.timestamp += delta64;
  if ((flags & CH_ACTIVITY_ID) &&
      wire_take(c, h->activity_id, sizeof(h->activity_id)) != 0)
    return -1;
  if ((flags & CH_RELATED_ACTIVITY_ID) &&
      wire_take(c, h->related_activity_id, sizeof(h->related_activity_id)) != 0)
    return -1;
  if ((flags & CH_DATA_LENGTH) && wire_varu32(c, &h->ev.payload_len) != 0)
    return -1;
  return 0;
}

static int read_event(struct nettrace_reader *r, struct wire_cursor *c,
                      int compressed, struct event_header *h) {
  const uint8_t *start = c->p;
  if (compressed) {
    if ((c->len >= COMPRESSED_HEADER_MAX ? read_compressed(c, h)
                                         : read_compressed_checked(c, h)) != 0)
      goto truncated;
    if (h->ev.payload_len > c->len)
      return bad(r, start, "event payload overruns its block");
    h->ev.payload = c->p;
    wire_skip(c, h->ev.payload_len);
    return 0;
  }

  uint32_t size = 0, mid = 0;
  if (wire_u32(c, &size) != 0 || size > c->len)
    return bad(r, start, "event size overruns its block");
  if (size < UNCOMPRESSED_HEADER_LEN)
    return bad(r, start, "event size smaller than its header");
  struct wire_cursor ec = wire_cursor(c->p, size);
  wire_skip(c, size);
  if (wire_u32(&ec, &mid) != 0 || wire_u32(&ec, &h->ev.sequence) != 0 ||
      wire_u64(&ec, &h->ev.thread_id) != 0 ||
      wire_u64(&ec, &h->ev.capture_thread_id) != 0 ||
      wire_u32(&ec, &h->ev.processor) != 0 ||
      wire_u32(&ec, &h->ev.stack_id) != 0 ||
      wire_u64(&ec, &h->ev.timestamp) != 0 ||
      wire_take(&ec, h->activity_id, sizeof(h->activity_id)) != 0 ||
      wire_take(&ec, h->related_activity_id, sizeof(h->related_activity_id)) !=
          0 ||
      wire_u32(&ec, &h->ev.payload_len) != 0)
    goto truncated;
  h->metadata_id = mid & 0x7fffffffu;
  if (h->ev.payload_len > ec.len)
    return bad(r, start, "event payload overruns its event size");
  h->ev.payload = ec.p;
  return 0;

truncated:
  return bad(r, start, "truncated event header");
}

static int parse_event_block(struct nettrace_reader *r, const uint8_t *p,
                             size_t len, int metadata) {
  struct wire_cursor c = wire_cursor(p, len);
  uint16_t header_len = 0, flags = 0;
  if (wire_u16(&c, &header_len) != 0 || wire_u16(&c, &flags) != 0)
    return bad(r, p, "truncated block header");
  if (header_len < BLOCK_HEADER_MIN || header_len > len)
    return bad(r, p, "bad block header size");
  wire_skip(&c, header_len - 4u); /* min/max timestamps, reserved */

  int compressed = (flags & BLOCK_FLAG_HEADER_COMPRESSION) != 0;
  struct event_header h = {0}; /* compressed headers start from zeroes */
  h.ev.activity_id = h.activity_id;
  h.ev.related_activity_id = h.related_activity_id;
  while (c.len > 0) {
    int rc = read_event(r, &c, compressed, &h);
    if (rc != 0)
      return rc;
    if (metadata) {
      rc = parse_metadata(r, h.ev.payload, h.ev.payload_len);
      if (rc != 0)
        return rc;
      continue;
    }
    h.ev.meta = meta_find(r, h.metadata_id);
    if (h.ev.meta == NULL) {
      r->stats.dropped++;
      continue;
    }
    r->stats.events++;
    if (r->cb != NULL)
      r->cb(r->ctx, &h.ev);
  }
  return 0;
}

/* StackBlock content:
 *   int32 FirstId; int32 Count; Count * (int32 StackSize; StackSize bytes) */
static int parse_stack_block(struct nettrace_reader *r, const uint8_t *p,
                             size_t len) {
  struct wire_cursor c = wire_cursor(p, len);
  uint32_t first_id = 0, count = 0;
  if (wire_u32(&c, &first_id) != 0 || wire_u32(&c, &count) != 0)
    return bad(r, p, "truncated stack block header");
  if (count > c.len / 4)
    return bad(r, p, "stack count overruns its block");
  for (uint32_t i = 0; i < count; i++) {
    uint32_t size = 0;
    if (wire_u32(&c, &size) != 0 || wire_skip(&c, size) != 0)
      return bad(r, c.p, "stack overruns its block");
  }
  if (c.len != 0)
    return bad(r, c.p, "bytes after the last stack");
  return 0;
}

/* SPBlock content:
 *   int64 TimeStamp; int32 ThreadCount;
 *   ThreadCount * (int64 CaptureThreadId; int32 SequenceNumber) */
static int parse_sp_block(struct nettrace_reader *r, const uint8_t *p,
                          size_t len) {
  struct wire_cursor c = wire_cursor(p, len);
  uint64_t timestamp = 0;
  uint32_t count = 0;
  if (wire_u64(&c, &timestamp) != 0 || wire_u32(&c, &count) != 0)
    return bad(r, p, "truncated sequence point block");
  if (count > c.len / 12 || c.len - (size_t)count * 12 != 0)
    return bad(r, p, "sequence point thread count does not match its block");
  return 0;
}

/* ---- the Trace object ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* Trace payload:
 *   SYSTEMTIME (8 int16: Year Month DayOfWeek Day Hour Minute Second
 *   Milliseconds, UTC); int64 SyncTimeQPC; int64 QPCFrequency;
 *   int32 PointerSize; int32 ProcessId; int32 NumberOfProcessors;
 *   int32 ExpectedCPUSamplingRate */
static void parse_trace(struct nettrace_reader *r, const uint8_t *p) {
  struct wire_cursor c = wire_cursor(p, TRACE_PAYLOAD_LEN);
  uint16_t st[8] = {0};
  uint64_t qpc = 0, freq = 0;
  for (int i = 0; i < 8; i++)
    wire_u16(&c, &st[i]);
  wire_u64(&c, &qpc);
  wire_u64(&c, &freq);
  wire_u32(&c, &r->trace.pointer_size);
  wire_u32(&c, &r->trace.process_id);
  wire_u32(&c, &r->trace.num_processors);
  wire_u32(&c, &r->trace.sampling_rate);
  r->trace.sync_qpc = (int64_t)qpc;
  r->trace.qpc_frequency = (int64_t)freq;
  /* An impossible date leaves the wall clock at 0 rather than failing. */
  if (st[1] >= 1 && st[1] <= 12 && st[3] >= 1 && st[3] <= 31 && st[4] < 24 &&
      st[5] < 60 && st[6] < 61 && st[7] < 1000) {
    int64_t days = days_from_civil(st[0], st[1], st[3]);
    r->trace.sync_time_unix_ms =
        ((days * 24 + st[4]) * 60 + st[5]) * 60000 + st[6] * 1000 + st[7];
  }
  r->have_trace = 1;
}

/* ---- object framing ---- */

static enum object_kind object_kind(const uint8_t *name, size_t len) {
  static const struct {
    const char *name;
    enum object_kind kind;
  } kinds[] = {
      {"Trace", OBJ_TRACE},
      {"EventBlock", OBJ_EVENT_BLOCK},
      {"MetadataBlock", OBJ_METADATA_BLOCK},
      {"StackBlock", OBJ_STACK_BLOCK},
      {"SPBlock", OBJ_SP_BLOCK},
  };
  for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
    if (strlen(kinds[i].name) == len && memcmp(kinds[i].name, name, len) == 0)
      return kinds[i].kind;
  return OBJ_UNKNOWN;
}

/* Works out the framing of the object starting at p[0] (stream offset
 * r->offset) from the n bytes available. Returns 0 with f->total set when it
 * is known, 1 with *need set to the bytes required to learn more, or an
 * error. Errors are reported at the offending byte. */
static int object_frame(struct nettrace_reader *r, const uint8_t *p, size_t n,
                        struct object_frame *f, size_t *need) {
  if (n < 1) {
    *need = 1;
    return 1;
  }
  if (p[0] == TAG_NULL_REFERENCE) {
    f->total = 1;
    return 0;
  }
  if (p[0] != TAG_BEGIN_PRIVATE_OBJECT)
    return reader_fail(r, -EBADMSG, r->offset, "bad object tag 0x%02x", p[0]);
  if (n < TYPE_FIXED_LEN) {
    *need = TYPE_FIXED_LEN;
    return 1;
  }
  if (p[1] != TAG_BEGIN_PRIVATE_OBJECT || p[2] != TAG_NULL_REFERENCE)
    return reader_fail(r, -EBADMSG, r->offset + 1, "bad type object");
  f->version = (int32_t)wire_le32(p + 3);
  f->min_version = (int32_t)wire_le32(p + 7);
  uint32_t name_len = wire_le32(p + 11);
  if (name_len == 0 || name_len > TYPE_NAME_MAX)
    return reader_fail(r, -EBADMSG, r->offset + 11, "bad type name length %u",
                       name_len);
  f->type_len = TYPE_FIXED_LEN + name_len + 1;
  if (n < f->type_len) {
    *need = f->type_len;
    return 1;
  }
  if (p[f->type_len - 1] != TAG_END_OBJECT)
    return reader_fail(r, -EBADMSG, r->offset + f->type_len - 1,
                       "type object not ended");
  f->name = p + TYPE_FIXED_LEN;
  f->name_len = name_len;
  f->kind = object_kind(f->name, name_len);

  if (f->kind == OBJ_TRACE) {
    f->content_off = f->type_len;
    f->content_len = TRACE_PAYLOAD_LEN;
    f->total = f->type_len + TRACE_PAYLOAD_LEN + 1;
    return 0;
  }
  /* Blocks, and objects of unknown types, which are assumed to be framed
   * the same way (every object of nettrace V4/V5 is). */
  if (n < f->type_len + 4) {
    *need = f->type_len + 4;
    return 1;
  }
  uint32_t size = wire_le32(p + f->type_len);
  if (size > r->limits.max_object)
    return reader_fail(r, -E2BIG, r->offset + f->type_len,
                       "block of %u bytes exceeds max_object (%zu)", size,
                       r->limits.max_object);
  uint64_t after_size = r->offset + f->type_len + 4;
  f->content_off = f->type_len + 4 + (size_t)((4 - after_size % 4) % 4);
  f->content_len = size;
  f->total = f->content_off + size + 1;
  return 0;
}

static int check_version(struct nettrace_reader *r,
                         const struct object_frame *f, int32_t version,
                         int32_t reader_version) {
  if (f->version < version || f->min_version > reader_version)
    return reader_fail(r, -EBADMSG, r->offset + 3,
                       "unsupported %.*s version %d (min reader %d)",
                       (int)f->name_len, (const char *)f->name, (int)f->version,
                       (int)f->min_version);
  return 0;
}

static int process_object(struct nettrace_reader *r, const uint8_t *p,
                          const struct object_frame *f) {
  int rc = 0;
  if (f->total == 1) {
    if (!r->have_trace)
      return bad(r, p, "end of stream before the Trace object");
    r->state = ST_DONE;
    return 0;
  }
  if (p[f->total - 1] != TAG_END_OBJECT)
    return bad(r, p + f->total - 1, "object not ended");
  if (f->kind == OBJ_TRACE) {
    if (r->have_trace)
      return bad(r, p, "second Trace object");
    /* Trace 4 is nettrace V4; 5 adds metadata tags. */
    if ((rc = check_version(r, f, 4, 5)) != 0)
      return rc;
    parse_trace(r, p + f->content_off);
    return 0;
  }
  if (!r->have_trace)
    return bad(r, p, "block before the Trace object");

  const uint8_t *content = p + f->content_off;
  switch (f->kind) {
  case OBJ_EVENT_BLOCK:
  case OBJ_METADATA_BLOCK:
    if ((rc = check_version(r, f, 2, 2)) != 0)
      return rc;
    if (f->kind == OBJ_EVENT_BLOCK)
      r->stats.event_blocks++;
    else
      r->stats.metadata_blocks++;
    return parse_event_block(r, content, f->content_len,
                             f->kind == OBJ_METADATA_BLOCK);
  case OBJ_STACK_BLOCK:
    if ((rc = check_version(r, f, 2, 2)) != 0)
      return rc;
    r->stats.stack_blocks++;
    return parse_stack_block(r, content, f->content_len);
  case OBJ_SP_BLOCK:
    if ((rc = check_version(r, f, 2, 2)) != 0)
      return rc;
    r->stats.sp_blocks++;
    return parse_sp_block(r, content, f->content_len);
  default:
    r->stats.unknown_objects++;
    return 0;
  }
}

/* Bytes the unit starting at p needs (from the n available): the whole unit
 * once its length is known, else enough to learn more. */
static int unit_need(struct nettrace_reader *r, const uint8_t *p, size_t n,
                     struct object_frame *f, size_t *need) {
  if (r->state == ST_STREAM_HEADER) {
    *need = NETTRACE_STREAM_HEADER_LEN;
    return 0;
  }
  int rc = object_frame(r, p, n, f, need);
  if (rc == 0)
    *need = f->total;
  return rc < 0 ? rc : 0;
}

/* The stream header: "Nettrace", int32 20, "!FastSerialization.1". */
static int process_stream_header(struct nettrace_reader *r, const uint8_t *p) {
  if (memcmp(p, NETTRACE_MAGIC, 8) != 0)
    return bad(r, p, "not a nettrace stream (bad magic)");
  uint32_t len = wire_le32(p + 8);
  if (len == 0)
    return bad(r, p + 8, "nettrace V6 is not supported");
  if (len != 20 || memcmp(p + 12, NETTRACE_FS_HEADER, 20) != 0)
    return bad(r, p + 8, "bad FastSerialization header");
  r->state = ST_OBJECT;
  return 0;
}

/* Parses the complete unit p[0..len) (whose framing unit_need found). */
static int process_unit(struct nettrace_reader *r, const uint8_t *p, size_t len,
                        const struct object_frame *f) {
  int rc;
  r->unit = p;
  r->unit_off = r->offset;
  if (r->state == ST_STREAM_HEADER)
    rc = process_stream_header(r, p);
  else
    rc = process_object(r, p, f);
  r->unit = NULL;
  if (rc == 0)
    r->offset += len;
  return rc;
}

/* Holds the bytes of an incomplete unit: never more than the largest unit
 * (a block of max_object and its framing). */
static int hold(struct nettrace_reader *r, const uint8_t *p, size_t n) {
  size_t cap = r->held_cap;
  void *buf = r->held;
  if (grow(&buf, &cap, r->held_len + n, 1, 4096,
           r->limits.max_object + UNIT_FRAMING) != 0)
    return reader_fail(r, -ENOMEM, r->offset + r->held_len, "out of memory");
  r->held = buf;
  r->held_cap = cap;
  memcpy(r->held + r->held_len, p, n);
  r->held_len += n;
  return 0;
}

/* ---- public API ---- */

struct nettrace_reader *
nettrace_reader_new(const struct nettrace_limits *limits, nettrace_event_cb cb,
                    void *ctx) {
  struct nettrace_reader *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return NULL;
  if (limits != NULL)
    r->limits = *limits;
  if (r->limits.max_object == 0)
    r->limits.max_object = NETTRACE_DEFAULT_MAX_OBJECT;
  if (r->limits.max_metadata == 0)
    r->limits.max_metadata = NETTRACE_DEFAULT_MAX_METADATA;
  if (r->limits.max_metas == 0)
    r->limits.max_metas = NETTRACE_DEFAULT_MAX_METAS;
  /* The held unit and the block sizes are size_t/uint32 arithmetic. */
  if (r->limits.max_object > UINT32_MAX)
    r->limits.max_object = UINT32_MAX;
  if (r->limits.max_object > SIZE_MAX - 256)
    r->limits.max_object = SIZE_MAX - 256;
  r->cb = cb;
  r->ctx = ctx;
  r->state = ST_STREAM_HEADER;
  return r;
}

void nettrace_reader_free(struct nettrace_reader *r) {
  if (r == NULL)
    return;
  for (uint32_t i = 0; i < r->nmetas; i++)
    free(r->metas[i]);
  free(r->metas);
  free(r->table);
  free(r->fields);
  free(r->strings);
  free(r->held);
  free(r);
}

int nettrace_reader_feed(struct nettrace_reader *r, const void *buf,
                         size_t len) {
  const uint8_t *p = buf;
  struct object_frame f = {0};
  size_t need = 0;
  int rc = 0;

  if (r->err != 0)
    return r->err;
  r->stats.bytes += len;
  while (len > 0) {
    if (r->state == ST_DONE)
      return reader_fail(r, -EBADMSG, r->offset,
                         "data after the end-of-stream marker");
    if (r->held_len == 0) {
      /* Parse in place whatever is complete in the caller's buffer. */
      if ((rc = unit_need(r, p, len, &f, &need)) != 0)
        return rc;
      if (need > len)
        return hold(r, p, len);
      if ((rc = process_unit(r, p, need, &f)) != 0)
        return rc;
      p += need;
      len -= need;
      continue;
    }
    /* Complete the held unit, learning its length as bytes come. */
    if ((rc = unit_need(r, r->held, r->held_len, &f, &need)) != 0)
      return rc;
    if (need > r->held_len) {
      size_t take = need - r->held_len < len ? need - r->held_len : len;
      if ((rc = hold(r, p, take)) != 0)
        return rc;
      p += take;
      len -= take;
      if ((rc = unit_need(r, r->held, r->held_len, &f, &need)) != 0)
        return rc;
    }
    if (need <= r->held_len) {
      rc = process_unit(r, r->held, r->held_len, &f);
      r->held_len = 0;
      /* room for an incomplete unit is kept only while one is held: a
       * counters session's unit is split across reads about once per
       * interval, and a malloc then costs far less than a few KiB kept in
       * every session */
      free(r->held);
      r->held = NULL;
      r->held_cap = 0;
      if (rc != 0)
        return rc;
    }
  }
  return 0;
}

int nettrace_reader_finish(struct nettrace_reader *r) {
  if (r->err != 0)
    return r->err;
  if (r->state == ST_DONE)
    return 0;
  if (r->held_len > 0)
    return reader_fail(r, -ENODATA, r->offset,
                       "stream truncated inside an object (%zu bytes held)",
                       r->held_len);
  return reader_fail(r, -ENODATA, r->offset,
                     "stream truncated before the end-of-stream marker");
}

int nettrace_reader_done(const struct nettrace_reader *r) {
  return r->state == ST_DONE;
}

const char *nettrace_reader_error(const struct nettrace_reader *r) {
  return r->reason;
}

uint64_t nettrace_reader_error_offset(const struct nettrace_reader *r) {
  return r->err_off;
}

const struct nettrace_trace_info *
nettrace_reader_trace_info(const struct nettrace_reader *r) {
  return r->have_trace ? &r->trace : NULL;
}

const struct nettrace_stats *
nettrace_reader_stats(const struct nettrace_reader *r) {
  return &r->stats;
}

size_t nettrace_reader_memory(const struct nettrace_reader *r) {
  return sizeof(*r) + r->held_cap + r->strings_cap +
         (size_t)r->fields_cap * sizeof(*r->fields) +
         (size_t)r->metas_cap * sizeof(*r->metas) +
         (size_t)r->table_cap * sizeof(*r->table) + r->meta_bytes;
}

static size_t limit_or(size_t v, size_t dflt) { return v ? v : dflt; }

size_t nettrace_reader_worst_bytes(const struct nettrace_limits *limits) {
  struct nettrace_limits l = limits ? *limits : (struct nettrace_limits){0};
  size_t obj = limit_or(l.max_object, NETTRACE_DEFAULT_MAX_OBJECT);
  size_t meta = limit_or(l.max_metadata, NETTRACE_DEFAULT_MAX_METADATA);
  size_t metas = limit_or(l.max_metas, NETTRACE_DEFAULT_MAX_METAS);
  size_t table = 64;
  while (table < 2 * (metas + 1))
    table *= 2;
  /* the reader; a held unit; the metadata kept, its index and table; the
   * scratch of one metadata event (strings and fields, each capped at
   * max_metadata, given back after it); malloc's 16 bytes a block */
  return sizeof(struct nettrace_reader) + obj + UNIT_FRAMING + meta +
         metas * sizeof(struct nettrace_meta *) + table * sizeof(uint32_t) +
         2 * meta + 16 * (metas + 6);
}
