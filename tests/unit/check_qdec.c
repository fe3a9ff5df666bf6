/*
 * check_qdec.c - unit tests of the IPC body decoder: real kdb+ samples, the protocol's
 * example messages in both byte orders, null and infinity detection, and malformed input
 * (truncation at every length, lying counts, depth bombs, unknown types, trailing bytes).
 *
 * Every message under test is copied into a heap block of exactly its size, so
 * AddressSanitizer reports any read past the end.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "qdec.h"
#include "suites.h"

/* ---- helpers ---------------------------------------------------------------------- */

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

/* Decodes hex digits into a new exact-size block, ignoring spaces and '|' separators. */
static uint8_t *hex_bytes(const char *hex, size_t *len)
{
    size_t digits = 0;
    for (const char *p = hex; *p; p++)
        if (hex_digit((unsigned char)*p) >= 0)
            digits++;
    ck_assert_msg(digits % 2 == 0, "odd number of hex digits in \"%s\"", hex);

    uint8_t *out = malloc(digits / 2 > 0 ? digits / 2 : 1);
    ck_assert_ptr_nonnull(out);
    size_t n = 0;
    int high = -1;
    for (const char *p = hex; *p; p++) {
        int d = hex_digit((unsigned char)*p);
        if (d < 0) {
            ck_assert_msg(*p == ' ' || *p == '|' || *p == '\n' || *p == '\r',
                          "unexpected character '%c' in hex", *p);
            continue;
        }
        if (high < 0) {
            high = d;
        } else {
            out[n++] = (uint8_t)(high << 4 | d);
            high = -1;
        }
    }
    *len = n;
    return out;
}

/* Writes length into an 8-byte header in the byte order of header[0]. */
static void set_header_length(uint8_t *msg, uint64_t length)
{
    msg[3] = (uint8_t)(length >> 32);
    for (int i = 0; i < 4; i++) {
        int shift = msg[0] ? 8 * i : 8 * (3 - i);
        msg[4 + i] = (uint8_t)(length >> shift);
    }
}

/* Returns a new exact-size message: an uncompressed header of the given byte order and
 * message type, then body[0..body_len). */
static uint8_t *wrap_body(const uint8_t *body, size_t body_len, int little_endian,
                          int msg_type, size_t *len)
{
    *len = IPC_HEADER_SIZE + body_len;
    uint8_t *msg = malloc(*len);
    ck_assert_ptr_nonnull(msg);
    msg[0] = (uint8_t)little_endian;
    msg[1] = (uint8_t)msg_type;
    msg[2] = 0;
    set_header_length(msg, *len);
    memcpy(msg + IPC_HEADER_SIZE, body, body_len);
    return msg;
}

static uint8_t *message_from_body_hex(const char *hex, int little_endian, size_t *len)
{
    size_t body_len;
    uint8_t *body = hex_bytes(hex, &body_len);
    uint8_t *msg = wrap_body(body, body_len, little_endian, IPC_RESPONSE, len);
    free(body);
    return msg;
}

static uint8_t *copy_exact(const uint8_t *bytes, size_t len)
{
    uint8_t *copy = malloc(len > 0 ? len : 1);
    ck_assert_ptr_nonnull(copy);
    if (len > 0)
        memcpy(copy, bytes, len);
    return copy;
}

/* ---- a visitor that renders every event as text ----------------------------------- */

struct text {
    char *data;
    size_t len;
    size_t cap;
};

__attribute__((format(printf, 2, 3)))
static void text_add(struct text *t, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    if (t->len + (size_t)n + 1 > t->cap) {
        t->cap = (t->len + (size_t)n + 1) * 2;
        t->data = realloc(t->data, t->cap);
        ck_assert_ptr_nonnull(t->data);
    }
    va_start(ap, fmt);
    vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

/* Renders one item of a fixed-size or symbol type, reading it in the message byte order. */
static void render_item(struct text *t, int type, const uint8_t *p, int little_endian)
{
    int index = type < 0 ? -type : type;

    switch (index) {
    case 1: case 4: case 10:
        text_add(t, "%u", p[0]);
        break;
    case 2:
        for (int i = 0; i < 16; i++)
            text_add(t, "%02x", p[i]);
        break;
    case 5:
        text_add(t, "%d", qdec_get_short(p, little_endian));
        break;
    case 6: case 13: case 14: case 17: case 18: case 19:
        text_add(t, "%" PRId32, qdec_get_int(p, little_endian));
        break;
    case 7: case 12: case 16:
        text_add(t, "%" PRId64, qdec_get_long(p, little_endian));
        break;
    case 8:
        text_add(t, "%a", (double)qdec_get_real(p, little_endian));
        break;
    case 9: case 15:
        text_add(t, "%a", qdec_get_float(p, little_endian));
        break;
    case 11:
        text_add(t, "`%s", (const char *)p);
        break;
    }
    if (qdec_is_null(type, p, little_endian))
        text_add(t, "N");
    if (qdec_infinity(type, p, little_endian))
        text_add(t, "%sW", qdec_infinity(type, p, little_endian) > 0 ? "+" : "-");
}

static int on_atom(void *ctx, const struct qdec_value *v)
{
    struct text *t = ctx;

    text_add(t, "atom %d ", v->type);
    render_item(t, v->type, v->data, v->little_endian);
    text_add(t, "; ");
    return 0;
}

static int on_vector(void *ctx, const struct qdec_value *v)
{
    struct text *t = ctx;
    const uint8_t *p = v->data;

    text_add(t, "vector %d a%d n%" PRIu64 " [", v->type, v->attribute, v->count);
    for (uint64_t i = 0; i < v->count; i++) {
        render_item(t, v->type, p, v->little_endian);
        text_add(t, " ");
        p += v->type == 11 ? strlen((const char *)p) + 1 : qdec_item_size(v->type);
    }
    ck_assert_ptr_eq(p, v->data + v->size);
    text_add(t, "]; ");
    return 0;
}

static int on_list_begin(void *ctx, const struct qdec_value *v)
{
    text_add(ctx, "list a%d n%" PRIu64 " (", v->attribute, v->count);
    return 0;
}

static int on_dict_begin(void *ctx, const struct qdec_value *v)
{
    text_add(ctx, "dict %d (", v->type);
    return 0;
}

static int on_table_begin(void *ctx, const struct qdec_value *v)
{
    text_add(ctx, "table a%d (", v->attribute);
    return 0;
}

static int on_table_end(void *ctx, const struct qdec_value *v)
{
    text_add(ctx, ") rows %" PRIu64 "; ", v->count);
    return 0;
}

static int on_function_begin(void *ctx, const struct qdec_value *v)
{
    struct text *t = ctx;

    text_add(t, "function %d n%" PRIu64, v->type, v->count);
    if (v->type == QDEC_TYPE_LAMBDA)
        text_add(t, " context \"%s\"", (const char *)v->data);
    else if (v->size == 1)
        text_add(t, " code %u", v->data[0]);
    text_add(t, " (");
    return 0;
}

static int on_end(void *ctx, const struct qdec_value *v)
{
    (void)v;
    text_add(ctx, "); ");
    return 0;
}

static int on_error(void *ctx, const struct qdec_value *v)
{
    text_add(ctx, "error '%s; ", (const char *)v->data);
    return 0;
}

static const struct qdec_visitor text_visitor = {
    .atom = on_atom,
    .vector = on_vector,
    .list_begin = on_list_begin,
    .list_end = on_end,
    .dict_begin = on_dict_begin,
    .dict_end = on_end,
    .table_begin = on_table_begin,
    .table_end = on_table_end,
    .function_begin = on_function_begin,
    .function_end = on_end,
    .error = on_error,
};

/* Walks msg and returns the rendered events (caller frees), failing the test on error. */
static char *render(const uint8_t *msg, size_t len)
{
    struct text t = { 0 };
    struct qdec_error err;

    text_add(&t, "%s", "");
    int status = qdec_walk(msg, len, &text_visitor, &t, &err);
    ck_assert_msg(status == QDEC_OK, "walk failed: %s", err.message);
    return t.data;
}

/* ---- a visitor that keeps the top-level value ------------------------------------- */

struct top {
    struct qdec_value value;
    int events;
};

static int keep_top(void *ctx, const struct qdec_value *v)
{
    struct top *top = ctx;

    top->events++;
    if (v->depth == 0)
        top->value = *v;
    return 0;
}

static const struct qdec_visitor top_visitor = {
    .atom = keep_top,
    .vector = keep_top,
    .list_begin = keep_top,
    .list_end = keep_top,
    .dict_begin = keep_top,
    .dict_end = keep_top,
    .table_begin = keep_top,
    .table_end = keep_top,
    .function_begin = keep_top,
    .function_end = keep_top,
    .error = keep_top,
};

/* Decodes msg and returns its top-level value (for tables, as seen by table_end). */
static struct qdec_value top_value(const uint8_t *msg, size_t len)
{
    struct top top;
    struct qdec_error err;

    memset(&top, 0, sizeof(top));
    int status = qdec_walk(msg, len, &top_visitor, &top, &err);
    ck_assert_msg(status == QDEC_OK, "walk failed: %s", err.message);
    ck_assert_int_gt(top.events, 0);
    return top.value;
}

/* ---- byte-order conversion, to test big-endian decoding with every sample --------- */

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

static void swap_items(struct swap_ctx *s, const struct qdec_value *v, uint64_t count)
{
    unsigned width = qdec_item_size(v->type);

    if (width < 2 || width > 8)
        return;
    for (uint64_t i = 0; i < count; i++)
        swap_at(s, v->data + i * width, width);
}

/* Swaps a vector's or list's count, which starts 2 bytes after its type byte. */
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
    struct swap_ctx s = { .source = msg, .target = copy_exact(msg, len) };
    struct qdec_error err;

    int status = qdec_walk(msg, len, &swap_visitor, &s, &err);
    ck_assert_msg(status == QDEC_OK, "byte swap walk failed: %s", err.message);
    s.target[0] = 0;
    set_header_length(s.target, len);
    return s.target;
}

