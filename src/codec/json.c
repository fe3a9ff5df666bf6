/*
 * json.c - renders the object of a kdb+ IPC message as JSON text.
 *
 * json_renderer_new validates the whole message with qdec_validate before anything is
 * rendered, and the renderer then reads the validated bytes directly. It relies on that
 * validation for every count, type byte and terminating NUL, and calls qdec_skip for the
 * size of an object only where it must jump over one (a dictionary's keys, a table's
 * columns).
 *
 * The renderer can stop after any step and resume later. In place of recursion it keeps
 * an explicit stack of frames, one for each container being rendered and one for a long
 * text. Each step of the top frame appends at most STEP_MAX bytes to the buffer of struct
 * writer, which escapes and indents. Rendering stops once the buffer contains
 * JSON_CHUNK_SIZE bytes, and the caller takes the text from there.
 */
#include "json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "json_format.h"

/* ---- writer ---------------------------------------------------------------------------- */

/* Frames per block of the frame stack. The renderer contains the first block, so a value
 * nested less deeply needs no further allocation. */
#define FRAMES_PER_BLOCK 16

/* Maximum depth of the frame stack. Each frame renders one container or one text. qdec
 * allows QDEC_MAX_DEPTH containers around a value, and no q container takes more than one
 * frame per level of that nesting (a table takes two frames for its three levels), so
 * this is about twice the depth needed. */
#define MAX_FRAMES (2 * QDEC_MAX_DEPTH + 2 * FRAMES_PER_BLOCK)
#define FRAME_BLOCKS (MAX_FRAMES / FRAMES_PER_BLOCK)

/* Maximum length in message bytes of a text written in the step that reaches it. A longer
 * one (a symbol, string, column name, error or lambda source) gets a text frame, which
 * writes it in pieces. */
#define INLINE_TEXT_MAX 64

/* Maximum bytes one step appends after it starts below JSON_CHUNK_SIZE: at most two line
 * breaks, each indented by up to two spaces per frame, and tokens. The longest tokens are
 * two inline texts, each of INLINE_TEXT_MAX bytes escaped to up to six bytes apiece. */
#define STEP_MAX (2 * (1 + 2 * MAX_FRAMES) + 1024)

/*
 * Output state. While quoted > 0 the bytes being written belong to a JSON string (a
 * dictionary key, or the text of a function), so every byte is escaped, and a value
 * rendered there appears as its compact JSON text. Escaping happens once, however deeply
 * strings nest, so the output grows linearly with the nesting.
 */
struct writer {
    int pretty;
    int infinity;               /* enum json_infinity */
    int overflowed;             /* a step wrote past the buffer, which is a bug */
    unsigned indent;            /* open arrays and objects, for pretty output */
    unsigned quoted;            /* open strings, counting those whose quotes are left out */
    unsigned bare_level;        /* value of quoted inside the string whose quotes are left
                                   out (a string key), or 0 */
    int key_pending;            /* the next token starts the value of a key */
    size_t used;                /* bytes in buffer */
    char buffer[JSON_CHUNK_SIZE + STEP_MAX];
};

static void put_raw(struct writer *w, const char *bytes, size_t n)
{
    if (n > sizeof(w->buffer) - w->used) {
        w->overflowed = 1;
        return;
    }
    memcpy(w->buffer + w->used, bytes, n);
    w->used += n;
}

/*
 * Returns the length of the well-formed UTF-8 sequence at s[0..n), or 0 when it is
 * ill-formed. Then *bad is the length of its maximal subpart (the longest prefix that
 * could begin a well-formed sequence, at least 1), which the caller replaces by one
 * U+FFFD as the Unicode standard recommends. Overlong forms, surrogates and code points
 * above U+10FFFF are ill-formed.
 */
static size_t utf8_sequence_length(const uint8_t *s, size_t n, size_t *bad)
{
    uint8_t lead = s[0];
    size_t continuation;
    uint8_t low = 0x80;
    uint8_t high = 0xbf;

    if (lead >= 0xc2 && lead <= 0xdf) {
        continuation = 1;
    } else if (lead >= 0xe0 && lead <= 0xef) {
        continuation = 2;
        if (lead == 0xe0)
            low = 0xa0;
        else if (lead == 0xed)
            high = 0x9f;
    } else if (lead >= 0xf0 && lead <= 0xf4) {
        continuation = 3;
        if (lead == 0xf0)
            low = 0x90;
        else if (lead == 0xf4)
            high = 0x8f;
    } else {
        *bad = 1;
        return 0;
    }

    for (size_t k = 1; k <= continuation; k++) {
        if (k >= n || s[k] < low || s[k] > high) {
            *bad = k;
            return 0;
        }
        low = 0x80;
        high = 0xbf;
    }
    return continuation + 1;
}

/*
 * Writes bytes as the content of a JSON string (RFC 8259): quote, backslash and control
 * characters escaped, well-formed UTF-8 copied, ill-formed UTF-8 replaced by U+FFFD.
 * Stops between two characters once the buffer contains limit bytes, which one character
 * can pass by up to 5, and returns the number of bytes consumed.
 */
static size_t put_escaped_until(struct writer *w, const uint8_t *bytes, size_t n, size_t limit)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;

    while (i < n && w->used < limit) {
        size_t start = i;
        size_t room = limit - w->used;
        while (i < n && i - start < room && bytes[i] >= 0x20 && bytes[i] < 0x80 &&
               bytes[i] != '"' && bytes[i] != '\\')
            i++;
        put_raw(w, (const char *)bytes + start, i - start);
        if (i == n || w->used >= limit)
            break;

        uint8_t c = bytes[i];
        if (c >= 0x80) {
            size_t bad = 0;
            size_t length = utf8_sequence_length(bytes + i, n - i, &bad);
            if (length > 0) {
                put_raw(w, (const char *)bytes + i, length);
                i += length;
            } else {
                put_raw(w, "\xef\xbf\xbd", 3);
                i += bad;
            }
            continue;
        }

        char escape[6] = { '\\', 0, '0', '0', hex[c >> 4], hex[c & 15] };
        size_t escape_length = 2;
        switch (c) {
        case '"': escape[1] = '"'; break;
        case '\\': escape[1] = '\\'; break;
        case '\b': escape[1] = 'b'; break;
        case '\f': escape[1] = 'f'; break;
        case '\n': escape[1] = 'n'; break;
        case '\r': escape[1] = 'r'; break;
        case '\t': escape[1] = 't'; break;
        default:
            escape[1] = 'u';
            escape_length = 6;
            break;
        }
        put_raw(w, escape, escape_length);
        i++;
    }
    return i;
}

