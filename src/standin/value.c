/*
 * value.c - q values of the stand-in: construction, lazy kinds, encoding and decoding.
 */
#include "value.h"

#include "ipc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nesting depth accepted in a request; deeper lists are rejected as malformed. */
#define DECODE_MAX_DEPTH 64

const char *const TABLE_COLUMN_NAMES[TABLE_COLUMNS] = {"id", "sym", "price", "size", "time"};

static const int TABLE_COLUMN_TYPES[TABLE_COLUMNS] = {
    QT_LONG, QT_SYMBOL, QT_FLOAT, QT_INT, QT_TIMESTAMP,
};

struct qval *value_new(int type)
{
    struct qval *v = calloc(1, sizeof(*v));

    if (v != NULL)
        v->type = type;
    return v;
}

struct qval *value_long(int64_t j)
{
    struct qval *v = value_new(-QT_LONG);

    if (v != NULL)
        v->atom.j = j;
    return v;
}

struct qval *value_float(double f)
{
    struct qval *v = value_new(-QT_FLOAT);

    if (v != NULL)
        v->atom.f = f;
    return v;
}

struct qval *value_symbol(const char *text)
{
    struct qval *v = value_new(-QT_SYMBOL);

    if (v == NULL)
        return NULL;
    v->atom.s = strdup(text);
    if (v->atom.s == NULL) {
        free(v);
        return NULL;
    }
    return v;
}

struct qval *value_string(const char *text, size_t n)
{
    struct qval *v = value_vector(QT_CHAR, n);

    if (v != NULL && n > 0)
        memcpy(v->items, text, n);
    return v;
}

struct qval *value_generic_null(void)
{
    return value_new(QT_UNARY_PRIMITIVE);
}

struct qval *value_range(int64_t first, int64_t step, uint64_t count)
{
    struct qval *v = value_new(QT_LONG);

    if (v == NULL)
        return NULL;
    v->lazy = 1;
    v->first = first;
    v->step = step;
    v->count = count;
    return v;
}

struct qval *value_table(uint64_t rows)
{
    struct qval *v = value_new(QT_TABLE);

    if (v == NULL)
        return NULL;
    v->lazy = 1;
    v->count = rows;
    return v;
}

int value_item_width(int type)
{
    switch (type) {
    case QT_BOOLEAN: case QT_BYTE: case QT_CHAR:
        return 1;
    case QT_SHORT:
        return 2;
    case QT_INT: case QT_REAL: case QT_MONTH: case QT_DATE:
    case QT_MINUTE: case QT_SECOND: case QT_TIME:
        return 4;
    case QT_LONG: case QT_FLOAT: case QT_TIMESTAMP: case QT_DATETIME: case QT_TIMESPAN:
        return 8;
    case QT_GUID:
        return 16;
    }
    return 0;
}

struct qval *value_vector(int type, uint64_t count)
{
    int width = value_item_width(type);

    if (width == 0 || count > VALUE_MAX_MATERIALIZED / (uint64_t)width)
        return NULL;

    struct qval *v = value_new(type);
    if (v == NULL)
        return NULL;
    v->count = count;
    v->items = calloc(count ? count : 1, (size_t)width);
    if (v->items == NULL) {
        free(v);
        return NULL;
    }
    return v;
}

/* Allocates a vector or list header whose items array has room for count pointers. */
static struct qval *pointer_vector(int type, uint64_t count)
{
    if (count > VALUE_MAX_MATERIALIZED / sizeof(void *))
        return NULL;

    struct qval *v = value_new(type);
    if (v == NULL)
        return NULL;
    v->count = count;
    v->items = calloc(count ? count : 1, sizeof(void *));
    if (v->items == NULL) {
        free(v);
        return NULL;
    }
    return v;
}

struct qval *value_list(uint64_t count)
{
    return pointer_vector(QT_LIST, count);
}

void value_free(struct qval *v)
{
    if (v == NULL)
        return;

    if (v->type == -QT_SYMBOL)
        free(v->atom.s);
    if (v->type == QT_SYMBOL && v->items != NULL) {
        char **texts = v->items;
        for (uint64_t i = 0; i < v->count; i++)
            free(texts[i]);
    }
    if (v->type == QT_LIST && v->items != NULL) {
        struct qval **items = v->items;
        for (uint64_t i = 0; i < v->count; i++)
            value_free(items[i]);
    }
    free(v->items);
    free(v);
}

