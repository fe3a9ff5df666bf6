/*
 * qdec.c - decoder and validator of kdb+ IPC message bodies.
 *
 * A recursive walk over one object. The cursor position never exceeds the buffer length,
 * and every read is preceded by a check against the bytes that remain.
 */
#include "qdec.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ipc.h"

/* Every object takes at least two bytes: a type byte and one more (an atom's value, a
 * symbol's NUL, a primitive's code, a vector's attribute...). Used to reject list counts
 * that cannot fit before walking their items. */
#define MIN_OBJECT_SIZE 2

struct cursor {
    const uint8_t *buf;
    uint64_t len;           /* bytes of buf; nothing at or beyond len is read */
    uint64_t pos;           /* next byte to read, always <= len */
    int little_endian;
    const struct qdec_visitor *visitor;
    void *ctx;
    struct qdec_error *err;
};

/* Summary of a walked object, for the checks of enclosing tables. */
struct object_info {
    int type;
    uint64_t count;
};

static int walk(struct cursor *c, unsigned depth, struct object_info *info);

__attribute__((format(printf, 4, 5)))
static int fail(struct cursor *c, int status, uint64_t offset, const char *fmt, ...)
{
    struct qdec_error *err = c->err;
    va_list ap;

    if (err == NULL)
        return status;
    err->status = status;
    err->offset = offset;

    int n = snprintf(err->message, sizeof(err->message), "offset %" PRIu64 ": ", offset);
    if (n < 0 || (size_t)n >= sizeof(err->message))
        return status;
    va_start(ap, fmt);
    vsnprintf(err->message + n, sizeof(err->message) - (size_t)n, fmt, ap);
    va_end(ap);
    return status;
}

static uint64_t remaining(const struct cursor *c)
{
    return c->len - c->pos;
}

/* Fails with QDEC_TRUNCATED unless n more bytes remain. part names the bytes needed. */
static int need(struct cursor *c, uint64_t n, const char *part)
{
    if (n <= remaining(c))
        return QDEC_OK;
    return fail(c, QDEC_TRUNCATED, c->pos, "%s needs %" PRIu64 " bytes, %" PRIu64 " remain",
                part, n, remaining(c));
}

/* Reads a NUL-terminated string at the cursor; sets *text and *size (NUL excluded) and
 * moves past the NUL. */
static int read_text(struct cursor *c, const char *part, const uint8_t **text, uint64_t *size)
{
    const uint8_t *start = c->buf + c->pos;
    const uint8_t *nul = remaining(c) > 0 ? memchr(start, 0, (size_t)remaining(c)) : NULL;

    if (nul == NULL)
        return fail(c, QDEC_TRUNCATED, c->pos, "%s has no terminating NUL before the end", part);
    *text = start;
    *size = (uint64_t)(nul - start);
    c->pos += *size + 1;
    return QDEC_OK;
}

/* Calls a visitor callback, turning a nonzero return into QDEC_STOPPED. */
static int notify(struct cursor *c, int (*callback)(void *, const struct qdec_value *),
                  const struct qdec_value *v)
{
    if (callback == NULL || callback(c->ctx, v) == 0)
        return QDEC_OK;
    return fail(c, QDEC_STOPPED, v->offset, "the visitor stopped the walk at a %s",
                qdec_type_name(v->type));
}

#define VISIT(c, name, v) notify((c), (c)->visitor ? (c)->visitor->name : NULL, (v))

static int is_atom_type(int type)
{
    return type <= -1 && type >= -19 && type != -3;
}

static int is_enumeration(int type)
{
    return (type >= 20 && type <= 97) || (type >= -97 && type <= -20);
}

static int walk_atom(struct cursor *c, struct qdec_value *v)
{
    int status;

    if (v->type == -11) {
        status = read_text(c, "symbol atom", &v->data, &v->size);
    } else {
        unsigned size = qdec_item_size(v->type);
        status = need(c, size, qdec_type_name(v->type));
        if (status == QDEC_OK) {
            v->data = c->buf + c->pos;
            v->size = size;
            c->pos += size;
        }
    }
    if (status != QDEC_OK)
        return status;
    return VISIT(c, atom, v);
}