/* ---- the real kdb+ samples -------------------------------------------------------- */

struct sample {
    char *expression;
    char *hex;
};

static struct sample samples[256];
static int sample_count;

/* Loads serialization-samples.txt; returns 0 when the folder is absent (test skipped). */
static int load_samples(void)
{
    const char *dir = testdata_dir();
    if (dir == NULL)
        return 0;
    if (sample_count > 0)
        return 1;

    char path[4200];
    snprintf(path, sizeof(path), "%s/serialization-samples.txt", dir);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);

    static char expression[4096];
    static char hex[1 << 16];
    while (fgets(expression, sizeof(expression), f) != NULL) {
        ck_assert_msg(fgets(hex, sizeof(hex), f) != NULL, "no hex line after \"%s\"", expression);
        expression[strcspn(expression, "\r\n")] = '\0';
        hex[strcspn(hex, "\r\n")] = '\0';
        ck_assert_int_lt(sample_count, (int)(sizeof(samples) / sizeof(samples[0])));
        samples[sample_count].expression = strdup(expression);
        samples[sample_count].hex = strdup(hex);
        sample_count++;
    }
    fclose(f);
    return 1;
}

static const struct sample *find_sample(const char *expression)
{
    for (int i = 0; i < sample_count; i++)
        if (strcmp(samples[i].expression, expression) == 0)
            return &samples[i];
    ck_abort_msg("sample \"%s\" not found", expression);
    return NULL;
}

START_TEST(samples_all_decode)
{
    if (!load_samples())
        return;
    ck_assert_int_ge(sample_count, 100);

    for (int i = 0; i < sample_count; i++) {
        size_t body_len;
        uint8_t *body = hex_bytes(samples[i].hex, &body_len);
        uint64_t size = 0;
        struct qdec_error err;

        int status = qdec_skip(body, body_len, 0, 1, &size, &err);
        ck_assert_msg(status == QDEC_OK, "sample %s: %s", samples[i].expression, err.message);
        ck_assert_msg(size == body_len, "sample %s: object of %" PRIu64 " bytes, body has %zu",
                      samples[i].expression, size, body_len);

        size_t len;
        uint8_t *msg = wrap_body(body, body_len, 1, IPC_RESPONSE, &len);
        status = qdec_validate(msg, len, &err);
        ck_assert_msg(status == QDEC_OK, "sample %s: %s", samples[i].expression, err.message);
        free(msg);
        free(body);
    }
}
END_TEST

START_TEST(samples_decode_big_endian)
{
    if (!load_samples())
        return;

    for (int i = 0; i < sample_count; i++) {
        size_t len;
        uint8_t *little = message_from_body_hex(samples[i].hex, 1, &len);
        uint8_t *big = to_big_endian(little, len);
        struct qdec_error err;

        int status = qdec_validate(big, len, &err);
        ck_assert_msg(status == QDEC_OK, "sample %s: %s", samples[i].expression, err.message);

        char *little_text = render(little, len);
        char *big_text = render(big, len);
        ck_assert_msg(strcmp(little_text, big_text) == 0, "sample %s: %s differs from %s",
                      samples[i].expression, big_text, little_text);
        free(little_text);
        free(big_text);
        free(big);
        free(little);
    }
}
END_TEST

struct sample_case {
    const char *expression;
    int type;
    uint64_t count;
    const char *rendered;   /* events from the text visitor, or NULL to skip */
};

