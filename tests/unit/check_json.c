/*
 * check_json.c - unit tests of the JSON renderer.
 *
 * They check the exact text for every q type with its nulls and infinities, and for
 * structures, functions and the real kdb+ samples, all in both byte orders. Escaping,
 * UTF-8 repair, pretty output, bounded chunks and memory, and rejected input have tests of
 * their own.
 *
 * Every rendered text also passes a strict RFC 8259 validator written here, which checks
 * the UTF-8 of strings as well.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "json.h"
#include "qdec.h"
#include "qenc.h"
#include "suites.h"

#define COUNT_OF(array) (sizeof(array) / sizeof((array)[0]))

/* ---- a strict JSON validator ---------------------------------------------------------- */

struct json_parser {
    const unsigned char *p;
    const unsigned char *end;
    const char *error;          /* the first problem found, or NULL */
    unsigned depth;
};

static int parse_value(struct json_parser *j);

static int parse_fail(struct json_parser *j, const char *error)
{
    if (j->error == NULL)
        j->error = error;
    return 0;
}

static void skip_space(struct json_parser *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int parse_literal(struct json_parser *j, const char *word)
{
    size_t n = strlen(word);

    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return parse_fail(j, "invalid literal");
    j->p += n;
    return 1;
}

static int parse_digits(struct json_parser *j)
{
    const unsigned char *start = j->p;

    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > start;
}

static int parse_number(struct json_parser *j)
{
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (!(j->p < j->end && *j->p >= '1' && *j->p <= '9') || !parse_digits(j))
        return parse_fail(j, "invalid number");
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (!parse_digits(j))
            return parse_fail(j, "no digits after the decimal point");
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (!parse_digits(j))
            return parse_fail(j, "no digits in the exponent");
    }
    return 1;
}

/* Checks one UTF-8 sequence starting with a byte >= 0x80 and moves past it. */
static int parse_utf8(struct json_parser *j)
{
    unsigned char lead = *j->p;
    unsigned continuation;
    uint32_t code;
    uint32_t minimum;

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
        return parse_fail(j, "invalid UTF-8 lead byte");
    }
    if ((size_t)(j->end - j->p) <= continuation)
        return parse_fail(j, "truncated UTF-8 sequence");
    for (unsigned k = 1; k <= continuation; k++) {
        if ((j->p[k] & 0xc0) != 0x80)
            return parse_fail(j, "invalid UTF-8 continuation byte");
        code = code << 6 | (j->p[k] & 0x3f);
    }
    if (code < minimum)
        return parse_fail(j, "overlong UTF-8 sequence");
    if (code >= 0xd800 && code <= 0xdfff)
        return parse_fail(j, "UTF-8 encoded surrogate");
    if (code > 0x10ffff)
        return parse_fail(j, "UTF-8 code point above U+10FFFF");
    j->p += continuation + 1;
    return 1;
}

static int parse_string(struct json_parser *j)
{
    j->p++;     /* the opening quote */
    while (j->p < j->end) {
        unsigned char c = *j->p;
        if (c == '"') {
            j->p++;
            return 1;
        }
        if (c < 0x20)
            return parse_fail(j, "unescaped control character in a string");
        if (c >= 0x80) {
            if (!parse_utf8(j))
                return 0;
            continue;
        }
        if (c != '\\') {
            j->p++;
            continue;
        }
        if (j->end - j->p < 2)
            return parse_fail(j, "truncated escape");
        char escape = (char)j->p[1];
        if (escape == 'u') {
            if (j->end - j->p < 6)
                return parse_fail(j, "truncated \\u escape");
            for (int k = 2; k < 6; k++)
                if (!strchr("0123456789abcdefABCDEF", j->p[k]) || j->p[k] == 0)
                    return parse_fail(j, "invalid \\u escape");
            j->p += 6;
        } else if (strchr("\"\\/bfnrt", escape) != NULL && escape != 0) {
            j->p += 2;
        } else {
            return parse_fail(j, "invalid escape");
        }
    }
    return parse_fail(j, "unterminated string");
}

/* Parses the items of an array (close is ']') or the members of an object ('}'). */
static int parse_container(struct json_parser *j, unsigned char close)
{
    if (++j->depth > 10000)
        return parse_fail(j, "nesting deeper than 10000");
    j->p++;
    skip_space(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->depth--;
        return 1;
    }
    for (;;) {
        if (close == '}') {
            skip_space(j);
            if (!(j->p < j->end && *j->p == '"'))
                return parse_fail(j, "object key is not a string");
            if (!parse_string(j))
                return 0;
            skip_space(j);
            if (!(j->p < j->end && *j->p == ':'))
                return parse_fail(j, "no ':' after an object key");
            j->p++;
        }
        if (!parse_value(j))
            return 0;
        skip_space(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == close) {
            j->p++;
            j->depth--;
            return 1;
        }
        return parse_fail(j, "no ',' or closing bracket after an item");
    }
}