static void put_escaped(struct writer *w, const uint8_t *bytes, size_t n)
{
    put_escaped_until(w, bytes, n, SIZE_MAX);
}

/* Writes a token outside string content: punctuation, a number or a literal. */
static void emit(struct writer *w, const char *bytes, size_t n)
{
    w->key_pending = 0;
    if (w->quoted > 0)
        put_escaped(w, (const uint8_t *)bytes, n);
    else
        put_raw(w, bytes, n);
}

static void emit_text(struct writer *w, const char *text)
{
    emit(w, text, strlen(text));
}

/* Opens a JSON string. The string that starts a key's value gets no quotes of its own,
 * because the key's quotes enclose its content. */
static void string_open(struct writer *w)
{
    if (w->key_pending) {
        w->key_pending = 0;
        w->bare_level = w->quoted + 1;
    } else {
        emit(w, "\"", 1);
    }
    w->quoted++;
}

static void string_close(struct writer *w)
{
    w->quoted--;
    if (w->bare_level == w->quoted + 1) {
        w->bare_level = 0;
        return;
    }
    emit(w, "\"", 1);
}

static void string_content(struct writer *w, const void *bytes, size_t n)
{
    put_escaped(w, bytes, n);
}

static void string_text(struct writer *w, const char *text)
{
    string_content(w, text, strlen(text));
}

static void write_string(struct writer *w, const void *bytes, size_t n)
{
    string_open(w);
    string_content(w, bytes, n);
    string_close(w);
}

/* Starts a key: the next value rendered becomes the key's text (see docs/json.md). */
static void key_open(struct writer *w)
{
    string_open(w);
    w->key_pending = 1;
}

static void key_close(struct writer *w)
{
    w->key_pending = 0;
    string_close(w);
    emit(w, ":", 1);
    if (w->pretty && w->quoted == 0)
        emit(w, " ", 1);
}

static void newline(struct writer *w)
{
    static const char spaces[] = "                                ";

    if (!w->pretty || w->quoted > 0)
        return;
    put_raw(w, "\n", 1);
    for (size_t n = 2 * (size_t)w->indent; n > 0;) {
        size_t part = n < sizeof(spaces) - 1 ? n : sizeof(spaces) - 1;
        put_raw(w, spaces, part);
        n -= part;
    }
}

static void container_open(struct writer *w, char bracket)
{
    emit(w, &bracket, 1);
    w->indent++;
}

/* Separates item index of an array or object from the one before it. */
static void item_start(struct writer *w, uint64_t index)
{
    if (index > 0)
        emit(w, ",", 1);
    newline(w);
}

static void container_close(struct writer *w, char bracket, uint64_t count)
{
    w->indent--;
    if (count > 0)
        newline(w);
    emit(w, &bracket, 1);
}

/* ---- the renderer and its frames ----------------------------------------------------- */

/* A cursor over the items of a list-like object: a vector (1..19), a general list (0) or a
 * table (98), whose items are its rows. */
struct items {
    int type;
    uint64_t count;
    uint64_t next;              /* vectors and lists: offset of the next item */
    uint64_t names;             /* tables: offset of the first column name */
    uint64_t column_count;      /* tables */
    struct items *columns;      /* tables: one cursor per column, or NULL */
};

enum frame_kind {
    FRAME_VALUE,                /* any value; its first step turns it into its own kind */
    FRAME_ARRAY,                /* the items of a vector, general list or table */
    FRAME_ROW,                  /* one row of a table, or of both tables of a keyed table */
    FRAME_OBJECT,               /* a dictionary as an object, or a keyed table as an array */
    FRAME_KEYS_VALUES,          /* a dictionary as {"keys":...,"values":...} */
    FRAME_ERROR,                /* a kdb+ error as {"error":"text"} */
    FRAME_TEXT,                 /* string content, written in pieces */
    FRAME_FUNCTION,             /* the q text of a function */
};

/* The columns of a table whose next row a row frame writes. An enclosing frame or cursor
 * owns the column cursors and outlives the row frame. */
struct row_columns {
    struct items *cursors;
    uint64_t names;             /* offset of the first column name */
    uint64_t count;
};

/*
 * One container or text being rendered. A step changes only its own frame and the frames
 * it pushes. A frame that must learn where its child ends passes the child a pointer to
 * the field to update (end_out), which stays valid because frames are never moved.
 */
struct frame {
    enum frame_kind kind;
    int phase;                  /* what the next step of this kind does */
    uint64_t offset;            /* the value being rendered, for error reports */
    uint64_t end;               /* offset just past that value, once known */
    uint64_t *end_out;          /* receives end when the frame is popped, or NULL */
    union {
        struct {
            struct items items;
            uint64_t index;             /* items started so far */
        } array;
        struct {
            struct row_columns tables[2];
            unsigned table_count;
            unsigned table;             /* the table of the current column */
            uint64_t column;            /* the current column within that table */
            uint64_t name;              /* offset of the next column name */
            uint64_t fields;            /* fields started so far */
        } row;
        struct {
            struct items keys;
            struct items values;
            uint64_t index;             /* entries started so far */
            int keyed_table;            /* keys and values are tables with as many rows */
        } object;
        struct {
            uint64_t values;            /* offset of the values */
        } keys_values;
        struct {
            uint64_t next;              /* offset of the next byte to write */
            uint64_t stop;              /* offset just past the text */
            int quote;                  /* the text is a string of its own, not content */
            int hex;                    /* bytes written as hex digits */
        } text;
        struct {
            int type;
            int quoted;                 /* the frame closes the string its text is in */
            uint32_t count;             /* parts of a projection or composition */
            uint32_t index;             /* parts started so far */
            uint64_t part;              /* offset of the next part */
        } function;
    } u;
};

struct json_renderer {
    const uint8_t *buf;
    uint64_t len;
    int little_endian;
    int status;                 /* enum json_status of the first failure */
    uint64_t failed_offset;     /* offset of the value being rendered at that failure */
    const char *failure;        /* the reason of a failure that is a bug, or NULL */
    uint64_t end;               /* offset just past the message's object, once rendered */
    unsigned depth;             /* frames on the stack */
    size_t head;                /* w.buffer[head..w.used) is rendered and not yet taken */
    struct frame *blocks[FRAME_BLOCKS];
    struct frame first_block[FRAMES_PER_BLOCK];
    struct writer w;
};

