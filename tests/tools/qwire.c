/*
 * qwire.c - kdb+ message building, decompression and q-like formatting for the test client.
 */
#include "qwire.h"

#include "ipc.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nesting depth at which formatting gives up, so a hostile body cannot exhaust the stack. */
#define FORMAT_MAX_DEPTH 64

/* kdb+ type numbers used below. The negated value is the atom of the same type. */
enum {
    KT_LIST = 0,
    KT_BOOLEAN = 1,
    KT_GUID = 2,
    KT_BYTE = 4,
    KT_SHORT = 5,
    KT_INT = 6,
    KT_LONG = 7,
    KT_REAL = 8,
    KT_FLOAT = 9,
    KT_CHAR = 10,
    KT_SYMBOL = 11,
    KT_TABLE = 98,
    KT_DICT = 99,
    KT_LAMBDA = 100,
    KT_UNARY = 101,
    KT_PROJECTION = 104,
    KT_COMPOSITION = 105,
    KT_ADVERB_LAST = 111,
    KT_SORTED_DICT = 127,
    KT_ERROR = -128,
};

void qwire_text_append(struct qwire_text *text, const char *bytes, size_t length)
{
    if (text->length + length + 1 > text->capacity) {
        size_t capacity = text->capacity ? text->capacity : 256;
        while (capacity < text->length + length + 1)
            capacity *= 2;
        char *grown = realloc(text->data, capacity);
        if (grown == NULL) {
            fprintf(stderr, "qmux-client: out of memory formatting a result of %zu bytes\n",
                    text->length + length);
            exit(2);
        }
        text->data = grown;
        text->capacity = capacity;
    }
    memcpy(text->data + text->length, bytes, length);
    text->length += length;
    text->data[text->length] = '\0';
}

void qwire_text_printf(struct qwire_text *text, const char *format, ...)
{
    char buffer[512];
    va_list args;

    va_start(args, format);
    int n = vsnprintf(buffer, sizeof(buffer), format, args);
    va_end(args);
    if (n < 0)
        return;
    qwire_text_append(text, buffer, (size_t)n < sizeof(buffer) ? (size_t)n : sizeof(buffer) - 1);
}

void qwire_text_free(struct qwire_text *text)
{
    free(text->data);
    text->data = NULL;
    text->length = text->capacity = 0;
}

uint8_t *qwire_build_query(int msg_type, const char *expr, size_t *length)
{
    size_t expr_length = strlen(expr);
    /* Header, type byte, attribute byte and 4-byte count precede the characters. */
    size_t total = IPC_HEADER_SIZE + 6 + expr_length;

    if (total > INT32_MAX)
        return NULL;
    uint8_t *message = malloc(total);
    if (message == NULL)
        return NULL;

    ipc_header_write(message, msg_type, total);
    uint8_t *body = message + IPC_HEADER_SIZE;
    body[0] = KT_CHAR;
    body[1] = 0;
    body[2] = (uint8_t)expr_length;
    body[3] = (uint8_t)(expr_length >> 8);
    body[4] = (uint8_t)(expr_length >> 16);
    body[5] = (uint8_t)(expr_length >> 24);
    memcpy(body + 6, expr, expr_length);
    *length = total;
    return message;
}

uint8_t *qwire_build_handshake(const char *credentials, int capability, size_t *length)
{
    size_t credentials_length = strlen(credentials);
    uint8_t *handshake = malloc(credentials_length + 2);

    if (handshake == NULL)
        return NULL;
    memcpy(handshake, credentials, credentials_length);
    /* Capability 0 is signalled by sending no capability byte, as early Java clients did:
     * a 0 byte would end the credentials and leave a stray NUL. */
    if (capability == 0) {
        handshake[credentials_length] = 0;
        *length = credentials_length + 1;
        return handshake;
    }
    handshake[credentials_length] = (uint8_t)capability;
    handshake[credentials_length + 1] = 0;
    *length = credentials_length + 2;
    return handshake;
}