static int parse_value(struct json_parser *j)
{
    skip_space(j);
    if (j->p >= j->end)
        return parse_fail(j, "value missing");
    switch (*j->p) {
    case '{':
        return parse_container(j, '}');
    case '[':
        return parse_container(j, ']');
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

/* Returns NULL when text[0..len) is one valid JSON text, else the reason it is not. */
static const char *json_invalid_reason(const char *text, size_t len)
{
    struct json_parser j = { .p = (const unsigned char *)text,
                             .end = (const unsigned char *)text + len };

    if (parse_value(&j)) {
        skip_space(&j);
        if (j.p != j.end)
            parse_fail(&j, "text after the value");
    }
    return j.error;
}

START_TEST(validator_self_check)
{
    static const char *const valid[] = {
        "0", "-0", "1.5e+10", "[]", "{}", " [1, {\"a\": [null, true, false]}] ",
        "\"\\u00e9\\n\\\"\"", "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"", "-1.0E-2",
    };
    static const char *const invalid[] = {
        "", "01", "1.", ".5", "+1", "[1,]", "{\"a\"}", "{1:2}", "\"a", "\"\x01\"",
        "\"\\x\"", "\"\xc0\x80\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "inf",
        "nan", "[1] 2", "tru", "\"\\u12\"", "\"\xe2\x82\"",
    };

    for (size_t i = 0; i < COUNT_OF(valid); i++)
        ck_assert_msg(json_invalid_reason(valid[i], strlen(valid[i])) == NULL,
                      "validator rejects %s", valid[i]);
    for (size_t i = 0; i < COUNT_OF(invalid); i++)
        ck_assert_msg(json_invalid_reason(invalid[i], strlen(invalid[i])) != NULL,
                      "validator accepts %s", invalid[i]);
}
END_TEST

/* ---- message helpers ------------------------------------------------------------------- */

static int hex_digit(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Appends the bytes written as hex digits (spaces ignored) to b. */
static void append_hex(struct qenc *b, const char *hex)
{
    int high = -1;

    for (const char *p = hex; *p; p++) {
        int d = hex_digit((unsigned char)*p);
        if (d < 0) {
            ck_assert_msg(*p == ' ', "unexpected character '%c' in hex", *p);
            continue;
        }
        if (high < 0) {
            high = d;
        } else {
            uint8_t byte = (uint8_t)(high << 4 | d);
            qenc_raw(b, &byte, 1);
            high = -1;
        }
    }
    ck_assert_msg(high < 0, "odd number of hex digits in \"%s\"", hex);
}

/* Copies the message of b into a heap block of exactly its size, so AddressSanitizer
 * reports any read past the end, and frees b. */
static uint8_t *finish_message(struct qenc *b, size_t *len)
{
    ck_assert_int_eq(qenc_end(b), 0);
    ck_assert_int_eq(b->failed, 0);
    *len = b->len;
    uint8_t *msg = malloc(b->len);
    ck_assert_ptr_nonnull(msg);
    memcpy(msg, b->data, b->len);
    qenc_free(b);
    return msg;
}

static void set_header_length(uint8_t *msg, uint64_t length)
{
    msg[3] = (uint8_t)(length >> 32);
    for (int i = 0; i < 4; i++) {
        int shift = msg[0] ? 8 * i : 8 * (3 - i);
        msg[4 + i] = (uint8_t)(length >> shift);
    }
}

/* Writes value into size bytes, least significant first. */
static void store_little_endian(uint8_t *out, uint64_t value, unsigned size)
{
    for (unsigned i = 0; i < size; i++)
        out[i] = (uint8_t)(value >> (8 * i));
}

/* ---- byte-order conversion ------------------------------------------------------------- */

struct swap_ctx {
    const uint8_t *source;
    uint8_t *target;
};

static void swap_at(struct swap_ctx *s, const uint8_t *p, unsigned width)
{
    size_t offset = (size_t)(p - s->source);

    for (unsigned i = 0; i < width; i++)
        s->target[offset + i] = p[width - 1 - i];
}

/* Reverses each item of a fixed-width type of 2 to 8 bytes (GUIDs keep their order). */
static void swap_items(struct swap_ctx *s, const struct qdec_value *v, uint64_t count)
{
    unsigned width = qdec_item_size(v->type);

    if (width < 2 || width > 8)
        return;
    for (uint64_t i = 0; i < count; i++)
        swap_at(s, v->data + i * width, width);
}

static void swap_count(struct swap_ctx *s, const struct qdec_value *v)
{
    const uint8_t *p = s->source + v->offset;
    swap_at(s, p + 2, (p[1] & QDEC_ATTR_LARGE_COUNT) ? 8 : 4);
}

static int swap_atom(void *ctx, const struct qdec_value *v)
{
    swap_items(ctx, v, 1);
    return 0;
}

static int swap_vector(void *ctx, const struct qdec_value *v)
{
    swap_count(ctx, v);
    if (v->type != 11)
        swap_items(ctx, v, v->count);
    return 0;
}

static int swap_list(void *ctx, const struct qdec_value *v)
{
    swap_count(ctx, v);
    return 0;
}

static int swap_function(void *ctx, const struct qdec_value *v)
{
    struct swap_ctx *s = ctx;

    if (v->type == QDEC_TYPE_PROJECTION || v->type == QDEC_TYPE_COMPOSITION)
        swap_at(s, s->source + v->offset + 1, 4);
    return 0;
}

static const struct qdec_visitor swap_visitor = {
    .atom = swap_atom,
    .vector = swap_vector,
    .list_begin = swap_list,
    .function_begin = swap_function,
};

/* Returns a big-endian copy of the little-endian message msg. */
static uint8_t *to_big_endian(const uint8_t *msg, size_t len)
{
    uint8_t *target = malloc(len);
    ck_assert_ptr_nonnull(target);
    memcpy(target, msg, len);

    struct swap_ctx s = { .source = msg, .target = target };
    struct qdec_error err;
    int status = qdec_walk(msg, len, &swap_visitor, &s, &err);
    ck_assert_msg(status == QDEC_OK, "byte swap walk failed: %s", err.message);
    target[0] = 0;
    set_header_length(target, len);
    return target;
}

/* ---- rendering helpers ----------------------------------------------------------------- */

struct output {
    char *data;
    size_t len;
    size_t cap;
    size_t chunks;
    size_t max_chunk;
};

static int collect(void *ctx, const char *bytes, size_t length)
{
    struct output *out = ctx;

    ck_assert_uint_gt(length, 0);
    ck_assert_uint_le(length, JSON_CHUNK_SIZE);
    if (out->len + length + 1 > out->cap) {
        out->cap = (out->len + length + 1) * 2;
        out->data = realloc(out->data, out->cap);
        ck_assert_ptr_nonnull(out->data);
    }
    memcpy(out->data + out->len, bytes, length);
    out->len += length;
    out->data[out->len] = '\0';
    out->chunks++;
    if (length > out->max_chunk)
        out->max_chunk = length;
    return 0;
}

/* Returns the next of a sequence of piece sizes from 1 byte to twice JSON_CHUNK_SIZE,
 * mostly small ones, which depends only on *seed so that a failure repeats. */
static size_t next_piece_size(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    uint32_t bits = *seed >> 8;

    if (bits % 4 == 0)
        return 1 + bits / 4 % (2 * JSON_CHUNK_SIZE);
    return 1 + bits / 4 % 40;
}

/* Renders msg with json_renderer_next in pieces of varying size and checks that the
 * pieces join to expected[0..expected_len), the text of json_render. */
static void check_pieces(const uint8_t *msg, size_t len, const struct json_options *options,
                         const char *name, const char *expected, size_t expected_len)
{
    struct json_renderer *renderer;
    struct qdec_error err;
    char *piece = malloc(2 * JSON_CHUNK_SIZE);
    uint32_t seed = (uint32_t)len;
    size_t joined = 0;

    ck_assert_ptr_nonnull(piece);
    ck_assert_int_eq(json_renderer_new(msg, len, options, &renderer, &err), JSON_OK);
    for (;;) {
        size_t size = next_piece_size(&seed);
        size_t written = 0;

        int status = json_renderer_next(renderer, piece, size, &written, &err);
        ck_assert_msg(status == JSON_OK, "%s: piece after %zu bytes failed (%s): %s", name,
                      joined, json_status_text(status), err.message);
        if (written == 0)
            break;
        ck_assert_msg(written == size || joined + written == expected_len,
                      "%s: a piece of %zu bytes before the end when %zu were requested", name,
                      written, size);
        ck_assert_msg(joined + written <= expected_len && memcmp(piece, expected + joined,
                                                                 written) == 0,
                      "%s: the piece at byte %zu differs from the whole text", name, joined);
        joined += written;
    }
    ck_assert_msg(joined == expected_len, "%s: pieces end after %zu of %zu bytes", name, joined,
                  expected_len);

    size_t written = 1;
    ck_assert_int_eq(json_renderer_next(renderer, piece, 10, &written, &err), JSON_OK);
    ck_assert_uint_eq(written, 0);
    json_renderer_free(renderer);
    free(piece);
}

/* Renders msg, checks that the result is valid JSON and that rendering it in pieces gives
 * the same text, and returns it (caller frees). */
static char *render_json(const uint8_t *msg, size_t len, const struct json_options *options,
                         const char *name)
{
    struct output out = { 0 };
    struct qdec_error err;

    int status = json_render(msg, len, options, collect, &out, &err);
    ck_assert_msg(status == JSON_OK, "%s: render failed (%s): %s", name,
                  json_status_text(status), err.message);
    if (out.data == NULL)
        out.data = strdup("");
    const char *reason = json_invalid_reason(out.data, out.len);
    ck_assert_msg(reason == NULL, "%s: output is not valid JSON (%s): %s", name, reason,
                  out.data);
    ck_assert_uint_eq(strlen(out.data), out.len);
    check_pieces(msg, len, options, name, out.data, out.len);
    return out.data;
}

/* Renders msg in both byte orders and compares each text with expected. */
static void check_both_orders(const uint8_t *msg, size_t len, const struct json_options *options,
                              const char *name, const char *expected)
{
    char *little = render_json(msg, len, options, name);
    ck_assert_msg(strcmp(little, expected) == 0, "%s:\n  rendered %s\n  expected %s", name,
                  little, expected);

    uint8_t *big_msg = to_big_endian(msg, len);
    char *big = render_json(big_msg, len, options, name);
    ck_assert_msg(strcmp(big, expected) == 0, "%s (big-endian):\n  rendered %s\n  expected %s",
                  name, big, expected);
    free(big);
    free(big_msg);
    free(little);
}

/* ---- every type: atoms in a general list, and vectors ------------------------------------ */

#define NH INT16_MIN
#define WH INT16_MAX
#define NI INT32_MIN
#define WI INT32_MAX
#define NJ INT64_MIN
#define WJ INT64_MAX

/* The GUID 8c680a01-5a49-5aab-5a65-d4bfddb6a661 and the null GUID, as raw bytes. */
static const uint8_t GUIDS[32] = {
    0x8c, 0x68, 0x0a, 0x01, 0x5a, 0x49, 0x5a, 0xab, 0x5a, 0x65, 0xd4, 0xbf, 0xdd, 0xb6, 0xa6, 0x61,
};

/*
 * Items of one type, rendered two ways with the same expected text: as a general list of
 * atoms and as a vector. items contains count values of the host type of that q type,
 * such as int16_t for short and double for float and datetime. Symbols are NUL-terminated
 * texts laid end to end, and GUIDs 16 raw bytes each. Char and byte vectors render as one
 * string, so their vector text is given apart in vector_json.
 */
struct typed_case {
    const char *name;
    int type;
    size_t count;
    const void *items;
    const char *json;
    const char *vector_json;    /* NULL when the vector renders as json */
};

#define ITEMS(ctype, ...) \
    sizeof((const ctype[]){ __VA_ARGS__ }) / sizeof(ctype), (const ctype[]){ __VA_ARGS__ }

static const struct typed_case typed_cases[] = {
    { "boolean", QT_BOOLEAN, ITEMS(uint8_t, 1, 0, 2),
      "[true,false,true]", NULL },
    { "guid", QT_GUID, 2, GUIDS,
      "[\"8c680a01-5a49-5aab-5a65-d4bfddb6a661\",null]", NULL },
    { "byte", QT_BYTE, ITEMS(uint8_t, 0x2a, 0x00, 0xff),
      "[\"2a\",\"00\",\"ff\"]", "\"2a00ff\"" },
    { "short", QT_SHORT, ITEMS(int16_t, -234, NH, WH, -WH, WH - 1, -WH + 1, 0),
      "[-234,null,null,null,32766,-32766,0]", NULL },
    { "int", QT_INT, ITEMS(int32_t, 42, NI, WI, -WI, WI - 1, -WI + 1),
      "[42,null,null,null,2147483646,-2147483646]", NULL },
    { "long", QT_LONG, ITEMS(int64_t, 89421099511627575, NJ, WJ, -WJ, WJ - 1, -WJ + 1),
      "[89421099511627575,null,null,null,9223372036854775806,-9223372036854775806]", NULL },
    { "real", QT_REAL,
      ITEMS(float, 1.5f, 0.1f, NAN, -NAN, INFINITY, -INFINITY, 3e38f, -0.0f, 1e-7f, 16777216.0f),
      "[1.5,0.1,null,null,null,null,3e+38,-0,1e-07,16777216]", NULL },
    { "float", QT_FLOAT,
      ITEMS(double, -0.5, 0.1, 0.1 + 0.2, NAN, -NAN, INFINITY, -INFINITY, 1e300, 3.0, -0.0,
            5e-324, 123456789012345678.0),
      "[-0.5,0.1,0.30000000000000004,null,null,null,null,1e+300,3,-0,4.94065645841247e-324,"
      "1.2345678901234568e+17]", NULL },
    { "char", QT_CHAR, ITEMS(char, 'x', ' ', '"', '\\', '\n', '\x01', '\x7f', '\x80'),
      "[\"x\",\" \",\"\\\"\",\"\\\\\",\"\\n\",\"\\u0001\",\"\x7f\",\"\xef\xbf\xbd\"]",
      "\"x \\\"\\\\\\n\\u0001\x7f\xef\xbf\xbd\"" },
    { "symbol", QT_SYMBOL, 4, "hello\0\0a\"b\0\xc3\xa9\xff",
      "[\"hello\",null,\"a\\\"b\",\"\xc3\xa9\xef\xbf\xbd\"]", NULL },
    { "timestamp", QT_TIMESTAMP,
      ITEMS(int64_t, 757427400000000000, NJ, WJ, -WJ, -1, -WJ + 1, WJ - 1, 0),
      "[\"2024-01-01T12:30:00.000000000\",null,null,null,\"1999-12-31T23:59:59.999999999\","
      "\"1707-09-22T00:12:43.145224194\",\"2292-04-10T23:47:16.854775806\","
      "\"2000-01-01T00:00:00.000000000\"]", NULL },
    { "month", QT_MONTH, ITEMS(int32_t, 288, -1, NI, WI, -WI, 0, -24001),
      "[\"2024-01\",\"1999-12\",null,null,null,\"2000-01\",\"-0001-12\"]", NULL },
    { "date", QT_DATE,
      ITEMS(int32_t, 8766, 8825, -1, -730119, 2921939, 2921940, -730485, -730486, NI, WI, -WI),
      "[\"2024-01-01\",\"2024-02-29\",\"1999-12-31\",\"0001-01-01\",\"9999-12-31\","
      "\"+10000-01-01\",\"0000-01-01\",\"-0001-12-31\",null,null,null]", NULL },
    { "datetime", QT_DATETIME,
      ITEMS(double, 8766.5, -0.5, 1.0 / 86400000, NAN, INFINITY, -INFINITY, 1e12, 0.0),
      "[\"2024-01-01T12:00:00.000\",\"1999-12-31T12:00:00.000\",\"2000-01-01T00:00:00.001\","
      "null,null,null,null,\"2000-01-01T00:00:00.000\"]", NULL },
    { "timespan", QT_TIMESPAN,
      ITEMS(int64_t, 1000000000, -1, 0, 86400000000001, NJ, WJ, -WJ, WJ - 1),
      "[\"0D00:00:01.000000000\",\"-0D00:00:00.000000001\",\"0D00:00:00.000000000\","
      "\"1D00:00:00.000000001\",null,null,null,\"106751D23:47:16.854775806\"]", NULL },
    { "minute", QT_MINUTE, ITEMS(int32_t, 750, -1, 6000, NI, WI, -WI),
      "[\"12:30\",\"-00:01\",\"100:00\",null,null,null]", NULL },
    { "second", QT_SECOND, ITEMS(int32_t, 45015, -1, 0, NI, WI, -WI),
      "[\"12:30:15\",\"-00:00:01\",\"00:00:00\",null,null,null]", NULL },
    { "time", QT_TIME, ITEMS(int32_t, 45015250, -1, 86399999, NI, WI, -WI),
      "[\"12:30:15.250\",\"-00:00:00.001\",\"23:59:59.999\",null,null,null]", NULL },
};

/* Returns the little-endian bytes of item i of a typed case (not symbols) in out. */
static void typed_item_bytes(const struct typed_case *c, size_t i, uint8_t *out)
{
    unsigned size = qdec_item_size(c->type);
    const uint8_t *host = (const uint8_t *)c->items + i * size;
    uint64_t value = 0;

    if (c->type == QT_GUID || size == 1) {
        memcpy(out, host, size);
        return;
    }
    switch (size) {
    case 2: { uint16_t v; memcpy(&v, host, 2); value = v; break; }
    case 4: { uint32_t v; memcpy(&v, host, 4); value = v; break; }
    case 8: { uint64_t v; memcpy(&v, host, 8); value = v; break; }
    }
    store_little_endian(out, value, size);
}

static uint8_t *typed_message(const struct typed_case *c, int as_vector, size_t *len)
{
    struct qenc b;
    const char *symbol = c->items;

    qenc_init(&b);
    qenc_begin(&b, IPC_RESPONSE);
    if (as_vector)
        qenc_vector_header(&b, c->type, 0, c->count);
    else
        qenc_list_header(&b, c->count);
    for (size_t i = 0; i < c->count; i++) {
        if (c->type == QT_SYMBOL) {
            size_t n = strlen(symbol) + 1;
            if (!as_vector)
                qenc_raw(&b, &(uint8_t){ (uint8_t)-QT_SYMBOL }, 1);
            qenc_raw(&b, symbol, n);
            symbol += n;
            continue;
        }
        uint8_t bytes[16];
        typed_item_bytes(c, i, bytes);
        if (as_vector)
            qenc_raw(&b, bytes, qdec_item_size(c->type));
        else
            qenc_atom(&b, c->type, bytes);
    }
    return finish_message(&b, len);
}

START_TEST(typed_atoms_and_vectors)
{
    for (size_t i = 0; i < COUNT_OF(typed_cases); i++) {
        const struct typed_case *c = &typed_cases[i];
        char name[96];
        size_t len;

        snprintf(name, sizeof(name), "%s atoms", c->name);
        uint8_t *msg = typed_message(c, 0, &len);
        check_both_orders(msg, len, NULL, name, c->json);
        free(msg);

        snprintf(name, sizeof(name), "%s vector", c->name);
        msg = typed_message(c, 1, &len);
        check_both_orders(msg, len, NULL, name, c->vector_json ? c->vector_json : c->json);
        free(msg);
    }
}
END_TEST

START_TEST(typed_single_atoms)
{
    /* A top-level atom takes the same path as an atom in a list; check one of each kind. */
    for (size_t i = 0; i < COUNT_OF(typed_cases); i++) {
        const struct typed_case *c = &typed_cases[i];
        struct qenc b;
        size_t len;

        qenc_init(&b);
        qenc_begin(&b, IPC_RESPONSE);
        if (c->type == QT_SYMBOL) {
            qenc_symbol(&b, c->items);
        } else {
            uint8_t bytes[16];
            typed_item_bytes(c, 0, bytes);
            qenc_atom(&b, c->type, bytes);
        }
        uint8_t *msg = finish_message(&b, &len);

        /* The expected text is the first item of the list text. */
        char expected[128];
        const char *first = c->json + 1;
        size_t n = 0;
        int in_string = 0;
        for (; first[n] && (in_string || (first[n] != ',' && first[n] != ']')); n++) {
            if (first[n] == '\\' && in_string)
                n++;
            else if (first[n] == '"')
                in_string = !in_string;
        }
        ck_assert_uint_lt(n, sizeof(expected));
        memcpy(expected, first, n);
        expected[n] = '\0';
        check_both_orders(msg, len, NULL, c->name, expected);
        free(msg);
    }
}
END_TEST

/* ---- structures --------------------------------------------------------------------------- */

static void put_long(struct qenc *b, int64_t value)
{
    uint8_t bytes[8];
    store_little_endian(bytes, (uint64_t)value, 8);
    qenc_raw(b, bytes, 8);
}

static void long_vector(struct qenc *b, size_t count, const int64_t *values)
{
    qenc_vector_header(b, QT_LONG, 0, count);
    for (size_t i = 0; i < count; i++)
        put_long(b, values[i]);
}

#define LONGS(b, ...) \
    long_vector((b), sizeof((const int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t), \
                (const int64_t[]){ __VA_ARGS__ })

static void symbol_vector(struct qenc *b, size_t count, const char *const *texts)
{
    qenc_symbols(b, texts, count);
}

#define SYMBOLS(b, ...) \
    symbol_vector((b), sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(char *), \
                  (const char *const[]){ __VA_ARGS__ })

static void build_nested_list(struct qenc *b)
{
    /* (1;`a;"xy";(2;3.5);()) */
    qenc_list_header(b, 5);
    qenc_long(b, 1);
    qenc_symbol(b, "a");
    qenc_string(b, "xy", 2);
    qenc_list_header(b, 2);
    qenc_long(b, 2);
    qenc_float(b, 3.5);
    qenc_list_header(b, 0);
}

static void build_generic_null_list(struct qenc *b)
{
    qenc_list_header(b, 3);
    qenc_long(b, 42);
    qenc_generic_null(b);
    qenc_symbol(b, "foo");
}

static void build_empty_list(struct qenc *b) { qenc_list_header(b, 0); }
static void build_empty_longs(struct qenc *b) { qenc_vector_header(b, QT_LONG, 0, 0); }
static void build_empty_symbols(struct qenc *b) { qenc_vector_header(b, QT_SYMBOL, 0, 0); }
static void build_empty_string(struct qenc *b) { qenc_string(b, "", 0); }
static void build_empty_bytes(struct qenc *b) { qenc_vector_header(b, QT_BYTE, 0, 0); }
static void build_generic_null(struct qenc *b) { qenc_generic_null(b); }

static void build_sorted_longs(struct qenc *b)
{
    qenc_vector_header(b, QT_LONG, QDEC_ATTR_SORTED, 2);
    put_long(b, 1);
    put_long(b, 2);
}

static void build_large_count_flag(struct qenc *b)
{
    /* A capability 6 header: attribute 0x80 and an 8-byte count. */
    append_hex(b, "07 80 0200000000000000");
    put_long(b, 5);
    put_long(b, 6);
}

static void build_dict_symbols(struct qenc *b)
{
    qenc_dict(b);
    SYMBOLS(b, "a", "b");
    LONGS(b, 1, 2);
}

static void build_dict_mixed_values(struct qenc *b)
{
    qenc_dict(b);
    SYMBOLS(b, "x", "y");
    qenc_list_header(b, 2);
    qenc_long(b, 1);
    qenc_string(b, "z", 1);
}

static void build_dict_long_keys(struct qenc *b)
{
    qenc_dict(b);
    LONGS(b, 1, 2, NJ);
    SYMBOLS(b, "abc", "cdefgh", "");
}

static void build_dict_string_keys(struct qenc *b)
{
    qenc_dict(b);
    qenc_list_header(b, 2);
    qenc_string(b, "ab", 2);
    qenc_string(b, "c\"d\n", 4);
    LONGS(b, 1, 2);
}

static void build_dict_list_keys(struct qenc *b)
{
    qenc_dict(b);
    qenc_list_header(b, 2);
    LONGS(b, 0, 1);
    LONGS(b, 2, 3);
    SYMBOLS(b, "first", "second");
}

static void build_dict_nested_string_key(struct qenc *b)
{
    /* (enlist ("a\"";`b))!enlist 1 */
    qenc_dict(b);
    qenc_list_header(b, 1);
    qenc_list_header(b, 2);
    qenc_string(b, "a\"", 2);
    qenc_symbol(b, "b");
    LONGS(b, 1);
}

static void build_dict_null_symbol_key(struct qenc *b)
{
    qenc_dict(b);
    SYMBOLS(b, "a", "");
    LONGS(b, 1, 2);
}

static void build_dict_date_keys(struct qenc *b)
{
    qenc_dict(b);
    append_hex(b, "0e 00 02000000 3e220000 00000080");
    LONGS(b, 1, 2);
}

static void build_dict_float_keys(struct qenc *b)
{
    qenc_dict(b);
    qenc_list_header(b, 2);
    qenc_float(b, 1.5);
    qenc_float(b, INFINITY);
    SYMBOLS(b, "a", "b");
}

static void build_dict_boolean_keys(struct qenc *b)
{
    qenc_dict(b);
    append_hex(b, "01 00 02000000 01 00");
    LONGS(b, 1, 2);
}

static void build_dict_guid_and_char_keys(struct qenc *b)
{
    qenc_dict(b);
    qenc_list_header(b, 3);
    qenc_guid(b, GUIDS);
    qenc_char(b, 'c');
    qenc_byte(b, 0xab);
    LONGS(b, 1, 2, 3);
}

static void build_dict_empty(struct qenc *b)
{
    qenc_dict(b);
    qenc_list_header(b, 0);
    qenc_list_header(b, 0);
}

static void build_sorted_dict(struct qenc *b)
{
    append_hex(b, "7f 0b 01 02000000 6100 6200");
    LONGS(b, 1, 2);
}

static void build_dict_count_mismatch(struct qenc *b)
{
    qenc_dict(b);
    SYMBOLS(b, "a", "b");
    LONGS(b, 1);
}

static void build_dict_atom_key(struct qenc *b)
{
    qenc_dict(b);
    qenc_symbol(b, "a");
    qenc_long(b, 1);
}

static void build_dict_table_values(struct qenc *b)
{
    static const char *const names[] = { "x" };

    qenc_dict(b);
    SYMBOLS(b, "a", "b");
    qenc_table(b, names, 1);
    LONGS(b, 1, 2);
}

static void build_dict_function_key(struct qenc *b)
{
    qenc_dict(b);
    qenc_list_header(b, 1);
    append_hex(b, "64 00 0a 00 03000000 7b787d");  /* {x} */
    LONGS(b, 1);
}

static void build_dict_dict_key(struct qenc *b)
{
    /* (enlist `a`b!1 2)!enlist `v: a dictionary as a key renders as its JSON text. */
    qenc_dict(b);
    qenc_list_header(b, 1);
    build_dict_symbols(b);
    SYMBOLS(b, "v");
}

static void build_table(struct qenc *b)
{
    static const char *const names[] = { "a", "b" };

    qenc_table(b, names, 2);
    LONGS(b, 1, 2);
    SYMBOLS(b, "x", "y");
}

static void build_table_empty(struct qenc *b)
{
    static const char *const names[] = { "a", "b" };

    qenc_table(b, names, 2);
    qenc_vector_header(b, QT_LONG, 0, 0);
    qenc_list_header(b, 0);
}

static void build_table_no_columns(struct qenc *b)
{
    qenc_table(b, NULL, 0);
}

/* ([]s:("ab";"c"); n:(1 2;()); c:"xy") */
static void build_table_list_columns(struct qenc *b)
{
    static const char *const names[] = { "s", "n", "c" };

    qenc_table(b, names, 3);
    qenc_list_header(b, 2);
    qenc_string(b, "ab", 2);
    qenc_string(b, "c", 1);
    qenc_list_header(b, 2);
    LONGS(b, 1, 2);
    qenc_list_header(b, 0);
    qenc_string(b, "xy", 2);
}

static void build_table_table_column(struct qenc *b)
{
    static const char *const outer[] = { "t", "k" };
    static const char *const inner[] = { "a", "b" };

    qenc_table(b, outer, 2);
    qenc_table(b, inner, 2);
    LONGS(b, 1, 2);
    SYMBOLS(b, "p", "q");
    SYMBOLS(b, "x", "y");
}

static void build_table_in_list(struct qenc *b)
{
    static const char *const names[] = { "a" };

    qenc_list_header(b, 2);
    qenc_table(b, names, 1);
    LONGS(b, 1);
    qenc_long(b, 2);
}

static void build_table_escaped_names(struct qenc *b)
{
    static const char *const names[] = { "a\"b", "\x01" };

    qenc_table(b, names, 2);
    LONGS(b, 1);
    LONGS(b, 2);
}

static void build_keyed_table(struct qenc *b)
{
    static const char *const keys[] = { "k" };
    static const char *const values[] = { "v", "w" };

    qenc_dict(b);
    qenc_table(b, keys, 1);
    LONGS(b, 1, 2);
    qenc_table(b, values, 2);
    SYMBOLS(b, "a", "b");
    qenc_list_header(b, 2);
    qenc_string(b, "s", 1);
    qenc_long(b, 3);
}

static void build_sorted_keyed_table(struct qenc *b)
{
    static const char *const values[] = { "v" };

    append_hex(b, "7f 62 01 63 0b 00 01000000 6b00 00 00 01000000");
    qenc_vector_header(b, QT_LONG, QDEC_ATTR_SORTED, 1);
    put_long(b, 7);
    qenc_table(b, values, 1);
    SYMBOLS(b, "x");
}

static void build_keyed_table_row_mismatch(struct qenc *b)
{
    static const char *const keys[] = { "k" };
    static const char *const values[] = { "v" };

    qenc_dict(b);
    qenc_table(b, keys, 1);
    LONGS(b, 1, 2);
    qenc_table(b, values, 1);
    SYMBOLS(b, "a");
}

static void build_table_keys_vector_values(struct qenc *b)
{
    static const char *const keys[] = { "k" };

    qenc_dict(b);
    qenc_table(b, keys, 1);
    LONGS(b, 1, 2);
    SYMBOLS(b, "a", "b");
}

static void build_error(struct qenc *b) { qenc_error(b, "type"); }
static void build_error_escaped(struct qenc *b) { qenc_error(b, "a\"b\\c\td\xff"); }

static void build_error_in_list(struct qenc *b)
{
    qenc_list_header(b, 2);
    qenc_long(b, 1);
    qenc_error(b, "x");
}

/* A builder, or the body of the message in hex; the expected compact JSON. */
struct json_case {
    const char *name;
    void (*build)(struct qenc *b);
    const char *body_hex;
    const char *json;
};

static const struct json_case json_cases[] = {
    { "nested list", build_nested_list, NULL, "[1,\"a\",\"xy\",[2,3.5],[]]" },
    { "generic null in list", build_generic_null_list, NULL, "[42,null,\"foo\"]" },
    { "generic null", build_generic_null, NULL, "null" },
    { "empty list", build_empty_list, NULL, "[]" },
    { "empty long vector", build_empty_longs, NULL, "[]" },
    { "empty symbol vector", build_empty_symbols, NULL, "[]" },
    { "empty string", build_empty_string, NULL, "\"\"" },
    { "empty byte vector", build_empty_bytes, NULL, "\"\"" },
    { "sorted attribute", build_sorted_longs, NULL, "[1,2]" },
    { "8-byte count", build_large_count_flag, NULL, "[5,6]" },
    { "dict symbol keys", build_dict_symbols, NULL, "{\"a\":1,\"b\":2}" },
    { "dict mixed values", build_dict_mixed_values, NULL, "{\"x\":1,\"y\":\"z\"}" },
    { "dict long keys", build_dict_long_keys, NULL,
      "{\"1\":\"abc\",\"2\":\"cdefgh\",\"null\":null}" },
    { "dict string keys", build_dict_string_keys, NULL, "{\"ab\":1,\"c\\\"d\\n\":2}" },
    { "dict list keys", build_dict_list_keys, NULL, "{\"[0,1]\":\"first\",\"[2,3]\":\"second\"}" },
    { "dict nested string key", build_dict_nested_string_key, NULL,
      "{\"[\\\"a\\\"\\\",\\\"b\\\"]\":1}" },
    { "dict null symbol key", build_dict_null_symbol_key, NULL, "{\"a\":1,\"\":2}" },
    { "dict date keys", build_dict_date_keys, NULL, "{\"2024-01-01\":1,\"null\":2}" },
    { "dict float keys", build_dict_float_keys, NULL, "{\"1.5\":\"a\",\"null\":\"b\"}" },
    { "dict boolean keys", build_dict_boolean_keys, NULL, "{\"true\":1,\"false\":2}" },
    { "dict guid char byte keys", build_dict_guid_and_char_keys, NULL,
      "{\"8c680a01-5a49-5aab-5a65-d4bfddb6a661\":1,\"c\":2,\"ab\":3}" },
    { "dict empty", build_dict_empty, NULL, "{}" },
    { "sorted dict", build_sorted_dict, NULL, "{\"a\":1,\"b\":2}" },
    { "dict count mismatch", build_dict_count_mismatch, NULL,
      "{\"keys\":[\"a\",\"b\"],\"values\":[1]}" },
    { "dict atom key", build_dict_atom_key, NULL, "{\"keys\":\"a\",\"values\":1}" },
    { "dict table values", build_dict_table_values, NULL,
      "{\"a\":{\"x\":1},\"b\":{\"x\":2}}" },
    { "dict function key", build_dict_function_key, NULL, "{\"{x}\":1}" },
    { "dict dict key", build_dict_dict_key, NULL, "{\"{\\\"a\\\":1,\\\"b\\\":2}\":\"v\"}" },
    { "table", build_table, NULL, "[{\"a\":1,\"b\":\"x\"},{\"a\":2,\"b\":\"y\"}]" },
    { "table empty", build_table_empty, NULL, "[]" },
    { "table no columns", build_table_no_columns, NULL, "[]" },
    { "table list columns", build_table_list_columns, NULL,
      "[{\"s\":\"ab\",\"n\":[1,2],\"c\":\"x\"},{\"s\":\"c\",\"n\":[],\"c\":\"y\"}]" },
    { "table table column", build_table_table_column, NULL,
      "[{\"t\":{\"a\":1,\"b\":\"p\"},\"k\":\"x\"},{\"t\":{\"a\":2,\"b\":\"q\"},\"k\":\"y\"}]" },
    { "table in list", build_table_in_list, NULL, "[[{\"a\":1}],2]" },
    { "table escaped names", build_table_escaped_names, NULL,
      "[{\"a\\\"b\":1,\"\\u0001\":2}]" },
    { "keyed table", build_keyed_table, NULL,
      "[{\"k\":1,\"v\":\"a\",\"w\":\"s\"},{\"k\":2,\"v\":\"b\",\"w\":3}]" },
    { "sorted keyed table", build_sorted_keyed_table, NULL, "[{\"k\":7,\"v\":\"x\"}]" },
    { "keyed table row mismatch", build_keyed_table_row_mismatch, NULL,
      "{\"keys\":[{\"k\":1},{\"k\":2}],\"values\":[{\"v\":\"a\"}]}" },
    { "table keys vector values", build_table_keys_vector_values, NULL,
      "{\"{\\\"k\\\":1}\":\"a\",\"{\\\"k\\\":2}\":\"b\"}" },
    { "error", build_error, NULL, "{\"error\":\"type\"}" },
    { "error escaped", build_error_escaped, NULL,
      "{\"error\":\"a\\\"b\\\\c\\td\xef\xbf\xbd\"}" },
    { "error in list", build_error_in_list, NULL, "[1,{\"error\":\"x\"}]" },
    /* Functions. */
    { "lambda", NULL, "64 00 0a 00 05000000 7b782a327d", "\"{x*2}\"" },
    { "lambda in context", NULL, "64 6400 0a 00 07000000 7b22612278 5c7d",
      "\"{\\\"a\\\"x\\\\}\"" },
    { "projection", NULL, "68 02000000 64 00 0a 00 05000000 7b782a797d f9 0200000000000000",
      "\"{x*y}[2]\"" },
    { "projection elided argument", NULL, "68 03000000 66 01 65 00 fa 01000000", "\"+[;1]\"" },
    { "projection symbol argument", NULL,
      "68 02000000 64 00 0a 00 03000000 7b787d f5 6100", "\"{x}[\\\"a\\\"]\"" },
    { "projection of projection", NULL,
      "68 02000000 68 02000000 66 01 f9 0100000000000000 f9 0200000000000000",
      "\"+[1][2]\"" },
    { "operator", NULL, "66 01", "\"+\"" },
    { "operator without glyph", NULL, "66 1c", "\"operator 28\"" },
    { "unary primitive", NULL, "65 0f", "\"~:\"" },
    { "unary primitive without glyph", NULL, "65 1c", "\"unary primitive 28\"" },
    { "iterator", NULL, "67 02", "\"iterator 2\"" },
    { "composition", NULL, "69 02000000 65 02 66 01", "\"'[-:;+]\"" },
    { "composition with null", NULL, "69 02000000 65 00 66 01", "\"'[::;+]\"" },
    { "each", NULL, "6a 66 01", "\"+'\"" },
    { "over", NULL, "6b 66 0c", "\",/\"" },
    { "scan", NULL, "6c 66 01", "\"+\\\\\"" },
    { "each prior", NULL, "6d 66 00", "\":':\"" },
    { "each right", NULL, "6e 66 0c", "\",/:\"" },
    { "each left", NULL, "6f 66 0c", "\",\\\\:\"" },
    { "each of lambda", NULL, "6a 64 00 0a 00 03000000 7b787d", "\"{x}'\"" },
    { "functions in list", NULL, "00 00 03000000 66 01 65 00 6a 66 02", "[\"+\",null,\"-'\"]" },
};

static uint8_t *json_case_message(const struct json_case *c, size_t *len)
{
    struct qenc b;

    qenc_init(&b);
    qenc_begin(&b, IPC_RESPONSE);
    if (c->build != NULL)
        c->build(&b);
    else
        append_hex(&b, c->body_hex);
    return finish_message(&b, len);
}

START_TEST(structure_cases)
{
    for (size_t i = 0; i < COUNT_OF(json_cases); i++) {
        size_t len;
        uint8_t *msg = json_case_message(&json_cases[i], &len);
        check_both_orders(msg, len, NULL, json_cases[i].name, json_cases[i].json);
        free(msg);
    }
}
END_TEST

/* ---- the real kdb+ samples -------------------------------------------------------------- */

struct sample_json {
    const char *expression;
    const char *json;
};

static const struct sample_json sample_json[] = {
    { "1+`", "{\"error\":\"type\"}" },
    { "1", "1" },
    { "1i", "1" },
    { "-234h", "-234" },
    { "0b", "false" },
    { "1b", "true" },
    { "0x2a", "\"2a\"" },
    { "89421099511627575j", "89421099511627575" },
    { "3.234", "3.234" },
    { "5.5e", "5.5" },
    { "\"0\"", "\"0\"" },
    { "\"abc\"", "\"abc\"" },
    { "\"\"", "\"\"" },
    { "`abc", "\"abc\"" },
    { "2000.01.04D05:36:57.600", "\"2000-01-04T05:36:57.600000000\"" },
    { "2001.01m", "\"2001-01\"" },
    { "2001.01.01", "\"2001-01-01\"" },
    { "2000.01.04T05:36:57.600", "\"2000-01-04T05:36:57.600\"" },
    { "0D05:36:57.600", "\"0D05:36:57.600000000\"" },
    { "12:01", "\"12:01\"" },
    { "12:05:00", "\"12:05:00\"" },
    { "12:04:59.123", "\"12:04:59.123\"" },
    { "0x00", "\"00\"" },
    { "0Nh", "null" },
    { "0N", "null" },
    { "0Ni", "null" },
    { "0Ne", "null" },
    { "0n", "null" },
    { "\" \"", "\" \"" },
    { "`", "null" },
    { "0Np", "null" },
    { "0Nm", "null" },
    { "0Nd", "null" },
    { "0Nz", "null" },
    { "0Nn", "null" },
    { "0Nu", "null" },
    { "0Nv", "null" },
    { "0Nt", "null" },
    { "()", "[]" },
    { "(0b;1b;0b)", "[false,true,false]" },
    { "(0x01;0x02;0xff)", "\"0102ff\"" },
    { "(1h;0Nh;3h)", "[1,null,3]" },
    { "1 0N 3", "[1,null,3]" },
    { "(5.5e; 0Ne)", "[5.5,null]" },
    { "3.23 0n", "[3.23,null]" },
    { "(42;::;`foo)", "[42,null,\"foo\"]" },
    { "(`one;2 3;\"456\";(7;8 9))", "[\"one\",[2,3],\"456\",[7,[8,9]]]" },
    { "``quick``fox", "[null,\"quick\",null,\"fox\"]" },
    { "(\"quick\"; \" \"; \"fox\"; \"jumps\"; \"over\"; \"a lazy\"; \"dog\")",
      "[\"quick\",\" \",\"fox\",\"jumps\",\"over\",\"a lazy\",\"dog\"]" },
    { "(\"one\"; \"two\"; enlist \"3\")", "[\"one\",\"two\",\"3\"]" },
    { "2000.01.04D05:36:57.600 0Np", "[\"2000-01-04T05:36:57.600000000\",null]" },
    { "2001.01.01 2000.05.01 0Nd", "[\"2001-01-01\",\"2000-05-01\",null]" },
    { "0D05:36:57.600 0Nn", "[\"0D05:36:57.600000000\",null]" },
    { "12:04:59.123 0Nt", "[\"12:04:59.123\",null]" },
    { "::", "null" },
    { "{x+y}", "\"{x+y}\"" },
    { "{x+y}[3]", "\"{x+y}[3]\"" },
    { "insert [1]", "\"operator 28[1]\"" },
    { "xbar", "\"k){x*y div x:$[16h=abs[@x];\\\"j\\\"$x;x]}\"" },
    { "not", "\"~:\"" },
    { "and", "\"&\"" },
    { "md5", "\"![-15]\"" },
    { "any", "\"'[unary primitive 28;$[\\\"b\\\"]]\"" },
    { "raze", "\",/\"" },
    { "sums", "\"+\\\\\"" },
    { "prev", "\":':\"" },
    { "(enlist `a)!(enlist 1)", "{\"a\":1}" },
    { "1 2!`abc`cdefgh", "{\"1\":\"abc\",\"2\":\"cdefgh\"}" },
    { "`abc`def`gh!([] one: 1 2 3; two: 4 5 6)",
      "{\"abc\":{\"one\":1,\"two\":4},\"def\":{\"one\":2,\"two\":5},"
      "\"gh\":{\"one\":3,\"two\":6}}" },
    { "(1;2h;3.234;\"4\")!(`one;2 3;\"456\";(7;8 9))",
      "{\"1\":\"one\",\"2\":[2,3],\"3.234\":\"456\",\"4\":[7,[8,9]]}" },
    { "(0 1; 2 3)!`first`second", "{\"[0,1]\":\"first\",\"[2,3]\":\"second\"}" },
    { "`A`B`C!((1;3.234;3);(`x`y!(`a;2));5.5e)",
      "{\"A\":[1,3.234,3],\"B\":{\"x\":\"a\",\"y\":2},\"C\":5.5}" },
    { "flip `name`iq`grade!(`Dent`Beeblebrox`Prefect;98 42 126;\"a c\")",
      "[{\"name\":\"Dent\",\"iq\":98,\"grade\":\"a\"},"
      "{\"name\":\"Beeblebrox\",\"iq\":42,\"grade\":\" \"},"
      "{\"name\":\"Prefect\",\"iq\":126,\"grade\":\"c\"}]" },
    { "flip `name`iq`misc!(`Dent`Beeblebrox`Prefect;98 42 126;"
      "(\"The Hitch Hiker's Guide to the Galaxy\"; 160; 1979.10.12))",
      "[{\"name\":\"Dent\",\"iq\":98,\"misc\":\"The Hitch Hiker's Guide to the Galaxy\"},"
      "{\"name\":\"Beeblebrox\",\"iq\":42,\"misc\":160},"
      "{\"name\":\"Prefect\",\"iq\":126,\"misc\":\"1979-10-12\"}]" },
    { "([] sc:1 2 3; nsc:(1 2; 3 4; 5 6 7))",
      "[{\"sc\":1,\"nsc\":[1,2]},{\"sc\":2,\"nsc\":[3,4]},{\"sc\":3,\"nsc\":[5,6,7]}]" },
    { "([] name:`symbol$(); iq:`int$())", "[]" },
    { "([eid:1001 1002 1003] pos:`d1`d2`d3;dates:(2001.01.01;2000.05.01;0Nd))",
      "[{\"eid\":1001,\"pos\":\"d1\",\"dates\":\"2001-01-01\"},"
      "{\"eid\":1002,\"pos\":\"d2\",\"dates\":\"2000-05-01\"},"
      "{\"eid\":1003,\"pos\":\"d3\",\"dates\":null}]" },
    { "([k: 1 2 3] v: `a`b`c)",
      "[{\"k\":1,\"v\":\"a\"},{\"k\":2,\"v\":\"b\"},{\"k\":3,\"v\":\"c\"}]" },
    { "0Ng", "null" },
    { "(\"G\"$\"8c680a01-5a49-5aab-5a65-d4bfddb6a661\"; 0Ng)",
      "[\"8c680a01-5a49-5aab-5a65-d4bfddb6a661\",null]" },
    { "-2#([] sym:`x`x`x`x;str:\"  aa\")",
      "[{\"sym\":\"x\",\"str\":\"a\"},{\"sym\":\"x\",\"str\":\"a\"}]" },
};

START_TEST(samples_render)
{
    const char *dir = testdata_dir();
    if (dir == NULL)
        return;

    char path[4200];
    snprintf(path, sizeof(path), "%s/serialization-samples.txt", dir);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);

    static char expression[4096];
    static char hex[1 << 16];
    size_t rendered = 0;
    size_t compared = 0;
    while (fgets(expression, sizeof(expression), f) != NULL) {
        ck_assert_msg(fgets(hex, sizeof(hex), f) != NULL, "no hex line after %s", expression);
        expression[strcspn(expression, "\r\n")] = '\0';
        hex[strcspn(hex, "\r\n")] = '\0';

        struct qenc b;
        size_t len;
        qenc_init(&b);
        qenc_begin(&b, IPC_RESPONSE);
        append_hex(&b, hex);
        uint8_t *msg = finish_message(&b, &len);

        /* Samples that qdec rejects (enumerations, if any) must be rejected here too. */
        if (qdec_validate(msg, len, NULL) != QDEC_OK) {
            struct output out = { 0 };
            ck_assert_int_eq(json_render(msg, len, NULL, collect, &out, NULL),
                             JSON_INVALID_MESSAGE);
            ck_assert_uint_eq(out.len, 0);
            free(msg);
            continue;
        }

        const char *expected = NULL;
        for (size_t i = 0; i < COUNT_OF(sample_json); i++)
            if (strcmp(sample_json[i].expression, expression) == 0)
                expected = sample_json[i].json;
        if (expected != NULL) {
            check_both_orders(msg, len, NULL, expression, expected);
            compared++;
        } else {
            free(render_json(msg, len, NULL, expression));
            struct json_options pretty = { .pretty = 1 };
            free(render_json(msg, len, &pretty, expression));
        }
        rendered++;
        free(msg);
    }
    fclose(f);
    ck_assert_uint_ge(rendered, 100);
    ck_assert_uint_eq(compared, COUNT_OF(sample_json));
}
END_TEST

/* ---- options ------------------------------------------------------------------------------ */

START_TEST(pretty_output)
{
    static const struct {
        void (*build)(struct qenc *b);
        const char *json;
    } cases[] = {
        { build_dict_mixed_values, "{\n  \"x\": 1,\n  \"y\": \"z\"\n}" },
        { build_nested_list,
          "[\n  1,\n  \"a\",\n  \"xy\",\n  [\n    2,\n    3.5\n  ],\n  []\n]" },
        { build_table,
          "[\n  {\n    \"a\": 1,\n    \"b\": \"x\"\n  },\n"
          "  {\n    \"a\": 2,\n    \"b\": \"y\"\n  }\n]" },
        { build_keyed_table,
          "[\n  {\n    \"k\": 1,\n    \"v\": \"a\",\n    \"w\": \"s\"\n  },\n"
          "  {\n    \"k\": 2,\n    \"v\": \"b\",\n    \"w\": 3\n  }\n]" },
        { build_dict_empty, "{}" },
        { build_error, "{\n  \"error\": \"type\"\n}" },
        /* Keys are always compact, because they are strings. */
        { build_dict_list_keys, "{\n  \"[0,1]\": \"first\",\n  \"[2,3]\": \"second\"\n}" },
        { build_dict_count_mismatch, "{\n  \"keys\": [\n    \"a\",\n    \"b\"\n  ],\n"
                                     "  \"values\": [\n    1\n  ]\n}" },
    };
    struct json_options options = { .pretty = 1 };

    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        struct qenc b;
        size_t len;
        qenc_init(&b);
        qenc_begin(&b, IPC_RESPONSE);
        cases[i].build(&b);
        uint8_t *msg = finish_message(&b, &len);
        check_both_orders(msg, len, &options, "pretty", cases[i].json);
        free(msg);
    }
}
END_TEST

START_TEST(infinity_as_strings)
{
    static const struct {
        const char *body_hex;
        const char *json;
    } cases[] = {
        { "05 00 04000000 0080 ff7f 0180 0100", "[null,\"inf\",\"-inf\",1]" },
        { "06 00 02000000 ffffff7f 01000080", "[\"inf\",\"-inf\"]" },
        { "07 00 02000000 ffffffffffffff7f 0100000000000080", "[\"inf\",\"-inf\"]" },
        { "08 00 03000000 0000807f 000080ff 0000c07f", "[\"inf\",\"-inf\",null]" },
        { "09 00 03000000 000000000000f07f 000000000000f0ff 000000000000f8ff",
          "[\"inf\",\"-inf\",null]" },
        { "0c 00 02000000 ffffffffffffff7f 0000000000000080", "[\"inf\",null]" },
        { "0e 00 02000000 ffffff7f 01000080", "[\"inf\",\"-inf\"]" },
        { "0f 00 01000000 000000000000f0ff", "[\"-inf\"]" },
        { "10 00 01000000 ffffffffffffff7f", "[\"inf\"]" },
        { "f1 000000000000f07f", "\"inf\"" },
        /* As a key the infinity is the key's text, without quotes of its own. */
        { "63 09 00 01000000 000000000000f07f 07 00 01000000 0100000000000000",
          "{\"inf\":1}" },
    };
    struct json_options options = { .infinity = JSON_INFINITY_STRING };

    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        struct qenc b;
        size_t len;
        qenc_init(&b);
        qenc_begin(&b, IPC_RESPONSE);
        append_hex(&b, cases[i].body_hex);
        uint8_t *msg = finish_message(&b, &len);
        check_both_orders(msg, len, &options, cases[i].body_hex, cases[i].json);
        free(msg);
    }
}
END_TEST

START_TEST(invalid_arguments_rejected)
{
    struct qenc b;
    size_t len;
    struct output out = { 0 };
    struct qdec_error err;

    qenc_init(&b);
    qenc_begin(&b, IPC_RESPONSE);
    qenc_long(&b, 1);
    uint8_t *msg = finish_message(&b, &len);

    ck_assert_int_eq(json_render(msg, len, NULL, NULL, NULL, &err), JSON_INVALID_ARGUMENT);
    struct json_options options = { .infinity = 7 };
    ck_assert_int_eq(json_render(msg, len, &options, collect, &out, &err),
                     JSON_INVALID_ARGUMENT);
    ck_assert_str_eq(err.message, "offset 0: invalid argument: a NULL pointer, a buffer size "
                                  "of 0 or an unknown json_options.infinity");
    ck_assert_uint_eq(out.len, 0);

    struct json_renderer *renderer = (struct json_renderer *)&options;
    ck_assert_int_eq(json_renderer_new(msg, len, &options, &renderer, &err),
                     JSON_INVALID_ARGUMENT);
    ck_assert_ptr_null(renderer);
    ck_assert_int_eq(json_renderer_new(msg, len, NULL, NULL, &err), JSON_INVALID_ARGUMENT);
    ck_assert_int_eq(json_renderer_new(NULL, len, NULL, &renderer, &err), JSON_INVALID_ARGUMENT);

    char piece[8];
    size_t written = 1;
    ck_assert_int_eq(json_renderer_new(msg, len, NULL, &renderer, &err), JSON_OK);
    ck_assert_int_eq(json_renderer_next(renderer, piece, 0, &written, &err),
                     JSON_INVALID_ARGUMENT);
    ck_assert_uint_eq(written, 0);
    ck_assert_int_eq(json_renderer_next(renderer, NULL, sizeof(piece), &written, &err),
                     JSON_INVALID_ARGUMENT);
    ck_assert_int_eq(json_renderer_next(NULL, piece, sizeof(piece), &written, &err),
                     JSON_INVALID_ARGUMENT);
    ck_assert_int_eq(json_renderer_next(renderer, piece, sizeof(piece), &written, &err), JSON_OK);
    ck_assert_uint_eq(written, 1);
    ck_assert_mem_eq(piece, "1", 1);
    json_renderer_free(renderer);
    json_renderer_free(NULL);
    free(msg);
}
END_TEST

/* ---- strings ------------------------------------------------------------------------------ */

START_TEST(control_characters_escaped)
{
    char text[34];
    struct qenc b;
    size_t len;

    for (int i = 0; i < 32; i++)
        text[i] = (char)i;
    text[32] = '"';
    text[33] = '\\';
    qenc_init(&b);
    qenc_begin(&b, IPC_RESPONSE);
    qenc_string(&b, text, sizeof(text));
    uint8_t *msg = finish_message(&b, &len);

    check_both_orders(msg, len, NULL, "control characters",
                      "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007"
                      "\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f"
                      "\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017"
                      "\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\\\"\\\\\"");
    free(msg);
}
END_TEST

START_TEST(invalid_utf8_replaced)
{
    /* Each ill-formed sequence becomes U+FFFD per maximal subpart, the practice the
     * Unicode standard recommends; Python's decode(errors="replace") gives the same. */
    static const struct {
        const char *bytes;
        const char *json;
    } cases[] = {
        { "\x80", "\"\xef\xbf\xbd\"" },
        { "\xc0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\"" },
        { "\xed\xa0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"" },
        { "\xf4\x90\x80\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"" },
        { "a\xe2\x82", "\"a\xef\xbf\xbd\"" },
        { "\xf0\x9f\x98" "a", "\"\xef\xbf\xbd" "a\"" },
        { "\xff\xfe", "\"\xef\xbf\xbd\xef\xbf\xbd\"" },
        { "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf",
          "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\"" },
        { "\xe2\x82\xac\x80\xe2\x82\xac", "\"\xe2\x82\xac\xef\xbf\xbd\xe2\x82\xac\"" },
    };

    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        struct qenc b;
        size_t len;
        qenc_init(&b);
        qenc_begin(&b, IPC_RESPONSE);
        qenc_string(&b, cases[i].bytes, strlen(cases[i].bytes));
        uint8_t *msg = finish_message(&b, &len);
        check_both_orders(msg, len, NULL, "invalid UTF-8", cases[i].json);
        free(msg);
    }
}
END_TEST

/* ---- chunks and memory --------------------------------------------------------------------- */

START_TEST(chunks_bounded)
{
    /* 1 MiB of text where every fourth byte needs a 6-byte escape, so escapes straddle
     * chunk boundaries. */
    const size_t n = 1 << 20;
    char *text = malloc(n);
    ck_assert_ptr_nonnull(text);
    for (size_t i = 0; i < n; i++)
        text[i] = i % 4 == 3 ? '\x01' : (char)('a' + i % 26);

    struct qenc b;
    size_t len;
    qenc_init(&b);
    qenc_begin(&b, IPC_RESPONSE);
    qenc_string(&b, text, n);
    uint8_t *msg = finish_message(&b, &len);

    struct output out = { 0 };
    ck_assert_int_eq(json_render(msg, len, NULL, collect, &out, NULL), JSON_OK);
    ck_assert_uint_eq(out.len, 2 + n / 4 * 3 + n / 4 * 6);
    ck_assert_uint_eq(out.max_chunk, JSON_CHUNK_SIZE);
    ck_assert_uint_eq(out.chunks, (out.len + JSON_CHUNK_SIZE - 1) / JSON_CHUNK_SIZE);
    ck_assert_ptr_null(json_invalid_reason(out.data, out.len));
    ck_assert_mem_eq(out.data, "\"abc\\u0001efg\\u0001", 19);
    free(out.data);
    free(msg);
    free(text);
}
END_TEST

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ALLOCATION_HOOKS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ALLOCATION_HOOKS 1
#endif
#endif

#ifdef HAVE_ALLOCATION_HOOKS
/* The AddressSanitizer runtime calls these on every malloc and free once installed. */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));