static const struct sample_case sample_cases[] = {
    { "1+`", -128, 0, "error 'type; " },
    { "1", -7, 0, "atom -7 1; " },
    { "-234h", -5, 0, "atom -5 -234; " },
    { "0b", -1, 0, "atom -1 0; " },
    { "\"abc\"", 10, 3, "vector 10 a0 n3 [97 98 99 ]; " },
    { "`abc", -11, 0, "atom -11 `abc; " },
    { "`", -11, 0, "atom -11 `N; " },
    { "()", 0, 0, "list a0 n0 (); " },
    { "`the`quick`brown`fox", 11, 4, NULL },
    { "``", 11, 2, "vector 11 a0 n2 [`N `N ]; " },
    { "(1;`bcd;\"0bc\";5.5e)", 0, 4, NULL },
    { "(42;::;`foo)", 0, 3,
      "list a0 n3 (atom -7 42; function 101 n0 code 0 (); atom -11 `foo; ); " },
    { "(`one;2 3;\"456\";(7;8 9))", 0, 4, NULL },
    { "::", 101, 0, "function 101 n0 code 0 (); " },
    { "{x+y}", 100, 1,
      "function 100 n1 context \"\" (vector 10 a0 n5 [123 120 43 121 125 ]; ); " },
    { "xbar", 100, 1, NULL },
    { "{x+y}[3]", 104, 2, NULL },
    { "insert [1]", 104, 2, NULL },
    { "md5", 104, 2, NULL },
    { "any", 105, 2, NULL },
    { "not", 101, 0, "function 101 n0 code 15 (); " },
    { "and", 102, 0, "function 102 n0 code 5 (); " },
    { "save", 106, 1, NULL },
    { "raze", 107, 1, "function 107 n1 (function 102 n0 code 12 (); ); " },
    { "sums", 108, 1, "function 108 n1 (function 102 n0 code 1 (); ); " },
    { "prev", 109, 1, "function 109 n1 (function 102 n0 code 0 (); ); " },
    { "(enlist `a)!(enlist 1)", 99, 2,
      "dict 99 (vector 11 a0 n1 [`a ]; vector 7 a0 n1 [1 ]; ); " },
    { "1 2!`abc`cdefgh", 99, 2, NULL },
    { "flip `abc`def!(1 2 3; 4 5 6)", 98, 3,
      "table a0 (dict 99 (vector 11 a0 n2 [`abc `def ]; list a0 n2 (vector 7 a0 n3 [1 2 3 ]; "
      "vector 7 a0 n3 [4 5 6 ]; ); ); ) rows 3; " },
    { "flip `name`iq`misc!(`Dent`Beeblebrox`Prefect;98 42 126;(\"The Hitch Hiker's Guide to "
      "the Galaxy\"; 160; 1979.10.12))", 98, 3, NULL },
    { "([] sc:1 2 3; nsc:(1 2; 3 4; 5 6 7))", 98, 3, NULL },
    { "([] name:`symbol$(); iq:`int$())", 98, 0, NULL },
    { "([k: 1 2 3] v: `a`b`c)", 99, 2,
      "dict 99 (table a0 (dict 99 (vector 11 a0 n1 [`k ]; list a0 n1 (vector 7 a0 n3 [1 2 3 ]; "
      "); ); ) rows 3; table a0 (dict 99 (vector 11 a0 n1 [`v ]; list a0 n1 (vector 11 a0 n3 "
      "[`a `b `c ]; ); ); ) rows 3; ); " },
    { "0Ng", -2, 0, "atom -2 00000000000000000000000000000000N; " },
    { "(\"G\"$\"8c680a01-5a49-5aab-5a65-d4bfddb6a661\"; 0Ng)", 2, 2,
      "vector 2 a0 n2 [8c680a015a495aab5a65d4bfddb6a661 00000000000000000000000000000000N ]; " },
    { "2000.01.04D05:36:57.600 0Np", 12, 2,
      "vector 12 a0 n2 [279417600000000 -9223372036854775808N ]; " },
    { "(5.5e; 0Ne)", 8, 2, "vector 8 a0 n2 [0x1.6p+2 nanN ]; " },
    { "12:04:59.123 0Nt", 19, 2, "vector 19 a0 n2 [43499123 -2147483648N ]; " },
};

START_TEST(samples_type_and_count)
{
    if (!load_samples())
        return;

    const struct sample_case *c = &sample_cases[_i];
    size_t len;
    uint8_t *msg = message_from_body_hex(find_sample(c->expression)->hex, 1, &len);

    struct qdec_value top = top_value(msg, len);
    ck_assert_msg(top.type == c->type, "%s: type %d, expected %d", c->expression, top.type,
                  c->type);
    ck_assert_msg(top.count == c->count, "%s: count %" PRIu64 ", expected %" PRIu64,
                  c->expression, top.count, c->count);
    ck_assert_uint_eq(top.offset, IPC_HEADER_SIZE);
    if (c->rendered != NULL) {
        char *text = render(msg, len);
        ck_assert_str_eq(text, c->rendered);
        free(text);
    }
    free(msg);
}
END_TEST

/* Every null sample from kdb+ is detected as null, and its non-null twins are not. */
START_TEST(samples_nulls)
{
    static const char *const nulls[] = {
        "0Nh", "0N", "0Ni", "0Nj", "0Ne", "0n", "\" \"", "`", "0Np", "0Nm", "0Nd", "0Nz",
        "0Nn", "0Nu", "0Nv", "0Nt", "0Ng",
    };
    static const char *const values[] = {
        "-234h", "1", "1i", "3.234", "5.5e", "\"0\"", "`abc", "2000.01.04D05:36:57.600",
        "2001.01m", "2001.01.01", "2000.01.04T05:36:57.600", "0D05:36:57.600", "12:01",
        "12:05:00", "12:04:59.123", "\"G\"$\"8c680a01-5a49-5aab-5a65-d4bfddb6a661\"", "0b",
        "0x00",
    };

    if (!load_samples())
        return;
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++) {
        size_t len;
        uint8_t *msg = message_from_body_hex(find_sample(nulls[i])->hex, 1, &len);
        struct qdec_value top = top_value(msg, len);
        ck_assert_msg(qdec_is_null(top.type, top.data, 1) == 1, "%s is not null", nulls[i]);
        ck_assert_msg(qdec_infinity(top.type, top.data, 1) == 0, "%s is infinite", nulls[i]);
        free(msg);
    }
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        size_t len;
        uint8_t *msg = message_from_body_hex(find_sample(values[i])->hex, 1, &len);
        struct qdec_value top = top_value(msg, len);
        ck_assert_msg(qdec_is_null(top.type, top.data, 1) == 0, "%s is null", values[i]);
        free(msg);
    }
}
END_TEST

/* ---- the example messages of the protocol description ----------------------------- */

struct example {
    const char *name;
    const char *hex;        /* the whole message, header included */
    int type;
    uint64_t count;
    const char *rendered;
};

