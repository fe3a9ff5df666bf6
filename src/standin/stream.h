/*
 * stream.h - a response message generated piece by piece, so that a lazy result (til N,
 * .standin.table N) of any size is written as the socket drains, with bounded memory.
 */
#ifndef STANDIN_STREAM_H
#define STANDIN_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "value.h"

struct stream;

/* Creates the stream of a complete little-endian response message (header included)
 * carrying v, which must be a lazy long vector or a lazy table. Returns NULL when out of
 * memory. v is not referenced after the call. */
struct stream *stream_new(const struct qval *v, int msg_type);

void stream_free(struct stream *s);

/* Returns the total message length in bytes. */
uint64_t stream_length(const struct stream *s);

/* Returns the bytes produced so far. */
uint64_t stream_position(const struct stream *s);

/* Writes the next bytes of the message into dst, at most max, and returns how many;
 * 0 once the message is complete. */
size_t stream_read(struct stream *s, uint8_t *dst, size_t max);

#endif