static struct {
    int counting;
    size_t allocations;
    size_t bytes;
} allocation_count;

static void count_malloc(const volatile void *ptr, size_t size)
{
    (void)ptr;
    if (allocation_count.counting) {
        allocation_count.allocations++;
        allocation_count.bytes += size;
    }
}

static void ignore_free(const volatile void *ptr)
{
    (void)ptr;
}
#endif

/* Heap bytes of one renderer with its first block of frames, as docs/json.md states. */
#define RENDERER_MAX_BYTES (24 * 1024)

/* Sink for large outputs: checks chunk sizes, counts bytes, keeps the last few bytes. */
struct counting_sink {
    uint64_t bytes;
    size_t max_chunk;
    char tail[17];          /* the last 16 bytes, NUL-terminated */
};

static int count_chunk(void *ctx, const char *bytes, size_t length)
{
    struct counting_sink *sink = ctx;

    if (length == 0 || length > JSON_CHUNK_SIZE)
        abort();
    sink->bytes += length;
    if (length > sink->max_chunk)
        sink->max_chunk = length;
    size_t keep = length < sizeof(sink->tail) - 1 ? length : sizeof(sink->tail) - 1;
    memmove(sink->tail, sink->tail + keep, sizeof(sink->tail) - 1 - keep);
    memcpy(sink->tail + sizeof(sink->tail) - 1 - keep, bytes + length - keep, keep);
    sink->tail[sizeof(sink->tail) - 1] = '\0';
    return 0;
}