static const struct example examples[] = {
    { "long 4 big-endian", "00 02 00 00 00 00 00 11 f9 00 00 00 00 00 00 00 04", -7, 0,
      "atom -7 4; " },
    { "long 4 little-endian", "01 02 00 00 11 00 00 00 f9 04 00 00 00 00 00 00 00", -7, 0,
      "atom -7 4; " },
    { "int vector 1 2i big-endian",
      "00 00 00 00 00 00 00 16 06 00 00 00 00 02 00 00 00 01 00 00 00 02", 6, 2,
      "vector 6 a0 n2 [1 2 ]; " },
    { "short -2h", "01 00 00 00 0b 00 00 00 fb fe ff", -5, 0, "atom -5 -2; " },
    { "int 42i", "01 00 00 00 0d 00 00 00 fa 2a 00 00 00", -6, 0, "atom -6 42; " },
    { "long 7", "01 00 00 00 11 00 00 00 f9 07 00 00 00 00 00 00 00", -7, 0, "atom -7 7; " },
    { "real 1.5e", "01 00 00 00 0d 00 00 00 f8 00 00 c0 3f", -8, 0, "atom -8 0x1.8p+0; " },
    { "float -0.5", "01 00 00 00 11 00 00 00 f7 00 00 00 00 00 00 e0 bf", -9, 0,
      "atom -9 -0x1p-1; " },
    { "char x", "01 00 00 00 0a 00 00 00 f6 78", -10, 0, "atom -10 120; " },
    { "symbol hello", "01 00 00 00 0f 00 00 00 f5 68 65 6c 6c 6f 00", -11, 0,
      "atom -11 `hello; " },
    { "boolean 0b", "01 00 00 00 0a 00 00 00 ff 00", -1, 0, "atom -1 0; " },
    { "byte 0xff", "01 00 00 00 0a 00 00 00 fc ff", -4, 0, "atom -4 255; " },
    { "guid", "01 00 00 00 19 00 00 00 fe 8c 68 0a 01 5a 49 5a ab 5a 65 d4 bf dd b6 a6 61", -2,
      0, "atom -2 8c680a015a495aab5a65d4bfddb6a661; " },
    { "timestamp", "01 00 00 00 11 00 00 00 f4 00 d0 25 10 35 ec 82 0a", -12, 0,
      "atom -12 757427400000000000; " },
    { "month", "01 00 00 00 0d 00 00 00 f3 20 01 00 00", -13, 0, "atom -13 288; " },
    { "date", "01 00 00 00 0d 00 00 00 f2 3e 22 00 00", -14, 0, "atom -14 8766; " },
    { "datetime", "01 00 00 00 11 00 00 00 f1 00 00 00 00 40 1f c1 40", -15, 0,
      "atom -15 0x1.11f4p+13; " },
    { "timespan", "01 00 00 00 11 00 00 00 f0 00 ca 9a 3b 00 00 00 00", -16, 0,
      "atom -16 1000000000; " },
    { "minute", "01 00 00 00 0d 00 00 00 ef ee 02 00 00", -17, 0, "atom -17 750; " },
    { "second", "01 00 00 00 0d 00 00 00 ee d7 af 00 00", -18, 0, "atom -18 45015; " },
    { "time", "01 00 00 00 0d 00 00 00 ed d2 e0 ae 02", -19, 0, "atom -19 45015250; " },
    { "sorted int vector",
      "01 00 00 00 1a 00 00 00 06 01 03 00 00 00 01 00 00 00 02 00 00 00 03 00 00 00", 6, 3,
      "vector 6 a1 n3 [1 2 3 ]; " },
    { "string hi", "01 00 00 00 10 00 00 00 0a 00 02 00 00 00 68 69", 10, 2,
      "vector 10 a0 n2 [104 105 ]; " },
    { "symbols a, empty, bc", "01 00 00 00 14 00 00 00 0b 00 03 00 00 00 61 00 00 62 63 00",
      11, 3, "vector 11 a0 n3 [`a `N `bc ]; " },
    { "short nulls and infinities",
      "01 00 00 00 16 00 00 00 05 00 04 00 00 00 01 00 00 80 ff 7f 01 80", 5, 4,
      "vector 5 a0 n4 [1 -32768N 32767+W -32767-W ]; " },
    { "long nulls and infinities",
      "01 00 00 00 26 00 00 00 07 00 03 00 00 00 00 00 00 00 00 00 00 80"
      " ff ff ff ff ff ff ff 7f 01 00 00 00 00 00 00 80", 7, 3,
      "vector 7 a0 n3 [-9223372036854775808N 9223372036854775807+W "
      "-9223372036854775807-W ]; " },
    { "float nulls and infinities",
      "01 00 00 00 2e 00 00 00 09 00 04 00 00 00 00 00 00 00 00 00 f0 3f"
      " 00 00 00 00 00 00 f0 7f 00 00 00 00 00 00 f0 ff 00 00 00 00 00 00 f8 7f", 9, 4,
      "vector 9 a0 n4 [0x1p+0 inf+W -inf-W nanN ]; " },
    { "date null and infinity",
      "01 00 00 00 16 00 00 00 0e 00 02 00 00 00 00 00 00 80 ff ff ff 7f", 14, 2,
      "vector 14 a0 n2 [-2147483648N 2147483647+W ]; " },
    { "empty general list", "01 00 00 00 0e 00 00 00 00 00 00 00 00 00", 0, 0,
      "list a0 n0 (); " },
    { "empty string", "01 00 00 00 0e 00 00 00 0a 00 00 00 00 00", 10, 0,
      "vector 10 a0 n0 []; " },
    { "call add", "01 00 00 00 25 00 00 00 00 00 03 00 00 00 f5 61 64 64 00"
      " f9 02 00 00 00 00 00 00 00 f9 03 00 00 00 00 00 00 00", 0, 3,
      "list a0 n3 (atom -11 `add; atom -7 2; atom -7 3; ); " },
    { "dictionary", "01 00 00 00 29 00 00 00 63 0b 00 02 00 00 00 78 00 79 00 00 00 02 00 00 00"
      " f9 01 00 00 00 00 00 00 00 0a 00 01 00 00 00 7a", 99, 2,
      "dict 99 (vector 11 a0 n2 [`x `y ]; list a0 n2 (atom -7 1; vector 10 a0 n1 [122 ]; ); ); " },
    { "table", "01 00 00 00 3b 00 00 00 62 00 63 0b 00 02 00 00 00 73 00 70 00"
      " 00 00 02 00 00 00 0b 00 02 00 00 00 61 00 62 00 09 00 02 00 00 00"
      " 00 00 00 00 00 00 f8 3f 00 00 00 00 00 00 04 40", 98, 2,
      "table a0 (dict 99 (vector 11 a0 n2 [`s `p ]; list a0 n2 (vector 11 a0 n2 [`a `b ]; "
      "vector 9 a0 n2 [0x1.8p+0 0x1.4p+1 ]; ); ); ) rows 2; " },
    { "keyed table", "01 00 00 00 41 00 00 00 63 62 00 63 0b 00 01 00 00 00 73 00"
      " 00 00 01 00 00 00 0b 00 01 00 00 00 61 00 62 00 63 0b 00 01 00 00 00 70 00"
      " 00 00 01 00 00 00 09 00 01 00 00 00 00 00 00 00 00 00 f8 3f", 99, 2, NULL },
    { "lambda {x*2}", "01 00 00 00 15 00 00 00 64 00 0a 00 05 00 00 00 7b 78 2a 32 7d", 100, 1,
      "function 100 n1 context \"\" (vector 10 a0 n5 [123 120 42 50 125 ]; ); " },
    { "projection {x*y}[2]", "01 00 00 00 23 00 00 00 68 02 00 00 00 64 00 0a 00 05 00 00 00"
      " 7b 78 2a 79 7d f9 02 00 00 00 00 00 00 00", 104, 2, NULL },
    { "projection +[;1i]", "01 00 00 00 16 00 00 00 68 03 00 00 00 66 01 65 00 fa 01 00 00 00",
      104, 3, "function 104 n3 (function 102 n0 code 1 (); function 101 n0 code 0 (); "
      "atom -6 1; ); " },
    { "generic null", "01 00 00 00 0a 00 00 00 65 00", 101, 0, "function 101 n0 code 0 (); " },
    { "operator +", "01 00 00 00 0a 00 00 00 66 01", 102, 0, "function 102 n0 code 1 (); " },
    { "error length", "01 02 00 00 10 00 00 00 80 6c 65 6e 67 74 68 00", -128, 0,
      "error 'length; " },
    { "sync 2+2", "01 01 00 00 11 00 00 00 0a 00 03 00 00 00 32 2b 32", 10, 3,
      "vector 10 a0 n3 [50 43 50 ]; " },
    { "large-count byte vector", "01 00 00 00 15 00 00 00 04 80 03 00 00 00 00 00 00 00 01 02 03",
      4, 3, "vector 4 a0 n3 [1 2 3 ]; " },
    { "large-count general list big-endian",
      "00 00 00 00 00 00 00 16 00 80 00 00 00 00 00 00 00 02 fc 01 fc 02", 0, 2,
      "list a0 n2 (atom -4 1; atom -4 2; ); " },
};