/*
 * The kdb+ compression format: groups of one control byte and up to 8 tokens. Bit i of
 * the control byte marks token i as a match (2 bytes: hash slot, extra length) rather
 * than a literal byte. Both sides index each byte pair by buf[p] ^ buf[p+1], except
 * pairs inside the extra part of a match, and the decoder must index at the same points.
 */
uint8_t *qwire_decompress(const uint8_t *message, size_t length, size_t *out_length,
                          char *error, size_t error_size)
{
    int little_endian = message[0] == 1;
    size_t size_field = message[2] == 2 ? 8 : 4;
    size_t src = IPC_HEADER_SIZE + size_field;

    if (length < src + 1) {
        snprintf(error, error_size, "compressed message of %zu bytes is too short", length);
        return NULL;
    }
    uint64_t total = size_field == 8 ? ipc_read_u64(message + 8, little_endian)
                                     : ipc_read_u32(message + 8, little_endian);
    if (total < IPC_MIN_LENGTH || total > SIZE_MAX / 2) {
        snprintf(error, error_size, "invalid uncompressed size %" PRIu64, total);
        return NULL;
    }

    uint8_t *out = malloc(total);
    if (out == NULL) {
        snprintf(error, error_size, "out of memory for %" PRIu64 " bytes", total);
        return NULL;
    }
    memcpy(out, message, IPC_HEADER_SIZE);
    out[2] = 0;

    size_t table[256] = { 0 };
    size_t written = IPC_HEADER_SIZE;
    size_t indexed = IPC_HEADER_SIZE;
    unsigned mask = 0;
    unsigned control = 0;

    while (written < total) {
        if (mask == 0) {
            if (src >= length)
                goto truncated;
            control = message[src++];
            mask = 1;
        }
        if (control & mask) {
            if (src + 2 > length)
                goto truncated;
            size_t from = table[message[src]];
            size_t extra = message[src + 1];
            src += 2;
            if (from < IPC_HEADER_SIZE || from + 1 >= written || written + 2 + extra > total) {
                snprintf(error, error_size, "invalid match token at output offset %zu", written);
                free(out);
                return NULL;
            }
            out[written] = out[from];
            out[written + 1] = out[from + 1];
            written += 2;
            for (; indexed + 1 < written; indexed++)
                table[out[indexed] ^ out[indexed + 1]] = indexed;
            /* Forward byte copy: the source may overlap the bytes being written. */
            for (size_t i = 0; i < extra; i++)
                out[written + i] = out[from + 2 + i];
            written += extra;
            indexed = written;
        } else {
            if (src >= length)
                goto truncated;
            out[written++] = message[src++];
            for (; indexed + 1 < written; indexed++)
                table[out[indexed] ^ out[indexed + 1]] = indexed;
        }
        mask = (mask << 1) & 0xff;
    }

    /* Rewrite the length in the message's own byte order. */
    out[3] = (uint8_t)(total >> 32);
    for (int i = 0; i < 4; i++) {
        int shift = little_endian ? 8 * i : 8 * (3 - i);
        out[4 + i] = (uint8_t)(total >> shift);
    }
    *out_length = total;
    return out;

truncated:
    snprintf(error, error_size, "compressed stream ends at output offset %zu of %" PRIu64,
             written, total);
    free(out);
    return NULL;
}

int qwire_read_long(const uint8_t *body, size_t body_length, int little_endian,
                    int64_t *value, char *text, size_t text_size)
{
    if (body_length >= 1 && (int8_t)body[0] == KT_ERROR) {
        size_t n = strnlen((const char *)body + 1, body_length - 1);
        if (n >= text_size)
            n = text_size - 1;
        memcpy(text, body + 1, n);
        text[n] = '\0';
        return QWIRE_LONG_ERROR;
    }
    if (body_length != 9 || (int8_t)body[0] != -KT_LONG)
        return QWIRE_LONG_WRONG_TYPE;
    *value = (int64_t)ipc_read_u64(body + 1, little_endian);
    return QWIRE_LONG_OK;
}

