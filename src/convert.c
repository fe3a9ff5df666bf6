/*
 * convert.c - compression and decompression of responses for clients whose capability
 * or location calls for it.
 */
#include "convert.h"

#include <stdio.h>
#include <stdlib.h>

#include "client.h"
#include "compress.h"
#include "qmux.h"

int convert_needed(const struct client *client, const struct ipc_header *header)
{
    const struct config *config = qmux.config;

    if (header->compressed)
        return client->capability == 0 ? CONVERT_DECOMPRESS : CONVERT_NONE;

    switch (config->compression) {
    case COMPRESSION_AUTO:
        break;
    case COMPRESSION_ALWAYS:
        if (compress_wanted(client->capability, header->length, 0))
            return CONVERT_COMPRESS;
        return CONVERT_NONE;
    default:
        return CONVERT_NONE;
    }
    if (compress_wanted(client->capability, header->length, client->local))
        return CONVERT_COMPRESS;
    return CONVERT_NONE;
}

static void free_block(const void *data, size_t length, void *arg)
{
    (void)length;
    (void)arg;
    free((void *)data);
}

/* Appends a malloc'd block to output without copying; output frees it when drained. */
static uint64_t hand_over(struct evbuffer *output, uint8_t *block, uint64_t length)
{
    if (evbuffer_add_reference(output, block, (size_t)length, free_block, NULL) != 0) {
        free(block);
        return 0;
    }
    return length;
}

static uint64_t decompress(struct evbuffer *message, uint64_t length, struct evbuffer *output,
                           char *error, size_t error_size)
{
    const uint8_t *bytes = evbuffer_pullup(message, -1);
    uint64_t size;
    char reason[160];

    if (bytes == NULL || decompress_size(bytes, length, &size) != 0) {
        snprintf(error, error_size, "badmsg: invalid compressed response from upstream");
        return 0;
    }
    if (size > qmux.config->compression_max_size) {
        snprintf(error, error_size, "limit: response of %" PRIu64 " bytes uncompressed is over "
                 "clients.compression_max_size (%" PRIu64 "); connect with capability 1 or "
                 "more to receive it compressed", size, qmux.config->compression_max_size);
        return 0;
    }

    uint8_t *plain = malloc((size_t)size);
    if (plain == NULL) {
        snprintf(error, error_size, "wsfull: no memory to decompress a response of %" PRIu64
                 " bytes", size);
        return 0;
    }
    if (decompress_message(bytes, length, plain, size, reason, sizeof(reason)) != 0) {
        free(plain);
        snprintf(error, error_size, "badmsg: compressed response from upstream: %s", reason);
        return 0;
    }
    return hand_over(output, plain, size);
}

static uint64_t compress(struct evbuffer *message, uint64_t length, struct evbuffer *output)
{
    const uint8_t *bytes = evbuffer_pullup(message, -1);
    uint8_t *packed = bytes != NULL ? malloc((size_t)(length / 2)) : NULL;
    uint64_t packed_length = packed != NULL ? compress_message(bytes, length, packed) : 0;

    /* Not worth it (or no memory): the original goes out, as kdb+ sends it then. */
    if (packed_length == 0) {
        free(packed);
        evbuffer_add_buffer(output, message);
        return length;
    }
    return hand_over(output, packed, packed_length);
}

uint64_t convert_message(int kind, struct evbuffer *message, struct evbuffer *output,
                         char *error, size_t error_size)
{
    uint64_t length = evbuffer_get_length(message);
    uint64_t appended;

    error[0] = '\0';
    if (kind == CONVERT_DECOMPRESS)
        appended = decompress(message, length, output, error, error_size);
    else
        appended = compress(message, length, output);
    evbuffer_drain(message, evbuffer_get_length(message));
    if (appended == 0 && error[0] == '\0')
        snprintf(error, error_size, "wsfull: no memory to relay a response of %" PRIu64
                 " bytes", length);
    return appended;
}
