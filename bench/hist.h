/*
 * hist.h - a log-linear latency histogram in the style of HdrHistogram.
 *
 * Values below 256 get one bucket each. Above that, every power-of-two range [2^e, 2^e+1)
 * is split into 128 equal buckets, so a reported percentile is within 1/128 (0.8 %) of
 * the recorded value. Values are unsigned 64-bit integers in any unit; qmux-bench records
 * nanoseconds. The minimum, maximum and sum are kept exactly.
 */
#ifndef QMUX_BENCH_HIST_H
#define QMUX_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 8
#define HIST_HALF (1u << (HIST_SUB_BITS - 1))
/* Enough buckets for any uint64_t value: 64 - HIST_SUB_BITS + 2 ranges of HIST_HALF. */
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 2) * HIST_HALF)

struct hist {
    uint64_t count;
    uint64_t min;
    uint64_t max;
    long double sum;
    uint64_t buckets[HIST_BUCKETS];
};

void hist_init(struct hist *h);
void hist_record(struct hist *h, uint64_t value);

/*
 * Returns the value at percentile p (0 < p <= 100): the midpoint of the bucket holding the
 * value of rank ceil(p / 100 * count), clamped to [min, max]. Returns 0 when empty.
 */
uint64_t hist_percentile(const struct hist *h, double p);

double hist_mean(const struct hist *h);

#endif
