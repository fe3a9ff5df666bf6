/*
 * qenc.c - little-endian encoder of q values into a growable buffer.
 */
#include "qenc.h"

#include "ipc.h"

#include <stdlib.h>
#include <string.h>

#define QENC_INITIAL_CAPACITY 256

void qenc_init(struct qenc *b)
{
    memset(b, 0, sizeof(*b));
}

void qenc_free(struct qenc *b)
{
    free(b->data);
    qenc_init(b);
}

void qenc_reset(struct qenc *b)
{
    b->len = 0;
    b->message_start = 0;
    b->failed = 0;
}

/* Makes room for n more bytes. Returns 0, or -1 (and sets b->failed) when out of memory. */
static int reserve(struct qenc *b, size_t n)
{
    if (b->failed)
        return -1;
    if (n <= b->cap - b->len)
        return 0;

    size_t need = b->len + n;
    if (need < b->len) {
        b->failed = 1;
        return -1;
    }

    size_t cap = b->cap ? b->cap : QENC_INITIAL_CAPACITY;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;

    uint8_t *data = realloc(b->data, cap);
    if (data == NULL) {
        b->failed = 1;
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

int qenc_raw(struct qenc *b, const void *bytes, size_t n)
{
    if (reserve(b, n) != 0)
        return -1;
    if (n > 0)
        memcpy(b->data + b->len, bytes, n);
    b->len += n;
    return 0;
}

static int put_u8(struct qenc *b, uint8_t v)
{
    return qenc_raw(b, &v, 1);
}

static int put_le(struct qenc *b, uint64_t v, int width)
{
    uint8_t bytes[8];

    for (int i = 0; i < width; i++)
        bytes[i] = (uint8_t)(v >> (8 * i));
    return qenc_raw(b, bytes, (size_t)width);
}

int qenc_begin(struct qenc *b, int msg_type)
{
    uint8_t header[IPC_HEADER_SIZE];

    b->message_start = b->len;
    ipc_header_write(header, msg_type, 0);
    return qenc_raw(b, header, sizeof(header));
}

int qenc_end(struct qenc *b)
{
    if (b->failed)
        return -1;

    uint8_t *header = b->data + b->message_start;
    ipc_header_write(header, header[1], b->len - b->message_start);
    return 0;
}

static int put_atom(struct qenc *b, int type, uint64_t bits, int width)
{
    if (put_u8(b, (uint8_t)(-type)) != 0)
        return -1;
    return put_le(b, bits, width);
}

static uint32_t real_bits(float value)
{
    uint32_t bits;

    memcpy(&bits, &value, sizeof(bits));
    return bits;
}

static uint64_t float_bits(double value)
{
    uint64_t bits;

    memcpy(&bits, &value, sizeof(bits));
    return bits;
}

int qenc_boolean(struct qenc *b, int value)
{
    return put_atom(b, QT_BOOLEAN, value != 0, 1);
}

int qenc_guid(struct qenc *b, const uint8_t value[16])
{
    /* A GUID keeps the byte order of its text form in both message byte orders. */
    if (put_u8(b, (uint8_t)(-QT_GUID)) != 0)
        return -1;
    return qenc_raw(b, value, 16);
}

int qenc_byte(struct qenc *b, uint8_t value)
{
    return put_atom(b, QT_BYTE, value, 1);
}

int qenc_short(struct qenc *b, int16_t value)
{
    return put_atom(b, QT_SHORT, (uint16_t)value, 2);
}

int qenc_int(struct qenc *b, int32_t value)
{
    return put_atom(b, QT_INT, (uint32_t)value, 4);
}

int qenc_long(struct qenc *b, int64_t value)
{
    return put_atom(b, QT_LONG, (uint64_t)value, 8);
}

int qenc_real(struct qenc *b, float value)
{
    return put_atom(b, QT_REAL, real_bits(value), 4);
}

int qenc_float(struct qenc *b, double value)
{
    return put_atom(b, QT_FLOAT, float_bits(value), 8);
}

int qenc_char(struct qenc *b, char value)
{
    return put_atom(b, QT_CHAR, (uint8_t)value, 1);
}

int qenc_timestamp(struct qenc *b, int64_t nanoseconds)
{
    return put_atom(b, QT_TIMESTAMP, (uint64_t)nanoseconds, 8);
}

int qenc_month(struct qenc *b, int32_t months)
{
    return put_atom(b, QT_MONTH, (uint32_t)months, 4);
}

int qenc_date(struct qenc *b, int32_t days)
{
    return put_atom(b, QT_DATE, (uint32_t)days, 4);
}

int qenc_datetime(struct qenc *b, double days)
{
    return put_atom(b, QT_DATETIME, float_bits(days), 8);
}

int qenc_timespan(struct qenc *b, int64_t nanoseconds)
{
    return put_atom(b, QT_TIMESPAN, (uint64_t)nanoseconds, 8);
}

int qenc_minute(struct qenc *b, int32_t minutes)
{
    return put_atom(b, QT_MINUTE, (uint32_t)minutes, 4);
}

int qenc_second(struct qenc *b, int32_t seconds)
{
    return put_atom(b, QT_SECOND, (uint32_t)seconds, 4);
}

int qenc_time(struct qenc *b, int32_t milliseconds)
{
    return put_atom(b, QT_TIME, (uint32_t)milliseconds, 4);
}

/* Returns the item width of a fixed-width type, or 0 for symbols, lists and unknown types. */
static int item_width(int type)
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

int qenc_atom(struct qenc *b, int type, const void *value)
{
    int width = item_width(type);

    if (width == 0) {
        b->failed = 1;
        return -1;
    }
    if (put_u8(b, (uint8_t)(-type)) != 0)
        return -1;
    return qenc_raw(b, value, (size_t)width);
}

int qenc_symbol(struct qenc *b, const char *text)
{
    if (put_u8(b, (uint8_t)(-QT_SYMBOL)) != 0)
        return -1;
    return qenc_raw(b, text, strlen(text) + 1);
}

int qenc_generic_null(struct qenc *b)
{
    if (put_u8(b, QT_UNARY_PRIMITIVE) != 0)
        return -1;
    return put_u8(b, 0);
}

int qenc_vector_header(struct qenc *b, int type, uint8_t attribute, uint64_t count)
{
    int large = count > UINT32_MAX;

    if (put_u8(b, (uint8_t)type) != 0)
        return -1;
    if (put_u8(b, large ? (uint8_t)(attribute | 0x80) : attribute) != 0)
        return -1;
    return put_le(b, count, large ? 8 : 4);
}

int qenc_string(struct qenc *b, const char *text, size_t n)
{
    if (qenc_vector_header(b, QT_CHAR, 0, n) != 0)
        return -1;
    return qenc_raw(b, text, n);
}

int qenc_symbols(struct qenc *b, const char *const *texts, size_t count)
{
    if (qenc_vector_header(b, QT_SYMBOL, 0, count) != 0)
        return -1;
    for (size_t i = 0; i < count; i++) {
        if (qenc_raw(b, texts[i], strlen(texts[i]) + 1) != 0)
            return -1;
    }
    return 0;
}

int qenc_list_header(struct qenc *b, uint64_t count)
{
    return qenc_vector_header(b, QT_LIST, 0, count);
}

int qenc_dict(struct qenc *b)
{
    return put_u8(b, QT_DICT);
}

int qenc_table(struct qenc *b, const char *const *column_names, size_t column_count)
{
    const uint8_t prefix[] = {QT_TABLE, 0, QT_DICT};

    if (qenc_raw(b, prefix, sizeof(prefix)) != 0)
        return -1;
    if (qenc_symbols(b, column_names, column_count) != 0)
        return -1;
    return qenc_list_header(b, column_count);
}

int qenc_error(struct qenc *b, const char *text)
{
    if (put_u8(b, (uint8_t)QT_ERROR) != 0)
        return -1;
    return qenc_raw(b, text, strlen(text) + 1);
}