static int fail(struct json_renderer *r, int status, uint64_t offset)
{
    if (r->status == JSON_OK) {
        r->status = status;
        r->failed_offset = offset;
    }
    return status;
}

/* Fails because the renderer broke one of its own bounds, which is a bug. */
static void fail_bug(struct json_renderer *r, uint64_t offset, const char *reason)
{
    if (r->status == JSON_OK)
        r->failure = reason;
    fail(r, JSON_INVALID_MESSAGE, offset);
}

static int type_at(const struct json_renderer *r, uint64_t offset)
{
    return (int8_t)r->buf[offset];
}

static int is_list_like(int type)
{
    return (type >= 0 && type <= 19) || type == 98;
}

/* Reads the count of the vector or list at offset and returns the offset of its first
 * item. A set 0x80 bit in the attribute byte means an 8-byte count. */
static uint64_t vector_header(const struct json_renderer *r, uint64_t offset, uint64_t *count)
{
    const uint8_t *p = r->buf + offset;

    if (p[1] & QDEC_ATTR_LARGE_COUNT) {
        *count = ipc_read_u64(p + 2, r->little_endian);
        return offset + 10;
    }
    *count = ipc_read_u32(p + 2, r->little_endian);
    return offset + 6;
}

/* Returns the offset just past the object at offset, which validation has checked. */
static uint64_t object_end(struct json_renderer *r, uint64_t offset)
{
    uint64_t size = 0;

    if (qdec_skip(r->buf, r->len, offset, r->little_endian, &size, NULL) != QDEC_OK) {
        fail(r, JSON_INVALID_MESSAGE, offset);
        return r->len;
    }
    return offset + size;
}

/* Table layout: 98, attribute, 99, the symbol vector of names, the general list of columns.
 * Stores the column count and returns the offset of the first column name. */
static uint64_t table_names(const struct json_renderer *r, uint64_t offset, uint64_t *column_count)
{
    return vector_header(r, offset + 3, column_count);
}

static uint64_t skip_symbols(const struct json_renderer *r, uint64_t offset, uint64_t count)
{
    for (uint64_t i = 0; i < count; i++)
        offset += strlen((const char *)r->buf + offset) + 1;
    return offset;
}

/* Returns the offset of the first column of the table at offset. */
static uint64_t table_first_column(const struct json_renderer *r, uint64_t offset)
{
    uint64_t column_count;
    uint64_t names = table_names(r, offset, &column_count);
    uint64_t list = skip_symbols(r, names, column_count);
    uint64_t unused;

    return vector_header(r, list, &unused);
}

/* Returns the items of a list-like object: its count, or for a table its row count, the
 * count of its first column (validation checked that all columns agree). */
static uint64_t item_count(const struct json_renderer *r, uint64_t offset)
{
    uint64_t count = 0;

    while (type_at(r, offset) == 98) {
        uint64_t column_count;
        table_names(r, offset, &column_count);
        if (column_count == 0)
            return 0;
        offset = table_first_column(r, offset);
    }
    vector_header(r, offset, &count);
    return count;
}

static void items_close(struct items *it)
{
    if (it->columns != NULL) {
        for (uint64_t i = 0; i < it->column_count; i++)
            items_close(&it->columns[i]);
        free(it->columns);
        it->columns = NULL;
    }
}

/* Opens a cursor over the list-like object at offset. For a table it opens one cursor
 * per column, so *end (the offset past the object) costs a walk over the columns. */
static int items_open(struct json_renderer *r, uint64_t offset, struct items *it, uint64_t *end)
{
    memset(it, 0, sizeof(*it));
    it->type = type_at(r, offset);

    if (it->type != 98) {
        it->next = vector_header(r, offset, &it->count);
        if (end == NULL)
            return JSON_OK;
        if (it->type == 11)
            *end = skip_symbols(r, it->next, it->count);
        else if (it->type == 0)
            *end = object_end(r, offset);
        else
            *end = it->next + it->count * qdec_item_size(it->type);
        return r->status;
    }

    it->count = item_count(r, offset);
    it->names = table_names(r, offset, &it->column_count);
    uint64_t column = table_first_column(r, offset);
    if (it->column_count > 0) {
        it->columns = calloc((size_t)it->column_count, sizeof(*it->columns));
        if (it->columns == NULL)
            return fail(r, JSON_OUT_OF_MEMORY, offset);
    }
    for (uint64_t i = 0; i < it->column_count; i++) {
        int status = items_open(r, column, &it->columns[i], &column);
        if (status != JSON_OK) {
            items_close(it);
            return status;
        }
    }
    if (end != NULL)
        *end = column;
    return JSON_OK;
}

/* ---- atoms and vector items ---------------------------------------------------------- */

static void write_infinity(struct writer *w, int sign)
{
    if (w->infinity == JSON_INFINITY_STRING)
        write_string(w, sign > 0 ? "inf" : "-inf", sign > 0 ? 3 : 4);
    else
        emit_text(w, "null");
}

static void write_guid(struct writer *w, const uint8_t *p)
{
    static const char hex[] = "0123456789abcdef";
    char text[36];
    size_t n = 0;

    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            text[n++] = '-';
        text[n++] = hex[p[i] >> 4];
        text[n++] = hex[p[i] & 15];
    }
    write_string(w, text, n);
}

/* Writes bytes as lowercase hex digits, without quotes. */
static void write_hex_content(struct writer *w, const uint8_t *p, uint64_t n)
{
    static const char hex[] = "0123456789abcdef";
    char text[128];

    while (n > 0) {
        size_t part = n < sizeof(text) / 2 ? (size_t)n : sizeof(text) / 2;
        for (size_t i = 0; i < part; i++) {
            text[2 * i] = hex[p[i] >> 4];
            text[2 * i + 1] = hex[p[i] & 15];
        }
        string_content(w, text, 2 * part);
        p += part;
        n -= part;
    }
}