/* Renders msg into a counting sink and returns the heap allocations made meanwhile. */
static size_t render_counting(const uint8_t *msg, size_t len, struct counting_sink *sink,
                              size_t *bytes)
{
    memset(sink, 0, sizeof(*sink));
#ifdef HAVE_ALLOCATION_HOOKS
    static int installed;
    if (!installed) {
        ck_assert_int_ne(__sanitizer_install_malloc_and_free_hooks(count_malloc, ignore_free), 0);
        installed = 1;
    }
    allocation_count.allocations = 0;
    allocation_count.bytes = 0;
    allocation_count.counting = 1;
#endif
    struct qdec_error err;
    int status = json_render(msg, len, NULL, count_chunk, sink, &err);
#ifdef HAVE_ALLOCATION_HOOKS
    allocation_count.counting = 0;
    *bytes = allocation_count.bytes;
    ck_assert_msg(status == JSON_OK, "render failed: %s", err.message);
    return allocation_count.allocations;
#else
    ck_assert_msg(status == JSON_OK, "render failed: %s", err.message);
    *bytes = 0;
    fprintf(stderr, "SKIP: allocation counts need AddressSanitizer; only chunk sizes checked\n");
    return 0;
#endif
}

static size_t decimal_digits(uint64_t value)
{
    size_t n = 1;
    while (value >= 10) {
        value /= 10;
        n++;
    }
    return n;
}

