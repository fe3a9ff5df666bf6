/*
 * qenc.h - encoder of q values into kdb+ IPC bytes, in a growable buffer.
 *
 * Output is always little-endian. Each call appends one piece of a value, so a caller
 * writes nested values in order: qenc_list_header(b, 2) then two items; qenc_dict(b)
 * then the keys and the values; qenc_table(b, ...) then one vector per column.
 *
 * Errors are sticky: after a failure (out of memory, or an invalid type for qenc_atom)
 * every call returns -1 and appends nothing, and b->failed stays set until qenc_reset, so a
 * caller may check once after the last call.
 */
#ifndef QMUX_QENC_H
#define QMUX_QENC_H

#include <stddef.h>
#include <stdint.h>

/* q type bytes: negative for atoms, positive for vectors. */
enum qtype {
    QT_LIST = 0,
    QT_BOOLEAN = 1,
    QT_GUID = 2,
    QT_BYTE = 4,
    QT_SHORT = 5,
    QT_INT = 6,
    QT_LONG = 7,
    QT_REAL = 8,
    QT_FLOAT = 9,
    QT_CHAR = 10,
    QT_SYMBOL = 11,
    QT_TIMESTAMP = 12,
    QT_MONTH = 13,
    QT_DATE = 14,
    QT_DATETIME = 15,
    QT_TIMESPAN = 16,
    QT_MINUTE = 17,
    QT_SECOND = 18,
    QT_TIME = 19,
    QT_TABLE = 98,
    QT_DICT = 99,
    QT_UNARY_PRIMITIVE = 101,
    QT_ERROR = -128,
};

struct qenc {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t message_start;   /* offset of the header written by qenc_begin */
    int failed;             /* set by the first failure: out of memory, or a type that
                               qenc_atom cannot encode */
};

void qenc_init(struct qenc *b);
void qenc_free(struct qenc *b);

/* Empties the buffer but keeps its memory, and clears the failure flag. */
void qenc_reset(struct qenc *b);

/* Appends an 8-byte little-endian header of the given message type (enum ipc_msg_type)
 * whose length qenc_end fills in. */
int qenc_begin(struct qenc *b, int msg_type);

/* Writes the length of the message begun by the last qenc_begin into its header. */
int qenc_end(struct qenc *b);

/* Appends n raw bytes, for vector items the caller has already laid out little-endian. */
int qenc_raw(struct qenc *b, const void *bytes, size_t n);

/* Atoms. Temporal values use kdb+'s units and epoch 2000.01.01 (see enum qtype). */
int qenc_boolean(struct qenc *b, int value);
int qenc_guid(struct qenc *b, const uint8_t value[16]);
int qenc_byte(struct qenc *b, uint8_t value);
int qenc_short(struct qenc *b, int16_t value);
int qenc_int(struct qenc *b, int32_t value);
int qenc_long(struct qenc *b, int64_t value);
int qenc_real(struct qenc *b, float value);
int qenc_float(struct qenc *b, double value);
int qenc_char(struct qenc *b, char value);
int qenc_timestamp(struct qenc *b, int64_t nanoseconds);
int qenc_month(struct qenc *b, int32_t months);
int qenc_date(struct qenc *b, int32_t days);
int qenc_datetime(struct qenc *b, double days);
int qenc_timespan(struct qenc *b, int64_t nanoseconds);
int qenc_minute(struct qenc *b, int32_t minutes);
int qenc_second(struct qenc *b, int32_t seconds);
int qenc_time(struct qenc *b, int32_t milliseconds);

/* Appends an atom of any fixed-width type: type is the positive vector type (QT_LONG...)
 * and value points at its little-endian bytes. */
int qenc_atom(struct qenc *b, int type, const void *value);

/* Appends a symbol atom; the text must not contain NUL. */
int qenc_symbol(struct qenc *b, const char *text);

/* Appends the generic null (::), the unary primitive 65 00. */
int qenc_generic_null(struct qenc *b);

/* Appends a char vector ("string") of n bytes; NUL bytes are allowed. */
int qenc_string(struct qenc *b, const char *text, size_t n);

/* Appends a symbol vector of count NUL-free strings. */
int qenc_symbols(struct qenc *b, const char *const *texts, size_t count);

/*
 * Appends a vector header: type byte, attribute byte and count. Counts of 2^32 or more
 * set bit 0x80 of the attribute and take 8 bytes, which only capability 6 peers read.
 * The caller appends the count items next (qenc_raw, or symbols with NULs).
 */
int qenc_vector_header(struct qenc *b, int type, uint8_t attribute, uint64_t count);

/* Appends a general list header; the caller appends count values next. */
int qenc_list_header(struct qenc *b, uint64_t count);

/* Appends the dictionary type byte (99); the caller appends the keys, then the values. */
int qenc_dict(struct qenc *b);

/*
 * Appends a table's prefix: 98 00 99, the symbol vector of column names and the general
 * list header of column_count columns. The caller appends one vector per column, all of
 * the same length.
 */
int qenc_table(struct qenc *b, const char *const *column_names, size_t column_count);

/* Appends an error (-128): the text and a NUL. It is the whole body of a response. */
int qenc_error(struct qenc *b, const char *text);

#endif