/* A bounds-checked cursor over one body. */
struct reader {
    const uint8_t *pos;
    const uint8_t *end;
    int little_endian;
};

static int reader_has(const struct reader *r, uint64_t n)
{
    return (uint64_t)(r->end - r->pos) >= n;
}

static size_t item_size(int type)
{
    switch (type) {
    case KT_BOOLEAN: case KT_BYTE: case KT_CHAR:
        return 1;
    case KT_GUID:
        return 16;
    case KT_SHORT:
        return 2;
    case KT_INT: case KT_REAL: case 13: case 14: case 17: case 18: case 19:
        return 4;
    case KT_LONG: case KT_FLOAT: case 12: case 15: case 16:
        return 8;
    }
    return 0;
}

/* Reads a vector's attribute byte and count (4 bytes, or 8 when attribute bit 0x80 is set). */
static int read_count(struct reader *r, uint64_t *count)
{
    if (!reader_has(r, 5))
        return -1;
    int wide = r->pos[0] & 0x80;
    r->pos++;
    if (wide) {
        if (!reader_has(r, 8))
            return -1;
        *count = ipc_read_u64(r->pos, r->little_endian);
        r->pos += 8;
    } else {
        *count = ipc_read_u32(r->pos, r->little_endian);
        r->pos += 4;
    }
    return 0;
}

static int skip_symbol(struct reader *r)
{
    const uint8_t *nul = memchr(r->pos, 0, (size_t)(r->end - r->pos));
    if (nul == NULL)
        return -1;
    r->pos = nul + 1;
    return 0;
}

/* Advances past one object without formatting it. Returns -1 when it is malformed. */
static int skip_object(struct reader *r, int depth)
{
    if (depth > FORMAT_MAX_DEPTH || !reader_has(r, 1))
        return -1;
    int type = (int8_t)*r->pos++;
    uint64_t count;

    if (type == KT_ERROR || type == -KT_SYMBOL)
        return skip_symbol(r);
    if (type < 0 && type >= -19) {
        size_t size = item_size(-type);
        if (size == 0 || !reader_has(r, size))
            return -1;
        r->pos += size;
        return 0;
    }
    if (type >= 1 && type <= 19) {
        if (read_count(r, &count) < 0)
            return -1;
        if (type == KT_SYMBOL) {
            for (uint64_t i = 0; i < count; i++)
                if (skip_symbol(r) < 0)
                    return -1;
            return 0;
        }
        size_t size = item_size(type);
        if (size == 0 || count > UINT64_MAX / size || !reader_has(r, count * size))
            return -1;
        r->pos += count * size;
        return 0;
    }
    switch (type) {
    case KT_LIST:
        if (read_count(r, &count) < 0)
            return -1;
        for (uint64_t i = 0; i < count; i++)
            if (skip_object(r, depth + 1) < 0)
                return -1;
        return 0;
    case KT_TABLE:
        if (!reader_has(r, 1))
            return -1;
        r->pos++;
        return skip_object(r, depth + 1);
    case KT_DICT:
    case KT_SORTED_DICT:
        if (skip_object(r, depth + 1) < 0)
            return -1;
        return skip_object(r, depth + 1);
    case KT_LAMBDA:
        if (skip_symbol(r) < 0)
            return -1;
        return skip_object(r, depth + 1);
    case KT_UNARY: case 102: case 103:
        if (!reader_has(r, 1))
            return -1;
        r->pos++;
        return 0;
    case KT_PROJECTION:
    case KT_COMPOSITION:
        if (!reader_has(r, 4))
            return -1;
        count = ipc_read_u32(r->pos, r->little_endian);
        r->pos += 4;
        for (uint64_t i = 0; i < count; i++)
            if (skip_object(r, depth + 1) < 0)
                return -1;
        return 0;
    }
    if (type > KT_COMPOSITION && type <= KT_ADVERB_LAST)
        return skip_object(r, depth + 1);
    return -1;
}

