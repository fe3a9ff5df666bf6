/*
 * check_compress.c - kdb+ IPC compression: real kdb+ samples, the worked 1000#`ab example
 * in both byte orders, round trips and malformed input.
 */
#include "suites.h"

#include "compress.h"
#include "ipc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Decodes hex text (either case, no separators) into a new buffer. */
static uint8_t *hex_decode(const char *hex, size_t *n)
{
    size_t digits = strlen(hex);
    uint8_t *bytes = malloc(digits / 2 + 1);

    ck_assert_ptr_nonnull(bytes);
    for (size_t i = 0; i + 1 < digits; i += 2) {
        unsigned value;
        ck_assert_int_eq(sscanf(hex + i, "%2x", &value), 1);
        bytes[i / 2] = (uint8_t)value;
    }
    *n = digits / 2;
    return bytes;
}

/* Decompresses msg into a buffer of exactly the declared size, so ASan sees any overrun. */
static uint8_t *decompress_new(const uint8_t *msg, uint64_t len, uint64_t *size, char *err,
                               size_t errlen)
{
    if (decompress_size(msg, len, size) != 0) {
        snprintf(err, errlen, "decompress_size rejected the message");
        return NULL;
    }

    uint8_t *out = malloc(*size);
    ck_assert_ptr_nonnull(out);
    if (decompress_message(msg, len, out, *size, err, errlen) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* Compresses msg and checks that decompressing restores it; returns the compressed length. */
static uint64_t check_round_trip(const uint8_t *msg, uint64_t n)
{
    uint8_t *packed = malloc(n / 2 + 1);
    char err[256];

    ck_assert_ptr_nonnull(packed);
    uint64_t packed_len = compress_message(msg, n, packed);
    if (packed_len != 0) {
        ck_assert_uint_le(packed_len, n / 2);
        uint64_t size = 0;
        uint8_t *restored = decompress_new(packed, packed_len, &size, err, sizeof(err));
        ck_assert_msg(restored != NULL, "round trip of %llu bytes failed: %s",
                      (unsigned long long)n, err);
        ck_assert_uint_eq(size, n);
        ck_assert_mem_eq(restored, msg, n);
        free(restored);
    }
    free(packed);
    return packed_len;
}

/* Builds a little-endian response of total length n: a char vector of n - 14 zero bytes,
 * or for n < 14 a char atom followed by zero bytes. The caller fills in the items. */
static uint8_t *message_new(uint64_t n)
{
    uint8_t *msg = calloc(1, n);

    ck_assert_ptr_nonnull(msg);
    ipc_header_write(msg, IPC_RESPONSE, n);
    if (n < 14) {
        msg[8] = (uint8_t)-10;
        return msg;
    }
    msg[8] = 10;
    uint32_t count = (uint32_t)(n - 14);
    memcpy(msg + 10, &count, 4);
    return msg;
}

/* Turns message_new's little-endian message into a big-endian one. */
static void make_big_endian(uint8_t *msg, uint64_t n)
{
    msg[0] = 0;
    for (int i = 0; i < 4; i++)
        msg[4 + i] = (uint8_t)(n >> (8 * (3 - i)));
}

/* Returns the item count of the first column of a table body or of a vector body. */
static uint32_t body_count(const uint8_t *msg, uint64_t n)
{
    uint64_t p = 8;

    if (msg[p] == 98) {
        /* 62 00 63 0b 00 <ncols u32> <names> 00 00 <ncols u32> <first column> */
        uint32_t columns;
        memcpy(&columns, msg + p + 5, 4);
        p += 9;
        for (uint32_t i = 0; i < columns; i++) {
            while (p < n && msg[p] != 0)
                p++;
            p++;
        }
        p += 6;
    }
    ck_assert_uint_lt(p + 6, n);

    uint32_t count;
    memcpy(&count, msg + p + 2, 4);
    return count;
}

START_TEST(kdb_samples_round_trip)
{
    const char *dir = testdata_dir();
    if (dir == NULL)
        return;

    char path[4200];
    snprintf(path, sizeof(path), "%s/compressed-samples.txt", dir);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);

    static char line[1 << 20];
    int samples = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        char name[64];
        unsigned long count;
        char *hex = strrchr(line, '\t');
        ck_assert_ptr_nonnull(hex);
        hex++;
        hex[strcspn(hex, "\r\n")] = '\0';
        ck_assert_int_eq(sscanf(line, "%63s %lu", name, &count), 2);

        size_t len;
        uint8_t *msg = hex_decode(hex, &len);
        uint64_t size = 0;
        char err[256];
        uint8_t *plain = decompress_new(msg, len, &size, err, sizeof(err));
        ck_assert_msg(plain != NULL, "sample %s: %s", name, err);
        ck_assert_uint_eq(plain[2], 0);
        ck_assert_uint_eq(body_count(plain, size), count);

        uint8_t *packed = malloc(size / 2);
        ck_assert_ptr_nonnull(packed);
        uint64_t packed_len = compress_message(plain, size, packed);
        ck_assert_msg(packed_len == len, "sample %s: recompressed to %llu bytes, kdb+ made %zu",
                      name, (unsigned long long)packed_len, len);
        ck_assert_msg(memcmp(packed, msg, len) == 0, "sample %s: recompressed bytes differ",
                      name);

        free(packed);
        free(plain);
        free(msg);
        samples++;
    }
    fclose(f);
    ck_assert_int_eq(samples, 17);
}
END_TEST

