/*
 * stats.c - counters and log-linear latency histograms.
 */
#include "stats.h"

struct stats stats;

static unsigned bucket_index(uint64_t us)
{
    if (us < HISTOGRAM_STEPS)
        return (unsigned)us;

    unsigned power = 63u - (unsigned)__builtin_clzll(us);   /* us >= 8, so power >= 3 */
    unsigned step = (unsigned)((us >> (power - 3)) & (HISTOGRAM_STEPS - 1));
    unsigned index = (power - 2) * HISTOGRAM_STEPS + step;
    unsigned last = HISTOGRAM_POWERS * HISTOGRAM_STEPS - 1;

    return index < last ? index : last;
}

uint64_t histogram_bucket_upper(unsigned index)
{
    if (index < HISTOGRAM_STEPS)
        return index;

    unsigned power = index / HISTOGRAM_STEPS + 2;
    uint64_t step = index % HISTOGRAM_STEPS;
    return ((HISTOGRAM_STEPS + step + 1) << (power - 3)) - 1;
}

void histogram_add(struct histogram *histogram, uint64_t microseconds)
{
    histogram->counts[bucket_index(microseconds)]++;
    histogram->total++;
    histogram->sum_us += microseconds;
    if (microseconds > histogram->max_us)
        histogram->max_us = microseconds;
}

uint64_t histogram_quantile(const struct histogram *histogram, double q)
{
    if (histogram->total == 0)
        return 0;

    uint64_t rank = (uint64_t)(q * (double)histogram->total + 0.999999);
    uint64_t seen = 0;
    for (unsigned i = 0; i < HISTOGRAM_POWERS * HISTOGRAM_STEPS; i++) {
        seen += histogram->counts[i];
        if (seen >= rank) {
            uint64_t upper = histogram_bucket_upper(i);
            return upper < histogram->max_us ? upper : histogram->max_us;
        }
    }
    return histogram->max_us;
}