static void format_integer(struct qwire_text *out, int64_t value, int64_t null, int64_t inf)
{
    if (value == null)
        qwire_text_append(out, "0N", 2);
    else if (value == inf)
        qwire_text_append(out, "0W", 2);
    else if (value == -inf)
        qwire_text_append(out, "-0W", 3);
    else
        qwire_text_printf(out, "%" PRId64, value);
}

/* Formats a float like q's default display precision of 7 significant digits.
 * Returns 1 when the text shows a fraction or exponent, so no `f` suffix is needed. */
static int format_float(struct qwire_text *out, double value)
{
    if (isnan(value)) {
        qwire_text_append(out, "0n", 2);
        return 1;
    }
    if (isinf(value)) {
        qwire_text_append(out, value > 0 ? "0w" : "-0w", value > 0 ? 2 : 3);
        return 1;
    }
    char buffer[64];
    snprintf(buffer, sizeof(buffer), "%.7g", value);
    qwire_text_append(out, buffer, strlen(buffer));
    return strpbrk(buffer, ".e") != NULL;
}

/* Formats the one numeric or boolean value at data, a vector item or an atom's value.
 * Returns 1 when the text already marks it as a float. */
static int format_item(struct qwire_text *out, int type, const uint8_t *data, int little_endian)
{
    switch (type) {
    case KT_BOOLEAN:
        qwire_text_append(out, data[0] ? "1" : "0", 1);
        return 0;
    case KT_BYTE:
        qwire_text_printf(out, "%02x", data[0]);
        return 0;
    case KT_SHORT: {
        int16_t v = (int16_t)(little_endian ? data[0] | data[1] << 8 : data[1] | data[0] << 8);
        format_integer(out, v, INT16_MIN, INT16_MAX);
        return 0;
    }
    case KT_INT:
        format_integer(out, (int32_t)ipc_read_u32(data, little_endian), INT32_MIN, INT32_MAX);
        return 0;
    case KT_LONG:
        format_integer(out, (int64_t)ipc_read_u64(data, little_endian), INT64_MIN, INT64_MAX);
        return 0;
    case KT_REAL: {
        uint32_t bits = ipc_read_u32(data, little_endian);
        float v;
        memcpy(&v, &bits, sizeof(v));
        return format_float(out, v);
    }
    case KT_FLOAT: {
        uint64_t bits = ipc_read_u64(data, little_endian);
        double v;
        memcpy(&v, &bits, sizeof(v));
        return format_float(out, v);
    }
    }
    return 0;
}

static const char *type_name(int type)
{
    switch (type) {
    case KT_BOOLEAN: return "boolean";
    case KT_GUID: return "guid";
    case KT_BYTE: return "byte";
    case KT_SHORT: return "short";
    case KT_INT: return "int";
    case KT_LONG: return "long";
    case KT_REAL: return "real";
    case KT_FLOAT: return "float";
    case KT_CHAR: return "char";
    case KT_SYMBOL: return "symbol";
    case 12: return "timestamp";
    case 13: return "month";
    case 14: return "date";
    case 15: return "datetime";
    case 16: return "timespan";
    case 17: return "minute";
    case 18: return "second";
    case 19: return "time";
    }
    return "unknown";
}

/* Type suffixes as q prints them after a numeric atom or vector. */
static const char *numeric_suffix(int type)
{
    switch (type) {
    case KT_BOOLEAN: return "b";
    case KT_SHORT: return "h";
    case KT_INT: return "i";
    case KT_REAL: return "e";
    }
    return "";
}

