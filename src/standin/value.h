/*
 * value.h - the q values the stand-in evaluates, decodes from requests and encodes.
 *
 * Besides ordinary atoms, vectors and general lists there are two lazy kinds, so that
 * results of tens of millions of items are never held in memory:
 *   - a long vector whose item i is first + i * step (til N, and + - * on it);
 *   - the table of .standin.table N, whose rows are generated from their index.
 */
#ifndef STANDIN_VALUE_H
#define STANDIN_VALUE_H

#include <stddef.h>
#include <stdint.h>

#include "qenc.h"

/* Largest vector the stand-in materializes in memory (items times width), 1 GiB. */
#define VALUE_MAX_MATERIALIZED (UINT64_C(1) << 30)

/* .standin.table's columns: id (long), sym (symbol), price (float), size (int), time
 * (timestamp). Row i contains id i, sym `a`b`c`d[i mod 4], price 100 + 0.25 * (i mod 100),
 * size 100 * (1 + i mod 10) and time 2024.01.01D09:30:00 + i milliseconds. */
#define TABLE_COLUMNS 5
#define TABLE_ROW_BYTES (8 + 2 + 8 + 4 + 8)
#define TABLE_TIME_BASE INT64_C(757416600000000000)

struct qval {
    int type;                 /* q type byte: negative atom, 0..19 vector, 98 table, 101 (::) */
    int lazy;                 /* 1 for the generated kinds described above */
    uint64_t count;           /* items of a vector or list, rows of a table */
    union {
        int64_t j;            /* boolean, byte, short, int, long and timestamp atoms */
        double f;             /* real and float atoms */
        char *s;              /* symbol atom (owned) */
    } atom;
    void *items;              /* fixed-width items (little-endian), char ** for symbols,
                                 struct qval ** for a general list */
    int64_t first, step;      /* lazy long vector */
};

struct qval *value_new(int type);
struct qval *value_long(int64_t j);
struct qval *value_float(double f);
struct qval *value_symbol(const char *text);
struct qval *value_string(const char *text, size_t n);
struct qval *value_generic_null(void);
struct qval *value_range(int64_t first, int64_t step, uint64_t count);
struct qval *value_table(uint64_t rows);

/* Allocates a vector of count items of a fixed-width type, zero-filled, or NULL. */
struct qval *value_vector(int type, uint64_t count);

/* Allocates an empty general list with room for count items (all NULL), or NULL. */
struct qval *value_list(uint64_t count);

void value_free(struct qval *v);
struct qval *value_copy(const struct qval *v);

/* Returns the width of one item of vector type, or 0 for lists and symbols. */
int value_item_width(int type);

/* Returns item i of a long vector, lazy or not. */
int64_t value_long_item(const struct qval *v, uint64_t i);

/* Turns a lazy long vector into an ordinary one. Returns 0, or -1 when it would exceed
 * VALUE_MAX_MATERIALIZED or memory runs out. */
int value_materialize(struct qval *v);

/* Replaces a general list whose items are atoms of one type (boolean, long, float, char,
 * symbol) with the vector of that type, as q builds (1;2;3) into 1 2 3. */
struct qval *value_collapse(struct qval *list);

/* Returns the serialized size of v in bytes (body only, no header). */
uint64_t value_encoded_size(const struct qval *v);

/*
 * Checks that v can be sent to a peer with the given agreed capability, as kdb+ does.
 * Returns NULL, or the kdb+ error text: "limit" for a message of 2 GiB or more below
 * capability 5 or a vector of 2^31 items or more below capability 6, "type" for a
 * timestamp below capability 1.
 */
const char *value_check_capability(const struct qval *v, int capability);

/* Appends v to b, generating lazy items. Returns 0, or -1 when out of memory. */
int value_encode(struct qenc *b, const struct qval *v);

/* Column names of .standin.table's table. */
extern const char *const TABLE_COLUMN_NAMES[TABLE_COLUMNS];

/* Writes rows [row, row + n) of table column `column` into dst, little-endian, and returns
 * the bytes written (n times the column's item width). */
size_t table_column_items(int column, uint64_t row, uint64_t n, uint8_t *dst);

/* Returns the q type of table column `column`. */
int table_column_type(int column);

/*
 * Decodes the body of a request, body[0..len) without the header, in the given byte order.
 * Returns the value, or NULL with a kdb+ error text in err ("nyi: request type 12" or
 * "badmsg: ...") naming what is unsupported or malformed.
 */
struct qval *value_decode(const uint8_t *body, uint64_t len, int little_endian, char *err,
                          size_t errlen);

#endif
