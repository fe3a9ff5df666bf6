/*
 * codec_bench.c - compression and decompression throughput of compress_message and
 * decompress_message on three payloads, each a complete response message:
 *
 *   long_vector  the response of `til N`: longs 0, 1, 2, ... (compresses well)
 *   table        the response of `.standin.table N`: id long, sym symbol cycling a b c d,
 *                price float, size int and time timestamp columns, as docs/standin.md
 *                defines them
 *   random       a byte vector of pseudo-random bytes, which does not compress, so only
 *                the compression attempt is timed
 *
 * Throughput is uncompressed bytes per second of the fastest of R runs, in MB/s (10^6
 * bytes), counted in CPU time of this thread (CLOCK_THREAD_CPUTIME_ID) so that time spent
 * waiting for a core on a shared machine does not count. The wall-clock figure is printed
 * too. Each round trip is checked byte for byte once.
 */
#include "codec_bench.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compress.h"
#include "engine.h"
#include "ipc.h"
#include "qenc.h"

#define ITEMS_PER_CHUNK 65536


static int build_long_vector(struct qenc *b, uint64_t target_bytes)
{
    uint64_t count = target_bytes / 8;
    int64_t chunk[ITEMS_PER_CHUNK];

    qenc_begin(b, IPC_RESPONSE);
    qenc_vector_header(b, QT_LONG, 0, count);
    for (uint64_t i = 0; i < count; i += ITEMS_PER_CHUNK) {
        uint64_t n = count - i < ITEMS_PER_CHUNK ? count - i : ITEMS_PER_CHUNK;

        for (uint64_t k = 0; k < n; k++)
            chunk[k] = (int64_t)(i + k);
        qenc_raw(b, chunk, n * sizeof(chunk[0]));
    }
    return qenc_end(b);
}

/* The columns of .standin.table take 8 + 2 + 8 + 4 + 8 bytes per row. */
static int build_table(struct qenc *b, uint64_t target_bytes)
{
    static const char *const columns[] = { "id", "sym", "price", "size", "time" };
    static const char *const symbols[] = { "a", "b", "c", "d" };
    uint64_t rows = target_bytes / 30;
    /* 2024.01.01D09:30:00 is 8766 days and 9.5 hours after the kdb+ epoch 2000.01.01. */
    int64_t first_time = INT64_C(8766) * 86400 * 1000000000 + INT64_C(34200) * 1000000000;

    qenc_begin(b, IPC_RESPONSE);
    qenc_table(b, columns, 5);

    qenc_vector_header(b, QT_LONG, 0, rows);
    for (uint64_t i = 0; i < rows; i++) {
        int64_t value = (int64_t)i;
        qenc_raw(b, &value, sizeof(value));
    }
    qenc_vector_header(b, QT_SYMBOL, 0, rows);
    for (uint64_t i = 0; i < rows; i++)
        qenc_raw(b, symbols[i % 4], 2);
    qenc_vector_header(b, QT_FLOAT, 0, rows);
    for (uint64_t i = 0; i < rows; i++) {
        double value = 100.0 + 0.25 * (double)(i % 100);
        qenc_raw(b, &value, sizeof(value));
    }
    qenc_vector_header(b, QT_INT, 0, rows);
    for (uint64_t i = 0; i < rows; i++) {
        int32_t value = (int32_t)(100 * (1 + i % 10));
        qenc_raw(b, &value, sizeof(value));
    }
    qenc_vector_header(b, QT_TIMESTAMP, 0, rows);
    for (uint64_t i = 0; i < rows; i++) {
        int64_t value = first_time + (int64_t)i * 1000000;
        qenc_raw(b, &value, sizeof(value));
    }
    return qenc_end(b);
}

static int build_random(struct qenc *b, uint64_t target_bytes)
{
    uint64_t state = UINT64_C(0x9e3779b97f4a7c15);
    uint64_t chunk[ITEMS_PER_CHUNK];

    qenc_begin(b, IPC_RESPONSE);
    qenc_vector_header(b, QT_BYTE, 0, target_bytes / 8 * 8);
    for (uint64_t i = 0; i < target_bytes / 8; i += ITEMS_PER_CHUNK) {
        uint64_t n = target_bytes / 8 - i < ITEMS_PER_CHUNK ? target_bytes / 8 - i
                                                            : ITEMS_PER_CHUNK;

        for (uint64_t k = 0; k < n; k++) {
            /* xorshift64* */
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            chunk[k] = state * UINT64_C(2685821657736338717);
        }
        qenc_raw(b, chunk, n * sizeof(chunk[0]));
    }
    return qenc_end(b);
}

struct payload {
    const char *name;
    int (*build)(struct qenc *b, uint64_t target_bytes);
};