/* Writes the integer or temporal item at p, whose type has null and infinity values. */
static void write_integer_based(struct writer *w, int type, const uint8_t *p, int little_endian)
{
    char text[NUMBER_TEXT_SIZE];
    int infinity = qdec_infinity(type, p, little_endian);

    if (qdec_is_null(type, p, little_endian)) {
        emit_text(w, "null");
        return;
    }
    if (infinity != 0) {
        write_infinity(w, infinity);
        return;
    }

    switch (type) {
    case 5:
        json_format_int64(text, qdec_get_short(p, little_endian));
        break;
    case 6:
        json_format_int64(text, qdec_get_int(p, little_endian));
        break;
    case 7:
        json_format_int64(text, qdec_get_long(p, little_endian));
        break;
    case 12:
        json_format_date_time(text, qdec_get_long(p, little_endian), NANOSECONDS_PER_SECOND, 9);
        break;
    case 13:
        json_format_month(text, qdec_get_int(p, little_endian));
        break;
    case 14:
        json_format_date(text, qdec_get_int(p, little_endian));
        break;
    case 16:
        json_format_timespan(text, qdec_get_long(p, little_endian));
        break;
    case 17:
        json_format_minute(text, qdec_get_int(p, little_endian));
        break;
    case 18:
        json_format_second(text, qdec_get_int(p, little_endian));
        break;
    case 19:
        json_format_time(text, qdec_get_int(p, little_endian));
        break;
    }

    if (type >= 5 && type <= 7)
        emit_text(w, text);
    else
        write_string(w, text, strlen(text));
}

/* Writes the real, float or datetime item at p. */
static void write_floating(struct writer *w, int type, const uint8_t *p, int little_endian)
{
    char text[NUMBER_TEXT_SIZE];
    int infinity = qdec_infinity(type, p, little_endian);

    if (qdec_is_null(type, p, little_endian)) {
        emit_text(w, "null");
        return;
    }
    if (infinity != 0) {
        write_infinity(w, infinity);
        return;
    }

    if (type == 8) {
        json_format_real(text, qdec_get_real(p, little_endian));
        emit_text(w, text);
    } else if (type == 9) {
        json_format_float(text, qdec_get_float(p, little_endian));
        emit_text(w, text);
    } else if (json_format_datetime(text, qdec_get_float(p, little_endian))) {
        write_string(w, text, strlen(text));
    } else {
        /* NOTE: no calendar text exists for datetimes this far out, so they render as
         * null although they are not q's null. */
        emit_text(w, "null");
    }
}

/* Writes one item of type 1..19 other than a symbol, which write_symbol writes (the vector
 * type; atoms pass their negated type). */
static void write_item(struct writer *w, int type, const uint8_t *p, int little_endian)
{
    switch (type) {
    case 1:
        emit_text(w, p[0] ? "true" : "false");
        break;
    case 2:
        if (qdec_is_null(type, p, little_endian))
            emit_text(w, "null");
        else
            write_guid(w, p);
        break;
    case 4:
        string_open(w);
        write_hex_content(w, p, 1);
        string_close(w);
        break;
    case 8: case 9: case 15:
        write_floating(w, type, p, little_endian);
        break;
    case 10:
        write_string(w, p, 1);
        break;
    default:
        write_integer_based(w, type, p, little_endian);
        break;
    }
}

/* ---- the frame stack ---------------------------------------------------------------- */

static struct frame *frame_at(struct json_renderer *r, unsigned index)
{
    return &r->blocks[index / FRAMES_PER_BLOCK][index % FRAMES_PER_BLOCK];
}

/* Pushes a frame for the value at offset, whose end offset is stored in *end_out when the
 * frame is popped (end_out may be NULL). Returns the frame, or NULL after a failure. */
static struct frame *push(struct json_renderer *r, enum frame_kind kind, uint64_t offset,
                          uint64_t *end_out)
{
    unsigned block = r->depth / FRAMES_PER_BLOCK;

    if (r->depth == MAX_FRAMES) {
        fail_bug(r, offset, "the value nests deeper than the renderer's frame stack");
        return NULL;
    }
    if (r->blocks[block] == NULL) {
        r->blocks[block] = malloc(FRAMES_PER_BLOCK * sizeof(struct frame));
        if (r->blocks[block] == NULL) {
            fail(r, JSON_OUT_OF_MEMORY, offset);
            return NULL;
        }
    }

    struct frame *f = frame_at(r, r->depth++);
    f->kind = kind;
    f->phase = 0;
    f->offset = offset;
    f->end = 0;
    f->end_out = end_out;
    return f;
}

static void pop(struct json_renderer *r, struct frame *f)
{
    if (f->end_out != NULL)
        *f->end_out = f->end;
    r->depth--;
}

/* Turns a value frame into the frame of its kind, which takes the next step. */
static void become(struct frame *f, enum frame_kind kind)
{
    f->kind = kind;
    f->phase = 0;
}

/* Frees the column cursors of a frame that is abandoned before its last step. */
static void frame_close(struct frame *f)
{
    if (f->kind == FRAME_ARRAY) {
        items_close(&f->u.array.items);
    } else if (f->kind == FRAME_OBJECT) {
        items_close(&f->u.object.keys);
        items_close(&f->u.object.values);
    }
}

/* Returns 1 while the buffer is below JSON_CHUNK_SIZE, so another step may start. */
static int has_room(const struct json_renderer *r)
{
    return r->w.used < JSON_CHUNK_SIZE;
}

/* ---- texts, symbols and cursor items ------------------------------------------------- */

/* Writes the length bytes at offset as string content, as a string of their own when quote
 * is set, and as hex digits when hex is set. A short text is written at once, a longer one
 * by a pushed text frame. Returns 1 when it pushed a frame (or failed to), which must run
 * before anything else is written. */
static int write_text(struct json_renderer *r, uint64_t offset, uint64_t length, int quote,
                      int hex)
{
    struct writer *w = &r->w;

    if (length > INLINE_TEXT_MAX) {
        struct frame *f = push(r, FRAME_TEXT, offset, NULL);
        if (f != NULL) {
            f->u.text.next = offset;
            f->u.text.stop = offset + length;
            f->u.text.quote = quote;
            f->u.text.hex = hex;
        }
        return 1;
    }

    if (quote)
        string_open(w);
    if (hex)
        write_hex_content(w, r->buf + offset, length);
    else
        string_content(w, r->buf + offset, (size_t)length);
    if (quote)
        string_close(w);
    return 0;
}

/* Writes the symbol of length bytes at offset. The empty symbol is q's null, except in a
 * key, which must be a string. Returns 1 when it pushed a text frame. */
