/*
 * qdec.h - decoder and validator of kdb+ IPC message bodies.
 *
 * The decoder walks the bytes of one uncompressed message in place, with no copying and
 * no allocation, and reports each value to an optional visitor. It reads every type that
 * kdb+ sends over IPC: atoms and vectors of types 1..19 (boolean .. time, GUID), general
 * lists, dictionaries (99) and sorted dictionaries (127), tables (98) and keyed tables,
 * lambdas (100), primitives and iterators (101..103), projections (104), compositions
 * (105), iterator-modified functions (106..111), the generic null `::` and errors (-128).
 * Enumerations (20..97, and their atoms -20..-97) and foreign functions (112) are
 * reported as unsupported: kdb+ converts the former to symbols before sending and does
 * not serialize the latter.
 *
 * Both byte orders are read (byte 0 of the header). A vector or list whose attribute
 * byte has bit 0x80 set carries an 8-byte count, as capability 6 peers send vectors of
 * 2^32 items and more.
 *
 * Safety: the decoder never reads outside [0, len) of the buffer it is given, whatever
 * the bytes contain. Every count is checked against the bytes that remain before it is used
 * (without multiplying, so count * item size cannot overflow), and nesting is limited to
 * QDEC_MAX_DEPTH containers. A malformed message yields an enum qdec_status and a
 * struct qdec_error naming the byte offset and the reason.
 *
 * No libevent dependency: the daemon, the stand-in server, the tools and the fuzz targets
 * share it.
 */
#ifndef QMUX_QDEC_H
#define QMUX_QDEC_H

#include <stddef.h>
#include <stdint.h>

/* Maximum number of containers (lists, dictionaries, tables, functions) that may enclose
 * a value. The top-level object has depth 0. */
#define QDEC_MAX_DEPTH 256

/* Type bytes that qenc.h's enum qtype does not name. */
#define QDEC_TYPE_SORTED_DICT 127
#define QDEC_TYPE_LAMBDA 100
#define QDEC_TYPE_OPERATOR 102
#define QDEC_TYPE_ITERATOR 103
#define QDEC_TYPE_PROJECTION 104
#define QDEC_TYPE_COMPOSITION 105
#define QDEC_TYPE_EACH 106          /* f'  */
#define QDEC_TYPE_EACH_RIGHT 110    /* f/: */
#define QDEC_TYPE_EACH_LEFT 111     /* f\: */
#define QDEC_TYPE_FOREIGN 112

/* Attribute values, after the 0x80 large-count flag is removed. */
enum qdec_attribute {
    QDEC_ATTR_NONE = 0,
    QDEC_ATTR_SORTED = 1,   /* s# */
    QDEC_ATTR_UNIQUE = 2,   /* u# */
    QDEC_ATTR_PARTED = 3,   /* p# */
    QDEC_ATTR_GROUPED = 4,  /* g# */
};

/* Set in a vector's or list's attribute byte when an 8-byte count follows. */
#define QDEC_ATTR_LARGE_COUNT 0x80

enum qdec_status {
    QDEC_OK = 0,
    QDEC_TRUNCATED,          /* a value, count or header extends past the end */
    QDEC_INVALID_HEADER,     /* ipc_header_parse rejected the header */
    QDEC_COMPRESSED,         /* the message is compressed; decompress it first */
    QDEC_INVALID_TYPE,       /* a type byte that kdb+ does not define */
    QDEC_UNSUPPORTED_TYPE,   /* enumeration (20..97, -20..-97) or foreign function (112) */
    QDEC_INVALID_ATTRIBUTE,  /* attribute byte other than 0..4, with or without 0x80 */
    QDEC_INVALID_STRUCTURE,  /* e.g. a table whose columns differ in length */
    QDEC_TOO_DEEP,           /* more than QDEC_MAX_DEPTH nested containers */
    QDEC_TRAILING_BYTES,     /* bytes left after the one object of the message */
    QDEC_STOPPED,            /* a visitor callback returned nonzero */
};

struct qdec_error {
    int status;             /* enum qdec_status */
    uint64_t offset;        /* offset in the buffer of the byte where decoding failed */
    char message[192];      /* "offset 14: ...", NUL-terminated */
};

/*
 * One decoded value, as passed to the visitor. Pointers point into the caller's buffer
 * and are valid as long as it is. What data and size hold depends on the type:
 *   atoms -1..-19       the value's bytes in message byte order (size = item size);
 *                       symbol atom: the text without its NUL (data[size] is the NUL)
 *   vectors 1..19       the first item (size = bytes of all items); symbol vectors hold
 *                       count NUL-terminated strings laid end to end, all within size
 *   error -128          the text without its NUL (data[size] is the NUL)
 *   lambda 100          the context name without its NUL, size 0 for the root context;
 *                       the source text follows as a char vector (one child)
 *   101..103            the one code byte (size 1); `::` is type 101 code 0
 *   others              data NULL, size 0
 */