START_TEST(protocol_examples)
{
    const struct example *e = &examples[_i];
    size_t len;
    uint8_t *msg = hex_bytes(e->hex, &len);
    struct qdec_error err;

    int status = qdec_validate(msg, len, &err);
    ck_assert_msg(status == QDEC_OK, "%s: %s", e->name, err.message);

    struct qdec_value top = top_value(msg, len);
    ck_assert_msg(top.type == e->type, "%s: type %d, expected %d", e->name, top.type, e->type);
    ck_assert_msg(top.count == e->count, "%s: count %" PRIu64 ", expected %" PRIu64, e->name,
                  top.count, e->count);
    ck_assert_int_eq(top.little_endian, msg[0]);
    if (e->rendered != NULL) {
        char *text = render(msg, len);
        ck_assert_msg(strcmp(text, e->rendered) == 0, "%s: rendered \"%s\", expected \"%s\"",
                      e->name, text, e->rendered);
        free(text);
    }
    free(msg);
}
END_TEST

/* The big-endian copy of each example decodes to the same values. */
START_TEST(protocol_examples_big_endian)
{
    const struct example *e = &examples[_i];
    size_t len;
    uint8_t *msg = hex_bytes(e->hex, &len);

    if (msg[0] == 1) {
        uint8_t *big = to_big_endian(msg, len);
        char *little_text = render(msg, len);
        char *big_text = render(big, len);
        ck_assert_msg(strcmp(little_text, big_text) == 0, "%s: %s differs from %s", e->name,
                      big_text, little_text);
        free(little_text);
        free(big_text);
        free(big);
    }
    free(msg);
}
END_TEST

START_TEST(compressed_message_rejected)
{
    /* 1000#`ab compressed by kdb+'s algorithm. */
    size_t len;
    uint8_t *msg = hex_bytes("01 00 01 00 2f 00 00 00 c6 0b 00 00 00 0b 00 e8 03 00 00 61 62"
                             " ff 61 ff 62 ff 03 ff 61 ff 62 ff 03 ff 61 ff 62 ff"
                             " 0f 03 ff 61 ff 62 ff 03 a9", &len);
    struct qdec_error err;

    ck_assert_uint_eq(len, 47);
    ck_assert_int_eq(qdec_validate(msg, len, &err), QDEC_COMPRESSED);
    ck_assert_int_eq(err.status, QDEC_COMPRESSED);
    ck_assert_uint_eq(err.offset, 2);
    free(msg);
}
END_TEST

/* ---- null and infinity detection, type by type ------------------------------------ */

struct null_case {
    int type;
    const char *hex;    /* one item, little-endian */
    int is_null;
    int infinity;
};

static const struct null_case null_cases[] = {
    { 1, "00", 0, 0 },
    { 1, "01", 0, 0 },
    { 2, "00000000000000000000000000000000", 1, 0 },
    { 2, "00000000000000000000000000000001", 0, 0 },
    { 4, "00", 0, 0 },
    { 4, "80", 0, 0 },
    { 5, "0080", 1, 0 },
    { 5, "ff7f", 0, 1 },
    { 5, "0180", 0, -1 },
    { 5, "0000", 0, 0 },
    { 6, "00000080", 1, 0 },
    { 6, "ffffff7f", 0, 1 },
    { 6, "01000080", 0, -1 },
    { 6, "ffffffff", 0, 0 },
    { 7, "0000000000000080", 1, 0 },
    { 7, "ffffffffffffff7f", 0, 1 },
    { 7, "0100000000000080", 0, -1 },
    { 7, "0100000000000000", 0, 0 },
    { 8, "0000c07f", 1, 0 },
    { 8, "0000c0ff", 1, 0 },
    { 8, "0100807f", 1, 0 },    /* signalling NaN */
    { 8, "0000807f", 0, 1 },
    { 8, "000080ff", 0, -1 },
    { 8, "0000c03f", 0, 0 },
    { 9, "000000000000f87f", 1, 0 },
    { 9, "000000000000f8ff", 1, 0 },
    { 9, "010000000000f07f", 1, 0 },
    { 9, "000000000000f07f", 0, 1 },
    { 9, "000000000000f0ff", 0, -1 },
    { 9, "0000000000000080", 0, 0 },    /* -0.0 */
    { 10, "20", 1, 0 },
    { 10, "00", 0, 0 },
    { 11, "00", 1, 0 },
    { 11, "6100", 0, 0 },
    { 12, "0000000000000080", 1, 0 },
    { 12, "ffffffffffffff7f", 0, 1 },
    { 12, "0100000000000080", 0, -1 },
    { 13, "00000080", 1, 0 },
    { 13, "ffffff7f", 0, 1 },
    { 13, "01000080", 0, -1 },
    { 14, "00000080", 1, 0 },
    { 14, "ffffff7f", 0, 1 },
    { 14, "01000080", 0, -1 },
    { 14, "3e220000", 0, 0 },
    { 15, "000000000000f87f", 1, 0 },
    { 15, "000000000000f07f", 0, 1 },
    { 15, "000000000000f0ff", 0, -1 },
    { 16, "0000000000000080", 1, 0 },
    { 16, "ffffffffffffff7f", 0, 1 },
    { 16, "0100000000000080", 0, -1 },
    { 17, "00000080", 1, 0 },
    { 17, "ffffff7f", 0, 1 },
    { 17, "01000080", 0, -1 },
    { 18, "00000080", 1, 0 },
    { 18, "ffffff7f", 0, 1 },
    { 18, "01000080", 0, -1 },
    { 19, "00000080", 1, 0 },
    { 19, "ffffff7f", 0, 1 },
    { 19, "01000080", 0, -1 },
    { 19, "00000000", 0, 0 },
};

START_TEST(null_and_infinity)
{
    const struct null_case *c = &null_cases[_i];
    size_t len;
    uint8_t *item = hex_bytes(c->hex, &len);

    /* Atom and vector types give the same result. */
    for (int sign = -1; sign <= 1; sign += 2) {
        int type = sign * c->type;
        ck_assert_msg(qdec_is_null(type, item, 1) == c->is_null, "type %d %s: null %d", type,
                      c->hex, qdec_is_null(type, item, 1));
        ck_assert_msg(qdec_infinity(type, item, 1) == c->infinity, "type %d %s: infinity %d",
                      type, c->hex, qdec_infinity(type, item, 1));
    }

    /* The same item in big-endian order, except GUIDs, chars and symbols, which have no
     * byte order. */
    unsigned width = qdec_item_size(c->type);
    if (c->type != 2 && width > 1) {
        uint8_t *big = malloc(len);
        ck_assert_ptr_nonnull(big);
        for (size_t i = 0; i < len; i++)
            big[i] = item[len - 1 - i];
        ck_assert_int_eq(qdec_is_null(c->type, big, 0), c->is_null);
        ck_assert_int_eq(qdec_infinity(c->type, big, 0), c->infinity);
        free(big);
    }
    free(item);
}
END_TEST

START_TEST(null_other_types)
{
    static const uint8_t zeros[16] = { 0 };

    ck_assert_int_eq(qdec_is_null(0, zeros, 1), 0);
    ck_assert_int_eq(qdec_is_null(99, zeros, 1), 0);
    ck_assert_int_eq(qdec_infinity(3, zeros, 1), 0);
    ck_assert_int_eq(qdec_infinity(-128, zeros, 1), 0);
}
END_TEST

/* ---- malformed input -------------------------------------------------------------- */