static int write_symbol(struct json_renderer *r, uint64_t offset, size_t length)
{
    if (length == 0 && !r->w.key_pending) {
        emit_text(&r->w, "null");
        return 0;
    }
    return write_text(r, offset, length, 1, 0);
}

/* Pushes a row frame for the next row of one table, or of a keyed table's key and value
 * tables (second may be NULL). The row frame advances the column cursors. */
static void push_row(struct json_renderer *r, const struct items *first,
                     const struct items *second)
{
    struct frame *f = push(r, FRAME_ROW, first->names, NULL);
    const struct items *tables[2] = { first, second };

    if (f == NULL)
        return;
    f->u.row.table_count = second != NULL ? 2 : 1;
    for (unsigned i = 0; i < f->u.row.table_count; i++) {
        f->u.row.tables[i].cursors = tables[i]->columns;
        f->u.row.tables[i].names = tables[i]->names;
        f->u.row.tables[i].count = tables[i]->column_count;
    }
    f->u.row.table = 0;
    f->u.row.column = 0;
    f->u.row.name = first->names;
    f->u.row.fields = 0;
}

/* Writes the next item of a cursor and moves past it. An item that needs a frame of its
 * own (a row, an item of a general list, a long symbol) is pushed instead, and the cursor
 * has moved past it once that frame is popped. Returns 1 when it pushed a frame. */
static int items_write_next(struct json_renderer *r, struct items *it)
{
    const uint8_t *p = r->buf + it->next;

    if (it->type == 98) {
        push_row(r, it, NULL);
        return 1;
    }
    if (it->type == 0) {
        push(r, FRAME_VALUE, it->next, &it->next);
        return 1;
    }
    if (it->type == 11) {
        size_t length = strlen((const char *)p);
        uint64_t symbol = it->next;

        it->next += length + 1;
        return write_symbol(r, symbol, length);
    }

    write_item(&r->w, it->type, p, r->little_endian);
    it->next += qdec_item_size(it->type);
    return 0;
}

/* Writes "name": as the index-th entry of an object. */
static void write_literal_key(struct writer *w, uint64_t index, const char *name)
{
    item_start(w, index);
    key_open(w);
    string_text(w, name);
    key_close(w);
}

/* ---- the first step of a value --------------------------------------------------------- */

/* Phases of a value frame. */
enum { VALUE_START, VALUE_DONE };

static void start_atom(struct json_renderer *r, struct frame *f, int type)
{
    const uint8_t *p = r->buf + f->offset + 1;

    if (type == 11) {
        size_t length = strlen((const char *)p);

        f->end = f->offset + 1 + length + 1;
        f->phase = VALUE_DONE;
        write_symbol(r, f->offset + 1, length);
        return;
    }

    write_item(&r->w, type, p, r->little_endian);
    f->end = f->offset + 1 + qdec_item_size(type);
    pop(r, f);
}

/* Starts a vector or a general list. A string or a byte vector is one JSON string. */
static void start_vector(struct json_renderer *r, struct frame *f)
{
    struct items *it = &f->u.array.items;

    items_open(r, f->offset, it, NULL);
    if (it->type == 10 || it->type == 4) {
        f->end = it->next + it->count;
        f->phase = VALUE_DONE;
        write_text(r, it->next, it->count, 1, it->type == 4);
        return;
    }
    f->u.array.index = 0;
    become(f, FRAME_ARRAY);
}

static void start_table(struct json_renderer *r, struct frame *f)
{
    /* A table without rows needs no column cursors. */
    if (item_count(r, f->offset) == 0) {
        container_open(&r->w, '[');
        container_close(&r->w, ']', 0);
        f->end = object_end(r, f->offset);
        pop(r, f);
        return;
    }

    if (items_open(r, f->offset, &f->u.array.items, &f->end) != JSON_OK)
        return;
    f->u.array.index = 0;
    become(f, FRAME_ARRAY);
}

/*
 * Starts a dictionary. Keys and values that are list-like and of equal count make an
 * object, keys first converted to strings, or an array of row objects when both are
 * tables (a keyed table). Any other dictionary becomes {"keys":...,"values":...}.
 */
static void start_dict(struct json_renderer *r, struct frame *f)
{
    uint64_t keys = f->offset + 1;
    uint64_t values = object_end(r, keys);
    if (r->status != JSON_OK)
        return;

    int key_type = type_at(r, keys);
    int value_type = type_at(r, values);
    if (!is_list_like(key_type) || !is_list_like(value_type) ||
        item_count(r, keys) != item_count(r, values)) {
        f->u.keys_values.values = values;
        become(f, FRAME_KEYS_VALUES);
        return;
    }

    struct items *key_items = &f->u.object.keys;
    if (items_open(r, keys, key_items, NULL) != JSON_OK)
        return;
    /* The end of a table is known once its cursors are open, and that of a vector or list
     * once its items have been read. */
    if (items_open(r, values, &f->u.object.values, value_type == 98 ? &f->end : NULL) !=
        JSON_OK) {
        items_close(key_items);
        return;
    }
    f->u.object.index = 0;
    f->u.object.keyed_table = key_type == 98 && value_type == 98;
    become(f, FRAME_OBJECT);
}

static int is_generic_null(const struct json_renderer *r, uint64_t offset)
{
    return type_at(r, offset) == 101 && r->buf[offset + 1] == 0;
}

/* Starts a function, a JSON string of its text. The generic null (::) is null. */
static void start_function(struct json_renderer *r, struct frame *f, int type)
{
    if (is_generic_null(r, f->offset)) {
        emit_text(&r->w, "null");
        f->end = f->offset + 2;
        pop(r, f);
        return;
    }

    string_open(&r->w);
    f->u.function.type = type;
    f->u.function.quoted = 1;
    become(f, FRAME_FUNCTION);
}

static void step_value(struct json_renderer *r, struct frame *f)
{
    int type = type_at(r, f->offset);

    if (f->phase == VALUE_DONE)
        pop(r, f);
    else if (type == -128)
        become(f, FRAME_ERROR);
    else if (type >= -19 && type <= -1)
        start_atom(r, f, -type);
    else if (type >= 0 && type <= 19)
        start_vector(r, f);
    else if (type == 98)
        start_table(r, f);
    else if (type == 99 || type == QDEC_TYPE_SORTED_DICT)
        start_dict(r, f);
    else if (type >= QDEC_TYPE_LAMBDA && type <= QDEC_TYPE_EACH_LEFT)
        start_function(r, f, type);
    else
        fail(r, JSON_INVALID_MESSAGE, f->offset);     /* qdec_validate rejects the rest */
}

