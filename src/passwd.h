/*
 * passwd.h - password hash formats of the qmux users file.
 *
 * The native format is PBKDF2-HMAC-SHA256 (RFC 8018) with a random 16-byte salt, written
 *   $pbkdf2-sha256$ITERATIONS$SALT$HASH
 * where SALT and HASH are standard base64 (RFC 4648 alphabet with '+' and '/') without
 * '=' padding, and HASH is the 32-byte derived key. The other formats exist to import
 * kdb+ -u/-U password files unchanged: an MD5 digest of the password as 32 hex digits, a
 * SHA-1 digest as 40 hex digits, or the password itself in plain text. As in kdb+, a plain
 * password that happens to be 32 or 40 hex digits is read as a digest.
 *
 * Depends on libcrypto (OpenSSL 1.1 or 3.x) only.
 */
#ifndef QMUX_PASSWD_H
#define QMUX_PASSWD_H

#include <stddef.h>
#include <stdint.h>

#define PASSWD_PBKDF2_PREFIX "$pbkdf2-sha256$"

/* Iteration count that passwd_hash uses. See docs/security.md for the cost per login. */
#define PASSWD_DEFAULT_ITERATIONS 100000

/* Iteration counts accepted in a stored hash and by passwd_hash_iterations. */
#define PASSWD_MIN_ITERATIONS 1000
#define PASSWD_MAX_ITERATIONS 10000000

#define PASSWD_SALT_SIZE 16
#define PASSWD_MIN_SALT_SIZE 8
#define PASSWD_MAX_SALT_SIZE 64
#define PASSWD_DIGEST_MAX 32

/* Size of a buffer that fits any hash passwd_hash writes, NUL included. */
#define PASSWD_HASH_TEXT_MAX 128

enum passwd_format {
    PASSWD_FORMAT_PBKDF2_SHA256 = 0,
    PASSWD_FORMAT_MD5,          /* kdb+: md5 of the password, 32 hex digits */
    PASSWD_FORMAT_SHA1,         /* kdb+ 4.0 2020.03.17+: sha1 of the password, 40 hex digits */
    PASSWD_FORMAT_PLAIN,        /* kdb+: the password as written */
};

/*
 * A parsed stored hash. For PASSWD_FORMAT_PLAIN, digest is the SHA-256 of the password.
 * So the password itself is not kept in memory, and comparisons take the same time
 * whatever its length.
 */
struct passwd_entry {
    int format;                         /* enum passwd_format */
    unsigned iterations;                /* PBKDF2 only */
    size_t salt_size;                   /* PBKDF2 only */
    uint8_t salt[PASSWD_MAX_SALT_SIZE];
    size_t digest_size;
    uint8_t digest[PASSWD_DIGEST_MAX];
};

/*
 * Parses the stored hash text[0..length). Returns 0 and fills entry, or -1 with *error
 * set to a static description of the problem that never quotes the text. Text starting
 * with '$' must be a valid native hash: other crypt(3)-style formats are rejected rather
 * than taken as plain passwords. An empty text is rejected.
 */
int passwd_parse(const char *text, size_t length, struct passwd_entry *entry,
                 const char **error);

/*
 * Checks password[0..length) against entry. Returns 1 on a match, 0 on a mismatch or
 * when libcrypto fails. The final comparison uses CRYPTO_memcmp, so its time does not
 * depend on where the digests differ.
 */
int passwd_verify(const struct passwd_entry *entry, const char *password, size_t length);

/*
 * Writes the native hash of password (NUL-terminated) with a new random salt and
 * PASSWD_DEFAULT_ITERATIONS into out. Returns 0, or -1 when out is smaller than the
 * text or when libcrypto fails (no random bytes).
 */
int passwd_hash(const char *password, char *out, size_t size);

/* As passwd_hash, for password[0..length) and the given iteration count, which must be
 * within PASSWD_MIN_ITERATIONS..PASSWD_MAX_ITERATIONS. */
int passwd_hash_iterations(const char *password, size_t length, unsigned iterations,
                           char *out, size_t size);

/* Derives key_size bytes with PBKDF2-HMAC-SHA256. Returns 0, or -1 when libcrypto fails. */
int passwd_pbkdf2_sha256(const char *password, size_t length, const uint8_t *salt,
                         size_t salt_size, unsigned iterations, uint8_t *key, size_t key_size);

/* Returns "pbkdf2-sha256", "md5", "sha1" or "plain". */
const char *passwd_format_name(int format);

/*
 * Decodes unpadded standard base64 text[0..length) (RFC 4648, '+' and '/') into out.
 * Returns the number of bytes, or -1 on a character outside the alphabet, a length that
 * no byte count produces (4n + 1), bits left over in the last character, or more than
 * out_size bytes.
 */
long passwd_base64_decode(const char *text, size_t length, uint8_t *out, size_t out_size);

#endif