struct qval *value_copy(const struct qval *v)
{
    if (v->type == -QT_SYMBOL)
        return value_symbol(v->atom.s);

    struct qval *copy = value_new(v->type);
    if (copy == NULL)
        return NULL;
    *copy = *v;
    copy->items = NULL;
    if (v->lazy || v->items == NULL)
        return copy;

    copy->count = 0;
    if (v->type == QT_SYMBOL || v->type == QT_LIST) {
        copy->items = calloc(v->count ? v->count : 1, sizeof(void *));
        if (copy->items == NULL) {
            free(copy);
            return NULL;
        }
        for (uint64_t i = 0; i < v->count; i++) {
            void *item = v->type == QT_SYMBOL ? (void *)strdup(((char **)v->items)[i])
                                              : (void *)value_copy(((struct qval **)v->items)[i]);
            if (item == NULL) {
                value_free(copy);
                return NULL;
            }
            ((void **)copy->items)[i] = item;
            copy->count = i + 1;
        }
        return copy;
    }

    size_t bytes = (size_t)v->count * (size_t)value_item_width(v->type);
    copy->items = malloc(bytes ? bytes : 1);
    if (copy->items == NULL) {
        free(copy);
        return NULL;
    }
    memcpy(copy->items, v->items, bytes);
    copy->count = v->count;
    return copy;
}

int64_t value_long_item(const struct qval *v, uint64_t i)
{
    if (v->lazy)
        return (int64_t)((uint64_t)v->first + i * (uint64_t)v->step);

    int64_t item;
    memcpy(&item, (const uint8_t *)v->items + i * 8, 8);
    return item;
}

int value_materialize(struct qval *v)
{
    if (!v->lazy || v->type != QT_LONG)
        return 0;
    if (v->count > VALUE_MAX_MATERIALIZED / 8)
        return -1;

    int64_t *items = malloc(v->count ? v->count * 8 : 1);
    if (items == NULL)
        return -1;
    for (uint64_t i = 0; i < v->count; i++)
        items[i] = value_long_item(v, i);
    v->items = items;
    v->lazy = 0;
    return 0;
}

struct qval *value_collapse(struct qval *list)
{
    struct qval **items = list->items;

    if (list->count == 0)
        return list;

    int type = items[0]->type;
    if (type != -QT_BOOLEAN && type != -QT_LONG && type != -QT_FLOAT && type != -QT_CHAR &&
        type != -QT_SYMBOL)
        return list;
    for (uint64_t i = 1; i < list->count; i++) {
        if (items[i]->type != type)
            return list;
    }

    struct qval *vector = type == -QT_SYMBOL ? pointer_vector(QT_SYMBOL, list->count)
                                             : value_vector(-type, list->count);
    if (vector == NULL)
        return list;
    for (uint64_t i = 0; i < list->count; i++) {
        if (type == -QT_SYMBOL) {
            ((char **)vector->items)[i] = items[i]->atom.s;
            items[i]->atom.s = NULL;
            items[i]->type = QT_UNARY_PRIMITIVE;
        } else if (type == -QT_FLOAT) {
            memcpy((uint8_t *)vector->items + i * 8, &items[i]->atom.f, 8);
        } else {
            int width = value_item_width(-type);
            memcpy((uint8_t *)vector->items + i * (uint64_t)width, &items[i]->atom.j,
                   (size_t)width);
        }
    }
    value_free(list);
    return vector;
}

static uint64_t vector_header_size(uint64_t count)
{
    return count > UINT32_MAX ? 10 : 6;
}

static uint64_t table_size(uint64_t rows)
{
    uint64_t size = 3 + 6 + 6;

    for (int c = 0; c < TABLE_COLUMNS; c++)
        size += strlen(TABLE_COLUMN_NAMES[c]) + 1;
    return size + TABLE_COLUMNS * vector_header_size(rows) + rows * TABLE_ROW_BYTES;
}