/* ---- containers -------------------------------------------------------------------------- */

static void step_array(struct json_renderer *r, struct frame *f)
{
    struct writer *w = &r->w;
    struct items *it = &f->u.array.items;

    if (f->phase == 0) {
        container_open(w, '[');
        f->phase = 1;
    }
    while (f->u.array.index < it->count && has_room(r)) {
        item_start(w, f->u.array.index++);
        if (items_write_next(r, it))
            return;
    }
    if (f->u.array.index < it->count || !has_room(r))
        return;

    container_close(w, ']', it->count);
    if (it->type != 98)
        f->end = it->next;
    items_close(it);
    pop(r, f);
}

/* Phases of a row frame: the opening brace, then for each column its name and its value. */
enum { ROW_OPEN, ROW_NAME, ROW_VALUE };

/* Returns the cursor of the row's current column, or NULL after the last column. */
static struct items *row_column(struct frame *f)
{
    while (f->u.row.table < f->u.row.table_count &&
           f->u.row.column == f->u.row.tables[f->u.row.table].count) {
        f->u.row.table++;
        f->u.row.column = 0;
        if (f->u.row.table < f->u.row.table_count)
            f->u.row.name = f->u.row.tables[f->u.row.table].names;
    }
    if (f->u.row.table == f->u.row.table_count)
        return NULL;
    return &f->u.row.tables[f->u.row.table].cursors[f->u.row.column];
}

/* Writes the fields of one row: each column name, and the column's next item. */
static void step_row(struct json_renderer *r, struct frame *f)
{
    struct writer *w = &r->w;

    if (f->phase == ROW_OPEN) {
        container_open(w, '{');
        f->phase = ROW_NAME;
    }
    while (has_room(r)) {
        struct items *column = row_column(f);

        if (column == NULL)
            break;
        if (f->phase == ROW_VALUE) {
            emit(w, ":", 1);
            if (w->pretty && w->quoted == 0)
                emit(w, " ", 1);
            f->u.row.column++;
            f->phase = ROW_NAME;
            if (items_write_next(r, column))
                return;
            continue;
        }

        uint64_t name = f->u.row.name;
        size_t length = strlen((const char *)r->buf + name);
        f->u.row.name += length + 1;
        item_start(w, f->u.row.fields++);
        f->phase = ROW_VALUE;
        if (write_text(r, name, length, 1, 0))
            return;
    }
    if (row_column(f) != NULL || !has_room(r))
        return;

    container_close(w, '}', f->u.row.fields);
    pop(r, f);
}

/* Phases of an object frame: the opening bracket, then for each entry its key and its
 * value. */
enum { OBJECT_OPEN, OBJECT_KEY, OBJECT_VALUE };

/* Writes a dictionary as an object, key by key, or a keyed table as an array of row
 * objects that hold the key columns and then the value columns. */
static void step_object(struct json_renderer *r, struct frame *f)
{
    struct writer *w = &r->w;
    struct items *keys = &f->u.object.keys;
    struct items *values = &f->u.object.values;
    int keyed_table = f->u.object.keyed_table;

    if (f->phase == OBJECT_OPEN) {
        container_open(w, keyed_table ? '[' : '{');
        f->phase = OBJECT_KEY;
    }
    while (has_room(r)) {
        if (f->phase == OBJECT_VALUE) {
            key_close(w);
            f->phase = OBJECT_KEY;
            if (items_write_next(r, values))
                return;
            continue;
        }
        if (f->u.object.index == keys->count)
            break;

        item_start(w, f->u.object.index++);
        if (keyed_table) {
            push_row(r, keys, values);
            return;
        }
        key_open(w);
        f->phase = OBJECT_VALUE;
        if (items_write_next(r, keys))
            return;
    }
    if (f->phase != OBJECT_KEY || f->u.object.index < keys->count || !has_room(r))
        return;

    container_close(w, keyed_table ? ']' : '}', keys->count);
    if (values->type != 98)
        f->end = values->next;
    items_close(keys);
    items_close(values);
    pop(r, f);
}

/* Writes a dictionary that no object can represent (keys and values of different counts,
 * or not list-like) as {"keys":...,"values":...}. */
static void step_keys_values(struct json_renderer *r, struct frame *f)
{
    struct writer *w = &r->w;

    switch (f->phase) {
    case 0:
        container_open(w, '{');
        write_literal_key(w, 0, "keys");
        f->phase = 1;
        push(r, FRAME_VALUE, f->offset + 1, NULL);
        break;
    case 1:
        write_literal_key(w, 1, "values");
        f->phase = 2;
        push(r, FRAME_VALUE, f->u.keys_values.values, &f->end);
        break;
    default:
        container_close(w, '}', 2);
        pop(r, f);
        break;
    }
}

static void step_error(struct json_renderer *r, struct frame *f)
{
    struct writer *w = &r->w;
    uint64_t text = f->offset + 1;

    if (f->phase == 0) {
        size_t length = strlen((const char *)r->buf + text);

        container_open(w, '{');
        write_literal_key(w, 0, "error");
        f->end = text + length + 1;
        f->phase = 1;
        write_text(r, text, length, 1, 0);
        return;
    }
    container_close(w, '}', 1);
    pop(r, f);
}

/* Writes the next piece of a text frame's text, up to JSON_CHUNK_SIZE in the buffer. */
static void step_text(struct json_renderer *r, struct frame *f)
{
    struct writer *w = &r->w;
    const uint8_t *bytes = r->buf + f->u.text.next;
    uint64_t left = f->u.text.stop - f->u.text.next;

    if (f->phase == 0) {
        if (f->u.text.quote)
            string_open(w);
        f->phase = 1;
    }
    if (f->u.text.hex) {
        while (left > 0 && has_room(r)) {
            uint64_t part = left < INLINE_TEXT_MAX ? left : INLINE_TEXT_MAX;

            write_hex_content(w, bytes, part);
            bytes += part;
            left -= part;
            f->u.text.next += part;
        }
    } else {
        f->u.text.next += put_escaped_until(w, bytes, (size_t)left, JSON_CHUNK_SIZE);
    }
    if (f->u.text.next < f->u.text.stop)
        return;

    if (f->u.text.quote)
        string_close(w);
    pop(r, f);
}