START_TEST(large_vector_memory)
{
    /* 10 million longs: an 80 MB message and a 78 MB text. */
    const size_t count = 10 * 1000 * 1000;
    size_t len = IPC_HEADER_SIZE + 6 + count * 8;
    uint8_t *msg = malloc(len);
    ck_assert_ptr_nonnull(msg);
    ipc_header_write(msg, IPC_RESPONSE, len);
    msg[8] = QT_LONG;
    msg[9] = 0;
    store_little_endian(msg + 10, count, 4);
    uint64_t expected_bytes = 2 + (count - 1);
    for (size_t i = 0; i < count; i++) {
        store_little_endian(msg + 14 + 8 * i, i, 8);
        expected_bytes += decimal_digits(i);
    }

    struct counting_sink sink;
    size_t bytes;
    size_t allocations = render_counting(msg, len, &sink, &bytes);
    ck_assert_uint_eq(sink.bytes, expected_bytes);
    ck_assert_uint_eq(sink.max_chunk, JSON_CHUNK_SIZE);
    ck_assert_str_eq(sink.tail, "9999998,9999999]");
    /* One allocation: the renderer, with its buffer and first frames. */
    ck_assert_uint_le(allocations, 1);
    ck_assert_uint_le(bytes, RENDERER_MAX_BYTES);
    free(msg);
}
END_TEST

