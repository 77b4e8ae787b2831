/**
 * collectd-dotnet - plugin/nettrace.h
 *
 * Incremental reader of the "nettrace" EventPipe stream format (V4, with the
 * V5-style metadata tags runtimes put inside it), as a .NET runtime streams it
 * over the Diagnostic IPC socket after CollectTracing.
 *
 * Push API: feed whatever bytes one read() returned, split anywhere; events
 * are delivered to a callback as soon as the block holding them is complete.
 * No I/O, no collectd headers, bounded memory (see nettrace_limits).
 *
 * Specs: microsoft/perfview src/TraceEvent/EventPipe/NetTraceFormat_v5.md.
 */
#ifndef NETTRACE_H
#define NETTRACE_H

#include <stddef.h>
#include <stdint.h>

/* Field type codes of event metadata (System.TypeCode, with EventPipe's
 * additions GUID = 17 and ARRAY = 19). */
enum nettrace_type {
  NETTRACE_TYPE_EMPTY = 0,
  NETTRACE_TYPE_OBJECT = 1,
  NETTRACE_TYPE_DBNULL = 2,
  NETTRACE_TYPE_BOOLEAN = 3, /* 4 bytes on the wire (Win32 BOOL) */
  NETTRACE_TYPE_CHAR = 4,    /* UTF-16 code unit, 2 bytes */
  NETTRACE_TYPE_SBYTE = 5,
  NETTRACE_TYPE_BYTE = 6,
  NETTRACE_TYPE_INT16 = 7,
  NETTRACE_TYPE_UINT16 = 8,
  NETTRACE_TYPE_INT32 = 9,
  NETTRACE_TYPE_UINT32 = 10,
  NETTRACE_TYPE_INT64 = 11,
  NETTRACE_TYPE_UINT64 = 12,
  NETTRACE_TYPE_SINGLE = 13,
  NETTRACE_TYPE_DOUBLE = 14,
  NETTRACE_TYPE_DECIMAL = 15,
  NETTRACE_TYPE_DATETIME = 16,
  NETTRACE_TYPE_GUID = 17,
  NETTRACE_TYPE_STRING = 18, /* NUL-terminated UTF-16LE in payloads */
  NETTRACE_TYPE_ARRAY = 19,  /* uint16 count, then elements */
};

/* How a value of a field type lies in a payload: the one table that says
 * it (nettrace_type_layout), read by the metadata parser and by every
 * decoder of payloads. */
enum nettrace_layout_kind {
  NETTRACE_LAYOUT_UNKNOWN = 0, /* EMPTY, DBNULL, codes the reader does not
                                  know: no field list with one is used */
  NETTRACE_LAYOUT_OBJECT, /* no bytes of its own: its children follow */
  NETTRACE_LAYOUT_ARRAY,  /* uint16 count, then the elements */
  NETTRACE_LAYOUT_STRING, /* NUL-terminated UTF-16LE */
  NETTRACE_LAYOUT_OPAQUE, /* size bytes that are no number (DECIMAL, GUID) */
  NETTRACE_LAYOUT_INT,    /* signed, little-endian, size bytes (BOOLEAN and
                             DATETIME too) */
  NETTRACE_LAYOUT_UINT,   /* unsigned, little-endian, size bytes (CHAR too) */
  NETTRACE_LAYOUT_FLOAT,  /* IEEE 754, size 4 or 8 */
};

struct nettrace_layout {
  uint8_t kind; /* enum nettrace_layout_kind */
  uint8_t size; /* bytes of a fixed-size value; 0 for the others */
};

/* The layout of a field type code (any uint32: unknown codes give
 * NETTRACE_LAYOUT_UNKNOWN). */
struct nettrace_layout nettrace_type_layout(uint32_t type);

/* One field of an event's metadata. Fields are stored flat, in pre-order:
 * an OBJECT field is followed by its `nchildren` direct children, and
 * `span` is the number of entries in its subtree (itself excluded), so the
 * next sibling of fields[i] is fields[i + 1 + fields[i].span].
 * An ARRAY field is followed by one entry describing its element (span 1 +
 * the element's own span); that entry carries the array's name. */
struct nettrace_field {
  const char *name; /* UTF-8, NUL-terminated; owned by the reader */
  uint32_t type;    /* enum nettrace_type */
  uint32_t nchildren;
  uint32_t span;
};

/* An event's metadata, decoded once when its MetadataBlock is read.
 * Valid as long as the reader lives. */
struct nettrace_meta {
  uint32_t id;
  const char *provider; /* UTF-8; "" when absent */
  uint32_t event_id;
  const char *event_name; /* UTF-8; "" when absent */
  uint64_t keywords;
  uint32_t version;
  uint32_t level;
  uint8_t opcode; /* 0 unless the metadata carries an OpCode tag */
  /* Top-level fields are fields[0], then each next sibling (see above).
   * fields_ok is 0 when the field list could not be understood (a type the
   * reader does not know): the event is still delivered, payload raw. */
  const struct nettrace_field *fields;
  uint32_t nfields_total; /* entries in `fields` */
  uint32_t nfields;       /* top-level fields */
  int fields_ok;
};