/* ---- functions ------------------------------------------------------------------------- */

/* Primitive codes 0..19 index this list of glyphs. Codes 20 and above are named built-ins
 * (insert is operator 28), which this renderer does not map to names. */
static const char PRIMITIVE_GLYPHS[] = ":+-*%&|^=<>$,#_~!?@.";

/* The suffixes of types 106..111, the function with an iterator applied. */
static const char *const ITERATOR_SUFFIXES[] = { "'", "/", "\\", "':", "/:", "\\:" };

/* Writes a primitive: the generic null as ::, a unary primitive as its glyph and a colon
 * (-: is neg), an operator as its glyph, and codes without a known glyph by type and code
 * ("operator 28"). */
static void write_primitive_text(struct writer *w, int type, unsigned code)
{
    char text[40];

    if (code >= sizeof(PRIMITIVE_GLYPHS) - 1) {
        snprintf(text, sizeof(text), "%s %u", qdec_type_name(type), code);
        string_text(w, text);
    } else if (type == 101) {
        text[0] = PRIMITIVE_GLYPHS[code];
        text[1] = ':';
        string_content(w, text, 2);
    } else {
        string_content(w, &PRIMITIVE_GLYPHS[code], 1);
    }
}

/* Pushes the frame that writes one part of a function's text: a function as its text,
 * another value as its compact JSON. An elided projection argument (::) writes nothing
 * when elide_null is set. The part's end offset is stored in *end_out. */
static void push_function_part(struct json_renderer *r, uint64_t offset, int elide_null,
                               uint64_t *end_out)
{
    int type = type_at(r, offset);

    if (elide_null && is_generic_null(r, offset)) {
        *end_out = offset + 2;
        return;
    }
    if (type < QDEC_TYPE_LAMBDA || type > QDEC_TYPE_EACH_LEFT) {
        push(r, FRAME_VALUE, offset, end_out);
        return;
    }

    struct frame *f = push(r, FRAME_FUNCTION, offset, end_out);
    if (f != NULL) {
        f->u.function.type = type;
        f->u.function.quoted = 0;
    }
}

/* Phases of a function frame. */
enum { FUNCTION_START, FUNCTION_BRACKET, FUNCTION_PARTS, FUNCTION_SUFFIX, FUNCTION_FINISH };

/* Writes the text of a function (100..111) as string content: a lambda's source, a
 * primitive's glyph, or the start of the q-like form of a projection, composition or
 * function with an iterator. */
static void start_function_text(struct json_renderer *r, struct frame *f)
{
    struct writer *w = &r->w;
    int type = f->u.function.type;

    if (type == QDEC_TYPE_LAMBDA) {
        uint64_t text = f->offset + 1 + strlen((const char *)r->buf + f->offset + 1) + 1;
        uint64_t length;
        uint64_t source = vector_header(r, text, &length);

        f->end = source + length;
        f->phase = FUNCTION_FINISH;
        write_text(r, source, length, 0, 0);
    } else if (type >= 101 && type <= QDEC_TYPE_ITERATOR) {
        if (type == QDEC_TYPE_ITERATOR) {
            char text[32];
            snprintf(text, sizeof(text), "iterator %u", r->buf[f->offset + 1]);
            string_text(w, text);
        } else {
            write_primitive_text(w, type, r->buf[f->offset + 1]);
        }
        f->end = f->offset + 2;
        f->phase = FUNCTION_FINISH;
    } else if (type == QDEC_TYPE_PROJECTION || type == QDEC_TYPE_COMPOSITION) {
        f->u.function.count = ipc_read_u32(r->buf + f->offset + 1, r->little_endian);
        f->u.function.part = f->offset + 5;
        f->phase = FUNCTION_BRACKET;
        /* A projection f[a;;b] starts with its function; a composition shows as '[f;g]. */
        if (type == QDEC_TYPE_PROJECTION)
            push_function_part(r, f->u.function.part, 0, &f->u.function.part);
        else
            string_content(w, "'", 1);
    } else {
        f->phase = FUNCTION_SUFFIX;
        push_function_part(r, f->offset + 1, 0, &f->end);
    }
}

/* Writes the next part of a projection or composition between the brackets, or the
 * closing bracket. The arguments of a projection follow its function. */
static void write_next_function_part(struct json_renderer *r, struct frame *f)
{
    int projection = f->u.function.type == QDEC_TYPE_PROJECTION;
    uint32_t first = projection ? 1 : 0;

    if (f->u.function.index == f->u.function.count) {
        string_content(&r->w, "]", 1);
        f->end = f->u.function.part;
        f->phase = FUNCTION_FINISH;
        return;
    }
    if (f->u.function.index > first)
        string_content(&r->w, ";", 1);
    f->u.function.index++;
    push_function_part(r, f->u.function.part, projection, &f->u.function.part);
}

static void step_function(struct json_renderer *r, struct frame *f)
{
    struct writer *w = &r->w;
    int type = f->u.function.type;

    switch (f->phase) {
    case FUNCTION_START:
        start_function_text(r, f);
        break;
    case FUNCTION_BRACKET:
        string_content(w, "[", 1);
        f->u.function.index = type == QDEC_TYPE_PROJECTION ? 1 : 0;
        f->phase = FUNCTION_PARTS;
        break;
    case FUNCTION_PARTS:
        write_next_function_part(r, f);
        break;
    case FUNCTION_SUFFIX:
        string_text(w, ITERATOR_SUFFIXES[type - QDEC_TYPE_EACH]);
        f->phase = FUNCTION_FINISH;
        break;
    default:
        if (f->u.function.quoted)
            string_close(w);
        pop(r, f);
        break;
    }
}

/* ---- rendering and the public functions ------------------------------------------------ */

static void step(struct json_renderer *r)
{
    struct frame *f = frame_at(r, r->depth - 1);

    switch (f->kind) {
    case FRAME_VALUE: step_value(r, f); break;
    case FRAME_ARRAY: step_array(r, f); break;
    case FRAME_ROW: step_row(r, f); break;
    case FRAME_OBJECT: step_object(r, f); break;
    case FRAME_KEYS_VALUES: step_keys_values(r, f); break;
    case FRAME_ERROR: step_error(r, f); break;
    case FRAME_TEXT: step_text(r, f); break;
    case FRAME_FUNCTION: step_function(r, f); break;
    }
}