static void format_chars(struct qwire_text *out, const uint8_t *chars, size_t count)
{
    qwire_text_append(out, "\"", 1);
    for (size_t i = 0; i < count; i++) {
        uint8_t c = chars[i];
        if (c == '"' || c == '\\')
            qwire_text_printf(out, "\\%c", c);
        else if (c == '\n')
            qwire_text_append(out, "\\n", 2);
        else if (c < 0x20 || c == 0x7f)
            qwire_text_printf(out, "\\%03o", c);
        else
            qwire_text_append(out, (const char *)&c, 1);
    }
    qwire_text_append(out, "\"", 1);
}

static int format_symbol(struct reader *r, struct qwire_text *out)
{
    const uint8_t *start = r->pos;
    if (skip_symbol(r) < 0)
        return -1;
    qwire_text_append(out, "`", 1);
    qwire_text_append(out, (const char *)start, (size_t)(r->pos - start - 1));
    return 0;
}

static int format_object(struct reader *r, struct qwire_text *out, int depth);

static int format_vector(struct reader *r, struct qwire_text *out, int type)
{
    uint64_t count;
    if (read_count(r, &count) < 0)
        return -1;

    if (type == KT_CHAR) {
        if (!reader_has(r, count))
            return -1;
        if (count == 1)
            qwire_text_append(out, ",", 1);
        format_chars(out, r->pos, count);
        r->pos += count;
        return 0;
    }
    if (count == 0) {
        qwire_text_printf(out, "`%s$()", type_name(type));
        return 0;
    }
    if (count == 1)
        qwire_text_append(out, ",", 1);
    if (type == KT_SYMBOL) {
        for (uint64_t i = 0; i < count; i++)
            if (format_symbol(r, out) < 0)
                return -1;
        return 0;
    }

    size_t size = item_size(type);
    if (count > UINT64_MAX / size || !reader_has(r, count * size))
        return -1;
    int numeric = type == KT_BOOLEAN || type == KT_BYTE || (type >= KT_SHORT && type <= KT_FLOAT);
    if (!numeric) {
        qwire_text_printf(out, "<%s vector, count %" PRIu64 ", %" PRIu64 " bytes>",
                          type_name(type), count, count * size);
        r->pos += count * size;
        return 0;
    }

    int any_float_mark = 0;
    if (type == KT_BYTE)
        qwire_text_append(out, "0x", 2);
    for (uint64_t i = 0; i < count; i++) {
        if (i > 0 && type != KT_BOOLEAN && type != KT_BYTE)
            qwire_text_append(out, " ", 1);
        any_float_mark |= format_item(out, type, r->pos, r->little_endian);
        r->pos += size;
    }
    qwire_text_append(out, numeric_suffix(type), strlen(numeric_suffix(type)));
    if (type == KT_FLOAT && !any_float_mark)
        qwire_text_append(out, "f", 1);
    return 0;
}

static int format_atom(struct reader *r, struct qwire_text *out, int type)
{
    if (type == KT_SYMBOL)
        return format_symbol(r, out);

    size_t size = item_size(type);
    if (size == 0 || !reader_has(r, size))
        return -1;
    if (type == KT_CHAR) {
        format_chars(out, r->pos, 1);
    } else if (type == KT_BYTE) {
        qwire_text_append(out, "0x", 2);
        format_item(out, type, r->pos, r->little_endian);
    } else if (type == KT_BOOLEAN || (type >= KT_SHORT && type <= KT_FLOAT)) {
        int float_mark = format_item(out, type, r->pos, r->little_endian);
        qwire_text_append(out, numeric_suffix(type), strlen(numeric_suffix(type)));
        if (type == KT_FLOAT && !float_mark)
            qwire_text_append(out, "f", 1);
    } else {
        qwire_text_printf(out, "<%s atom, %zu bytes>", type_name(type), size);
    }
    r->pos += size;
    return 0;
}

