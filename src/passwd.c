/*
 * passwd.c - password hash formats of the qmux users file (see passwd.h).
 */
#include "passwd.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define MD5_SIZE 16
#define SHA1_SIZE 20
#define SHA256_SIZE 32

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Writes the unpadded base64 form of data into out (NUL-terminated). Returns the number of
 * characters, or -1 when out is too small. */
static int base64_encode(const uint8_t *data, size_t size, char *out, size_t out_size)
{
    size_t needed = (size / 3) * 4 + (size % 3 == 0 ? 0 : size % 3 + 1);
    size_t o = 0;

    if (needed + 1 > out_size)
        return -1;
    for (size_t i = 0; i < size; i += 3) {
        uint32_t group = (uint32_t)data[i] << 16;
        size_t remaining = size - i;

        if (remaining > 1)
            group |= (uint32_t)data[i + 1] << 8;
        if (remaining > 2)
            group |= data[i + 2];
        out[o++] = base64_alphabet[(group >> 18) & 63];
        out[o++] = base64_alphabet[(group >> 12) & 63];
        if (remaining > 1)
            out[o++] = base64_alphabet[(group >> 6) & 63];
        if (remaining > 2)
            out[o++] = base64_alphabet[group & 63];
    }
    out[o] = '\0';
    return (int)o;
}

static int base64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

long passwd_base64_decode(const char *text, size_t length, uint8_t *out, size_t out_size)
{
    uint32_t bits = 0;
    unsigned bit_count = 0;
    size_t o = 0;

    if (length % 4 == 1)
        return -1;
    for (size_t i = 0; i < length; i++) {
        int value = base64_value(text[i]);

        if (value < 0)
            return -1;
        bits = (bits << 6) | (uint32_t)value;
        bit_count += 6;
        if (bit_count >= 8) {
            bit_count -= 8;
            if (o == out_size)
                return -1;
            out[o++] = (uint8_t)(bits >> bit_count);
            bits &= (1u << bit_count) - 1;
        }
    }
    if (bits != 0)
        return -1;  /* a canonical encoding leaves the unused low bits zero */
    return (long)o;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes 2 * size hex digits into out. Returns 0, or -1 when a character is not hex. */
static int hex_decode(const char *text, uint8_t *out, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        int high = hex_value(text[2 * i]);
        int low = hex_value(text[2 * i + 1]);

        if (high < 0 || low < 0)
            return -1;
        out[i] = (uint8_t)(high << 4 | low);
    }
    return 0;
}

static int is_hex(const char *text, size_t length)
{
    for (size_t i = 0; i < length; i++) {
        if (hex_value(text[i]) < 0)
            return 0;
    }
    return 1;
}

/* Computes a one-shot digest. Returns 0, or -1 when libcrypto fails. */
static int digest(const EVP_MD *md, const char *data, size_t length, uint8_t *out)
{
    unsigned int out_size = 0;

    return EVP_Digest(data, length, out, &out_size, md, NULL) == 1 ? 0 : -1;
}

int passwd_pbkdf2_sha256(const char *password, size_t length, const uint8_t *salt,
                         size_t salt_size, unsigned iterations, uint8_t *key, size_t key_size)
{
    if (length > INT_MAX || salt_size > INT_MAX || key_size > INT_MAX || iterations > INT_MAX)
        return -1;
    if (PKCS5_PBKDF2_HMAC(password != NULL ? password : "", (int)length, salt, (int)salt_size,
                          (int)iterations, EVP_sha256(), (int)key_size, key) != 1)
        return -1;
    return 0;
}

/* Parses the part after PASSWD_PBKDF2_PREFIX: ITERATIONS$SALT$HASH. */
static int parse_pbkdf2(const char *text, size_t length, struct passwd_entry *entry,
                        const char **error)
{
    const char *end = text + length;
    const char *p = text;
    unsigned long iterations = 0;

    if (p == end || *p < '1' || *p > '9') {
        *error = "invalid $pbkdf2-sha256$ hash: the iteration count is not a positive "
                 "decimal number";
        return -1;
    }
    while (p < end && *p >= '0' && *p <= '9') {
        iterations = iterations * 10 + (unsigned long)(*p - '0');
        if (iterations > PASSWD_MAX_ITERATIONS)
            break;
        p++;
    }
    if (iterations < PASSWD_MIN_ITERATIONS || iterations > PASSWD_MAX_ITERATIONS) {
        *error = "invalid $pbkdf2-sha256$ hash: the iteration count is outside 1000..10000000";
        return -1;
    }
    if (p == end || *p != '$') {
        *error = "invalid $pbkdf2-sha256$ hash: expected $ITERATIONS$SALT$HASH";
        return -1;
    }
    p++;

    const char *salt = p;
    const char *dollar = memchr(salt, '$', (size_t)(end - salt));
    if (dollar == NULL) {
        *error = "invalid $pbkdf2-sha256$ hash: expected $ITERATIONS$SALT$HASH";
        return -1;
    }
    long salt_size = passwd_base64_decode(salt, (size_t)(dollar - salt), entry->salt,
                                   sizeof(entry->salt));
    if (salt_size < PASSWD_MIN_SALT_SIZE) {
        *error = "invalid $pbkdf2-sha256$ hash: the salt is not 8 to 64 bytes of unpadded "
                 "base64";
        return -1;
    }

    const char *hash = dollar + 1;
    uint8_t key[PASSWD_DIGEST_MAX + 1];
    long key_size = passwd_base64_decode(hash, (size_t)(end - hash), key, sizeof(key));
    if (key_size != SHA256_SIZE) {
        *error = "invalid $pbkdf2-sha256$ hash: the hash is not 32 bytes of unpadded base64";
        return -1;
    }

    entry->format = PASSWD_FORMAT_PBKDF2_SHA256;
    entry->iterations = (unsigned)iterations;
    entry->salt_size = (size_t)salt_size;
    entry->digest_size = SHA256_SIZE;
    memcpy(entry->digest, key, SHA256_SIZE);
    return 0;
}

