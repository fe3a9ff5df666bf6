/*
 * convert.c - compression and decompression of responses for clients whose capability
 * or location calls for it.
 */
#include "convert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "compress.h"
#include "qdec.h"
#include "qmux.h"

/* Lowest capabilities that can read timestamps and timespans, and GUIDs. */
#define CAPABILITY_TIMESTAMP 1
#define CAPABILITY_GUID 3

int convert_needed(const struct client *client, const struct ipc_header *header)
{
    const struct config *config = qmux.config;

    if (client->capability < CAPABILITY_GUID)
        return CONVERT_CHECK_TYPES;
    if (header->compressed)
        return CONVERT_NONE;

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

/* Decompresses the whole message in message into a malloc'd block. Returns it and its
 * size, or NULL with a kdb+ error text in error. */
static uint8_t *decompress(struct evbuffer *message, uint64_t length, uint64_t *plain_size,
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
        return NULL;
    }

    uint8_t *plain = malloc((size_t)size);
    if (plain == NULL) {
        snprintf(error, error_size, "wsfull: no memory to decompress a response of %" PRIu64
                 " bytes", size);
        return NULL;
    }
    if (decompress_message(bytes, length, plain, size, reason, sizeof(reason)) != 0) {
        free(plain);
        snprintf(error, error_size, "badmsg: compressed response from upstream: %s", reason);
        return NULL;
    }
    *plain_size = size;
    return plain;
}

struct type_scan {
    int capability;
    const char *found;
};

static int check_type(void *ctx, const struct qdec_value *value)
{
    struct type_scan *scan = ctx;
    int type = value->type < 0 ? -value->type : value->type;

    if ((type == 12 || type == 16) && scan->capability < CAPABILITY_TIMESTAMP)
        scan->found = type == 12 ? "timestamp" : "timespan";
    else if (type == 2 && scan->capability < CAPABILITY_GUID)
        scan->found = "guid";
    return scan->found != NULL;
}

const char *convert_unreadable_type(const uint8_t *msg, uint64_t length, int capability)
{
    static const struct qdec_visitor visitor = { .atom = check_type, .vector = check_type };
    struct type_scan scan = { capability, NULL };

    qdec_walk(msg, length, &visitor, &scan, NULL);
    return scan.found;
}

/*
 * Checks the whole message for types the client's capability excludes, as kdb+ checks
 * when it serializes for such a peer, and decompresses it for capability 0.
 */
static uint64_t check_types(struct evbuffer *message, uint64_t length, int capability,
                            struct evbuffer *output, char *error, size_t error_size)
{
    uint8_t *plain = NULL;
    uint64_t plain_size = length;
    const uint8_t *bytes = evbuffer_pullup(message, -1);
    struct ipc_header header;

    if (bytes == NULL || ipc_header_parse(bytes, &header) != IPC_OK)
        return 0;
    if (header.compressed) {
        plain = decompress(message, length, &plain_size, error, error_size);
        if (plain == NULL)
            return 0;
    }

    const char *type = convert_unreadable_type(plain != NULL ? plain : bytes, plain_size,
                                               capability);
    if (type != NULL) {
        free(plain);
        snprintf(error, error_size, "type: the response holds a %s, which a client of "
                 "capability %d cannot read; connect with capability %d or more", type,
                 capability, strcmp(type, "guid") == 0 ? CAPABILITY_GUID : CAPABILITY_TIMESTAMP);
        return 0;
    }
    if (plain != NULL && capability == 0)
        return hand_over(output, plain, plain_size);
    free(plain);
    evbuffer_add_buffer(output, message);
    return length;
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

uint64_t convert_message(int kind, int capability, struct evbuffer *message,
                         struct evbuffer *output, char *error, size_t error_size)
{
    uint64_t length = evbuffer_get_length(message);
    uint64_t appended;

    error[0] = '\0';
    if (kind == CONVERT_CHECK_TYPES)
        appended = check_types(message, length, capability, output, error, error_size);
    else
        appended = compress(message, length, output);
    evbuffer_drain(message, evbuffer_get_length(message));
    if (appended == 0 && error[0] == '\0')
        snprintf(error, error_size, "wsfull: no memory to relay a response of %" PRIu64
                 " bytes", length);
    return appended;
}
