/*
 * stream.c - response messages generated in pieces: a list of segments, each either
 * fixed bytes (header, type bytes, counts, column names) or items computed from their
 * index (a lazy long vector, or one column of .standin.table).
 */
#include "stream.h"

#include "ipc.h"

#include <stdlib.h>
#include <string.h>

enum segment_kind { SEGMENT_BYTES, SEGMENT_RANGE, SEGMENT_COLUMN };

struct segment {
    int kind;
    uint8_t bytes[64];        /* SEGMENT_BYTES; every fixed part fits */
    size_t byte_count;
    int64_t first, step;      /* SEGMENT_RANGE */
    int column;               /* SEGMENT_COLUMN */
    uint64_t items;           /* SEGMENT_RANGE, SEGMENT_COLUMN */
    int width;                /* bytes per item */
};

/* A long vector needs 3 segments; a table 1 prefix + 5 columns of (header, items). */
#define MAX_SEGMENTS 12

struct stream {
    struct segment segments[MAX_SEGMENTS];
    int count;
    int current;              /* segment being produced */
    uint64_t offset;          /* bytes of the current segment already produced */
    uint64_t length;
    uint64_t position;
};

static struct segment *add_segment(struct stream *s, int kind)
{
    struct segment *seg = &s->segments[s->count++];

    memset(seg, 0, sizeof(*seg));
    seg->kind = kind;
    return seg;
}

/* Adds fixed bytes encoded by qenc; b is reset afterwards. */
static int add_bytes(struct stream *s, struct qenc *b)
{
    if (b->failed || b->len > sizeof(s->segments[0].bytes))
        return -1;

    struct segment *seg = add_segment(s, SEGMENT_BYTES);
    memcpy(seg->bytes, b->data, b->len);
    seg->byte_count = b->len;
    qenc_reset(b);
    return 0;
}

static uint64_t segment_length(const struct segment *seg)
{
    if (seg->kind == SEGMENT_BYTES)
        return seg->byte_count;
    return seg->items * (uint64_t)seg->width;
}

static int build_range(struct stream *s, struct qenc *b, const struct qval *v)
{
    qenc_vector_header(b, QT_LONG, 0, v->count);
    if (add_bytes(s, b) != 0)
        return -1;

    struct segment *seg = add_segment(s, SEGMENT_RANGE);
    seg->first = v->first;
    seg->step = v->step;
    seg->items = v->count;
    seg->width = 8;
    return 0;
}

static int build_table(struct stream *s, struct qenc *b, uint64_t rows)
{
    qenc_table(b, TABLE_COLUMN_NAMES, TABLE_COLUMNS);
    if (add_bytes(s, b) != 0)
        return -1;

    for (int c = 0; c < TABLE_COLUMNS; c++) {
        qenc_vector_header(b, table_column_type(c), 0, rows);
        if (add_bytes(s, b) != 0)
            return -1;
        struct segment *seg = add_segment(s, SEGMENT_COLUMN);
        seg->column = c;
        seg->items = rows;
        seg->width = c == 1 ? 2 : value_item_width(table_column_type(c));
    }
    return 0;
}

struct stream *stream_new(const struct qval *v, int msg_type)
{
    struct stream *s = calloc(1, sizeof(*s));
    struct qenc b;

    if (s == NULL)
        return NULL;
    qenc_init(&b);

    uint64_t length = IPC_HEADER_SIZE + value_encoded_size(v);
    uint8_t header[IPC_HEADER_SIZE];
    ipc_header_write(header, msg_type, length);
    qenc_raw(&b, header, sizeof(header));
    int rc = add_bytes(s, &b);

    if (rc == 0)
        rc = v->type == QT_TABLE ? build_table(s, &b, v->count) : build_range(s, &b, v);
    qenc_free(&b);
    if (rc != 0) {
        free(s);
        return NULL;
    }
    s->length = length;
    return s;
}

void stream_free(struct stream *s)
{
    free(s);
}

uint64_t stream_length(const struct stream *s)
{
    return s->length;
}

uint64_t stream_position(const struct stream *s)
{
    return s->position;
}

/* Writes whole items of seg starting at item `first_item`, at most max bytes. */
static size_t produce_items(const struct segment *seg, uint64_t first_item, uint8_t *dst,
                            size_t max)
{
    uint64_t n = seg->items - first_item;
    uint64_t fit = max / (uint64_t)seg->width;

    n = n < fit ? n : fit;
    if (seg->kind == SEGMENT_COLUMN)
        return table_column_items(seg->column, first_item, n, dst);

    for (uint64_t k = 0; k < n; k++) {
        uint64_t i = first_item + k;
        int64_t item = (int64_t)((uint64_t)seg->first + i * (uint64_t)seg->step);
        memcpy(dst + 8 * k, &item, 8);
    }
    return (size_t)n * 8;
}

size_t stream_read(struct stream *s, uint8_t *dst, size_t max)
{
    size_t written = 0;

    while (s->current < s->count && written < max) {
        const struct segment *seg = &s->segments[s->current];
        uint64_t left = segment_length(seg) - s->offset;
        size_t n;

        if (seg->kind == SEGMENT_BYTES) {
            n = left < max - written ? (size_t)left : max - written;
            memcpy(dst + written, seg->bytes + s->offset, n);
        } else {
            /* Items are produced whole, so offset is always a multiple of the width. */
            n = produce_items(seg, s->offset / (uint64_t)seg->width, dst + written,
                              max - written);
            if (n == 0 && left > 0)
                break;
        }
        written += n;
        s->offset += n;
        if (s->offset == segment_length(seg)) {
            s->current++;
            s->offset = 0;
        }
    }
    s->position += written;
    return written;
}
