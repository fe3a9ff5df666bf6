/*
 * fuzz_json.c - libFuzzer target for the JSON renderer.
 *
 * The first input byte selects the options (bit 0 pretty, bit 1 infinities as strings);
 * the rest is a message. It is rendered as given, and with its header rewritten into a
 * valid uncompressed header whose length matches, so that mutations reach the body.
 * Each rendering must agree with qdec_validate. A rejected message writes nothing and
 * reports qdec's error. An accepted one yields valid JSON in chunks of at most
 * JSON_CHUNK_SIZE bytes, checked by the strict validator below, UTF-8 included. The pretty
 * text with its whitespace outside strings removed must equal the compact text. The text
 * read with json_renderer_next in pieces of varying size must equal the text of
 * json_render. Any broken invariant aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "json.h"
#include "qdec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Maximum output kept per rendering. Rows of wide tables repeat their column names, so a
 * small message can expand to gigabytes. Past this size the sink stops the rendering,
 * which also exercises JSON_WRITE_FAILED. */
#define OUTPUT_LIMIT (4u << 20)

static void require(int condition)
{
    if (!condition)
        abort();
}

/* ---- a strict JSON validator (RFC 8259, with UTF-8 checks) ---------------------------- */

struct parser {
    const unsigned char *p;
    const unsigned char *end;
};

static int parse_value(struct parser *j, unsigned depth);

static void skip_space(struct parser *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int at(const struct parser *j, char c)
{
    return j->p < j->end && *j->p == (unsigned char)c;
}

static int parse_digits(struct parser *j)
{
    const unsigned char *start = j->p;

    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > start;
}

static int parse_number(struct parser *j)
{
    if (at(j, '-'))
        j->p++;
    if (at(j, '0'))
        j->p++;
    else if (!(j->p < j->end && *j->p >= '1' && *j->p <= '9') || !parse_digits(j))
        return 0;
    if (at(j, '.')) {
        j->p++;
        if (!parse_digits(j))
            return 0;
    }
    if (at(j, 'e') || at(j, 'E')) {
        j->p++;
        if (at(j, '+') || at(j, '-'))
            j->p++;
        if (!parse_digits(j))
            return 0;
    }
    return 1;
}

static int parse_utf8(struct parser *j)
{
    unsigned char lead = *j->p;
    unsigned continuation;
    uint32_t code, minimum;

    if (lead >= 0xc0 && lead < 0xe0) {
        continuation = 1;
        code = lead & 0x1f;
        minimum = 0x80;
    } else if (lead >= 0xe0 && lead < 0xf0) {
        continuation = 2;
        code = lead & 0x0f;
        minimum = 0x800;
    } else if (lead >= 0xf0 && lead < 0xf8) {
        continuation = 3;
        code = lead & 0x07;
        minimum = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)(j->end - j->p) <= continuation)
        return 0;
    for (unsigned k = 1; k <= continuation; k++) {
        if ((j->p[k] & 0xc0) != 0x80)
            return 0;
        code = code << 6 | (j->p[k] & 0x3f);
    }
    if (code < minimum || (code >= 0xd800 && code <= 0xdfff) || code > 0x10ffff)
        return 0;
    j->p += continuation + 1;
    return 1;
}

static int is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int parse_string(struct parser *j)
{
    j->p++;
    while (j->p < j->end) {
        unsigned char c = *j->p;
        if (c == '"') {
            j->p++;
            return 1;
        }
        if (c < 0x20)
            return 0;
        if (c >= 0x80) {
            if (!parse_utf8(j))
                return 0;
        } else if (c != '\\') {
            j->p++;
        } else if (j->end - j->p >= 6 && j->p[1] == 'u') {
            for (int k = 2; k < 6; k++)
                if (!is_hex(j->p[k]))
                    return 0;
            j->p += 6;
        } else if (j->end - j->p >= 2 && j->p[1] != 0 && strchr("\"\\/bfnrt", j->p[1])) {
            j->p += 2;
        } else {
            return 0;
        }
    }
    return 0;
}

static int parse_container(struct parser *j, char close, unsigned depth)
{
    j->p++;
    skip_space(j);
    if (at(j, close)) {
        j->p++;
        return 1;
    }
    for (;;) {
        if (close == '}') {
            skip_space(j);
            if (!at(j, '"') || !parse_string(j))
                return 0;
            skip_space(j);
            if (!at(j, ':'))
                return 0;
            j->p++;
        }
        if (!parse_value(j, depth + 1))
            return 0;
        skip_space(j);
        if (at(j, ',')) {
            j->p++;
        } else if (at(j, close)) {
            j->p++;
            return 1;
        } else {
            return 0;
        }
    }
}

static int parse_literal(struct parser *j, const char *word)
{
    size_t n = strlen(word);

    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return 0;
    j->p += n;
    return 1;
}

static int parse_value(struct parser *j, unsigned depth)
{
    /* qdec limits nesting to QDEC_MAX_DEPTH containers, and JSON nesting cannot exceed
     * one level per container. */
    if (depth > QDEC_MAX_DEPTH + 2)
        return 0;
    skip_space(j);
    if (j->p >= j->end)
        return 0;
    switch (*j->p) {
    case '{':
        return parse_container(j, '}', depth);
    case '[':
        return parse_container(j, ']', depth);
    case '"':
        return parse_string(j);
    case 't':
        return parse_literal(j, "true");
    case 'f':
        return parse_literal(j, "false");
    case 'n':
        return parse_literal(j, "null");
    default:
        return parse_number(j);
    }
}

