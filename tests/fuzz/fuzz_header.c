/*
 * fuzz_header.c - libFuzzer target for ipc_header_parse and for splitting a byte stream
 * into messages, as a connection's read loop does.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "compress.h"
#include "ipc.h"
#include "qdec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int condition)
{
    if (!condition)
        abort();
}

/* Parses one header and checks the fields of an accepted one. */
static int parse_header(const uint8_t *raw, struct ipc_header *header)
{
    int status = ipc_header_parse(raw, header);

    require(ipc_status_text(status) != NULL);
    if (status != IPC_OK)
        return status;
    require(header->little_endian == raw[0] && raw[0] <= 1);
    require(header->type >= IPC_ASYNC && header->type <= IPC_RESPONSE);
    require(strcmp(ipc_msg_type_name(header->type), "unknown") != 0);
    require(header->compressed >= 0 && header->compressed <= 2);
    require(header->length <= IPC_MAX_LENGTH);
    require(header->length >= (header->compressed ? IPC_MIN_COMPRESSED_LENGTH : IPC_MIN_LENGTH));

    /* ipc_header_write produces little-endian uncompressed headers only. */
    if (raw[0] == 1 && raw[2] == 0) {
        uint8_t written[IPC_HEADER_SIZE];
        ipc_header_write(written, header->type, header->length);
        require(memcmp(written, raw, IPC_HEADER_SIZE) == 0);
    }
    return status;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t pos = 0;

    while (size - pos >= IPC_HEADER_SIZE) {
        struct ipc_header header;

        if (parse_header(data + pos, &header) != IPC_OK)
            break;
        if (header.length > size - pos)
            break;  /* incomplete: a reader waits for more bytes */

        const uint8_t *frame = data + pos;
        if (header.compressed) {
            uint64_t plain_size = 0;
            if (decompress_size(frame, header.length, &plain_size) == 0)
                require(plain_size >= IPC_MIN_LENGTH && plain_size <= IPC_MAX_LENGTH);
        } else {
            struct qdec_error err;
            int status = qdec_validate(frame, header.length, &err);
            require(status == QDEC_OK || err.offset <= header.length);
        }
        pos += header.length;
    }
    require(pos <= size);
    return 0;
}