START_TEST(large_table_memory)
{
    /* ([]a:til n; b:n#`sym; c:n#enlist "xy"), 1 million rows: the cursors are per column. */
    static const char *const names[] = { "a", "b", "c" };
    const size_t rows = 1000 * 1000;
    struct qenc b;
    size_t len;

    qenc_init(&b);
    qenc_begin(&b, IPC_RESPONSE);
    qenc_table(&b, names, 3);
    qenc_vector_header(&b, QT_LONG, 0, rows);
    for (size_t i = 0; i < rows; i++)
        put_long(&b, (int64_t)i);
    qenc_vector_header(&b, QT_SYMBOL, 0, rows);
    for (size_t i = 0; i < rows; i++)
        qenc_raw(&b, "sym", 4);
    qenc_list_header(&b, rows);
    for (size_t i = 0; i < rows; i++)
        qenc_string(&b, "xy", 2);
    uint8_t *msg = finish_message(&b, &len);

    struct counting_sink sink;
    size_t bytes;
    size_t allocations = render_counting(msg, len, &sink, &bytes);
    ck_assert_str_eq(sink.tail, "\"sym\",\"c\":\"xy\"}]");
    ck_assert_uint_eq(sink.max_chunk, JSON_CHUNK_SIZE);
    /* The renderer, and one array of three column cursors. */
    ck_assert_uint_le(allocations, 2);
    ck_assert_uint_le(bytes, RENDERER_MAX_BYTES + 3 * 64);
    free(msg);
}
END_TEST