/* CPU time and wall-clock time, in seconds. */
struct timing {
    double cpu;
    double wall;
};

static struct timing timing_now(void)
{
    struct timespec cpu;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
    return (struct timing){
        .cpu = (double)cpu.tv_sec + (double)cpu.tv_nsec / 1e9,
        .wall = (double)bench_now_ns() / 1e9,
    };
}

/* Keeps the fastest run in *best, per clock; a negative field means no run yet. */
static void keep_fastest(struct timing *best, struct timing started)
{
    struct timing now = timing_now();
    double cpu = now.cpu - started.cpu;
    double wall = now.wall - started.wall;

    if (best->cpu < 0 || cpu < best->cpu)
        best->cpu = cpu;
    if (best->wall < 0 || wall < best->wall)
        best->wall = wall;
}

static int measure(const struct payload *payload, uint64_t size, int repeats)
{
    struct qenc b;

    qenc_init(&b);
    if (payload->build(&b, size) != 0 || b.failed) {
        fprintf(stderr, "qmux-bench codec: cannot build the %s payload (out of memory)\n",
                payload->name);
        qenc_free(&b);
        return 1;
    }

    uint64_t length = b.len;
    uint8_t *compressed = malloc(length / 2 + 16);
    uint8_t *restored = malloc(length);
    if (compressed == NULL || restored == NULL) {
        fprintf(stderr, "qmux-bench codec: out of memory for %" PRIu64 " bytes\n", length);
        free(compressed);
        free(restored);
        qenc_free(&b);
        return 1;
    }

    struct timing compress_best = { -1, -1 };
    uint64_t compressed_length = 0;
    for (int r = 0; r < repeats; r++) {
        struct timing started = timing_now();
        compressed_length = compress_message(b.data, length, compressed);
        keep_fastest(&compress_best, started);
    }

    int status = 0;
    struct timing decompress_best = { -1, -1 };
    if (compressed_length > 0) {
        char error[160] = "invalid size field";
        uint64_t size_declared = 0;

        for (int r = 0; r < repeats && status == 0; r++) {
            struct timing started = timing_now();
            if (decompress_size(compressed, compressed_length, &size_declared) != 0 ||
                size_declared != length ||
                decompress_message(compressed, compressed_length, restored, size_declared,
                                   error, sizeof(error)) != 0) {
                fprintf(stderr, "qmux-bench codec: %s: decompression failed: %s\n",
                        payload->name, error);
                status = 1;
                break;
            }
            keep_fastest(&decompress_best, started);
        }
        if (status == 0 && memcmp(restored, b.data, length) != 0) {
            fprintf(stderr, "qmux-bench codec: %s: the round trip changed the message\n",
                    payload->name);
            status = 1;
        }
    }

    double megabytes = (double)length / 1e6;
    printf("payload=%s bytes=%" PRIu64 " compressed_bytes=%" PRIu64 " ratio=%.3f "
           "compress_mbps=%.0f compress_wall_mbps=%.0f ", payload->name, length,
           compressed_length,
           compressed_length > 0 ? (double)compressed_length / (double)length : 1.0,
           megabytes / compress_best.cpu, megabytes / compress_best.wall);
    if (decompress_best.cpu > 0)
        printf("decompress_mbps=%.0f decompress_wall_mbps=%.0f\n",
               megabytes / decompress_best.cpu, megabytes / decompress_best.wall);
    else
        printf("decompress_mbps=na decompress_wall_mbps=na\n");

    free(compressed);
    free(restored);
    qenc_free(&b);
    return status;
}

int codec_bench_main(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "size", required_argument, NULL, 's' },
        { "repeats", required_argument, NULL, 'r' },
        { NULL, 0, NULL, 0 },
    };
    static const struct payload payloads[] = {
        { "long_vector", build_long_vector },
        { "table", build_table },
        { "random", build_random },
    };
    double size_mib = 64;
    int repeats = 5;
    int option;

    optind = 1;
    while ((option = getopt_long(argc, argv, "s:r:", long_options, NULL)) != -1) {
        switch (option) {
        case 's':
            size_mib = atof(optarg);
            break;
        case 'r':
            repeats = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: qmux-bench codec [-s MIB] [-r REPEATS]\n");
            return 2;
        }
    }
    /* Up to 8 GiB, so a round trip beyond 4 GiB (the 8-byte size field) can be checked
     * where memory allows: it needs about 2.5 times the size. */
    if (size_mib < 0.01 || size_mib > 8192 || repeats < 1) {
        fprintf(stderr, "qmux-bench codec: -s must be 0.01..8192 MiB and -r at least 1\n");
        return 2;
    }

    uint64_t size = (uint64_t)(size_mib * 1024 * 1024);
    int status = 0;
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++)
        status |= measure(&payloads[i], size, repeats);
    return status;
}