/* Reads the attribute byte and the count of a vector or general list, and stores the
 * offset of the count in *count_offset.
 * NOTE: kdb+ was observed setting the 0x80 large-count flag on byte vectors only. The same
 * rule is assumed for every vector type and for general lists. */
static int read_vector_header(struct cursor *c, struct qdec_value *v, uint64_t *count_offset)
{
    int status = need(c, 1, "attribute byte");
    if (status != QDEC_OK)
        return status;

    uint8_t attribute = c->buf[c->pos];
    int large = (attribute & QDEC_ATTR_LARGE_COUNT) != 0;
    v->attribute = attribute & ~QDEC_ATTR_LARGE_COUNT;
    if (v->attribute > QDEC_ATTR_GROUPED)
        return fail(c, QDEC_INVALID_ATTRIBUTE, c->pos,
                    "invalid attribute byte 0x%02x (expected 0..4, optionally with 0x80)",
                    attribute);
    c->pos++;

    unsigned count_size = large ? 8 : 4;
    *count_offset = c->pos;
    status = need(c, count_size, large ? "8-byte count" : "count");
    if (status != QDEC_OK)
        return status;
    if (large)
        v->count = ipc_read_u64(c->buf + c->pos, c->little_endian);
    else
        v->count = ipc_read_u32(c->buf + c->pos, c->little_endian);
    c->pos += count_size;
    return QDEC_OK;
}

static int walk_symbols(struct cursor *c, struct qdec_value *v, uint64_t count_offset)
{
    /* Each symbol takes at least its NUL. */
    if (v->count > remaining(c))
        return fail(c, QDEC_TRUNCATED, count_offset,
                    "symbol vector count %" PRIu64 " exceeds the %" PRIu64 " bytes that remain",
                    v->count, remaining(c));

    uint64_t start = c->pos;
    for (uint64_t i = 0; i < v->count; i++) {
        const uint8_t *text;
        uint64_t size;
        int status = read_text(c, "symbol", &text, &size);
        if (status != QDEC_OK)
            return status;
    }
    v->data = c->buf + start;
    v->size = c->pos - start;
    return VISIT(c, vector, v);
}

static int walk_vector(struct cursor *c, struct qdec_value *v)
{
    uint64_t count_offset;
    int status = read_vector_header(c, v, &count_offset);
    if (status != QDEC_OK)
        return status;

    if (v->type == 11)
        return walk_symbols(c, v, count_offset);

    /* Compare count with remaining / size: count * size could overflow 64 bits. */
    unsigned size = qdec_item_size(v->type);
    if (v->count > remaining(c) / size)
        return fail(c, QDEC_TRUNCATED, count_offset,
                    "%s vector count %" PRIu64 " needs more than the %" PRIu64
                    " bytes that remain",
                    qdec_type_name(v->type), v->count, remaining(c));
    v->data = c->buf + c->pos;
    v->size = v->count * size;
    c->pos += v->size;
    return VISIT(c, vector, v);
}

/* Rejects a container count that cannot fit in the bytes that remain. */
static int check_child_count(struct cursor *c, uint64_t count, uint64_t count_offset,
                             const char *part)
{
    if (count <= remaining(c) / MIN_OBJECT_SIZE)
        return QDEC_OK;
    return fail(c, QDEC_TRUNCATED, count_offset,
                "%s count %" PRIu64 " exceeds what the %" PRIu64 " remaining bytes can hold",
                part, count, remaining(c));
}

static int walk_children(struct cursor *c, uint64_t count, unsigned depth)
{
    for (uint64_t i = 0; i < count; i++) {
        int status = walk(c, depth, NULL);
        if (status != QDEC_OK)
            return status;
    }
    return QDEC_OK;
}

static int walk_list(struct cursor *c, struct qdec_value *v)
{
    uint64_t count_offset;
    int status = read_vector_header(c, v, &count_offset);
    if (status != QDEC_OK)
        return status;
    status = check_child_count(c, v->count, count_offset, "general list");
    if (status != QDEC_OK)
        return status;

    status = VISIT(c, list_begin, v);
    if (status == QDEC_OK)
        status = walk_children(c, v->count, v->depth + 1);
    if (status == QDEC_OK)
        status = VISIT(c, list_end, v);
    return status;
}

