/*
 * fuzz_handshake.c - libFuzzer target for ipc_handshake_parse.
 *
 * The input is parsed with the daemon's credential limit, and its tail with a small
 * limit taken from the first byte, so both the complete and the too-long paths are
 * reached. Prefixes of the input are parsed too, as a reader sees the bytes arrive.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int condition)
{
    if (!condition)
        abort();
}

/* Parses a copy of buf[0..len) of exactly len bytes and checks the result against a
 * direct reading of the bytes. Returns the parse status. */
static int check_parse(const uint8_t *buf, size_t len, size_t max_len)
{
    uint8_t *copy = malloc(len > 0 ? len : 1);
    require(copy != NULL);
    if (len > 0)
        memcpy(copy, buf, len);

    struct ipc_handshake handshake;
    int status = ipc_handshake_parse(copy, len, max_len, &handshake);
    size_t limit = max_len + 2;
    size_t scan = len < limit ? len : limit;
    const uint8_t *nul = memchr(copy, 0, scan);

    switch (status) {
    case IPC_HANDSHAKE_INCOMPLETE:
        require(nul == NULL && len < limit);
        break;
    case IPC_HANDSHAKE_TOO_LONG:
        require(nul == NULL ? len >= limit : (size_t)(nul - copy) > max_len);
        break;
    case IPC_HANDSHAKE_DONE: {
        require(nul != NULL);
        require(handshake.length == (size_t)(nul - copy) + 1);
        require(handshake.capability >= 0 && handshake.capability <= IPC_MAX_CAPABILITY);
        require(handshake.credentials_len + (handshake.capability ? 1 : 0) + 1 ==
                handshake.length);
        require(handshake.credentials_len <= max_len);
        require(handshake.user_len <= handshake.credentials_len);
        require(memchr(copy, ':', handshake.user_len) == NULL);
        if (handshake.user_len < handshake.credentials_len)
            require(copy[handshake.user_len] == ':');
        break;
    }
    default:
        abort();
    }
    free(copy);
    return status;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int status = check_parse(data, size, IPC_HANDSHAKE_MAX);

    /* A reader that has seen only part of the bytes gets the same result once the NUL
     * is in, and INCOMPLETE or TOO_LONG before. */
    const uint8_t *nul = memchr(data, 0, size);
    size_t end = nul ? (size_t)(nul - data) + 1 : size;
    for (size_t cut = end > 3 ? end - 3 : 0; cut <= end && cut <= size; cut++) {
        int partial = check_parse(data, cut, IPC_HANDSHAKE_MAX);
        if (cut == end && nul != NULL)
            require(partial == status);
        else if (cut < end)
            require(partial == IPC_HANDSHAKE_INCOMPLETE || partial == IPC_HANDSHAKE_TOO_LONG);
    }

    if (size > 0)
        check_parse(data + 1, size - 1, data[0] & 0x1f);
    return 0;
}
