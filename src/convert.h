/*
 * convert.h - compression and decompression of a response for one client.
 *
 * Responses are relayed byte for byte on the common path. Three cases need the whole
 * message first: a response for a client that agreed capability 0, 1 or 2, which is
 * checked for types that client cannot read (and decompressed for capability 0); and,
 * under clients.compression, an uncompressed response that kdb+ itself would have
 * compressed for this client. All are bounded by clients.compression_max_size.
 */
#ifndef QMUX_CONVERT_H
#define QMUX_CONVERT_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "ipc.h"

struct client;

enum convert_kind {
    CONVERT_NONE = 0,
    CONVERT_COMPRESS,
    CONVERT_CHECK_TYPES,    /* for capability 0..2: 'type when the response holds a type
                               the client cannot read; decompressed for capability 0 */
};

/* Returns the conversion a message with this header needs before it reaches client. */
int convert_needed(const struct client *client, const struct ipc_header *header);

/*
 * Converts the whole message in message (emptied) and appends the result to output.
 * Returns the number of bytes appended, or 0 with a kdb+ error text in error (for the
 * client, naming the limit or the reason) when the message cannot be converted.
 */
uint64_t convert_message(int kind, int capability, struct evbuffer *message,
                         struct evbuffer *output, char *error, size_t error_size);

/*
 * Returns the name of the first type in the uncompressed message msg[0..length) that a
 * peer of capability cannot read ("timestamp", "timespan" or "guid"), or NULL when there
 * is none or the message does not decode.
 */
const char *convert_unreadable_type(const uint8_t *msg, uint64_t length, int capability);

#endif