uint64_t value_encoded_size(const struct qval *v)
{
    if (v->type == QT_UNARY_PRIMITIVE)
        return 2;
    if (v->type == -QT_SYMBOL)
        return 2 + strlen(v->atom.s);
    if (v->type < 0)
        return 1 + (uint64_t)value_item_width(-v->type);
    if (v->type == QT_TABLE)
        return table_size(v->count);

    uint64_t size = vector_header_size(v->count);
    if (v->type == QT_SYMBOL) {
        for (uint64_t i = 0; i < v->count; i++)
            size += strlen(((char **)v->items)[i]) + 1;
    } else if (v->type == QT_LIST) {
        for (uint64_t i = 0; i < v->count; i++)
            size += value_encoded_size(((struct qval **)v->items)[i]);
    } else {
        size += v->count * (uint64_t)value_item_width(v->type);
    }
    return size;
}

/* Returns the largest vector count inside v, and sets *timestamps when v contains any. */
static uint64_t largest_count(const struct qval *v, int *timestamps)
{
    if (v->type == QT_TABLE) {
        *timestamps = 1;
        return v->count;
    }
    if (v->type == -QT_TIMESTAMP || v->type == QT_TIMESTAMP || v->type == -QT_TIMESPAN ||
        v->type == QT_TIMESPAN)
        *timestamps = 1;
    if (v->type < 0 || v->type == QT_UNARY_PRIMITIVE)
        return 0;

    uint64_t largest = v->count;
    if (v->type == QT_LIST) {
        for (uint64_t i = 0; i < v->count; i++) {
            uint64_t inner = largest_count(((struct qval **)v->items)[i], timestamps);
            largest = inner > largest ? inner : largest;
        }
    }
    return largest;
}

const char *value_check_capability(const struct qval *v, int capability)
{
    int timestamps = 0;
    uint64_t largest = largest_count(v, &timestamps);

    if (capability < 1 && timestamps)
        return "type";
    if (capability < 5 && value_encoded_size(v) + IPC_HEADER_SIZE > INT32_MAX)
        return "limit";
    if (capability < 6 && largest > INT32_MAX)
        return "limit";
    return NULL;
}

size_t table_column_items(int column, uint64_t row, uint64_t n, uint8_t *dst)
{
    for (uint64_t k = 0; k < n; k++) {
        uint64_t i = row + k;
        int64_t j;
        double f;
        int32_t size;

        switch (column) {
        case 0:
            j = (int64_t)i;
            memcpy(dst + 8 * k, &j, 8);
            break;
        case 1:
            dst[2 * k] = (uint8_t)('a' + i % 4);
            dst[2 * k + 1] = 0;
            break;
        case 2:
            f = 100.0 + 0.25 * (double)(i % 100);
            memcpy(dst + 8 * k, &f, 8);
            break;
        case 3:
            size = (int32_t)(100 * (1 + i % 10));
            memcpy(dst + 4 * k, &size, 4);
            break;
        default:
            j = TABLE_TIME_BASE + (int64_t)i * 1000000;
            memcpy(dst + 8 * k, &j, 8);
            break;
        }
    }
    return (size_t)n * (column == 1 ? 2 : (size_t)value_item_width(TABLE_COLUMN_TYPES[column]));
}

int table_column_type(int column)
{
    return TABLE_COLUMN_TYPES[column];
}

/* Items generated per step when encoding lazy values into a buffer. */
#define ENCODE_CHUNK_ITEMS 4096

static int encode_range_items(struct qenc *b, const struct qval *v)
{
    int64_t chunk[ENCODE_CHUNK_ITEMS];

    for (uint64_t i = 0; i < v->count; i += ENCODE_CHUNK_ITEMS) {
        uint64_t n = v->count - i < ENCODE_CHUNK_ITEMS ? v->count - i : ENCODE_CHUNK_ITEMS;
        for (uint64_t k = 0; k < n; k++)
            chunk[k] = value_long_item(v, i + k);
        if (qenc_raw(b, chunk, n * 8) != 0)
            return -1;
    }
    return 0;
}

