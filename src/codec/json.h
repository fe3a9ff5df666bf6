/*
 * json.h - renders the object of a kdb+ IPC message as JSON text.
 *
 * The conventions follow kdb+'s own serializer .j.j where it has one: tables become arrays
 * of row objects, dictionaries become objects, symbols and strings become JSON strings,
 * temporal values become ISO-8601 text and nulls become null. docs/json.md lists the rule
 * for every q type and every place where q and JSON disagree (infinities, GUIDs, bytes,
 * functions, keys that are not symbols, text that is not UTF-8).
 *
 * The whole text is never held in memory. A struct json_renderer produces it piece by
 * piece: each call of json_renderer_next writes the next bytes into the caller's buffer,
 * so a server can render a large result as fast as its client reads it. json_render is a
 * loop over it that passes the text to a sink in chunks of JSON_CHUNK_SIZE bytes. A
 * renderer is one allocation of about 22 KiB, plus one cursor per column of each table
 * being rendered and more frames for values nested over 16 levels deep. So memory use
 * depends on the nesting and the column count, not on the row count.
 *
 * No libevent dependency: the codec library is shared by the daemon, the stand-in, the
 * tools and the fuzz targets.
 */
#ifndef QMUX_JSON_H
#define QMUX_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "qdec.h"

/* Maximum size in bytes of one chunk passed to the sink. A renderer buffers about this much
 * text before it hands text out. */
#define JSON_CHUNK_SIZE 16384

/*
 * The sink: receives the next length bytes of the JSON text (1 <= length <=
 * JSON_CHUNK_SIZE). Returns 0 to continue, or nonzero to stop the rendering, which then
 * fails with JSON_WRITE_FAILED. A chunk may end inside a string, an escape sequence or a
 * multi-byte UTF-8 character.
 */
typedef int (*json_write_fn)(void *ctx, const char *bytes, size_t length);

/* Rendering of q's infinities (0w, -0w, 0W, -0W and the temporal ones). JSON has no
 * infinity, and .j.j writes the bare words inf and -inf, which are not valid JSON. */
enum json_infinity {
    JSON_INFINITY_NULL = 0,     /* null, as .j.jd does with the null0w option */
    JSON_INFINITY_STRING = 1,   /* the strings "inf" and "-inf" */
};

struct json_options {
    int pretty;                 /* nonzero: one item a line, indented by two spaces a level */
    int infinity;               /* enum json_infinity */
};

enum json_status {
    JSON_OK = 0,
    JSON_INVALID_MESSAGE,       /* qdec_validate rejected the message; nothing was written */
    JSON_WRITE_FAILED,          /* the sink returned nonzero */
    JSON_OUT_OF_MEMORY,         /* the renderer, its frames or a table's column cursors
                                   could not be allocated */
    JSON_INVALID_ARGUMENT,      /* a NULL pointer, a buffer size of 0, or an unknown
                                   json_options.infinity value */
};

/* The state of one rendering, which can be resumed after each call. */
struct json_renderer;

/*
 * Validates msg[0..len), one whole uncompressed message, with qdec_validate, and creates
 * a renderer for the JSON text of its object. msg must stay valid and unchanged until
 * json_renderer_free. options may be NULL for the defaults (compact output, infinities as
 * null). Returns JSON_OK and stores the renderer in *renderer, or a failure with
 * *renderer set to NULL and err filled as json_render does (JSON_INVALID_MESSAGE,
 * JSON_OUT_OF_MEMORY or JSON_INVALID_ARGUMENT).
 */
int json_renderer_new(const uint8_t *msg, uint64_t len, const struct json_options *options,
                      struct json_renderer **renderer, struct qdec_error *err);

/*
 * Renders the next bytes of the text into buf[0..size) and stores their number in
 * *written, like fread: *written is size unless the text ends first, and 0 once the whole
 * text has been returned. A call renders only what it returns, plus less than
 * JSON_CHUNK_SIZE + 4 KiB buffered for the next call. Pieces may end inside a string, an
 * escape sequence or a multi-byte UTF-8 character. Returns JSON_OK, or
 * JSON_INVALID_ARGUMENT (size 0 or a NULL pointer), JSON_OUT_OF_MEMORY, or
 * JSON_INVALID_MESSAGE for a message the renderer cannot read after all (a bug), with
 * *written 0 and err filled. Every call after a failure fails the same way.
 */
int json_renderer_next(struct json_renderer *renderer, char *buf, size_t size, size_t *written,
                       struct qdec_error *err);

/* Frees a renderer, finished or not. NULL is ignored. */
void json_renderer_free(struct json_renderer *renderer);

/*
 * Validates msg[0..len), one whole uncompressed message, with qdec_validate, then writes
 * the JSON text of its object to write(ctx, ...), every chunk but the last of
 * JSON_CHUNK_SIZE bytes. options may be NULL for the defaults
 * (compact output, infinities as null). The text has no trailing newline.
 *
 * Returns an enum json_status, and on failure fills err when it is not NULL. For
 * JSON_INVALID_MESSAGE, err has qdec's status, offset and reason, so a compressed message
 * fails with QDEC_COMPRESSED and must be decompressed first. For the other failures, err
 * has status QDEC_STOPPED, the offset of the value being rendered and the cause.
 * After JSON_WRITE_FAILED or JSON_OUT_OF_MEMORY the sink has received part of the text.
 */
int json_render(const uint8_t *msg, uint64_t len, const struct json_options *options,
                json_write_fn write, void *ctx, struct qdec_error *err);

/* Returns a short description of an enum json_status ("the sink failed", ...). */
const char *json_status_text(int status);

#endif
