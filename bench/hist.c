/*
 * hist.c - the log-linear histogram of hist.h.
 */
#include "hist.h"

#include <math.h>
#include <string.h>

void hist_init(struct hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

/* Bucket of value: values below 2 * HIST_HALF index directly. A larger value v with
 * highest set bit e is shifted right by e - HIST_SUB_BITS + 1, which leaves a number in
 * [HIST_HALF, 2 * HIST_HALF), and each shift step owns the next HIST_HALF buckets. */
static unsigned bucket_of(uint64_t value)
{
    if (value < 2 * HIST_HALF)
        return (unsigned)value;

    unsigned top_bit = 63u - (unsigned)__builtin_clzll(value);
    unsigned shift = top_bit - HIST_SUB_BITS + 1;
    return shift * HIST_HALF + (unsigned)(value >> shift);
}

static uint64_t bucket_low(unsigned index)
{
    if (index < 2 * HIST_HALF)
        return index;

    unsigned shift = index / HIST_HALF - 1;
    return (uint64_t)(index - shift * HIST_HALF) << shift;
}

static uint64_t bucket_width(unsigned index)
{
    if (index < 2 * HIST_HALF)
        return 1;
    return UINT64_C(1) << (index / HIST_HALF - 1);
}

void hist_record(struct hist *h, uint64_t value)
{
    h->buckets[bucket_of(value)]++;
    h->count++;
    h->sum += value;
    if (value < h->min)
        h->min = value;
    if (value > h->max)
        h->max = value;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
    if (h->count == 0)
        return 0;

    uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->count);
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;

    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen < rank)
            continue;

        uint64_t value = bucket_low(i) + bucket_width(i) / 2;
        if (value < h->min)
            value = h->min;
        if (value > h->max)
            value = h->max;
        return value;
    }
    return h->max;
}

double hist_mean(const struct hist *h)
{
    return h->count == 0 ? 0.0 : (double)(h->sum / h->count);
}