static int encode_table(struct qenc *b, uint64_t rows)
{
    uint8_t chunk[ENCODE_CHUNK_ITEMS * 8];

    if (qenc_table(b, TABLE_COLUMN_NAMES, TABLE_COLUMNS) != 0)
        return -1;
    for (int c = 0; c < TABLE_COLUMNS; c++) {
        if (qenc_vector_header(b, TABLE_COLUMN_TYPES[c], 0, rows) != 0)
            return -1;
        for (uint64_t i = 0; i < rows; i += ENCODE_CHUNK_ITEMS) {
            uint64_t n = rows - i < ENCODE_CHUNK_ITEMS ? rows - i : ENCODE_CHUNK_ITEMS;
            size_t bytes = table_column_items(c, i, n, chunk);
            if (qenc_raw(b, chunk, bytes) != 0)
                return -1;
        }
    }
    return 0;
}

int value_encode(struct qenc *b, const struct qval *v)
{
    if (v->type == QT_UNARY_PRIMITIVE)
        return qenc_generic_null(b);
    if (v->type == -QT_SYMBOL)
        return qenc_symbol(b, v->atom.s);
    if (v->type == -QT_FLOAT)
        return qenc_float(b, v->atom.f);
    if (v->type == -QT_REAL)
        return qenc_real(b, (float)v->atom.f);
    if (v->type < 0)
        return qenc_atom(b, -v->type, &v->atom.j);
    if (v->type == QT_TABLE)
        return encode_table(b, v->count);

    if (qenc_vector_header(b, v->type, 0, v->count) != 0)
        return -1;
    if (v->lazy)
        return encode_range_items(b, v);
    if (v->type == QT_SYMBOL) {
        for (uint64_t i = 0; i < v->count; i++) {
            const char *text = ((char **)v->items)[i];
            if (qenc_raw(b, text, strlen(text) + 1) != 0)
                return -1;
        }
        return 0;
    }
    if (v->type == QT_LIST) {
        for (uint64_t i = 0; i < v->count; i++) {
            if (value_encode(b, ((struct qval **)v->items)[i]) != 0)
                return -1;
        }
        return 0;
    }
    return qenc_raw(b, v->items, (size_t)v->count * (size_t)value_item_width(v->type));
}

/* Reading state of value_decode: the body, the cursor and the first error. */
struct reader {
    const uint8_t *body;
    uint64_t len;
    uint64_t pos;
    int little_endian;
    char *err;
    size_t errlen;
};

static int need(struct reader *r, uint64_t n, const char *what)
{
    if (r->len - r->pos >= n)
        return 0;
    snprintf(r->err, r->errlen, "badmsg: %s at body byte %llu runs past the end (%llu bytes)",
             what, (unsigned long long)r->pos, (unsigned long long)r->len);
    return -1;
}

/* Reads an unsigned little- or big-endian integer of width bytes. */
static uint64_t read_uint(struct reader *r, int width)
{
    uint64_t v = 0;

    for (int i = 0; i < width; i++) {
        int shift = r->little_endian ? 8 * i : 8 * (width - 1 - i);
        v |= (uint64_t)r->body[r->pos + (uint64_t)i] << shift;
    }
    r->pos += (uint64_t)width;
    return v;
}

static int64_t sign_extend(uint64_t v, int width)
{
    if (width == 8)
        return (int64_t)v;

    uint64_t sign = UINT64_C(1) << (8 * width - 1);
    return (int64_t)((v ^ sign) - sign);
}

static char *read_symbol_text(struct reader *r)
{
    const uint8_t *start = r->body + r->pos;
    const uint8_t *nul = memchr(start, 0, (size_t)(r->len - r->pos));

    if (nul == NULL) {
        snprintf(r->err, r->errlen, "badmsg: symbol at body byte %llu has no NUL",
                 (unsigned long long)r->pos);
        return NULL;
    }
    r->pos += (uint64_t)(nul - start) + 1;
    return strdup((const char *)start);
}

static struct qval *decode_value(struct reader *r, int depth);

static struct qval *decode_atom(struct reader *r, int type)
{
    if (type == -QT_SYMBOL) {
        char *text = read_symbol_text(r);
        if (text == NULL)
            return NULL;
        struct qval *v = value_new(type);
        if (v == NULL) {
            free(text);
            return NULL;
        }
        v->atom.s = text;
        return v;
    }