/* Messages cut at every length must fail cleanly, both as given (header longer than the
 * bytes) and with the header's length patched to match the cut. */
static const char *const truncation_messages[] = {
    /* table */
    "01 00 00 00 3b 00 00 00 62 00 63 0b 00 02 00 00 00 73 00 70 00 00 00 02 00 00 00"
    " 0b 00 02 00 00 00 61 00 62 00 09 00 02 00 00 00"
    " 00 00 00 00 00 00 f8 3f 00 00 00 00 00 00 04 40",
    /* keyed table */
    "01 00 00 00 41 00 00 00 63 62 00 63 0b 00 01 00 00 00 73 00 00 00 01 00 00 00"
    " 0b 00 01 00 00 00 61 00 62 00 63 0b 00 01 00 00 00 70 00 00 00 01 00 00 00"
    " 09 00 01 00 00 00 00 00 00 00 00 00 f8 3f",
    /* dictionary */
    "01 00 00 00 29 00 00 00 63 0b 00 02 00 00 00 78 00 79 00 00 00 02 00 00 00"
    " f9 01 00 00 00 00 00 00 00 0a 00 01 00 00 00 7a",
    /* projection of a lambda */
    "01 00 00 00 23 00 00 00 68 02 00 00 00 64 00 0a 00 05 00 00 00"
    " 7b 78 2a 79 7d f9 02 00 00 00 00 00 00 00",
    /* composition of a unary primitive and a projection */
    "01 00 00 00 1b 00 00 00 69 02 00 00 00 65 02 68 02 00 00 00 66 01 fa 01 00 00 00",
    /* each of a lambda in context q */
    "01 00 00 00 16 00 00 00 6a 64 71 00 0a 00 04 00 00 00 7b 78 7d 00",
    /* guid vector */
    "01 00 00 00 2e 00 00 00 02 00 02 00 00 00 8c 68 0a 01 5a 49 5a ab 5a 65 d4 bf dd b6 a6 61"
    " 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
    /* symbols */
    "01 00 00 00 14 00 00 00 0b 00 03 00 00 00 61 00 00 62 63 00",
    /* error */
    "01 02 00 00 10 00 00 00 80 6c 65 6e 67 74 68 00",
    /* big-endian int vector */
    "00 00 00 00 00 00 00 16 06 00 00 00 00 02 00 00 00 01 00 00 00 02",
    /* large-count general list */
    "00 00 00 00 00 00 00 16 00 80 00 00 00 00 00 00 00 02 fc 01 fc 02",
};

START_TEST(truncation_every_length)
{
    size_t full_len;
    uint8_t *full = hex_bytes(truncation_messages[_i], &full_len);
    struct qdec_error err;

    ck_assert_msg(qdec_validate(full, full_len, &err) == QDEC_OK, "message %d: %s", _i,
                  err.message);
    for (size_t cut = 0; cut < full_len; cut++) {
        uint8_t *part = copy_exact(full, cut);

        int status = qdec_validate(part, cut, &err);
        ck_assert_msg(status == QDEC_TRUNCATED, "message %d cut at %zu: status %d (%s)", _i, cut,
                      status, err.message);
        ck_assert_int_eq(err.status, status);
        ck_assert_uint_le(err.offset, cut);

        if (cut >= IPC_HEADER_SIZE) {
            set_header_length(part, cut);
            status = qdec_validate(part, cut, &err);
            if (cut < IPC_MIN_LENGTH)
                ck_assert_int_eq(status, QDEC_INVALID_HEADER);
            else
                ck_assert_msg(status == QDEC_TRUNCATED, "message %d cut at %zu with its length"
                              " patched: status %d (%s)", _i, cut, status, err.message);
            ck_assert_uint_le(err.offset, cut);

            uint64_t size;
            status = qdec_skip(part, cut, IPC_HEADER_SIZE, part[0], &size, &err);
            ck_assert_int_eq(status, QDEC_TRUNCATED);
        }
        free(part);
    }
    free(full);
}
END_TEST

struct bad_case {
    const char *name;
    const char *body;       /* hex of the body, little-endian unless the name states otherwise */
    int status;
    uint64_t offset;        /* expected error offset in the whole message */
};

static const struct bad_case bad_cases[] = {
    { "int vector count 2^32-1", "06 00 ff ff ff ff 01 00 00 00 02 00 00 00",
      QDEC_TRUNCATED, 10 },
    { "long vector count overflowing 64 bits",
      "07 80 00 00 00 00 00 00 00 20 00 00 00 00 00 00 00 00", QDEC_TRUNCATED, 10 },
    { "long vector count 2^61+1",
      "07 80 01 00 00 00 00 00 00 20 01 00 00 00 00 00 00 00", QDEC_TRUNCATED, 10 },
    { "guid vector one byte short",
      "02 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00", QDEC_TRUNCATED, 10 },
    { "symbol vector one symbol short", "0b 00 03 00 00 00 61 00 62 00", QDEC_TRUNCATED, 18 },
    { "symbol vector count beyond the bytes", "0b 00 05 00 00 00 61 00 62 00",
      QDEC_TRUNCATED, 10 },
    { "symbol without NUL", "0b 00 01 00 00 00 61 62 63", QDEC_TRUNCATED, 14 },
    { "symbol atom without NUL", "f5 61 62", QDEC_TRUNCATED, 9 },
    { "error without NUL", "80 74 79 70 65", QDEC_TRUNCATED, 9 },
    { "general list count 2^32-1", "00 00 ff ff ff ff f9 01 00 00 00 00 00 00 00",
      QDEC_TRUNCATED, 10 },
    { "general list count one too many",
      "00 00 03 00 00 00 f9 01 00 00 00 00 00 00 00 f9 02 00 00 00 00 00 00 00",
      QDEC_TRUNCATED, 32 },
    { "general list 8-byte count 2^63", "00 80 00 00 00 00 00 00 00 80 fc 01",
      QDEC_TRUNCATED, 10 },
    { "projection count 2^32-1", "68 ff ff ff ff 66 01 65 00", QDEC_TRUNCATED, 9 },
    { "projection count 0", "68 00 00 00 00 66 01", QDEC_INVALID_STRUCTURE, 9 },
    { "composition count 0", "69 00 00 00 00", QDEC_INVALID_STRUCTURE, 9 },
    { "lambda without source", "64 00 f9 01 00 00 00 00 00 00 00", QDEC_INVALID_STRUCTURE, 10 },
    { "lambda context without NUL", "64 71 71", QDEC_TRUNCATED, 9 },
    { "iterator without function", "6a 6a", QDEC_TRUNCATED, 10 },
    { "table of a list", "62 00 00 00 00 00 00 00", QDEC_INVALID_STRUCTURE, 10 },
    { "table with int column names",
      "62 00 63 06 00 01 00 00 00 01 00 00 00 00 00 01 00 00 00 07 00 00 00 00 00",
      QDEC_INVALID_STRUCTURE, 11 },
    { "table with a vector of columns",
      "62 00 63 0b 00 01 00 00 00 61 00 07 00 01 00 00 00 01 00 00 00 00 00 00 00",
      QDEC_INVALID_STRUCTURE, 19 },
    { "table with more names than columns",
      "62 00 63 0b 00 02 00 00 00 61 00 62 00 00 00 01 00 00 00 07 00 00 00 00 00",
      QDEC_INVALID_STRUCTURE, 21 },
    { "table columns of unequal length",
      "62 00 63 0b 00 02 00 00 00 61 00 62 00 00 00 02 00 00 00"
      " 04 00 01 00 00 00 01 04 00 02 00 00 00 01 02", QDEC_INVALID_STRUCTURE, 34 },
    { "table with an atom column",
      "62 00 63 0b 00 01 00 00 00 61 00 00 00 01 00 00 00 f9 01 00 00 00 00 00 00 00",
      QDEC_INVALID_STRUCTURE, 25 },
    { "table attribute 0x80", "62 80 63 0b 00 00 00 00 00 00 00 00 00 00 00",
      QDEC_INVALID_ATTRIBUTE, 9 },
    { "vector attribute 5", "07 05 00 00 00 00", QDEC_INVALID_ATTRIBUTE, 9 },
    { "vector attribute 0x85", "07 85 00 00 00 00 00 00 00 00", QDEC_INVALID_ATTRIBUTE, 9 },
    { "list attribute 0x7f", "00 7f 00 00 00 00", QDEC_INVALID_ATTRIBUTE, 9 },
    { "type 3", "03 00 00 00 00 00", QDEC_INVALID_TYPE, 8 },
    { "type -3", "fd 00 00 00 00", QDEC_INVALID_TYPE, 8 },
    { "type 113", "71 00 00 00 00 00", QDEC_INVALID_TYPE, 8 },
    { "type 126", "7e 00 00 00 00 00", QDEC_INVALID_TYPE, 8 },
    { "type -98", "9e 00 00 00 00 00", QDEC_INVALID_TYPE, 8 },
    { "type -127", "81 00 00 00 00 00", QDEC_INVALID_TYPE, 8 },
    { "enumeration 20", "14 00 01 00 00 00 00 00 00 00", QDEC_UNSUPPORTED_TYPE, 8 },
    { "enumeration atom -20", "ec 00 00 00 00", QDEC_UNSUPPORTED_TYPE, 8 },
    { "anymap 77", "4d 00 00 00 00 00", QDEC_UNSUPPORTED_TYPE, 8 },
    { "nested symbol enumeration 97", "61 00 00 00 00 00", QDEC_UNSUPPORTED_TYPE, 8 },
    { "foreign function 112", "70 00 00 00 00 00", QDEC_UNSUPPORTED_TYPE, 8 },
    { "unknown type inside a list", "00 00 02 00 00 00 fc 01 03 00", QDEC_INVALID_TYPE, 16 },
    { "trailing byte", "f9 01 00 00 00 00 00 00 00 00", QDEC_TRAILING_BYTES, 17 },
    { "two objects", "65 00 65 00", QDEC_TRAILING_BYTES, 10 },
};