/* One event. Views are valid only during the callback. */
struct nettrace_event {
  const struct nettrace_meta *meta; /* never NULL: an event whose metadata
                                       id is unknown is counted and dropped */
  uint64_t timestamp;               /* QPC ticks */
  uint64_t thread_id;
  uint64_t capture_thread_id;
  uint32_t sequence;
  uint32_t processor;
  uint32_t stack_id;
  const uint8_t *payload;
  uint32_t payload_len;
  const uint8_t *activity_id;         /* 16 bytes (GUID as on the wire) */
  const uint8_t *related_activity_id; /* 16 bytes; zeroes when absent */
};

/* The stream's Trace object. */
struct nettrace_trace_info {
  int64_t sync_time_unix_ms; /* the SYSTEMTIME, as ms since 1970 (UTC) */
  int64_t sync_qpc;          /* QPC ticks at that time */
  int64_t qpc_frequency;     /* ticks per second */
  uint32_t pointer_size;
  uint32_t process_id;
  uint32_t num_processors;
  uint32_t sampling_rate;
};

/* Caps; 0 selects the default. Together they bound the reader's memory
 * (nettrace_reader_worst_bytes): about 0.9 MiB with the defaults. */
struct nettrace_limits {
  size_t max_object;   /* largest block/object accepted (default 128 KiB:
                          a runtime's blocks are at most 100 KiB) */
  size_t max_metadata; /* bytes of decoded metadata kept, and of the
                          scratch one metadata event may take (default
                          256 KiB) */
  uint32_t max_metas;  /* metadata entries kept (default 1024) */
};

struct nettrace_stats {
  uint64_t bytes;   /* fed so far */
  uint64_t events;  /* delivered to the callback */
  uint64_t dropped; /* events with unknown metadata id */
  uint64_t event_blocks, metadata_blocks, stack_blocks, sp_blocks;
  uint64_t unknown_objects; /* objects of an unknown type, skipped */
  uint64_t metas;           /* metadata entries kept (see max_metas) */
  uint64_t metadata_bytes;  /* bytes they take (see max_metadata) */
};

/* Called for each event, in stream order (not sorted by timestamp). It may
 * call the const getters below, but must not feed, finish or free the
 * reader it is called from. */
typedef void (*nettrace_event_cb)(void *ctx, const struct nettrace_event *ev);

struct nettrace_reader;

/* Allocates a reader. `limits` may be NULL. Returns NULL on ENOMEM.
 * cb may be NULL (count only). The reader does not own ctx. */
struct nettrace_reader *
nettrace_reader_new(const struct nettrace_limits *limits, nettrace_event_cb cb,
                    void *ctx);
/* Frees everything the reader owns; accepts NULL. */
void nettrace_reader_free(struct nettrace_reader *r);

/* Consumes all `len` bytes (buffering an incomplete object internally, within
 * max_object) and calls cb for every event completed by them.
 * Returns 0, or a negative errno: -EBADMSG malformed input, -E2BIG a cap was
 * exceeded, -ENOMEM. The first error is sticky: later calls return it again.
 * Bytes after the end-of-stream marker are an error (-EBADMSG).
 * Events of a block before a malformed spot in it have been delivered when
 * the error is returned. A nettrace V6 stream is refused (-EBADMSG). */
int nettrace_reader_feed(struct nettrace_reader *r, const void *buf,
                         size_t len);
/* Call at end of input: 0 if the end-of-stream marker was read, -ENODATA if
 * the stream was truncated (error() says where), or the sticky error. */
int nettrace_reader_finish(struct nettrace_reader *r);
/* 1 once the end-of-stream marker has been read. */
int nettrace_reader_done(const struct nettrace_reader *r);

/* The first error: a short reason ("" if none) and the byte offset in the
 * stream where it was found. */
const char *nettrace_reader_error(const struct nettrace_reader *r);
uint64_t nettrace_reader_error_offset(const struct nettrace_reader *r);

/* NULL until the Trace object has been read. */
const struct nettrace_trace_info *
nettrace_reader_trace_info(const struct nettrace_reader *r);
const struct nettrace_stats *
nettrace_reader_stats(const struct nettrace_reader *r);

/* Bytes the reader holds on the heap now (malloc's own overhead aside). */
size_t nettrace_reader_memory(const struct nettrace_reader *r);
/* The most a reader with these limits (NULL: the defaults) ever holds on
 * the heap, malloc's overhead included. */
size_t nettrace_reader_worst_bytes(const struct nettrace_limits *limits);

#endif /* NETTRACE_H */
