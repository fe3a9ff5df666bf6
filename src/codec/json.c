/*
 * json.c - renders the object of a kdb+ IPC message as JSON text.
 *
 * json_render validates the whole message with qdec_validate before it writes anything,
 * and then renders from the validated bytes with its own recursive reader. The reader
 * relies on that validation for every count, type byte and terminating NUL. It calls
 * qdec_skip for the size of an object only where it must jump over one (a dictionary's
 * keys, a table's columns). Output goes through struct writer, which escapes, indents and
 * flushes a fixed buffer to the sink.
 */
#include "json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "json_format.h"

/* ---- writer ---------------------------------------------------------------------------- */

/*
 * Output state. While quoted > 0 the bytes being written belong to a JSON string (a
 * dictionary key, or the text of a function), so every byte is escaped, and a value
 * rendered there appears as its compact JSON text. Escaping happens once, however deeply
 * strings nest, so the output grows linearly with the nesting.
 */
struct writer {
    json_write_fn write;
    void *ctx;
    int pretty;
    int infinity;               /* enum json_infinity */
    int failed;                 /* the sink failed; nothing more is passed to it */
    unsigned indent;            /* open arrays and objects, for pretty output */
    unsigned quoted;            /* open strings, counting those whose quotes are left out */
    unsigned bare_level;        /* value of quoted inside the string whose quotes are left
                                   out (a string key), or 0 */
    int key_pending;            /* the next token starts the value of a key */
    size_t used;
    char buffer[JSON_CHUNK_SIZE];
};

static void flush(struct writer *w)
{
    if (w->used > 0 && !w->failed && w->write(w->ctx, w->buffer, w->used) != 0)
        w->failed = 1;
    w->used = 0;
}