static int format_list(struct reader *r, struct qwire_text *out, int depth)
{
    uint64_t count;
    if (read_count(r, &count) < 0)
        return -1;
    if (count == 1)
        qwire_text_append(out, ",", 1);
    else
        qwire_text_append(out, "(", 1);
    for (uint64_t i = 0; i < count; i++) {
        if (i > 0)
            qwire_text_append(out, ";", 1);
        if (format_object(r, out, depth + 1) < 0)
            return -1;
    }
    if (count != 1)
        qwire_text_append(out, ")", 1);
    return 0;
}

/* Formats a table as "table `col1`col2..., N rows", where N is the length of the first
 * column. */
static int format_table(struct reader *r, struct qwire_text *out, int depth)
{
    /* Attribute byte, then a dictionary: symbol vector of names, general list of columns. */
    if (!reader_has(r, 2) || r->pos[1] != KT_DICT || !reader_has(r, 3) || r->pos[2] != KT_SYMBOL)
        return -1;
    r->pos += 3;
    uint64_t columns;
    if (read_count(r, &columns) < 0)
        return -1;
    qwire_text_append(out, "table ", 6);
    for (uint64_t i = 0; i < columns; i++)
        if (format_symbol(r, out) < 0)
            return -1;

    if (!reader_has(r, 1) || r->pos[0] != KT_LIST)
        return -1;
    r->pos++;
    uint64_t list_count;
    if (read_count(r, &list_count) < 0 || list_count != columns)
        return -1;
    uint64_t rows = 0;
    for (uint64_t i = 0; i < columns; i++) {
        if (i == 0) {
            /* Every column is a vector or general list: type byte, attribute, count. */
            struct reader peek = *r;
            if (!reader_has(&peek, 1) || (int8_t)peek.pos[0] < 0)
                return -1;
            peek.pos++;
            if (read_count(&peek, &rows) < 0)
                return -1;
        }
        if (skip_object(r, depth + 1) < 0)
            return -1;
    }
    qwire_text_printf(out, ", %" PRIu64 " rows", rows);
    return 0;
}

static int format_object(struct reader *r, struct qwire_text *out, int depth)
{
    if (depth > FORMAT_MAX_DEPTH || !reader_has(r, 1))
        return -1;
    const uint8_t *start = r->pos;
    int type = (int8_t)*r->pos++;

    if (type < 0 && type >= -19)
        return format_atom(r, out, -type);
    if (type >= 1 && type <= 19)
        return format_vector(r, out, type);
    switch (type) {
    case KT_LIST:
        return format_list(r, out, depth);
    case KT_TABLE:
        return format_table(r, out, depth);
    case KT_DICT:
    case KT_SORTED_DICT:
        if (format_object(r, out, depth + 1) < 0)
            return -1;
        qwire_text_append(out, "!", 1);
        return format_object(r, out, depth + 1);
    case KT_UNARY:
        if (reader_has(r, 1) && r->pos[0] == 0) {
            r->pos++;
            qwire_text_append(out, "::", 2);
            return 0;
        }
        break;
    }

    r->pos = start;
    if (skip_object(r, depth) < 0)
        return -1;
    qwire_text_printf(out, "<type %d, %zu bytes>", type, (size_t)(r->pos - start));
    return 0;
}

int qwire_format(const uint8_t *body, size_t body_length, int little_endian,
                 struct qwire_text *out)
{
    struct reader r = { body, body + body_length, little_endian };

    if (body_length >= 1 && (int8_t)body[0] == KT_ERROR) {
        size_t n = strnlen((const char *)body + 1, body_length - 1);
        qwire_text_append(out, "'", 1);
        qwire_text_append(out, (const char *)body + 1, n);
        return 1;
    }
    if (format_object(&r, out, 0) < 0) {
        qwire_text_printf(out, "<malformed or truncated object of %zu bytes>", body_length);
        return -1;
    }
    if (r.pos != r.end) {
        qwire_text_printf(out, " <%zu unexpected bytes after the object>",
                          (size_t)(r.end - r.pos));
        return -1;
    }
    return 0;
}