int passwd_parse(const char *text, size_t length, struct passwd_entry *entry,
                 const char **error)
{
    size_t prefix_length = strlen(PASSWD_PBKDF2_PREFIX);

    memset(entry, 0, sizeof(*entry));
    if (length == 0) {
        *error = "the password field is empty";
        return -1;
    }
    if (length >= prefix_length && memcmp(text, PASSWD_PBKDF2_PREFIX, prefix_length) == 0)
        return parse_pbkdf2(text + prefix_length, length - prefix_length, entry, error);
    if (text[0] == '$') {
        *error = "unsupported hash format: only $pbkdf2-sha256$ hashes start with '$' "
                 "(write plain-text passwords that start with '$' as hashes with qmux-passwd)";
        return -1;
    }
    if (length == 2 * MD5_SIZE && is_hex(text, length)) {
        entry->format = PASSWD_FORMAT_MD5;
        entry->digest_size = MD5_SIZE;
        return hex_decode(text, entry->digest, MD5_SIZE);
    }
    if (length == 2 * SHA1_SIZE && is_hex(text, length)) {
        entry->format = PASSWD_FORMAT_SHA1;
        entry->digest_size = SHA1_SIZE;
        return hex_decode(text, entry->digest, SHA1_SIZE);
    }
    entry->format = PASSWD_FORMAT_PLAIN;
    entry->digest_size = SHA256_SIZE;
    if (digest(EVP_sha256(), text, length, entry->digest) != 0) {
        *error = "SHA-256 failed in libcrypto";
        return -1;
    }
    return 0;
}

int passwd_verify(const struct passwd_entry *entry, const char *password, size_t length)
{
    uint8_t computed[PASSWD_DIGEST_MAX];
    int status;

    switch (entry->format) {
    case PASSWD_FORMAT_PBKDF2_SHA256:
        status = passwd_pbkdf2_sha256(password, length, entry->salt, entry->salt_size,
                                      entry->iterations, computed, entry->digest_size);
        break;
    case PASSWD_FORMAT_MD5:
        status = digest(EVP_md5(), password, length, computed);
        break;
    case PASSWD_FORMAT_SHA1:
        status = digest(EVP_sha1(), password, length, computed);
        break;
    case PASSWD_FORMAT_PLAIN:
        status = digest(EVP_sha256(), password, length, computed);
        break;
    default:
        return 0;
    }
    if (status != 0)
        return 0;

    int match = CRYPTO_memcmp(computed, entry->digest, entry->digest_size) == 0;
    OPENSSL_cleanse(computed, sizeof(computed));
    return match;
}

int passwd_hash_iterations(const char *password, size_t length, unsigned iterations,
                           char *out, size_t size)
{
    uint8_t salt[PASSWD_SALT_SIZE];
    uint8_t key[SHA256_SIZE];
    char salt_text[32];
    char key_text[64];
    int status = -1;

    if (iterations < PASSWD_MIN_ITERATIONS || iterations > PASSWD_MAX_ITERATIONS)
        return -1;
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return -1;
    if (passwd_pbkdf2_sha256(password, length, salt, sizeof(salt), iterations, key,
                             sizeof(key)) != 0)
        goto done;
    if (base64_encode(salt, sizeof(salt), salt_text, sizeof(salt_text)) < 0 ||
        base64_encode(key, sizeof(key), key_text, sizeof(key_text)) < 0)
        goto done;

    int written = snprintf(out, size, "%s%u$%s$%s", PASSWD_PBKDF2_PREFIX, iterations,
                           salt_text, key_text);
    if (written > 0 && (size_t)written < size)
        status = 0;
done:
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(key_text, sizeof(key_text));
    return status;
}

int passwd_hash(const char *password, char *out, size_t size)
{
    return passwd_hash_iterations(password, strlen(password), PASSWD_DEFAULT_ITERATIONS, out,
                                  size);
}

const char *passwd_format_name(int format)
{
    switch (format) {
    case PASSWD_FORMAT_PBKDF2_SHA256:
        return "pbkdf2-sha256";
    case PASSWD_FORMAT_MD5:
        return "md5";
    case PASSWD_FORMAT_SHA1:
        return "sha1";
    case PASSWD_FORMAT_PLAIN:
        return "plain";
    default:
        return "unknown";
    }
}