static int is_valid_json(const char *text, size_t len)
{
    struct parser j = { (const unsigned char *)text, (const unsigned char *)text + len };

    if (!parse_value(&j, 0))
        return 0;
    skip_space(&j);
    return j.p == j.end;
}

/* ---- rendering ------------------------------------------------------------------------- */

struct output {
    char *data;
    size_t len;
};

static int collect(void *ctx, const char *bytes, size_t length)
{
    struct output *out = ctx;

    require(length > 0 && length <= JSON_CHUNK_SIZE);
    if (out->len + length > OUTPUT_LIMIT)
        return 1;
    if (out->data == NULL) {
        out->data = malloc(OUTPUT_LIMIT);
        require(out->data != NULL);
    }
    memcpy(out->data + out->len, bytes, length);
    out->len += length;
    return 0;
}

/* Removes the whitespace outside strings in place and returns the new length. */
static size_t strip_insignificant_space(char *text, size_t len)
{
    size_t n = 0;
    int in_string = 0;

    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\') {
                text[n++] = c;
                c = text[++i];
            } else if (c == '"') {
                in_string = 0;
            }
        } else if (c == '"') {
            in_string = 1;
        } else if (c == ' ' || c == '\n') {
            continue;
        }
        text[n++] = c;
    }
    return n;
}

/* Reads the text of msg with json_renderer_next in pieces sized by seed, half of them 1 to
 * 64 bytes and half up to twice JSON_CHUNK_SIZE, and requires that they join to
 * expected[0..expected_len). */
static void check_pieces(const uint8_t *msg, size_t len, const struct json_options *options,
                         const char *expected, size_t expected_len, uint32_t seed)
{
    static char piece[2 * JSON_CHUNK_SIZE];
    struct json_renderer *renderer;
    size_t joined = 0;

    require(json_renderer_new(msg, len, options, &renderer, NULL) == JSON_OK);
    for (;;) {
        size_t written;

        seed = seed * 1103515245u + 12345u;
        size_t size = 1 + (seed >> 9) % (seed & 256 ? 64 : sizeof(piece));
        require(json_renderer_next(renderer, piece, size, &written, NULL) == JSON_OK);
        if (written == 0)
            break;
        require(written == size || joined + written == expected_len);
        require(joined + written <= expected_len);
        require(memcmp(piece, expected + joined, written) == 0);
        joined += written;
    }
    require(joined == expected_len);
    json_renderer_free(renderer);
}

/* Renders msg with the given options and checks every invariant; returns the status and
 * hands the text to *out (caller frees out->data). */
static int render_checked(const uint8_t *msg, size_t len, const struct json_options *options,
                          struct output *out)
{
    struct qdec_error expected, err;
    int valid = qdec_validate(msg, len, &expected);

    memset(out, 0, sizeof(*out));
    int status = json_render(msg, len, options, collect, out, &err);
    if (valid != QDEC_OK) {
        require(status == JSON_INVALID_MESSAGE);
        require(out->len == 0);
        require(err.status == expected.status && err.offset == expected.offset);
        require(strcmp(err.message, expected.message) == 0);
        return status;
    }
    require(status == JSON_OK || status == JSON_WRITE_FAILED || status == JSON_OUT_OF_MEMORY);
    if (status != JSON_OK) {
        require(err.status == QDEC_STOPPED && err.offset <= len);
        require(memchr(err.message, 0, sizeof(err.message)) != NULL);
    }
    if (status == JSON_WRITE_FAILED)
        require(out->len + JSON_CHUNK_SIZE > OUTPUT_LIMIT);
    if (status == JSON_OK) {
        require(is_valid_json(out->data, out->len));
        check_pieces(msg, len, options, out->data, out->len, (uint32_t)len);
    }
    return status;
}

static void check_message(const uint8_t *msg, size_t len, uint8_t selector)
{
    struct json_options options = { .pretty = selector & 1, .infinity = (selector >> 1) & 1 };
    struct output first;
    int status = render_checked(msg, len, &options, &first);

    if (status == JSON_OK) {
        /* The other layout must hold the same tokens. */
        struct json_options other = options;
        other.pretty = !options.pretty;
        struct output second;
        if (render_checked(msg, len, &other, &second) == JSON_OK) {
            struct output *pretty = options.pretty ? &first : &second;
            struct output *compact = options.pretty ? &second : &first;
            size_t n = strip_insignificant_space(pretty->data, pretty->len);
            require(n == compact->len);
            require(memcmp(pretty->data, compact->data, n) == 0);
        }
        free(second.data);
    }
    free(first.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t selector = data[0];
    data++;
    size--;

    /* A copy of exactly the input's size, so AddressSanitizer reports any overread. */
    uint8_t *msg = malloc(size > 0 ? size : 1);
    require(msg != NULL);
    if (size > 0)
        memcpy(msg, data, size);
    check_message(msg, size, selector);

    if (size >= IPC_MIN_LENGTH) {
        msg[0] &= 1;
        msg[1] %= 3;
        msg[2] = 0;
        msg[3] = (uint8_t)((uint64_t)size >> 32);
        for (int i = 0; i < 4; i++) {
            int shift = msg[0] ? 8 * i : 8 * (3 - i);
            msg[4 + i] = (uint8_t)(size >> shift);
        }
        check_message(msg, size, selector);
    }
    free(msg);
    return 0;
}