START_TEST(malformed_bodies)
{
    const struct bad_case *c = &bad_cases[_i];
    size_t len;
    uint8_t *msg = message_from_body_hex(c->body, 1, &len);
    struct qdec_error err;

    int status = qdec_validate(msg, len, &err);
    ck_assert_msg(status == c->status, "%s: status %d (%s), expected %d", c->name, status,
                  err.message, c->status);
    ck_assert_int_eq(err.status, status);
    ck_assert_msg(err.offset == c->offset, "%s: offset %" PRIu64 ", expected %" PRIu64 " (%s)",
                  c->name, err.offset, c->offset, err.message);

    char prefix[32];
    snprintf(prefix, sizeof(prefix), "offset %" PRIu64 ": ", c->offset);
    ck_assert_msg(strncmp(err.message, prefix, strlen(prefix)) == 0, "%s: message \"%s\"",
                  c->name, err.message);
    free(msg);
}
END_TEST

START_TEST(header_errors)
{
    struct qdec_error err;
    size_t len;

    uint8_t *msg = hex_bytes("01 02 00 00 11 00 00 00 f9 04 00 00 00 00 00 00 00", &len);
    ck_assert_int_eq(qdec_validate(msg, 7, &err), QDEC_TRUNCATED);
    ck_assert_int_eq(qdec_validate(msg, 16, &err), QDEC_TRUNCATED);
    ck_assert_uint_eq(err.offset, 16);

    msg[0] = 2;
    ck_assert_int_eq(qdec_validate(msg, len, &err), QDEC_INVALID_HEADER);
    ck_assert_uint_eq(err.offset, 0);
    msg[0] = 1;
    msg[1] = 3;
    ck_assert_int_eq(qdec_validate(msg, len, &err), QDEC_INVALID_HEADER);
    msg[1] = 2;

    /* The header declares fewer bytes than the buffer holds. */
    set_header_length(msg, 16);
    ck_assert_int_eq(qdec_validate(msg, len, &err), QDEC_TRAILING_BYTES);
    ck_assert_uint_eq(err.offset, 16);
    free(msg);

    ck_assert_int_eq(qdec_validate(NULL, 0, &err), QDEC_TRUNCATED);
    ck_assert_int_eq(qdec_validate(NULL, 0, NULL), QDEC_TRUNCATED);
}
END_TEST

/* Returns a message whose body is `levels` nested one-item lists around the long 1. */
static uint8_t *nested_lists(unsigned levels, size_t *len)
{
    static const uint8_t list1[] = { 0x00, 0x00, 0x01, 0x00, 0x00, 0x00 };
    static const uint8_t long1[] = { 0xf9, 1, 0, 0, 0, 0, 0, 0, 0 };
    size_t body_len = levels * sizeof(list1) + sizeof(long1);
    uint8_t *body = malloc(body_len);
    ck_assert_ptr_nonnull(body);

    for (unsigned i = 0; i < levels; i++)
        memcpy(body + i * sizeof(list1), list1, sizeof(list1));
    memcpy(body + levels * sizeof(list1), long1, sizeof(long1));
    uint8_t *msg = wrap_body(body, body_len, 1, IPC_RESPONSE, len);
    free(body);
    return msg;
}

START_TEST(depth_limit)
{
    struct qdec_error err;
    size_t len;

    uint8_t *msg = nested_lists(QDEC_MAX_DEPTH, &len);
    ck_assert_int_eq(qdec_validate(msg, len, &err), QDEC_OK);
    free(msg);

    msg = nested_lists(QDEC_MAX_DEPTH + 1, &len);
    ck_assert_int_eq(qdec_validate(msg, len, &err), QDEC_TOO_DEEP);
    ck_assert_uint_eq(err.offset, IPC_HEADER_SIZE + 6 * (QDEC_MAX_DEPTH + 1));
    free(msg);

    msg = nested_lists(100000, &len);
    ck_assert_int_eq(qdec_validate(msg, len, &err), QDEC_TOO_DEEP);
    free(msg);
}
END_TEST

/* Depth bombs of iterators, dictionaries and projections, each wrapped around `::`. */
START_TEST(depth_bombs)
{
    static const struct {
        const char *name;
        uint8_t prefix[6];
        size_t prefix_len;
    } bombs[] = {
        { "each", { 0x6a }, 1 },
        { "dictionary", { 0x63 }, 1 },
        { "sorted dictionary", { 0x7f }, 1 },
        { "projection", { 0x68, 1, 0, 0, 0 }, 5 },
    };

    for (size_t b = 0; b < sizeof(bombs) / sizeof(bombs[0]); b++) {
        size_t levels = 20000;
        size_t body_len = levels * bombs[b].prefix_len + 2;
        uint8_t *body = malloc(body_len);
        ck_assert_ptr_nonnull(body);
        for (size_t i = 0; i < levels; i++)
            memcpy(body + i * bombs[b].prefix_len, bombs[b].prefix, bombs[b].prefix_len);
        body[body_len - 2] = 0x65;
        body[body_len - 1] = 0x00;

        size_t len;
        uint8_t *msg = wrap_body(body, body_len, 1, IPC_RESPONSE, &len);
        struct qdec_error err;
        int status = qdec_validate(msg, len, &err);
        ck_assert_msg(status == QDEC_TOO_DEEP, "%s bomb: status %d (%s)", bombs[b].name,
                      status, err.message);
        free(msg);
        free(body);
    }
}
END_TEST