/* The symbol vector 1000#`ab as a little- or big-endian message of 3014 bytes. */
static uint8_t *symbols_ab_new(int little_endian)
{
    const uint64_t n = 3014;
    uint8_t *msg = malloc(n);

    ck_assert_ptr_nonnull(msg);
    const uint8_t le_head[] = {1, 0, 0, 0, 0xc6, 0x0b, 0, 0, 0x0b, 0, 0xe8, 0x03, 0, 0};
    const uint8_t be_head[] = {0, 0, 0, 0, 0, 0, 0x0b, 0xc6, 0x0b, 0, 0, 0, 0x03, 0xe8};
    memcpy(msg, little_endian ? le_head : be_head, sizeof(le_head));
    for (uint64_t p = 14; p < n; p += 3)
        memcpy(msg + p, "ab", 3);
    return msg;
}

static void check_worked_example(int little_endian, const char *expected_hex)
{
    size_t expected_len;
    uint8_t *expected = hex_decode(expected_hex, &expected_len);
    uint8_t *msg = symbols_ab_new(little_endian);
    uint8_t packed[3014 / 2];

    uint64_t packed_len = compress_message(msg, 3014, packed);
    ck_assert_uint_eq(packed_len, expected_len);
    ck_assert_mem_eq(packed, expected, expected_len);

    uint64_t size = 0;
    char err[256];
    uint8_t *plain = decompress_new(expected, expected_len, &size, err, sizeof(err));
    ck_assert_msg(plain != NULL, "%s", err);
    ck_assert_uint_eq(size, 3014);
    ck_assert_mem_eq(plain, msg, 3014);

    free(plain);
    free(msg);
    free(expected);
}

START_TEST(worked_example_little_endian)
{
    check_worked_example(1, "010001002f000000c60b0000"
                            "000b00e80300006162"
                            "ff61ff62ff03ff61ff62ff03ff61ff62ff"
                            "0f03ff61ff62ff03a9");
}
END_TEST

START_TEST(worked_example_big_endian)
{
    check_worked_example(0, "0000010000000030" "00000bc6"
                            "000b00000003e86162"
                            "fe0003ff61ff62ff03ff61ff62ff03ff"
                            "1f61ff62ff03ff61ff62a8");
}
END_TEST

START_TEST(all_zero_round_trip)
{
    const uint64_t sizes[] = {58, 100, 2009, 65536, 1000003};

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint8_t *msg = message_new(sizes[i]);
        ck_assert_uint_gt(check_round_trip(msg, sizes[i]), 0);
        free(msg);
    }
}
END_TEST

START_TEST(repetitive_round_trip)
{
    const uint64_t n = 200000;
    uint8_t *msg = message_new(n);

    for (uint64_t p = 14; p < n; p++)
        msg[p] = (uint8_t)("abcdefg"[p % 7]);
    ck_assert_uint_gt(check_round_trip(msg, n), 0);

    /* A long vector 0 1 2 ...: short repeats inside each item. */
    for (uint64_t p = 14; p + 8 <= n; p += 8) {
        uint64_t item = (p - 14) / 8;
        memcpy(msg + p, &item, 8);
    }
    ck_assert_uint_gt(check_round_trip(msg, n), 0);
    free(msg);
}
END_TEST

START_TEST(random_input_not_compressed)
{
    const uint64_t n = 100000;
    uint8_t *msg = message_new(n);

    srand(7);
    for (uint64_t p = 14; p < n; p++)
        msg[p] = (uint8_t)rand();

    uint8_t *packed = malloc(n / 2);
    ck_assert_ptr_nonnull(packed);
    ck_assert_uint_eq(compress_message(msg, n, packed), 0);
    free(packed);
    free(msg);
}
END_TEST

/* Random messages made of literal bytes and copies of earlier stretches, as real data is:
 * some compress, some do not, and every one that compresses must come back unchanged. */
