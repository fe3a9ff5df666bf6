/*
 * ipc.h - kdb+ IPC framing: the 8-byte message header and the login handshake.
 *
 * Pure functions over byte arrays, with no libevent dependency, so the daemon, the
 * stand-in server, the test client and the fuzz targets share one parser.
 */
#ifndef QMUX_IPC_H
#define QMUX_IPC_H

#include <stddef.h>
#include <stdint.h>

#define IPC_HEADER_SIZE 8

/* Largest total message length the header can express: 2^40 - 1 bytes (1 TB). */
#define IPC_MAX_LENGTH ((UINT64_C(1) << 40) - 1)

/* Smallest legal total lengths: header plus a type byte and one more byte (`(::)` is 65 00),
 * and for a compressed message the header plus the 4-byte uncompressed size plus one byte. */
#define IPC_MIN_LENGTH 10
#define IPC_MIN_COMPRESSED_LENGTH 13

/* Highest capability byte defined by kdb+ (3.4+: vectors of 2^32 items and more). */
#define IPC_MAX_CAPABILITY 6

enum ipc_msg_type {
    IPC_ASYNC = 0,
    IPC_SYNC = 1,
    IPC_RESPONSE = 2,
};

struct ipc_header {
    int little_endian;   /* 1 = little-endian, 0 = big-endian */
    int type;            /* enum ipc_msg_type */
    int compressed;      /* 0 plain, 1 compressed (4-byte size), 2 compressed (8-byte size) */
    uint64_t length;     /* total message length in bytes, header included */
};

enum ipc_status {
    IPC_OK = 0,
    IPC_BAD_ENDIAN,
    IPC_BAD_TYPE,
    IPC_BAD_COMPRESSION,
    IPC_BAD_LENGTH,
};

/* Parses the first IPC_HEADER_SIZE bytes of raw. Returns IPC_OK and fills out, or the
 * reason the header is invalid (out is then partly filled and must not be used). */
int ipc_header_parse(const uint8_t raw[IPC_HEADER_SIZE], struct ipc_header *out);

/* Writes a little-endian, uncompressed header for a message of total length bytes. */
void ipc_header_write(uint8_t raw[IPC_HEADER_SIZE], int type, uint64_t length);

/*
 * Writes a complete kdb+ error response ('text) into out: header, type byte -128, the text
 * and its NUL. A text too long for size bytes is cut. Returns the message length.
 */
size_t ipc_error_message(uint8_t *out, size_t size, const char *text);

/* Room for any error message qmux sends. */
#define IPC_ERROR_MESSAGE_MAX 512

/* Returns a short text for an ipc_status ("invalid message type byte", ...). */
const char *ipc_status_text(int status);

/* Returns "async", "sync" or "response" (or "unknown"). */
const char *ipc_msg_type_name(int type);

/* Maximum length of the credentials part of a handshake that qmux accepts. */
#define IPC_HANDSHAKE_MAX 1024

struct ipc_handshake {
    size_t length;          /* bytes consumed, trailing NUL included */
    size_t credentials_len; /* bytes of "user:password" (capability byte excluded) */
    size_t user_len;        /* bytes before the first ':' (all of credentials without one) */
    int capability;         /* requested capability, 0 when the client sent none */
};

enum ipc_handshake_status {
    IPC_HANDSHAKE_INCOMPLETE = 0, /* no NUL yet; read more */
    IPC_HANDSHAKE_DONE = 1,
    IPC_HANDSHAKE_TOO_LONG = -1,  /* no NUL within IPC_HANDSHAKE_MAX + 2 bytes */
};

/*
 * Scans buf[0..len) for a login handshake: credentials, an optional capability byte and a
 * NUL. The byte before the NUL is taken as the capability when it is 1..6; otherwise the
 * whole string is credentials and the capability is 0, as early Java clients send it.
 * Returns an enum ipc_handshake_status; out is filled only for IPC_HANDSHAKE_DONE.
 */
int ipc_handshake_parse(const uint8_t *buf, size_t len, size_t max_len, struct ipc_handshake *out);

/* Reads an unsigned 32/64-bit integer in the given byte order. */
uint32_t ipc_read_u32(const uint8_t *p, int little_endian);
uint64_t ipc_read_u64(const uint8_t *p, int little_endian);

#endif