static void put_raw(struct writer *w, const char *bytes, size_t n)
{
    while (n > 0 && !w->failed) {
        size_t room = sizeof(w->buffer) - w->used;
        size_t part = n < room ? n : room;

        memcpy(w->buffer + w->used, bytes, part);
        w->used += part;
        bytes += part;
        n -= part;
        if (w->used == sizeof(w->buffer))
            flush(w);
    }
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

/* Writes bytes as the content of a JSON string (RFC 8259): quote, backslash and control
 * characters escaped, well-formed UTF-8 copied, ill-formed UTF-8 replaced by U+FFFD. */
static void put_escaped(struct writer *w, const uint8_t *bytes, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;

    while (i < n && !w->failed) {
        size_t start = i;
        while (i < n && bytes[i] >= 0x20 && bytes[i] < 0x80 && bytes[i] != '"' &&
               bytes[i] != '\\')
            i++;
        put_raw(w, (const char *)bytes + start, i - start);
        if (i == n)
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
    for (size_t n = 2 * (size_t)w->indent; n > 0 && !w->failed;) {
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

/* ---- rendering ---------------------------------------------------------------------- */

struct renderer {
    const uint8_t *buf;
    uint64_t len;
    int little_endian;
    struct writer *w;
    int status;                 /* enum json_status of the first failure */
    uint64_t failed_offset;     /* offset of the value being rendered at that failure */
};

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

static int render_value(struct renderer *r, uint64_t offset, uint64_t *end);

static int fail(struct renderer *r, int status, uint64_t offset)
{
    if (r->status == JSON_OK) {
        r->status = status;
        r->failed_offset = offset;
    }
    return status;
}

/* Returns JSON_WRITE_FAILED once the sink has failed, so loops stop early. */
static int check_writer(struct renderer *r, uint64_t offset)
{
    if (r->w->failed)
        return fail(r, JSON_WRITE_FAILED, offset);
    return JSON_OK;
}

static int type_at(const struct renderer *r, uint64_t offset)
{
    return (int8_t)r->buf[offset];
}

static int is_list_like(int type)
{
    return (type >= 0 && type <= 19) || type == 98;
}

/* Reads the count of the vector or list at offset and returns the offset of its first
 * item. A set 0x80 bit in the attribute byte means an 8-byte count. */
static uint64_t vector_header(const struct renderer *r, uint64_t offset, uint64_t *count)
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
static uint64_t object_end(struct renderer *r, uint64_t offset)
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
static uint64_t table_names(const struct renderer *r, uint64_t offset, uint64_t *column_count)
{
    return vector_header(r, offset + 3, column_count);
}

static uint64_t skip_symbols(const struct renderer *r, uint64_t offset, uint64_t count)
{
    for (uint64_t i = 0; i < count; i++)
        offset += strlen((const char *)r->buf + offset) + 1;
    return offset;
}

/* Returns the offset of the first column of the table at offset. */
static uint64_t table_first_column(const struct renderer *r, uint64_t offset)
{
    uint64_t column_count;
    uint64_t names = table_names(r, offset, &column_count);
    uint64_t list = skip_symbols(r, names, column_count);
    uint64_t unused;

    return vector_header(r, list, &unused);
}

/* Returns the items of a list-like object: its count, or for a table its row count, the
 * count of its first column (validation checked that all columns agree). */
static uint64_t item_count(const struct renderer *r, uint64_t offset)
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
static int items_open(struct renderer *r, uint64_t offset, struct items *it, uint64_t *end)
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

    while (n > 0 && !w->failed) {
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

/* Writes the symbol at p. The empty symbol is q's null, except in a key, which must be a
 * string. */
static void write_symbol(struct writer *w, const uint8_t *p)
{
    if (p[0] == '\0' && !w->key_pending)
        emit_text(w, "null");
    else
        write_string(w, p, strlen((const char *)p));
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

/* Writes one item of type 1..19 (the vector type; atoms pass their negated type). */
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
    case 11:
        write_symbol(w, p);
        break;
    default:
        write_integer_based(w, type, p, little_endian);
        break;
    }
}

/* ---- vectors, lists, tables and dictionaries ------------------------------------------ */

/* Writes the next item of a cursor and moves past it. */
static int items_write_next(struct renderer *r, struct items *it);

/* Writes the fields of the cursor's next row, numbering them from *field, and advances
 * every column. */
static int write_row_fields(struct renderer *r, struct items *it, uint64_t *field)
{
    struct writer *w = r->w;
    uint64_t name = it->names;

    for (uint64_t i = 0; i < it->column_count; i++) {
        const char *text = (const char *)r->buf + name;
        size_t length = strlen(text);

        item_start(w, (*field)++);
        string_open(w);
        string_content(w, text, length);
        string_close(w);
        emit(w, ":", 1);
        if (w->pretty && w->quoted == 0)
            emit(w, " ", 1);
        int status = items_write_next(r, &it->columns[i]);
        if (status != JSON_OK)
            return status;
        name += length + 1;
    }
    return JSON_OK;
}

static int items_write_next(struct renderer *r, struct items *it)
{
    struct writer *w = r->w;
    int status = JSON_OK;

    if (it->type == 98) {
        uint64_t fields = 0;
        container_open(w, '{');
        status = write_row_fields(r, it, &fields);
        container_close(w, '}', fields);
    } else if (it->type == 0) {
        status = render_value(r, it->next, &it->next);
    } else {
        const uint8_t *p = r->buf + it->next;
        write_item(w, it->type, p, r->little_endian);
        if (it->type == 11)
            it->next += strlen((const char *)p) + 1;
        else
            it->next += qdec_item_size(it->type);
    }
    if (status != JSON_OK)
        return status;
    return check_writer(r, it->next);
}

/* Writes the next item of a key cursor as an object key. */
static int items_write_next_key(struct renderer *r, struct items *it)
{
    struct writer *w = r->w;

    key_open(w);
    int status = items_write_next(r, it);
    key_close(w);
    return status;
}

/* Writes the items of a cursor as a JSON array. */
static int write_array(struct renderer *r, struct items *it, uint64_t offset)
{
    struct writer *w = r->w;
    int status = JSON_OK;

    container_open(w, '[');
    for (uint64_t i = 0; i < it->count && status == JSON_OK; i++) {
        item_start(w, i);
        status = items_write_next(r, it);
    }
    container_close(w, ']', it->count);
    if (status != JSON_OK)
        return status;
    return check_writer(r, offset);
}

static int render_vector(struct renderer *r, uint64_t offset, uint64_t *end)
{
    struct writer *w = r->w;
    struct items it;
    int status = items_open(r, offset, &it, end);

    if (status != JSON_OK)
        return status;
    if (it.type == 10 || it.type == 4) {
        string_open(w);
        if (it.type == 10)
            string_content(w, r->buf + it.next, (size_t)it.count);
        else
            write_hex_content(w, r->buf + it.next, it.count);
        string_close(w);
        return check_writer(r, offset);
    }
    return write_array(r, &it, offset);
}

static int render_table(struct renderer *r, uint64_t offset, uint64_t *end)
{
    struct items it;

    /* A table without rows needs no column cursors. */
    if (item_count(r, offset) == 0) {
        container_open(r->w, '[');
        container_close(r->w, ']', 0);
        *end = object_end(r, offset);
        return r->status == JSON_OK ? check_writer(r, offset) : r->status;
    }

    int status = items_open(r, offset, &it, end);
    if (status != JSON_OK)
        return status;
    status = write_array(r, &it, offset);
    items_close(&it);
    return status;
}

/* Writes a keyed table, a dictionary from a table to a table with as many rows, as an
 * array of row objects that hold the key columns and then the value columns. */
static int write_keyed_table(struct renderer *r, struct items *keys, struct items *values,
                             uint64_t offset)
{
    struct writer *w = r->w;
    int status = JSON_OK;

    container_open(w, '[');
    for (uint64_t i = 0; i < keys->count && status == JSON_OK; i++) {
        uint64_t fields = 0;
        item_start(w, i);
        container_open(w, '{');
        status = write_row_fields(r, keys, &fields);
        if (status == JSON_OK)
            status = write_row_fields(r, values, &fields);
        container_close(w, '}', fields);
    }
    container_close(w, ']', keys->count);
    if (status != JSON_OK)
        return status;
    return check_writer(r, offset);
}

/* Writes a dictionary whose keys and values are list-like and of equal count as an object,
 * keys first converted to strings. */
static int write_object(struct renderer *r, struct items *keys, struct items *values,
                        uint64_t offset)
{
    struct writer *w = r->w;
    int status = JSON_OK;

    container_open(w, '{');
    for (uint64_t i = 0; i < keys->count && status == JSON_OK; i++) {
        item_start(w, i);
        status = items_write_next_key(r, keys);
        if (status == JSON_OK)
            status = items_write_next(r, values);
    }
    container_close(w, '}', keys->count);
    if (status != JSON_OK)
        return status;
    return check_writer(r, offset);
}

/* Writes a dictionary that no object can represent (keys and values of different counts,
 * or not list-like) as {"keys":...,"values":...}. */
static int write_keys_values(struct renderer *r, uint64_t keys, uint64_t *end)
{
    struct writer *w = r->w;
    uint64_t values;

    container_open(w, '{');
    item_start(w, 0);
    key_open(w);
    string_text(w, "keys");
    key_close(w);
    int status = render_value(r, keys, &values);
    if (status == JSON_OK) {
        item_start(w, 1);
        key_open(w);
        string_text(w, "values");
        key_close(w);
        status = render_value(r, values, end);
    }
    container_close(w, '}', 2);
    if (status != JSON_OK)
        return status;
    return check_writer(r, keys);
}

static int render_dict(struct renderer *r, uint64_t offset, uint64_t *end)
{
    uint64_t keys = offset + 1;
    uint64_t values = object_end(r, keys);
    if (r->status != JSON_OK)
        return r->status;

    int key_type = type_at(r, keys);
    int value_type = type_at(r, values);
    if (!is_list_like(key_type) || !is_list_like(value_type) ||
        item_count(r, keys) != item_count(r, values))
        return write_keys_values(r, keys, end);

    struct items key_items, value_items;
    int status = items_open(r, keys, &key_items, NULL);
    if (status != JSON_OK)
        return status;
    /* The end of a table is known once its cursors are open, and that of a vector or list
     * once its items have been read. */
    status = items_open(r, values, &value_items, value_type == 98 ? end : NULL);
    if (status != JSON_OK) {
        items_close(&key_items);
        return status;
    }

    if (key_type == 98 && value_type == 98)
        status = write_keyed_table(r, &key_items, &value_items, offset);
    else
        status = write_object(r, &key_items, &value_items, offset);
    if (value_type != 98)
        *end = value_items.next;
    items_close(&key_items);
    items_close(&value_items);
    return status;
}

static int render_list(struct renderer *r, uint64_t offset, uint64_t *end)
{
    struct items it;

    items_open(r, offset, &it, NULL);
    int status = write_array(r, &it, offset);
    *end = it.next;
    return status;
}

static int render_error(struct renderer *r, uint64_t offset, uint64_t *end)
{
    struct writer *w = r->w;
    const char *text = (const char *)r->buf + offset + 1;
    size_t length = strlen(text);

    container_open(w, '{');
    item_start(w, 0);
    key_open(w);
    string_text(w, "error");
    key_close(w);
    write_string(w, text, length);
    container_close(w, '}', 1);
    *end = offset + 1 + length + 1;
    return check_writer(r, offset);
}

/* ---- functions ------------------------------------------------------------------------- */

/* Primitive codes 0..19 index this list of glyphs. Codes 20 and above are named built-ins
 * (insert is operator 28), which this renderer does not map to names. */
static const char PRIMITIVE_GLYPHS[] = ":+-*%&|^=<>$,#_~!?@.";

/* The suffixes of types 106..111, the function with an iterator applied. */
static const char *const ITERATOR_SUFFIXES[] = { "'", "/", "\\", "':", "/:", "\\:" };

static int write_function_text(struct renderer *r, uint64_t offset, uint64_t *end);

static int is_generic_null(const struct renderer *r, uint64_t offset)
{
    return type_at(r, offset) == 101 && r->buf[offset + 1] == 0;
}

/* Writes one part of a function's text: a function as its text, another value as its
 * compact JSON. An elided projection argument (::) writes nothing when elide_null is set. */
static int write_function_part(struct renderer *r, uint64_t offset, int elide_null,
                               uint64_t *end)
{
    int type = type_at(r, offset);

    if (elide_null && is_generic_null(r, offset)) {
        *end = offset + 2;
        return JSON_OK;
    }
    if (type >= QDEC_TYPE_LAMBDA && type <= QDEC_TYPE_EACH_LEFT)
        return write_function_text(r, offset, end);
    return render_value(r, offset, end);
}

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

/* Writes the q text of a function (100..111) as string content: a lambda's source, a
 * primitive's glyph, and q-like forms for projections, compositions and iterators. */
static int write_function_text(struct renderer *r, uint64_t offset, uint64_t *end)
{
    struct writer *w = r->w;
    int type = type_at(r, offset);
    int status = JSON_OK;

    if (type == QDEC_TYPE_LAMBDA) {
        uint64_t text = offset + 1 + strlen((const char *)r->buf + offset + 1) + 1;
        uint64_t length;
        uint64_t source = vector_header(r, text, &length);
        string_content(w, r->buf + source, (size_t)length);
        *end = source + length;
    } else if (type >= 101 && type <= QDEC_TYPE_ITERATOR) {
        if (type == QDEC_TYPE_ITERATOR) {
            char text[32];
            snprintf(text, sizeof(text), "iterator %u", r->buf[offset + 1]);
            string_text(w, text);
        } else {
            write_primitive_text(w, type, r->buf[offset + 1]);
        }
        *end = offset + 2;
    } else if (type == QDEC_TYPE_PROJECTION || type == QDEC_TYPE_COMPOSITION) {
        uint32_t count = ipc_read_u32(r->buf + offset + 1, r->little_endian);
        uint64_t part = offset + 5;
        int projection = type == QDEC_TYPE_PROJECTION;

        /* A projection f[a;;b] starts with its function; a composition shows as '[f;g]. */
        if (projection)
            status = write_function_part(r, part, 0, &part);
        else
            string_content(w, "'", 1);
        string_content(w, "[", 1);
        for (uint32_t i = projection ? 1 : 0; i < count && status == JSON_OK; i++) {
            if (i > (projection ? 1u : 0u))
                string_content(w, ";", 1);
            status = write_function_part(r, part, projection, &part);
        }
        string_content(w, "]", 1);
        *end = part;
    } else {
        status = write_function_part(r, offset + 1, 0, end);
        string_text(w, ITERATOR_SUFFIXES[type - QDEC_TYPE_EACH]);
    }
    if (status != JSON_OK)
        return status;
    return check_writer(r, offset);
}

/* Writes a function as a JSON string of its text; the generic null (::) is null. */
static int render_function(struct renderer *r, uint64_t offset, uint64_t *end)
{
    if (is_generic_null(r, offset)) {
        emit_text(r->w, "null");
        *end = offset + 2;
        return check_writer(r, offset);
    }

    string_open(r->w);
    int status = write_function_text(r, offset, end);
    string_close(r->w);
    if (status != JSON_OK)
        return status;
    return check_writer(r, offset);
}

/* ---- dispatch ------------------------------------------------------------------------- */

/* Writes the JSON text of the object at offset and stores the offset past it in *end. */
static int render_value(struct renderer *r, uint64_t offset, uint64_t *end)
{
    int type = type_at(r, offset);

    if (type == -128)
        return render_error(r, offset, end);
    if (type >= -19 && type <= -1) {
        const uint8_t *p = r->buf + offset + 1;
        write_item(r->w, -type, p, r->little_endian);
        *end = offset + 1 + (type == -11 ? strlen((const char *)p) + 1 : qdec_item_size(type));
        return check_writer(r, offset);
    }
    if (type == 0)
        return render_list(r, offset, end);
    if (type >= 1 && type <= 19)
        return render_vector(r, offset, end);
    if (type == 98)
        return render_table(r, offset, end);
    if (type == 99 || type == QDEC_TYPE_SORTED_DICT)
        return render_dict(r, offset, end);
    if (type >= QDEC_TYPE_LAMBDA && type <= QDEC_TYPE_EACH_LEFT)
        return render_function(r, offset, end);

    /* qdec_validate rejects every other type byte. */
    *end = r->len;
    return fail(r, JSON_INVALID_MESSAGE, offset);
}

static void set_error(struct qdec_error *err, uint64_t offset, const char *reason)
{
    if (err == NULL)
        return;
    err->status = QDEC_STOPPED;
    err->offset = offset;
    snprintf(err->message, sizeof(err->message), "offset %" PRIu64 ": %s", offset, reason);
}

int json_render(const uint8_t *msg, uint64_t len, const struct json_options *options,
                json_write_fn write, void *ctx, struct qdec_error *err)
{
    static const struct json_options defaults = { 0 };

    if (options == NULL)
        options = &defaults;
    if (write == NULL || msg == NULL ||
        (options->infinity != JSON_INFINITY_NULL && options->infinity != JSON_INFINITY_STRING)) {
        set_error(err, 0, json_status_text(JSON_INVALID_ARGUMENT));
        return JSON_INVALID_ARGUMENT;
    }
    if (qdec_validate(msg, len, err) != QDEC_OK)
        return JSON_INVALID_MESSAGE;

    struct writer *w = malloc(sizeof(*w));
    if (w == NULL) {
        set_error(err, 0, json_status_text(JSON_OUT_OF_MEMORY));
        return JSON_OUT_OF_MEMORY;
    }
    memset(w, 0, offsetof(struct writer, buffer));
    w->write = write;
    w->ctx = ctx;
    w->pretty = options->pretty != 0;
    w->infinity = options->infinity;

    struct renderer r = { .buf = msg, .len = len, .little_endian = msg[0] == 1, .w = w };
    uint64_t end = 0;
    render_value(&r, IPC_HEADER_SIZE, &end);
    flush(w);
    if (r.status == JSON_OK && w->failed)
        fail(&r, JSON_WRITE_FAILED, end);
    free(w);

    if (r.status == JSON_INVALID_MESSAGE)
        set_error(err, r.failed_offset, "the renderer read a value that validation rejects");
    else if (r.status != JSON_OK)
        set_error(err, r.failed_offset, json_status_text(r.status));
    return r.status;
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
        return "out of memory for the column cursors of a table";
    case JSON_INVALID_ARGUMENT:
        return "invalid argument: the sink is NULL or json_options.infinity is unknown";
    }
    return "unknown JSON status";
}
