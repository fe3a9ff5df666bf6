/*
 * qwire.h - the test client's kdb+ message helpers: building char-vector queries,
 * decompressing responses, reading long atoms and formatting results as q-like text.
 *
 * These are independent of the daemon's codec on purpose, so the tests check qmux with
 * a second implementation of the protocol instead of the one under test.
 */
#ifndef QMUX_TOOLS_QWIRE_H
#define QMUX_TOOLS_QWIRE_H

#include <stddef.h>
#include <stdint.h>

/* Growable text buffer; text is always NUL-terminated once anything was appended. */
struct qwire_text {
    char *data;
    size_t length;
    size_t capacity;
};

void qwire_text_append(struct qwire_text *text, const char *bytes, size_t length);
void qwire_text_printf(struct qwire_text *text, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
void qwire_text_free(struct qwire_text *text);

/*
 * Builds a little-endian, uncompressed message of msg_type (IPC_ASYNC or IPC_SYNC) whose
 * body is the char vector expr. Returns a malloc'd buffer and stores its size in
 * *length, or returns NULL when expr is longer than 2^31 - 15 bytes or malloc fails.
 */
uint8_t *qwire_build_query(int msg_type, const char *expr, size_t *length);

/*
 * Builds the login handshake: credentials ("user:password"), the capability byte and a
 * NUL. Returns a malloc'd buffer and stores its size in *length, or NULL when malloc fails.
 */
uint8_t *qwire_build_handshake(const char *credentials, int capability, size_t *length);

/*
 * Expands a compressed message (header byte 2 = 1 or 2) into a malloc'd uncompressed one
 * whose header has byte 2 = 0. Every token is bounds-checked. Returns NULL and writes the
 * reason into error when the input is malformed, or when malloc fails.
 */
uint8_t *qwire_decompress(const uint8_t *message, size_t length, size_t *out_length,
                          char *error, size_t error_size);

enum qwire_long_status {
    QWIRE_LONG_OK = 0,
    QWIRE_LONG_ERROR,      /* the body is a kdb+ error, whose text is copied out */
    QWIRE_LONG_WRONG_TYPE, /* anything other than a long atom or an error */
};

/*
 * Reads the body of an uncompressed response (body = message + 8) as a long atom.
 * On QWIRE_LONG_ERROR the error text is copied into text (truncated to text_size).
 */
int qwire_read_long(const uint8_t *body, size_t body_length, int little_endian,
                    int64_t *value, char *text, size_t text_size);

/*
 * Appends the q-like text of the object in body[0..body_length) to out. Atoms and vectors
 * of the common types read as q prints them, and an error reads `'text`. General lists and
 * dictionaries are formatted recursively, a table as its column names and row count, and
 * any other type as its type number and size. Returns 1 when the body is a kdb+ error, 0
 * for any other complete object, and -1 (with a note appended to out) when it is
 * truncated or malformed.
 */
int qwire_format(const uint8_t *body, size_t body_length, int little_endian,
                 struct qwire_text *out);

#endif