static int walk_dict(struct cursor *c, struct qdec_value *v)
{
    v->count = 2;
    int status = VISIT(c, dict_begin, v);
    if (status == QDEC_OK)
        status = walk_children(c, 2, v->depth + 1);
    if (status == QDEC_OK)
        status = VISIT(c, dict_end, v);
    return status;
}

/* Fails unless the next type byte is expected. part names the value being read. */
static int expect_type(struct cursor *c, int expected, const char *part)
{
    int status = need(c, 1, part);
    if (status != QDEC_OK)
        return status;

    int type = (int8_t)c->buf[c->pos];
    if (type == expected)
        return QDEC_OK;
    return fail(c, QDEC_INVALID_STRUCTURE, c->pos, "%s has type %d (%s), expected %d (%s)", part,
                type, qdec_type_name(type), expected, qdec_type_name(expected));
}

/*
 * A table is 98, an attribute byte, then a dictionary (99) whose keys are the symbol
 * vector of column names and whose values are a general list of as many columns. Each
 * column must be a vector, a general list or a table, and all columns must have the same
 * length, which becomes the table's row count.
 * NOTE: which table layouts kdb+ itself rejects is undocumented. These rules describe the
 * tables kdb+ sends, so a hand-made table that kdb+ would accept may still fail here.
 */
static int walk_table_columns(struct cursor *c, const struct qdec_value *dict,
                              uint64_t column_count, uint64_t *rows)
{
    uint64_t list_offset = c->pos;
    int status = expect_type(c, 0, "table column list");
    if (status != QDEC_OK)
        return status;

    struct qdec_value list = { .type = 0, .little_endian = c->little_endian,
                               .depth = dict->depth + 1, .offset = c->pos };
    c->pos++;
    uint64_t count_offset;
    status = read_vector_header(c, &list, &count_offset);
    if (status != QDEC_OK)
        return status;
    if (list.count != column_count)
        return fail(c, QDEC_INVALID_STRUCTURE, list_offset,
                    "table has %" PRIu64 " column names but %" PRIu64 " columns",
                    column_count, list.count);
    status = check_child_count(c, list.count, count_offset, "table column");
    if (status == QDEC_OK)
        status = VISIT(c, list_begin, &list);

    *rows = 0;
    for (uint64_t i = 0; i < list.count && status == QDEC_OK; i++) {
        uint64_t column_offset = c->pos;
        struct object_info column;

        status = walk(c, list.depth + 1, &column);
        if (status != QDEC_OK)
            break;
        if (column.type < 0 || (column.type > 19 && column.type != 98))
            return fail(c, QDEC_INVALID_STRUCTURE, column_offset,
                        "table column %" PRIu64 " is a %s, not a list", i,
                        qdec_type_name(column.type));
        if (i == 0)
            *rows = column.count;
        else if (column.count != *rows)
            return fail(c, QDEC_INVALID_STRUCTURE, column_offset,
                        "table column %" PRIu64 " has %" PRIu64 " items, column 0 has %" PRIu64,
                        i, column.count, *rows);
    }
    if (status == QDEC_OK)
        status = VISIT(c, list_end, &list);
    return status;
}

static int walk_table(struct cursor *c, struct qdec_value *v)
{
    int status = need(c, 1, "table attribute byte");
    if (status != QDEC_OK)
        return status;
    v->attribute = c->buf[c->pos];
    if (v->attribute > QDEC_ATTR_GROUPED)
        return fail(c, QDEC_INVALID_ATTRIBUTE, c->pos,
                    "invalid table attribute byte 0x%02x (expected 0..4)", c->buf[c->pos]);
    c->pos++;

    status = expect_type(c, 99, "table dictionary");
    if (status != QDEC_OK)
        return status;
    if (v->depth + 1 > QDEC_MAX_DEPTH)
        return fail(c, QDEC_TOO_DEEP, c->pos, "nesting deeper than %d containers",
                    QDEC_MAX_DEPTH);

    struct qdec_value dict = { .type = 99, .little_endian = c->little_endian,
                               .depth = v->depth + 1, .offset = c->pos, .count = 2 };
    c->pos++;
    status = VISIT(c, table_begin, v);
    if (status == QDEC_OK)
        status = VISIT(c, dict_begin, &dict);
    if (status != QDEC_OK)
        return status;

    status = expect_type(c, 11, "table column names");
    if (status != QDEC_OK)
        return status;
    struct object_info names;
    status = walk(c, dict.depth + 1, &names);
    if (status != QDEC_OK)
        return status;

    status = walk_table_columns(c, &dict, names.count, &v->count);
    if (status == QDEC_OK)
        status = VISIT(c, dict_end, &dict);
    if (status == QDEC_OK)
        status = VISIT(c, table_end, v);
    return status;
}