START_TEST(random_compressible_round_trip)
{
    srand(11);
    int compressed = 0;

    for (int round = 0; round < 400; round++) {
        uint64_t n = 20 + (uint64_t)(rand() % 6000);
        uint8_t *msg = message_new(n);
        if (rand() % 2 == 0)
            make_big_endian(msg, n);
        int alphabet = 1 + rand() % 255;
        uint64_t p = 14;
        while (p < n) {
            if (p > 20 && rand() % 3 != 0) {
                uint64_t from = 14 + (uint64_t)rand() % (p - 14);
                uint64_t run = 1 + (uint64_t)(rand() % 300);
                for (uint64_t k = 0; k < run && p < n; k++)
                    msg[p++] = msg[from + k];
            } else {
                msg[p++] = (uint8_t)(rand() % alphabet);
            }
        }
        if (check_round_trip(msg, n) != 0)
            compressed++;
        free(msg);
    }
    ck_assert_int_gt(compressed, 200);
}
END_TEST

START_TEST(short_messages_round_trip)
{
    for (uint64_t n = IPC_MIN_LENGTH; n < 200; n++) {
        uint8_t *msg = message_new(n);
        uint64_t packed_len = check_round_trip(msg, n);
        if (n < 58)
            ck_assert_uint_eq(packed_len, 0);
        free(msg);
    }
}
END_TEST

START_TEST(threshold_rule)
{
    ck_assert_int_eq(compress_wanted(3, 2008, 0), 0);
    ck_assert_int_eq(compress_wanted(3, 2009, 0), 1);
    ck_assert_int_eq(compress_wanted(1, 2009, 0), 1);
    ck_assert_int_eq(compress_wanted(0, 2009, 0), 0);
    ck_assert_int_eq(compress_wanted(6, 2009, 1), 0);
    ck_assert_int_eq(compress_wanted(6, 4, 0), 0);

    uint8_t *msg = message_new(2009);
    ck_assert_uint_gt(check_round_trip(msg, 2009), 0);
    free(msg);
}
END_TEST

/* A compressed copy of 5000 zero-bodied bytes, for the malformed-input tests. */
static uint8_t *zeros_compressed_new(uint64_t *len)
{
    uint8_t *msg = message_new(5000);
    uint8_t *packed = malloc(2500);

    ck_assert_ptr_nonnull(packed);
    *len = compress_message(msg, 5000, packed);
    ck_assert_uint_gt(*len, 0);
    free(msg);
    return packed;
}

static void set_length(uint8_t *msg, uint64_t len)
{
    msg[3] = (uint8_t)(len >> 32);
    uint32_t low = (uint32_t)len;
    memcpy(msg + 4, &low, 4);
}

START_TEST(truncated_input_rejected)
{
    uint64_t len;
    uint8_t *packed = zeros_compressed_new(&len);
    uint8_t out[5000];
    char err[256];

    for (uint64_t cut = IPC_MIN_COMPRESSED_LENGTH; cut < len; cut++) {
        uint8_t *copy = malloc(cut);
        ck_assert_ptr_nonnull(copy);
        memcpy(copy, packed, cut);
        set_length(copy, cut);
        ck_assert_int_eq(decompress_message(copy, cut, out, 5000, err, sizeof(err)), -1);
        ck_assert_msg(strstr(err, "ends with") != NULL, "cut at %llu: %s",
                      (unsigned long long)cut, err);
        free(copy);
    }

    /* The header's length must match the bytes given. */
    uint64_t size;
    ck_assert_int_eq(decompress_size(packed, len - 1, &size), -1);
    free(packed);
}
END_TEST

START_TEST(bad_back_reference_rejected)
{
    /* A group whose first token is a match, before any pair was indexed. */
    uint8_t msg[] = {1, 2, 1, 0, 16, 0, 0, 0, 40, 0, 0, 0, 0x01, 0x61, 0x05, 0x00};
    uint8_t out[40];
    char err[256];

    ck_assert_int_eq(decompress_message(msg, sizeof(msg), out, 40, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "byte 13: back-reference to hash slot 0x61") != NULL, "%s", err);
}
END_TEST

START_TEST(size_lies_rejected)
{
    uint64_t len;
    uint8_t *packed = zeros_compressed_new(&len);
    char err[256];

    /* Declared larger than the stream produces: the stream runs out. */
    uint32_t bigger = 6000;
    memcpy(packed + 8, &bigger, 4);
    uint8_t *out = malloc(6000);
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(decompress_message(packed, len, out, 6000, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "ends with") != NULL, "%s", err);
    free(out);

    /* Declared smaller: a run crosses the end, or bytes are left over. */
    for (uint32_t smaller = 4990; smaller > 4000; smaller -= 7) {
        memcpy(packed + 8, &smaller, 4);
        out = malloc(smaller);
        ck_assert_ptr_nonnull(out);
        ck_assert_int_eq(decompress_message(packed, len, out, smaller, err, sizeof(err)), -1);
        ck_assert_msg(strstr(err, "runs past") != NULL || strstr(err, "remain") != NULL,
                      "%s", err);
        free(out);
    }

    /* Below the minimum message, above 2^40 - 1, and not what the caller allocated. */
    uint64_t size;
    uint32_t tiny = 9;
    memcpy(packed + 8, &tiny, 4);
    ck_assert_int_eq(decompress_size(packed, len, &size), -1);
    uint32_t good = 5000;
    memcpy(packed + 8, &good, 4);
    uint8_t small_out[100];
    ck_assert_int_eq(decompress_message(packed, len, small_out, 100, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "byte 0:") != NULL, "%s", err);

    uint8_t flag2[] = {1, 2, 2, 0, 17, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0};
    ck_assert_int_eq(decompress_size(flag2, sizeof(flag2), &size), -1);
    free(packed);
}
END_TEST

