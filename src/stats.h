/*
 * stats.h - process-wide counters and latency histograms, read by the admin console,
 * the metrics endpoint and the periodic status line.
 */
#ifndef QMUX_STATS_H
#define QMUX_STATS_H

#include <stdint.h>

/*
 * Log-linear histogram of durations in microseconds: for each power of two, 8 linear
 * sub-buckets, so a reported percentile is within 12.5% of the true value. Covers 1 us
 * to about 2^40 us (12 days); longer durations land in the last bucket.
 */
#define HISTOGRAM_POWERS 40
#define HISTOGRAM_STEPS 8

struct histogram {
    uint64_t counts[HISTOGRAM_POWERS * HISTOGRAM_STEPS];
    uint64_t total;
    uint64_t sum_us;
    uint64_t max_us;
};

struct stats {
    uint64_t clients_accepted;
    uint64_t clients_rejected;        /* clients.max_clients, clients.max_per_user */
    uint64_t logins_rejected;          /* unknown users, wrong passwords, listeners not allowed */
    uint64_t policy_denials;          /* requests a policy rejected */
    uint64_t requests;                /* sync requests answered by the upstream */
    uint64_t requests_failed;         /* sync requests answered with an error by qmux */
    uint64_t async_messages;          /* async messages forwarded upstream */
    uint64_t query_timeouts;
    uint64_t queue_timeouts;
    uint64_t queue_rejections;        /* clients.max_queue */
    uint64_t unavailable;             /* pool.unavailable_wait_ms expired */
    uint64_t requests_retried;        /* unsent requests moved to another connection */
    uint64_t bytes_from_clients;
    uint64_t bytes_to_clients;
    uint64_t upstream_logins;
    uint64_t upstream_losses;
    uint64_t health_checks;

    struct histogram latency;         /* request arrival to last response byte relayed */
    struct histogram queue_wait;      /* request arrival to request sent upstream */
};

extern struct stats stats;

/* Adds one duration to a histogram. */
void histogram_add(struct histogram *histogram, uint64_t microseconds);

/* Returns the upper bound of the bucket holding the given quantile (0 < q <= 1), in
 * microseconds, or 0 for an empty histogram. */
uint64_t histogram_quantile(const struct histogram *histogram, double q);

/* Upper bound in microseconds of bucket index (for exporting the buckets). */
uint64_t histogram_bucket_upper(unsigned index);

#endif