    int width = value_item_width(-type);
    if (width == 0 || width == 16) {
        snprintf(r->err, r->errlen, "nyi: request type %d", type);
        return NULL;
    }
    if (need(r, (uint64_t)width, "atom") != 0)
        return NULL;

    struct qval *v = value_new(type);
    if (v == NULL)
        return NULL;
    uint64_t bits = read_uint(r, width);
    if (type == -QT_FLOAT || type == -QT_DATETIME) {
        memcpy(&v->atom.f, &bits, 8);
    } else if (type == -QT_REAL) {
        float f;
        uint32_t bits32 = (uint32_t)bits;
        memcpy(&f, &bits32, 4);
        v->atom.f = f;
    } else {
        v->atom.j = sign_extend(bits, width);
    }
    return v;
}

static struct qval *decode_vector(struct reader *r, int type, int depth)
{
    if (need(r, 5, "vector header") != 0)
        return NULL;
    uint8_t attribute = r->body[r->pos++];
    int large = (attribute & 0x80) != 0;
    if (large && need(r, 8, "vector count") != 0)
        return NULL;
    uint64_t count = read_uint(r, large ? 8 : 4);

    if (type == QT_LIST || type == QT_SYMBOL) {
        /* Every item takes at least one byte, so a count beyond the body is a lie. */
        if (count > r->len - r->pos) {
            snprintf(r->err, r->errlen, "badmsg: count %llu at body byte %llu exceeds the "
                     "message", (unsigned long long)count, (unsigned long long)r->pos);
            return NULL;
        }
        struct qval *v = pointer_vector(type, count);
        if (v == NULL) {
            snprintf(r->err, r->errlen, "wsfull");
            return NULL;
        }
        for (uint64_t i = 0; i < count; i++) {
            void *item = type == QT_LIST ? (void *)decode_value(r, depth + 1)
                                         : (void *)read_symbol_text(r);
            if (item == NULL) {
                v->count = i;
                value_free(v);
                return NULL;
            }
            ((void **)v->items)[i] = item;
        }
        return v;
    }

    int width = value_item_width(type);
    if (width == 0) {
        snprintf(r->err, r->errlen, "nyi: request type %d", type);
        return NULL;
    }
    if (count > (r->len - r->pos) / (uint64_t)width) {
        snprintf(r->err, r->errlen, "badmsg: %llu items of %d bytes at body byte %llu exceed "
                 "the message", (unsigned long long)count, width, (unsigned long long)r->pos);
        return NULL;
    }
    struct qval *v = value_vector(type, count);
    if (v == NULL) {
        snprintf(r->err, r->errlen, "wsfull");
        return NULL;
    }
    uint8_t *items = v->items;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t bits = read_uint(r, width);
        memcpy(items + i * (uint64_t)width, &bits, (size_t)width);
    }
    return v;
}

static struct qval *decode_value(struct reader *r, int depth)
{
    if (depth > DECODE_MAX_DEPTH) {
        snprintf(r->err, r->errlen, "badmsg: lists nested deeper than %d", DECODE_MAX_DEPTH);
        return NULL;
    }
    if (need(r, 1, "type byte") != 0)
        return NULL;

    int type = (int8_t)r->body[r->pos++];
    if (type == QT_UNARY_PRIMITIVE) {
        if (need(r, 1, "primitive code") != 0)
            return NULL;
        if (r->body[r->pos++] != 0) {
            snprintf(r->err, r->errlen, "nyi: functions in requests");
            return NULL;
        }
        return value_generic_null();
    }
    if (type < 0 && type >= -19)
        return decode_atom(r, type);
    if (type >= 0 && type <= 19 && type != 3 && type != QT_GUID)
        return decode_vector(r, type, depth);

    snprintf(r->err, r->errlen, "nyi: request type %d", type);
    return NULL;
}

struct qval *value_decode(const uint8_t *body, uint64_t len, int little_endian, char *err,
                          size_t errlen)
{
    struct reader r = {body, len, 0, little_endian, err, errlen};

    snprintf(err, errlen, "wsfull");
    struct qval *v = decode_value(&r, 0);
    if (v != NULL && r.pos != len) {
        snprintf(err, errlen, "badmsg: %llu bytes after the value",
                 (unsigned long long)(len - r.pos));
        value_free(v);
        return NULL;
    }
    return v;
}