struct qdec_value {
    int type;               /* signed type byte, -128..127 */
    int attribute;          /* enum qdec_attribute for vectors, lists and tables, else 0 */
    int little_endian;      /* byte order of the message */
    unsigned depth;         /* containers enclosing this value; 0 at the top */
    uint64_t offset;        /* offset of the type byte in the buffer */
    uint64_t count;         /* items of a vector or list; rows of a table (0 in
                               table_begin, set in table_end); children of a projection or
                               composition; 1 for lambdas and types 106..111; 2 for
                               dictionaries; else 0 */
    const uint8_t *data;
    uint64_t size;
};

/*
 * Callbacks of a walk, in the order of the bytes. Any callback may be NULL. A callback
 * that returns nonzero stops the walk with QDEC_STOPPED. The order for each kind:
 *   atom, vector, error:   one call
 *   general list:          list_begin, count children, list_end
 *   dictionary (99, 127):  dict_begin, keys, values, dict_end
 *   table (98):            table_begin, then its dictionary (dict_begin, the symbol
 *                          vector of column names, list_begin, the columns, list_end,
 *                          dict_end), table_end
 *   functions 100..111:    function_begin, count children, function_end
 * Callbacks run as the walk proceeds, so they may see the start of a message that later
 * turns out to be invalid. Call qdec_validate first when output must not be partial.
 */
struct qdec_visitor {
    int (*atom)(void *ctx, const struct qdec_value *v);
    int (*vector)(void *ctx, const struct qdec_value *v);
    int (*list_begin)(void *ctx, const struct qdec_value *v);
    int (*list_end)(void *ctx, const struct qdec_value *v);
    int (*dict_begin)(void *ctx, const struct qdec_value *v);
    int (*dict_end)(void *ctx, const struct qdec_value *v);
    int (*table_begin)(void *ctx, const struct qdec_value *v);
    int (*table_end)(void *ctx, const struct qdec_value *v);
    int (*function_begin)(void *ctx, const struct qdec_value *v);
    int (*function_end)(void *ctx, const struct qdec_value *v);
    int (*error)(void *ctx, const struct qdec_value *v);
};

/*
 * Checks that msg[0..len) is exactly one whole uncompressed message: a valid header whose
 * length equals len, then one object ending at len. Returns QDEC_OK or the failure's
 * status, also stored with its offset and reason in *err when err is not NULL.
 */
int qdec_validate(const uint8_t *msg, uint64_t len, struct qdec_error *err);

/*
 * Checks msg[0..len) as qdec_validate does and reports every value to visitor (which
 * may be NULL), passing ctx to each callback.
 */
int qdec_walk(const uint8_t *msg, uint64_t len, const struct qdec_visitor *visitor, void *ctx,
              struct qdec_error *err);

/*
 * Walks the one object that starts at buf[offset], reading nothing at or beyond len, in
 * the given byte order (1 = little-endian). On QDEC_OK, *end (when not NULL) is the
 * offset just past the object; bytes after it are not examined. Offsets in *err count
 * from buf.
 */
int qdec_walk_object(const uint8_t *buf, uint64_t len, uint64_t offset, int little_endian,
                     const struct qdec_visitor *visitor, void *ctx, uint64_t *end,
                     struct qdec_error *err);

/* Validates the object at buf[offset] and stores its size in bytes in *size. */
int qdec_skip(const uint8_t *buf, uint64_t len, uint64_t offset, int little_endian,
              uint64_t *size, struct qdec_error *err);

/* Returns a short description of an enum qdec_status ("value extends past the end"...). */
const char *qdec_status_text(int status);

/* Returns the name of a type byte: "long" for 7 and -7, "dictionary", "error", ...,
 * or "unknown". */
const char *qdec_type_name(int type);

/* Returns the size in bytes of one item of an atom or vector type (sign ignored), or 0
 * for symbols, which have a variable size, and for types that are not atoms or vectors. */
unsigned qdec_item_size(int type);

/*
 * Null and infinity tests for one item of an atom or vector type (sign ignored). value
 * points at the item's bytes in the message, in its byte order. For symbols it points at
 * the NUL-terminated text.
 * Nulls: the minimum integer for short, int, long and the temporal types, any NaN for
 * real, float and datetime, the all-zero GUID, the space char and the empty symbol.
 * Booleans and bytes have no null.
 * qdec_infinity returns 1 for +infinity, -1 for -infinity (the minimum integer + 1 for
 * integer types, IEEE infinity for real, float and datetime), 0 otherwise.
 */
int qdec_is_null(int type, const uint8_t *value, int little_endian);
int qdec_infinity(int type, const uint8_t *value, int little_endian);

/* Reads a signed or floating-point item in the given byte order. */
int16_t qdec_get_short(const uint8_t *p, int little_endian);
int32_t qdec_get_int(const uint8_t *p, int little_endian);
int64_t qdec_get_long(const uint8_t *p, int little_endian);
float qdec_get_real(const uint8_t *p, int little_endian);
double qdec_get_float(const uint8_t *p, int little_endian);

#endif