static int walk_function(struct cursor *c, struct qdec_value *v)
{
    int status;

    if (v->type == QDEC_TYPE_LAMBDA) {
        status = read_text(c, "lambda context name", &v->data, &v->size);
        if (status == QDEC_OK)
            status = expect_type(c, 10, "lambda source text");
        v->count = 1;
    } else if (v->type <= QDEC_TYPE_ITERATOR) {
        status = need(c, 1, "primitive code");
        if (status == QDEC_OK) {
            v->data = c->buf + c->pos;
            v->size = 1;
            c->pos++;
        }
    } else if (v->type <= QDEC_TYPE_COMPOSITION) {
        uint64_t count_offset = c->pos;
        status = need(c, 4, "function count");
        if (status == QDEC_OK) {
            v->count = ipc_read_u32(c->buf + c->pos, c->little_endian);
            c->pos += 4;
            if (v->count == 0)
                return fail(c, QDEC_INVALID_STRUCTURE, count_offset,
                            "%s has no function", qdec_type_name(v->type));
            status = check_child_count(c, v->count, count_offset, qdec_type_name(v->type));
        }
    } else {
        v->count = 1;
        status = QDEC_OK;
    }
    if (status != QDEC_OK)
        return status;

    status = VISIT(c, function_begin, v);
    if (status == QDEC_OK)
        status = walk_children(c, v->count, v->depth + 1);
    if (status == QDEC_OK)
        status = VISIT(c, function_end, v);
    return status;
}

/* kdb+ sends an error only as the whole body of a response, but one is accepted at any
 * depth and in any message type. */
static int walk_error(struct cursor *c, struct qdec_value *v)
{
    int status = read_text(c, "error text", &v->data, &v->size);
    if (status != QDEC_OK)
        return status;
    return VISIT(c, error, v);
}

static int walk(struct cursor *c, unsigned depth, struct object_info *info)
{
    uint64_t offset = c->pos;

    if (depth > QDEC_MAX_DEPTH)
        return fail(c, QDEC_TOO_DEEP, offset, "nesting deeper than %d containers",
                    QDEC_MAX_DEPTH);
    int status = need(c, 1, "type byte");
    if (status != QDEC_OK)
        return status;

    struct qdec_value v = { .type = (int8_t)c->buf[c->pos], .little_endian = c->little_endian,
                            .depth = depth, .offset = offset };
    c->pos++;

    if (v.type == -128)
        status = walk_error(c, &v);
    else if (is_atom_type(v.type))
        status = walk_atom(c, &v);
    else if (v.type == 0)
        status = walk_list(c, &v);
    else if (v.type > 0 && v.type <= 19 && v.type != 3)
        status = walk_vector(c, &v);
    else if (v.type == 98)
        status = walk_table(c, &v);
    else if (v.type == 99 || v.type == QDEC_TYPE_SORTED_DICT)
        status = walk_dict(c, &v);
    else if (v.type >= QDEC_TYPE_LAMBDA && v.type <= QDEC_TYPE_EACH_LEFT)
        status = walk_function(c, &v);
    else if (is_enumeration(v.type) || v.type == QDEC_TYPE_FOREIGN)
        return fail(c, QDEC_UNSUPPORTED_TYPE, offset,
                    "type %d (%s) is not sent over IPC and is not supported", v.type,
                    qdec_type_name(v.type));
    else
        return fail(c, QDEC_INVALID_TYPE, offset, "invalid type byte 0x%02x (%d)",
                    c->buf[offset], v.type);

    if (status == QDEC_OK && info != NULL) {
        info->type = v.type;
        info->count = v.count;
    }
    return status;
}

int qdec_walk_object(const uint8_t *buf, uint64_t len, uint64_t offset, int little_endian,
                     const struct qdec_visitor *visitor, void *ctx, uint64_t *end,
                     struct qdec_error *err)
{
    struct cursor c = { .buf = buf, .len = len, .pos = offset, .little_endian = little_endian,
                        .visitor = visitor, .ctx = ctx, .err = err };

