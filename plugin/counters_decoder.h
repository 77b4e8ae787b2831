/**
 * collectd-dotnet - plugin/counters_decoder.h
 *
 * counters_decode, faster, for the events of one stream: a decoder
 * remembers per event metadata whether its events are counter samples and
 * where in the payload the fields it needs are (a plan: names compared once
 * per metadata, not once per event; strings converted only when used). The
 * result is counters_decode's in every case.
 *
 * Its cache is keyed by the metadata of one reader: reset it (or use a new
 * decoder) when the stream's reader is replaced. Bounded: 32 metadata
 * entries of at most 256 fields each (others are decoded as
 * counters_decode does).
 */
#ifndef COUNTERS_DECODER_H
#define COUNTERS_DECODER_H

#include "counters.h"

#include <stddef.h>

struct counters_decoder;
struct counters_decoder *counters_decoder_new(void);    /* NULL: ENOMEM */
void counters_decoder_free(struct counters_decoder *d); /* accepts NULL */
void counters_decoder_reset(struct counters_decoder *d);
/* As counters_decode. */
int counters_decoder_decode(struct counters_decoder *d,
                            const struct nettrace_event *ev,
                            struct counters_sample *s, char *scratch,
                            size_t scratch_cap);

#endif /* COUNTERS_DECODER_H */