/* ---- rejected input and failing sinks -------------------------------------------------------- */

START_TEST(invalid_messages_rejected)
{
    size_t len;
    uint8_t *msg = json_case_message(&json_cases[COUNT_OF(json_cases) / 2], &len);

    /* Every shorter length, with the header's length field telling the truth, fails the
     * same way in the renderer as in qdec_validate and writes nothing. */
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *part = malloc(cut > 0 ? cut : 1);
        ck_assert_ptr_nonnull(part);
        memcpy(part, msg, cut);
        if (cut >= IPC_HEADER_SIZE)
            set_header_length(part, cut);

        struct qdec_error expected, err;
        int qdec_status = qdec_validate(part, cut, &expected);
        ck_assert_int_ne(qdec_status, QDEC_OK);

        struct output out = { 0 };
        ck_assert_int_eq(json_render(part, cut, NULL, collect, &out, &err), JSON_INVALID_MESSAGE);
        ck_assert_uint_eq(out.len, 0);
        ck_assert_int_eq(err.status, qdec_status);
        ck_assert_uint_eq(err.offset, expected.offset);
        ck_assert_str_eq(err.message, expected.message);
        free(part);
    }
    free(msg);

    /* A compressed message, and an unsupported enumeration type. */
    static const char *const bodies[] = { "14 00 01000000 00000000", "f9 0100000000000000" };
    for (size_t i = 0; i < COUNT_OF(bodies); i++) {
        struct qenc b;
        struct qdec_error err;
        struct output out = { 0 };
        qenc_init(&b);
        qenc_begin(&b, IPC_RESPONSE);
        append_hex(&b, bodies[i]);
        msg = finish_message(&b, &len);
        if (i == 1)
            msg[2] = 1;
        ck_assert_int_eq(json_render(msg, len, NULL, collect, &out, &err), JSON_INVALID_MESSAGE);
        ck_assert_int_eq(err.status, i == 1 ? QDEC_COMPRESSED : QDEC_UNSUPPORTED_TYPE);
        ck_assert_uint_eq(out.len, 0);
        free(msg);
    }
}
END_TEST

