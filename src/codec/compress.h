/*
 * compress.h - kdb+ IPC message compression and decompression.
 *
 * The algorithm is kdb+'s own LZ77 variant: groups of one control byte and up to eight
 * tokens, where a token is a literal byte or a two-byte back-reference (hash slot, extra
 * length) into a 256-slot table keyed by the XOR of a byte pair. The compressor reproduces
 * kdb+'s output byte for byte, in both byte orders, with the 4-byte size field (header
 * byte 2 = 1) and the 8-byte one (byte 2 = 2, for uncompressed sizes of 2^32 and more).
 *
 * No libevent dependency: the daemon, the stand-in server and the tests share it.
 */
#ifndef QMUX_COMPRESS_H
#define QMUX_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

/*
 * kdb+ compresses only messages whose body (the bytes after the 8-byte header) is larger
 * than this. KX's C API was observed compressing from a total of 2009 bytes and sending
 * messages of 2000..2008 bytes plain; Java and kdbplus test the total instead. qmux follows
 * the C API, the only boundary that was observed from KX code.
 */
#define COMPRESS_MIN_BODY 2000

/*
 * Returns 1 when kdb+ would try to compress a message of total length bytes on a
 * connection with the given agreed capability: capability >= 1, body larger than
 * COMPRESS_MIN_BODY, and a peer that is not local (loopback or Unix domain socket).
 * Whether the attempt succeeds is compress_message's decision.
 */
int compress_wanted(int capability, uint64_t length, int peer_is_local);

/*
 * Compresses the uncompressed message msg[0..n), header included, into out, which must
 * hold n / 2 bytes. Returns the compressed length (header included), or 0 when the result
 * would not fit in n / 2 bytes; then the message goes out uncompressed, as kdb+ does.
 * Messages shorter than 58 bytes always return 0, because the first group alone could
 * exceed half of them. The output keeps msg's byte order and message type byte.
 */
uint64_t compress_message(const uint8_t *msg, uint64_t n, uint8_t *out);

/*
 * Reads the uncompressed size (header included) declared by the compressed message
 * msg[0..len). Returns 0 and sets *size, or -1 when msg is not a well-formed compressed
 * message: byte 2 not 1 or 2, len shorter than the size field or different from the
 * header's length, or a declared size below the 10-byte minimum message or above 2^40 - 1.
 */
int decompress_size(const uint8_t *msg, uint64_t len, uint64_t *size);

/*
 * Decompresses msg[0..len) into out[0..size), where size comes from decompress_size.
 * out receives a complete uncompressed message: msg's byte order and message type, byte 2
 * set to 0 and the length fields set to size. Returns 0, or -1 with a NUL-terminated
 * reason in err that names the offending byte offset of msg. Never reads msg outside
 * [0, len) nor writes out outside [0, size), whatever the input.
 */
int decompress_message(const uint8_t *msg, uint64_t len, uint8_t *out, uint64_t size,
                       char *err, size_t errlen);

#endif
