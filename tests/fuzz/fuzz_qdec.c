/*
 * fuzz_qdec.c - libFuzzer target for the IPC body decoder.
 *
 * Each input is decoded twice: as given, and with its header rewritten into a valid
 * uncompressed header whose length matches the input, so that mutations reach the body.
 * The second walk uses a visitor that reads every byte the decoder points at and checks
 * that begin and end events nest properly. Any broken invariant aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "qdec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct walk_state {
    unsigned open;          /* begin events without their end event */
    unsigned char sum;      /* touches every byte the visitor is given */
};

static void require(int condition)
{
    if (!condition)
        abort();
}

static void touch(struct walk_state *state, const uint8_t *bytes, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        state->sum ^= bytes[i];
}

/* Checks that text[0..size) has no NUL and is followed by one. */
static void require_text(const uint8_t *text, uint64_t size)
{
    require(strlen((const char *)text) == size);
}

static int on_atom(void *ctx, const struct qdec_value *v)
{
    struct walk_state *state = ctx;

    require(v->depth == state->open);
    if (v->type == -11) {
        require_text(v->data, v->size);
    } else {
        require(v->size == qdec_item_size(v->type));
        touch(state, v->data, v->size);
    }
    state->sum ^= (unsigned char)qdec_is_null(v->type, v->data, v->little_endian);
    state->sum ^= (unsigned char)qdec_infinity(v->type, v->data, v->little_endian);
    return 0;
}

static int on_vector(void *ctx, const struct qdec_value *v)
{
    struct walk_state *state = ctx;
    const uint8_t *item = v->data;

    require(v->depth == state->open);
    touch(state, v->data, v->size);
    for (uint64_t i = 0; i < v->count; i++) {
        state->sum ^= (unsigned char)qdec_is_null(v->type, item, v->little_endian);
        state->sum ^= (unsigned char)qdec_infinity(v->type, item, v->little_endian);
        if (v->type == 11)
            item += strlen((const char *)item) + 1;
        else
            item += qdec_item_size(v->type);
    }
    require(item == v->data + v->size);
    return 0;
}

static int on_begin(void *ctx, const struct qdec_value *v)
{
    struct walk_state *state = ctx;

    require(v->depth == state->open);
    require(v->depth <= QDEC_MAX_DEPTH);
    if (v->type == QDEC_TYPE_LAMBDA)
        require_text(v->data, v->size);
    else if (v->size > 0)
        touch(state, v->data, v->size);
    state->open++;
    return 0;
}

static int on_end(void *ctx, const struct qdec_value *v)
{
    struct walk_state *state = ctx;

    require(state->open > 0);
    state->open--;
    require(v->depth == state->open);
    return 0;
}

static int on_error(void *ctx, const struct qdec_value *v)
{
    struct walk_state *state = ctx;

    require(v->depth == state->open);
    require_text(v->data, v->size);
    return 0;
}

static const struct qdec_visitor checking_visitor = {
    .atom = on_atom,
    .vector = on_vector,
    .list_begin = on_begin,
    .list_end = on_end,
    .dict_begin = on_begin,
    .dict_end = on_end,
    .table_begin = on_begin,
    .table_end = on_end,
    .function_begin = on_begin,
    .function_end = on_end,
    .error = on_error,
};

static void require_error(int status, const struct qdec_error *err, uint64_t len)
{
    require(status >= QDEC_OK && status <= QDEC_STOPPED);
    require(status != QDEC_STOPPED);
    if (status == QDEC_OK)
        return;
    require(err->status == status);
    require(err->offset <= len);
    require(memchr(err->message, 0, sizeof(err->message)) != NULL);
    require(strncmp(err->message, "offset ", 7) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qdec_error err;

    int status = qdec_validate(data, size, &err);
    require_error(status, &err, size);

    if (size < IPC_MIN_LENGTH)
        return 0;

    /* A copy of exactly the input's size, so AddressSanitizer reports any overread. */
    uint8_t *msg = malloc(size);
    require(msg != NULL);
    memcpy(msg, data, size);
    msg[0] &= 1;
    msg[1] %= 3;
    msg[2] = 0;
    msg[3] = (uint8_t)((uint64_t)size >> 32);
    for (int i = 0; i < 4; i++) {
        int shift = msg[0] ? 8 * i : 8 * (3 - i);
        msg[4 + i] = (uint8_t)(size >> shift);
    }

    struct walk_state state = { 0 };
    status = qdec_walk(msg, size, &checking_visitor, &state, &err);
    require_error(status, &err, size);
    if (status == QDEC_OK)
        require(state.open == 0);
    require(qdec_validate(msg, size, NULL) == status);

    uint64_t object_size = 0;
    int skip_status = qdec_skip(msg, size, IPC_HEADER_SIZE, msg[0], &object_size, &err);
    require_error(skip_status, &err, size);
    if (skip_status == QDEC_OK)
        require(object_size <= size - IPC_HEADER_SIZE);
    if (status == QDEC_OK)
        require(skip_status == QDEC_OK && object_size == size - IPC_HEADER_SIZE);

    free(msg);
    return 0;
}