/* Random corruption of a valid message must give an error or a result, never a crash:
 * ASan checks every read and write of these exact-size buffers. */
START_TEST(corrupted_input_never_crashes)
{
    size_t len;
    uint8_t *msg = hex_decode("010001002f000000c60b0000000b00e80300006162ff61ff62ff03ff61ff62"
                              "ff03ff61ff62ff0f03ff61ff62ff03a9", &len);
    uint8_t *copy = malloc(len);
    ck_assert_ptr_nonnull(copy);
    char err[256];
    srand(3);

    for (int round = 0; round < 20000; round++) {
        memcpy(copy, msg, len);
        int flips = 1 + rand() % 4;
        for (int k = 0; k < flips; k++)
            copy[12 + (size_t)rand() % (len - 12)] = (uint8_t)rand();

        uint64_t size;
        if (decompress_size(copy, len, &size) != 0)
            continue;
        uint8_t *out = malloc(size);
        ck_assert_ptr_nonnull(out);
        if (decompress_message(copy, len, out, size, err, sizeof(err)) != 0)
            ck_assert_msg(strncmp(err, "byte ", 5) == 0, "%s", err);
        free(out);
    }
    free(copy);
    free(msg);
}
END_TEST

/* Reports throughput; the sanitizer build is several times slower than a release build. */
START_TEST(decompress_throughput)
{
    const uint64_t n = 64u << 20;
    uint8_t *msg = message_new(n);
    for (uint64_t p = 14; p < n; p++)
        msg[p] = (uint8_t)("0123456789abcdef"[(p / 64) % 16]);

    uint8_t *packed = malloc(n / 2);
    uint8_t *out = malloc(n);
    ck_assert_ptr_nonnull(packed);
    ck_assert_ptr_nonnull(out);
    uint64_t packed_len = compress_message(msg, n, packed);
    ck_assert_uint_gt(packed_len, 0);

    char err[256];
    struct timespec start, stop;
    clock_gettime(CLOCK_MONOTONIC, &start);
    ck_assert_int_eq(decompress_message(packed, packed_len, out, n, err, sizeof(err)), 0);
    clock_gettime(CLOCK_MONOTONIC, &stop);
    ck_assert_mem_eq(out, msg, n);

    double seconds = (double)(stop.tv_sec - start.tv_sec) + (stop.tv_nsec - start.tv_nsec) / 1e9;
    fprintf(stderr, "decompress: %.0f MB/s on %llu bytes of repetitive data\n",
            (double)n / seconds / 1e6, (unsigned long long)n);
    free(out);
    free(packed);
    free(msg);
}
END_TEST

Suite *compress_suite(void)
{
    Suite *s = suite_create("compress");
    TCase *samples = tcase_create("samples");
    TCase *round_trips = tcase_create("round_trips");
    TCase *malformed = tcase_create("malformed");

    tcase_add_test(samples, kdb_samples_round_trip);
    tcase_add_test(samples, worked_example_little_endian);
    tcase_add_test(samples, worked_example_big_endian);
    suite_add_tcase(s, samples);

    tcase_set_timeout(round_trips, 60);
    tcase_add_test(round_trips, all_zero_round_trip);
    tcase_add_test(round_trips, repetitive_round_trip);
    tcase_add_test(round_trips, random_input_not_compressed);
    tcase_add_test(round_trips, random_compressible_round_trip);
    tcase_add_test(round_trips, short_messages_round_trip);
    tcase_add_test(round_trips, threshold_rule);
    tcase_add_test(round_trips, decompress_throughput);
    suite_add_tcase(s, round_trips);

    tcase_set_timeout(malformed, 60);
    tcase_add_test(malformed, truncated_input_rejected);
    tcase_add_test(malformed, bad_back_reference_rejected);
    tcase_add_test(malformed, size_lies_rejected);
    tcase_add_test(malformed, corrupted_input_never_crashes);
    suite_add_tcase(s, malformed);
    return s;
}