/* Returns the offset of the value being rendered, for error reports. */
static uint64_t current_offset(struct json_renderer *r)
{
    return r->depth > 0 ? frame_at(r, r->depth - 1)->offset : r->end;
}

/* Moves the text not yet taken to the start of the buffer, then renders until the buffer
 * contains JSON_CHUNK_SIZE bytes, the text is complete or rendering fails. */
static void refill(struct json_renderer *r)
{
    struct writer *w = &r->w;
    size_t pending = w->used - r->head;

    memmove(w->buffer, w->buffer + r->head, pending);
    w->used = pending;
    r->head = 0;

    while (r->depth > 0 && r->status == JSON_OK && has_room(r)) {
        step(r);
        if (w->overflowed)
            fail_bug(r, current_offset(r), "a rendering step wrote more than STEP_MAX bytes");
    }
}

/* Makes up to requested bytes of the text available at *bytes (requested <=
 * JSON_CHUNK_SIZE) and returns their number, fewer only at the end of the text or after a
 * failure. */
static size_t take(struct json_renderer *r, size_t requested, const char **bytes)
{
    if (r->w.used - r->head < requested && r->depth > 0 && r->status == JSON_OK)
        refill(r);

    size_t available = r->w.used - r->head;
    *bytes = r->w.buffer + r->head;
    return available < requested ? available : requested;
}

static void set_error(struct qdec_error *err, uint64_t offset, const char *reason)
{
    if (err == NULL)
        return;
    err->status = QDEC_STOPPED;
    err->offset = offset;
    snprintf(err->message, sizeof(err->message), "offset %" PRIu64 ": %s", offset, reason);
}

/* Fills err with the renderer's failure and returns its status. */
static int report_failure(const struct json_renderer *r, struct qdec_error *err)
{
    if (r->failure != NULL)
        set_error(err, r->failed_offset, r->failure);
    else if (r->status == JSON_INVALID_MESSAGE)
        set_error(err, r->failed_offset, "the renderer read a value that validation rejects");
    else
        set_error(err, r->failed_offset, json_status_text(r->status));
    return r->status;
}

int json_renderer_new(const uint8_t *msg, uint64_t len, const struct json_options *options,
                      struct json_renderer **renderer, struct qdec_error *err)
{
    static const struct json_options defaults = { 0 };

    if (renderer != NULL)
        *renderer = NULL;
    if (options == NULL)
        options = &defaults;
    if (renderer == NULL || msg == NULL ||
        (options->infinity != JSON_INFINITY_NULL && options->infinity != JSON_INFINITY_STRING)) {
        set_error(err, 0, json_status_text(JSON_INVALID_ARGUMENT));
        return JSON_INVALID_ARGUMENT;
    }
    if (qdec_validate(msg, len, err) != QDEC_OK)
        return JSON_INVALID_MESSAGE;

    struct json_renderer *r = malloc(sizeof(*r));
    if (r == NULL) {
        set_error(err, 0, json_status_text(JSON_OUT_OF_MEMORY));
        return JSON_OUT_OF_MEMORY;
    }
    /* Everything but the output buffer starts zeroed. */
    memset(r, 0, offsetof(struct json_renderer, w) + offsetof(struct writer, buffer));
    r->buf = msg;
    r->len = len;
    r->little_endian = msg[0] == 1;
    r->w.pretty = options->pretty != 0;
    r->w.infinity = options->infinity;
    r->blocks[0] = r->first_block;
    push(r, FRAME_VALUE, IPC_HEADER_SIZE, &r->end);

    *renderer = r;
    return JSON_OK;
}

int json_renderer_next(struct json_renderer *r, char *buf, size_t size, size_t *written,
                       struct qdec_error *err)
{
    if (written != NULL)
        *written = 0;
    if (r == NULL || buf == NULL || size == 0 || written == NULL) {
        set_error(err, 0, json_status_text(JSON_INVALID_ARGUMENT));
        return JSON_INVALID_ARGUMENT;
    }

    while (*written < size) {
        size_t requested = size - *written;
        const char *bytes;

        if (requested > JSON_CHUNK_SIZE)
            requested = JSON_CHUNK_SIZE;
        size_t length = take(r, requested, &bytes);

        if (r->status != JSON_OK) {
            *written = 0;
            return report_failure(r, err);
        }
        if (length == 0)
            break;
        memcpy(buf + *written, bytes, length);
        r->head += length;
        *written += length;
    }
    return JSON_OK;
}

void json_renderer_free(struct json_renderer *r)
{
    if (r == NULL)
        return;
    for (unsigned i = 0; i < r->depth; i++)
        frame_close(frame_at(r, i));
    for (unsigned block = 1; block < FRAME_BLOCKS; block++)
        free(r->blocks[block]);
    free(r);
}

int json_render(const uint8_t *msg, uint64_t len, const struct json_options *options,
                json_write_fn write, void *ctx, struct qdec_error *err)
{
    struct json_renderer *r;

    if (write == NULL) {
        set_error(err, 0, json_status_text(JSON_INVALID_ARGUMENT));
        return JSON_INVALID_ARGUMENT;
    }
    int status = json_renderer_new(msg, len, options, &r, err);
    if (status != JSON_OK)
        return status;

    for (;;) {
        const char *bytes;
        size_t length = take(r, JSON_CHUNK_SIZE, &bytes);

        if (r->status != JSON_OK) {
            status = report_failure(r, err);
            break;
        }
        if (length == 0)
            break;
        if (write(ctx, bytes, length) != 0) {
            fail(r, JSON_WRITE_FAILED, current_offset(r));
            status = report_failure(r, err);
            break;
        }
        r->head += length;
    }
    json_renderer_free(r);
    return status;
}

const char *json_status_text(int status)
{
    switch (status) {
    case JSON_OK:
        return "rendered";
    case JSON_INVALID_MESSAGE:
        return "invalid message";
    case JSON_WRITE_FAILED:
        return "the sink failed";
    case JSON_OUT_OF_MEMORY:
        return "out of memory for the renderer's frames or a table's column cursors";
    case JSON_INVALID_ARGUMENT:
        return "invalid argument: a NULL pointer, a buffer size of 0 or an unknown "
               "json_options.infinity";
    }
    return "unknown JSON status";
}