static int fail_second_chunk(void *ctx, const char *bytes, size_t length)
{
    size_t *calls = ctx;

    (void)bytes;
    (void)length;
    return ++*calls >= 2;
}

START_TEST(sink_failure_stops)
{
    const size_t count = 100000;
    struct qenc b;
    size_t len;

    qenc_init(&b);
    qenc_begin(&b, IPC_RESPONSE);
    qenc_vector_header(&b, QT_LONG, 0, count);
    for (size_t i = 0; i < count; i++)
        put_long(&b, (int64_t)i);
    uint8_t *msg = finish_message(&b, &len);

    size_t calls = 0;
    struct qdec_error err;
    ck_assert_int_eq(json_render(msg, len, NULL, fail_second_chunk, &calls, &err),
                     JSON_WRITE_FAILED);
    ck_assert_uint_eq(calls, 2);
    ck_assert_int_eq(err.status, QDEC_STOPPED);
    ck_assert_msg(strstr(err.message, "the sink failed") != NULL, "message: %s", err.message);
    free(msg);
}
END_TEST

/* ---- texts longer than one step writes ------------------------------------------------ */

/* A growing NUL-terminated text, for expected output built in code. */
struct text {
    char *data;
    size_t len;
};

static void text_add(struct text *t, const char *bytes, size_t n)
{
    t->data = realloc(t->data, t->len + n + 1);
    ck_assert_ptr_nonnull(t->data);
    memcpy(t->data + t->len, bytes, n);
    t->len += n;
    t->data[t->len] = '\0';
}

static void text_add_str(struct text *t, const char *text)
{
    text_add(t, text, strlen(text));
}

static void text_add_repeated(struct text *t, char c, size_t count)
{
    for (size_t i = 0; i < count; i++)
        text_add(t, &c, 1);
}

/* Returns a NUL-terminated text of count copies of c (caller frees). */
static char *repeated(char c, size_t count)
{
    char *text = malloc(count + 1);

    ck_assert_ptr_nonnull(text);
    memset(text, c, count);
    text[count] = '\0';
    return text;
}

START_TEST(long_texts)
{
    /* Every kind of text above the length written in one step: symbols, a string with
     * escapes and multi-byte and invalid UTF-8, bytes, an error, a column name, dictionary
     * keys and a lambda's source. */
    const size_t string_length = 100000;
    char *long_symbol = repeated('s', 200);
    char *vector_symbol = repeated('y', 70);
    char *error_text = repeated('e', 300);
    char *column_name = repeated('n', 5000);
    char *key = repeated('k', 70);
    char *source = repeated('x', 100);
    struct text expected = { 0 };
    struct qenc b;
    size_t len;

    long_symbol[100] = '"';
    qenc_init(&b);
    qenc_begin(&b, IPC_RESPONSE);
    qenc_list_header(&b, 8);
    text_add_str(&expected, "[");

    qenc_symbol(&b, long_symbol);
    text_add_str(&expected, "\"");
    text_add_repeated(&expected, 's', 100);
    text_add_str(&expected, "\\\"");
    text_add_repeated(&expected, 's', 99);
    text_add_str(&expected, "\",");

    const char *symbols[] = { "", vector_symbol, "z" };
    qenc_symbols(&b, symbols, 3);
    text_add_str(&expected, "[null,\"");
    text_add_str(&expected, vector_symbol);
    text_add_str(&expected, "\",\"z\"],");

    /* Five bytes a unit, so units straddle piece boundaries: a, e-acute in two bytes, a
     * control character and a byte that is not UTF-8. */
    static const char unit[] = "a\xc3\xa9\x01\xff";
    char *string = malloc(string_length);
    ck_assert_ptr_nonnull(string);
    for (size_t i = 0; i < string_length; i++)
        string[i] = unit[i % 5];
    qenc_string(&b, string, string_length);
    text_add_str(&expected, "\"");
    for (size_t i = 0; i < string_length / 5; i++)
        text_add_str(&expected, "a\xc3\xa9\\u0001\xef\xbf\xbd");
    text_add_str(&expected, "\",");

    qenc_vector_header(&b, QT_BYTE, 0, 1000);
    text_add_str(&expected, "\"");
    for (size_t i = 0; i < 1000; i++) {
        char hex[3];
        qenc_raw(&b, &(uint8_t){ (uint8_t)i }, 1);
        snprintf(hex, sizeof(hex), "%02x", (unsigned)(i & 0xff));
        text_add_str(&expected, hex);
    }
    text_add_str(&expected, "\",");

    qenc_error(&b, error_text);
    text_add_str(&expected, "{\"error\":\"");
    text_add_str(&expected, error_text);
    text_add_str(&expected, "\"},");

    const char *names[] = { column_name };
    qenc_table(&b, names, 1);
    qenc_vector_header(&b, QT_LONG, 0, 3);
    text_add_str(&expected, "[");
    for (int i = 1; i <= 3; i++) {
        put_long(&b, i);
        text_add_str(&expected, i > 1 ? ",{\"" : "{\"");
        text_add_str(&expected, column_name);
        text_add(&expected, (char[]){ '"', ':', (char)('0' + i), '}' }, 4);
    }
    text_add_str(&expected, "],");

    const char *keys[] = { key, "b" };
    qenc_dict(&b);
    qenc_symbols(&b, keys, 2);
    qenc_vector_header(&b, QT_LONG, 0, 2);
    put_long(&b, 1);
    put_long(&b, 2);
    text_add_str(&expected, "{\"");
    text_add_str(&expected, key);
    text_add_str(&expected, "\":1,\"b\":2},");

    /* A lambda in the root context: type 100, an empty context name, its source. */
    qenc_raw(&b, (uint8_t[]){ 100, 0 }, 2);
    qenc_string(&b, source, strlen(source));
    text_add_str(&expected, "\"");
    text_add_str(&expected, source);
    text_add_str(&expected, "\"]");

    uint8_t *msg = finish_message(&b, &len);
    check_both_orders(msg, len, NULL, "long texts", expected.data);
    struct json_options pretty = { .pretty = 1 };
    free(render_json(msg, len, &pretty, "long texts, pretty"));

    free(msg);
    free(expected.data);
    free(string);
    free(source);
    free(key);
    free(column_name);
    free(error_text);
    free(vector_symbol);
    free(long_symbol);
}
END_TEST

START_TEST(deep_nesting)
{
    /* QDEC_MAX_DEPTH lists around a long: the deepest message qdec accepts. */
    struct qenc b;
    size_t len;

    qenc_init(&b);
    qenc_begin(&b, IPC_RESPONSE);
    for (int i = 0; i < QDEC_MAX_DEPTH; i++)
        qenc_list_header(&b, 1);
    qenc_long(&b, 7);
    uint8_t *msg = finish_message(&b, &len);

    char expected[2 * QDEC_MAX_DEPTH + 2];
    memset(expected, '[', QDEC_MAX_DEPTH);
    expected[QDEC_MAX_DEPTH] = '7';
    memset(expected + QDEC_MAX_DEPTH + 1, ']', QDEC_MAX_DEPTH);
    expected[2 * QDEC_MAX_DEPTH + 1] = '\0';
    check_both_orders(msg, len, NULL, "deep nesting", expected);

    struct json_options pretty = { .pretty = 1 };
    free(render_json(msg, len, &pretty, "deep nesting, pretty"));
    free(msg);
}
END_TEST

Suite *json_suite(void)
{
    Suite *suite = suite_create("json");

    TCase *values = tcase_create("values");
    tcase_add_test(values, validator_self_check);
    tcase_add_test(values, typed_atoms_and_vectors);
    tcase_add_test(values, typed_single_atoms);
    tcase_add_test(values, structure_cases);
    tcase_add_test(values, samples_render);
    tcase_add_test(values, control_characters_escaped);
    tcase_add_test(values, invalid_utf8_replaced);
    tcase_add_test(values, deep_nesting);
    tcase_add_test(values, long_texts);
    suite_add_tcase(suite, values);

    TCase *options = tcase_create("options");
    tcase_add_test(options, pretty_output);
    tcase_add_test(options, infinity_as_strings);
    tcase_add_test(options, invalid_arguments_rejected);
    suite_add_tcase(suite, options);

    TCase *streaming = tcase_create("streaming");
    tcase_set_timeout(streaming, 120);
    tcase_add_test(streaming, chunks_bounded);
    tcase_add_test(streaming, large_vector_memory);
    tcase_add_test(streaming, large_table_memory);
    tcase_add_test(streaming, sink_failure_stops);
    tcase_add_test(streaming, invalid_messages_rejected);
    suite_add_tcase(suite, streaming);

    return suite;
}
