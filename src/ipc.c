/*
 * ipc.c - kdb+ IPC header and handshake parsing.
 */
#include "ipc.h"

#include <string.h>

uint32_t ipc_read_u32(const uint8_t *p, int little_endian)
{
    if (little_endian)
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return (uint32_t)p[3] | (uint32_t)p[2] << 8 | (uint32_t)p[1] << 16 | (uint32_t)p[0] << 24;
}

uint64_t ipc_read_u64(const uint8_t *p, int little_endian)
{
    uint64_t low = ipc_read_u32(little_endian ? p : p + 4, little_endian);
    uint64_t high = ipc_read_u32(little_endian ? p + 4 : p, little_endian);

    return high << 32 | low;
}

int ipc_header_parse(const uint8_t raw[IPC_HEADER_SIZE], struct ipc_header *out)
{
    if (raw[0] > 1)
        return IPC_BAD_ENDIAN;
    out->little_endian = raw[0];

    if (raw[1] > IPC_RESPONSE)
        return IPC_BAD_TYPE;
    out->type = raw[1];

    if (raw[2] > 2)
        return IPC_BAD_COMPRESSION;
    out->compressed = raw[2];

    /* Byte 3 holds bits 32..39 of the length in both byte orders. */
    out->length = (uint64_t)raw[3] << 32 | ipc_read_u32(raw + 4, out->little_endian);

    uint64_t min = out->compressed ? IPC_MIN_COMPRESSED_LENGTH : IPC_MIN_LENGTH;
    if (out->length < min)
        return IPC_BAD_LENGTH;

    return IPC_OK;
}

void ipc_header_write(uint8_t raw[IPC_HEADER_SIZE], int type, uint64_t length)
{
    raw[0] = 1;
    raw[1] = (uint8_t)type;
    raw[2] = 0;
    raw[3] = (uint8_t)(length >> 32);
    raw[4] = (uint8_t)length;
    raw[5] = (uint8_t)(length >> 8);
    raw[6] = (uint8_t)(length >> 16);
    raw[7] = (uint8_t)(length >> 24);
}

const char *ipc_status_text(int status)
{
    switch (status) {
    case IPC_OK:
        return "valid";
    case IPC_BAD_ENDIAN:
        return "invalid byte-order byte (expected 0 or 1)";
    case IPC_BAD_TYPE:
        return "invalid message type byte (expected 0, 1 or 2)";
    case IPC_BAD_COMPRESSION:
        return "invalid compression byte (expected 0, 1 or 2)";
    case IPC_BAD_LENGTH:
        return "message length smaller than the minimum message";
    }
    return "unknown header status";
}

const char *ipc_msg_type_name(int type)
{
    switch (type) {
    case IPC_ASYNC:
        return "async";
    case IPC_SYNC:
        return "sync";
    case IPC_RESPONSE:
        return "response";
    }
    return "unknown";
}

int ipc_handshake_parse(const uint8_t *buf, size_t len, size_t max_len, struct ipc_handshake *out)
{
    /* Credentials of max_len bytes plus the capability byte plus the NUL. */
    size_t limit = max_len + 2;
    size_t scan = len < limit ? len : limit;
    const uint8_t *nul = memchr(buf, 0, scan);

    if (nul == NULL)
        return len >= limit ? IPC_HANDSHAKE_TOO_LONG : IPC_HANDSHAKE_INCOMPLETE;

    size_t body = (size_t)(nul - buf);
    out->length = body + 1;
    out->capability = 0;
    out->credentials_len = body;
    if (body > 0 && buf[body - 1] >= 1 && buf[body - 1] <= IPC_MAX_CAPABILITY) {
        out->capability = buf[body - 1];
        out->credentials_len = body - 1;
    }
    if (out->credentials_len > max_len)
        return IPC_HANDSHAKE_TOO_LONG;

    const uint8_t *colon = memchr(buf, ':', out->credentials_len);
    out->user_len = colon ? (size_t)(colon - buf) : out->credentials_len;
    return IPC_HANDSHAKE_DONE;
}

size_t ipc_error_message(uint8_t *out, size_t size, const char *text)
{
    size_t room = size - IPC_HEADER_SIZE - 2;
    size_t text_len = strnlen(text, room);
    size_t length = IPC_HEADER_SIZE + 1 + text_len + 1;

    ipc_header_write(out, IPC_RESPONSE, length);
    out[IPC_HEADER_SIZE] = 0x80;
    memcpy(out + IPC_HEADER_SIZE + 1, text, text_len);
    out[length - 1] = 0;
    return length;
}
