/*
 * convert.h - compression and decompression of a response for one client.
 *
 * Responses are relayed byte for byte on the common path. Two cases need the whole
 * message first: a compressed response for a client that agreed capability 0 (it cannot
 * read compression), and, under clients.compression, an uncompressed response that kdb+
 * itself would have compressed for this client. Both are bounded by
 * clients.compression_max_size.
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
    CONVERT_DECOMPRESS,
    CONVERT_COMPRESS,
};

/* Returns the conversion a message with this header needs before it reaches client. */
int convert_needed(const struct client *client, const struct ipc_header *header);

/*
 * Converts the whole message in message (emptied) and appends the result to output.
 * Returns the number of bytes appended, or 0 with a kdb+ error text in error (for the
 * client, naming the limit or the reason) when the message cannot be converted.
 */
uint64_t convert_message(int kind, struct evbuffer *message, struct evbuffer *output,
                         char *error, size_t error_size);

#endif