    if (err != NULL) {
        err->status = QDEC_OK;
        err->offset = 0;
        err->message[0] = '\0';
    }
    if (offset > len)
        return fail(&c, QDEC_TRUNCATED, len, "object offset %" PRIu64 " is past the end",
                    offset);

    int status = walk(&c, 0, NULL);
    if (status == QDEC_OK && end != NULL)
        *end = c.pos;
    return status;
}

int qdec_skip(const uint8_t *buf, uint64_t len, uint64_t offset, int little_endian,
              uint64_t *size, struct qdec_error *err)
{
    uint64_t end = 0;
    int status = qdec_walk_object(buf, len, offset, little_endian, NULL, NULL, &end, err);

    if (status == QDEC_OK)
        *size = end - offset;
    return status;
}

int qdec_walk(const uint8_t *msg, uint64_t len, const struct qdec_visitor *visitor, void *ctx,
              struct qdec_error *err)
{
    struct cursor c = { .buf = msg, .len = len, .err = err };
    struct ipc_header header;

    if (len < IPC_HEADER_SIZE)
        return fail(&c, QDEC_TRUNCATED, len, "message of %" PRIu64 " bytes has no 8-byte header",
                    len);
    int ipc_status = ipc_header_parse(msg, &header);
    if (ipc_status != IPC_OK)
        return fail(&c, QDEC_INVALID_HEADER, 0, "%s", ipc_status_text(ipc_status));
    if (header.compressed)
        return fail(&c, QDEC_COMPRESSED, 2, "message is compressed; decompress it first");
    if (header.length > len)
        return fail(&c, QDEC_TRUNCATED, len,
                    "header declares %" PRIu64 " bytes but the message has %" PRIu64,
                    header.length, len);
    if (header.length < len)
        return fail(&c, QDEC_TRAILING_BYTES, header.length,
                    "%" PRIu64 " bytes follow the %" PRIu64 "-byte message the header declares",
                    len - header.length, header.length);

    uint64_t end = 0;
    int status = qdec_walk_object(msg, len, IPC_HEADER_SIZE, header.little_endian, visitor, ctx,
                                  &end, err);
    if (status != QDEC_OK)
        return status;
    if (end != len)
        return fail(&c, QDEC_TRAILING_BYTES, end,
                    "%" PRIu64 " bytes follow the message's object", len - end);
    return QDEC_OK;
}

int qdec_validate(const uint8_t *msg, uint64_t len, struct qdec_error *err)
{
    return qdec_walk(msg, len, NULL, NULL, err);
}

const char *qdec_status_text(int status)
{
    switch (status) {
    case QDEC_OK:
        return "valid";
    case QDEC_TRUNCATED:
        return "value extends past the end of the message";
    case QDEC_INVALID_HEADER:
        return "invalid message header";
    case QDEC_COMPRESSED:
        return "message is compressed";
    case QDEC_INVALID_TYPE:
        return "invalid type byte";
    case QDEC_UNSUPPORTED_TYPE:
        return "type not supported over IPC";
    case QDEC_INVALID_ATTRIBUTE:
        return "invalid attribute byte";
    case QDEC_INVALID_STRUCTURE:
        return "invalid structure";
    case QDEC_TOO_DEEP:
        return "nesting too deep";
    case QDEC_TRAILING_BYTES:
        return "bytes after the object";
    case QDEC_STOPPED:
        return "stopped by the visitor";
    }
    return "unknown decoder status";
}

const char *qdec_type_name(int type)
{
    static const char *const basic[] = {
        "general list", "boolean", "guid", NULL, "byte", "short", "int", "long", "real",
        "float", "char", "symbol", "timestamp", "month", "date", "datetime", "timespan",
        "minute", "second", "time",
    };
    static const char *const functions[] = {
        "lambda", "unary primitive", "operator", "iterator", "projection", "composition",
        "each", "over", "scan", "each-prior", "each-right", "each-left", "foreign function",
    };

    if (type >= -19 && type <= 19) {
        int index = type < 0 ? -type : type;
        return basic[index] ? basic[index] : "unknown";
    }
    if (type == -128)
        return "error";
    if (is_enumeration(type))
        return "enumeration";
    if (type == 98)
        return "table";
    if (type == 99)
        return "dictionary";
    if (type == QDEC_TYPE_SORTED_DICT)
        return "sorted dictionary";
    if (type >= QDEC_TYPE_LAMBDA && type <= QDEC_TYPE_FOREIGN)
        return functions[type - QDEC_TYPE_LAMBDA];
    return "unknown";
}

