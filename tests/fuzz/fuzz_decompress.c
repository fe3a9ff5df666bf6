/*
 * fuzz_decompress.c - libFuzzer target for decompress_size and decompress_message.
 *
 * Each input is tried as given, and with its length fields rewritten to match the input
 * size, so that mutations reach the compressed stream. A message that decompresses is
 * checked (byte order and type kept, byte 2 cleared, length set), validated with the
 * decoder, compressed again and decompressed again, which must give the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "compress.h"
#include "ipc.h"
#include "qdec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A match token (2 bytes) copies at most 257 bytes, and a group of 8 tokens costs 17
 * bytes, so a stream expands at most 2056 / 17 < 121 times. Declared sizes above this
 * bound cannot decompress, so they are not allocated. */
#define MAX_EXPANSION 128
#define MAX_OUTPUT (64u << 20)

static void require(int condition)
{
    if (!condition)
        abort();
}

static uint8_t *decompress_copy(const uint8_t *msg, uint64_t len, uint64_t *size)
{
    char err[256];

    if (decompress_size(msg, len, size) != 0)
        return NULL;
    require(*size >= IPC_MIN_LENGTH && *size <= IPC_MAX_LENGTH);
    if (*size > MAX_OUTPUT || *size > IPC_HEADER_SIZE + MAX_EXPANSION * len)
        return NULL;

    uint8_t *out = malloc(*size);
    require(out != NULL);
    err[0] = 'x';
    if (decompress_message(msg, len, out, *size, err, sizeof(err)) != 0) {
        require(memchr(err, 0, sizeof(err)) != NULL);
        free(out);
        return NULL;
    }
    return out;
}

static void check_decompressed(const uint8_t *msg, const uint8_t *out, uint64_t size)
{
    struct ipc_header header;

    require(out[0] == msg[0] && out[1] == msg[1] && out[2] == 0);
    require(ipc_header_parse(out, &header) == IPC_OK);
    require(header.length == size);

    struct qdec_error qerr;
    int status = qdec_validate(out, size, &qerr);
    require(status == QDEC_OK || qerr.offset <= size);

    /* Compress again; what compresses must decompress to the same bytes. */
    uint8_t *packed = malloc(size / 2 > 0 ? size / 2 : 1);
    require(packed != NULL);
    uint64_t packed_len = compress_message(out, size, packed);
    if (packed_len > 0) {
        require(packed_len <= size / 2);
        uint64_t again_size = 0;
        uint8_t *again = decompress_copy(packed, packed_len, &again_size);
        require(again != NULL);
        require(again_size == size);
        require(memcmp(again, out, size) == 0);
        free(again);
    }
    free(packed);
}

static void try_message(const uint8_t *msg, uint64_t len)
{
    uint64_t size = 0;
    uint8_t *out = decompress_copy(msg, len, &size);

    if (out == NULL)
        return;
    check_decompressed(msg, out, size);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    try_message(data, size);
    if (size < IPC_HEADER_SIZE)
        return 0;

    /* The same bytes with a header that matches the input: byte order 0 or 1, a valid
     * message type, compression flag 1 or 2 and the input's size as total length. */
    uint8_t *msg = malloc(size);
    require(msg != NULL);
    memcpy(msg, data, size);
    msg[0] &= 1;
    msg[1] %= 3;
    msg[2] = (msg[2] & 1) + 1;
    msg[3] = (uint8_t)((uint64_t)size >> 32);
    for (int i = 0; i < 4; i++) {
        int shift = msg[0] ? 8 * i : 8 * (3 - i);
        msg[4 + i] = (uint8_t)(size >> shift);
    }
    try_message(msg, size);
    free(msg);
    return 0;
}