/* Tables nested as columns of tables: 1000 levels exceed the depth limit, two are valid. */
START_TEST(depth_bomb_nested_tables)
{
    /* 62 00 63 0b 00 01 00 00 00 61 00 00 00 01 00 00 00 <column> */
    static const uint8_t level[] = { 0x62, 0x00, 0x63, 0x0b, 0x00, 0x01, 0x00, 0x00, 0x00, 0x61,
                                     0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00 };
    static const uint8_t column[] = { 0x04, 0x00, 0x01, 0x00, 0x00, 0x00, 0x07 };
    size_t levels = 1000;
    size_t body_len = levels * sizeof(level) + sizeof(column);
    uint8_t *body = malloc(body_len);
    ck_assert_ptr_nonnull(body);
    for (size_t i = 0; i < levels; i++)
        memcpy(body + i * sizeof(level), level, sizeof(level));
    memcpy(body + levels * sizeof(level), column, sizeof(column));

    size_t len;
    uint8_t *msg = wrap_body(body, body_len, 1, IPC_RESPONSE, &len);
    struct qdec_error err;
    ck_assert_int_eq(qdec_validate(msg, len, &err), QDEC_TOO_DEEP);

    /* Two levels are a valid table with a table column of one row. */
    free(msg);
    memcpy(body + 2 * sizeof(level), column, sizeof(column));
    msg = wrap_body(body, 2 * sizeof(level) + sizeof(column), 1, IPC_RESPONSE, &len);
    struct qdec_value top = top_value(msg, len);
    ck_assert_int_eq(top.type, 98);
    ck_assert_uint_eq(top.count, 1);
    free(msg);
    free(body);
}
END_TEST

static int stop_at_second_atom(void *ctx, const struct qdec_value *v)
{
    int *atoms = ctx;

    (void)v;
    return ++*atoms == 2;
}

START_TEST(visitor_stops_walk)
{
    static const struct qdec_visitor visitor = { .atom = stop_at_second_atom };
    size_t len;
    uint8_t *msg = message_from_body_hex("00 00 03 00 00 00 fc 01 fc 02 fc 03", 1, &len);
    struct qdec_error err;
    int atoms = 0;

    ck_assert_int_eq(qdec_walk(msg, len, &visitor, &atoms, &err), QDEC_STOPPED);
    ck_assert_int_eq(atoms, 2);
    ck_assert_uint_eq(err.offset, 16);
    free(msg);
}
END_TEST

START_TEST(skip_items_of_list)
{
    /* (`add;2 3;"xyz";(7;8 9)) */
    size_t len;
    uint8_t *body = hex_bytes("00 00 04 00 00 00 f5 61 64 64 00"
                              " 07 00 02 00 00 00 02 00 00 00 00 00 00 00 03 00 00 00 00 00 00 00"
                              " 0a 00 03 00 00 00 78 79 7a"
                              " 00 00 02 00 00 00 f9 07 00 00 00 00 00 00 00"
                              " 07 00 02 00 00 00 08 00 00 00 00 00 00 00 09 00 00 00 00 00 00 00",
                              &len);
    static const uint64_t sizes[] = { 5, 22, 9, 37 };
    uint64_t offset = 6;
    struct qdec_error err;

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint64_t size = 0;
        ck_assert_int_eq(qdec_skip(body, len, offset, 1, &size, &err), QDEC_OK);
        ck_assert_uint_eq(size, sizes[i]);
        offset += size;
    }
    ck_assert_uint_eq(offset, len);

    uint64_t size;
    ck_assert_int_eq(qdec_skip(body, len, len, 1, &size, &err), QDEC_TRUNCATED);
    ck_assert_int_eq(qdec_skip(body, len, len + 1, 1, &size, &err), QDEC_TRUNCATED);
    free(body);
}
END_TEST

START_TEST(type_names)
{
    ck_assert_str_eq(qdec_type_name(7), "long");
    ck_assert_str_eq(qdec_type_name(-7), "long");
    ck_assert_str_eq(qdec_type_name(0), "general list");
    ck_assert_str_eq(qdec_type_name(3), "unknown");
    ck_assert_str_eq(qdec_type_name(-128), "error");
    ck_assert_str_eq(qdec_type_name(20), "enumeration");
    ck_assert_str_eq(qdec_type_name(98), "table");
    ck_assert_str_eq(qdec_type_name(127), "sorted dictionary");
    ck_assert_str_eq(qdec_type_name(108), "scan");
    ck_assert_str_eq(qdec_type_name(112), "foreign function");
    ck_assert_str_eq(qdec_type_name(113), "unknown");
    ck_assert_str_eq(qdec_status_text(QDEC_TOO_DEEP), "nesting too deep");
}
END_TEST

Suite *qdec_suite(void)
{
    Suite *suite = suite_create("qdec");
    TCase *samples_case = tcase_create("samples");
    TCase *examples_case = tcase_create("examples");
    TCase *nulls_case = tcase_create("nulls");
    TCase *malformed_case = tcase_create("malformed");
    TCase *api_case = tcase_create("api");

    tcase_add_test(samples_case, samples_all_decode);
    tcase_add_test(samples_case, samples_decode_big_endian);
    tcase_add_loop_test(samples_case, samples_type_and_count, 0,
                        (int)(sizeof(sample_cases) / sizeof(sample_cases[0])));
    tcase_add_test(samples_case, samples_nulls);
    suite_add_tcase(suite, samples_case);

    tcase_add_loop_test(examples_case, protocol_examples, 0,
                        (int)(sizeof(examples) / sizeof(examples[0])));
    tcase_add_loop_test(examples_case, protocol_examples_big_endian, 0,
                        (int)(sizeof(examples) / sizeof(examples[0])));
    tcase_add_test(examples_case, compressed_message_rejected);
    suite_add_tcase(suite, examples_case);

    tcase_add_loop_test(nulls_case, null_and_infinity, 0,
                        (int)(sizeof(null_cases) / sizeof(null_cases[0])));
    tcase_add_test(nulls_case, null_other_types);
    suite_add_tcase(suite, nulls_case);

    tcase_add_loop_test(malformed_case, truncation_every_length, 0,
                        (int)(sizeof(truncation_messages) / sizeof(truncation_messages[0])));
    tcase_add_loop_test(malformed_case, malformed_bodies, 0,
                        (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
    tcase_add_test(malformed_case, header_errors);
    tcase_add_test(malformed_case, depth_limit);
    tcase_add_test(malformed_case, depth_bombs);
    tcase_add_test(malformed_case, depth_bomb_nested_tables);
    suite_add_tcase(suite, malformed_case);

    tcase_add_test(api_case, visitor_stops_walk);
    tcase_add_test(api_case, skip_items_of_list);
    tcase_add_test(api_case, type_names);
    suite_add_tcase(suite, api_case);
    return suite;
}