/* Returns the vector type of an atom or vector type byte (7 for -7 and 7), or -1 outside
 * -19..19, so no caller negates an out-of-range int. */
static int base_type(int type)
{
    if (type < -19 || type > 19)
        return -1;
    return type < 0 ? -type : type;
}

unsigned qdec_item_size(int type)
{
    static const unsigned sizes[20] = {
        0, 1, 16, 0, 1, 2, 4, 8, 4, 8, 1, 0, 8, 4, 4, 8, 8, 4, 4, 4,
    };
    int index = base_type(type);

    return index >= 0 ? sizes[index] : 0;
}

int16_t qdec_get_short(const uint8_t *p, int little_endian)
{
    uint16_t u = little_endian ? (uint16_t)(p[0] | p[1] << 8) : (uint16_t)(p[1] | p[0] << 8);
    return (int16_t)u;
}

int32_t qdec_get_int(const uint8_t *p, int little_endian)
{
    return (int32_t)ipc_read_u32(p, little_endian);
}

int64_t qdec_get_long(const uint8_t *p, int little_endian)
{
    return (int64_t)ipc_read_u64(p, little_endian);
}

float qdec_get_real(const uint8_t *p, int little_endian)
{
    uint32_t bits = ipc_read_u32(p, little_endian);
    float value;

    memcpy(&value, &bits, sizeof(value));
    return value;
}

double qdec_get_float(const uint8_t *p, int little_endian)
{
    uint64_t bits = ipc_read_u64(p, little_endian);
    double value;

    memcpy(&value, &bits, sizeof(value));
    return value;
}

/* Integer width of a type's items for null and infinity tests, or 0 when the type is not
 * stored as a signed integer. */
static unsigned integer_width(int index)
{
    switch (index) {
    case 5:
        return 2;
    case 6: case 13: case 14: case 17: case 18: case 19:
        return 4;
    case 7: case 12: case 16:
        return 8;
    }
    return 0;
}

int qdec_is_null(int type, const uint8_t *value, int little_endian)
{
    int index = base_type(type);

    switch (index) {
    case 2:
        for (int i = 0; i < 16; i++)
            if (value[i] != 0)
                return 0;
        return 1;
    case 8:
        return isnan(qdec_get_real(value, little_endian)) != 0;
    case 9: case 15:
        return isnan(qdec_get_float(value, little_endian)) != 0;
    case 10:
        return value[0] == ' ';
    case 11:
        return value[0] == '\0';
    }

    switch (integer_width(index)) {
    case 2:
        return qdec_get_short(value, little_endian) == INT16_MIN;
    case 4:
        return qdec_get_int(value, little_endian) == INT32_MIN;
    case 8:
        return qdec_get_long(value, little_endian) == INT64_MIN;
    }
    return 0;
}

static int integer_infinity(int index, const uint8_t *value, int little_endian)
{
    int64_t n;
    int64_t max;

    switch (integer_width(index)) {
    case 2:
        n = qdec_get_short(value, little_endian);
        max = INT16_MAX;
        break;
    case 4:
        n = qdec_get_int(value, little_endian);
        max = INT32_MAX;
        break;
    case 8:
        n = qdec_get_long(value, little_endian);
        max = INT64_MAX;
        break;
    default:
        return 0;
    }
    if (n == max)
        return 1;
    if (n == -max)
        return -1;
    return 0;
}

int qdec_infinity(int type, const uint8_t *value, int little_endian)
{
    int index = base_type(type);
    double x;

    switch (index) {
    case 8:
        x = qdec_get_real(value, little_endian);
        break;
    case 9: case 15:
        x = qdec_get_float(value, little_endian);
        break;
    default:
        return integer_infinity(index, value, little_endian);
    }
    if (!isinf(x))
        return 0;
    return x > 0 ? 1 : -1;
}
